"""The build's defaults have one source: the option dataclasses, which the parser reads."""

import argparse

from imagenet_captions.build.command import add_arguments, config_from_args
from imagenet_captions.build.plan import BuildConfig
from imagenet_captions.text import TextOptions


def test_a_build_with_no_options_is_the_dataclasses_defaults():
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    config = config_from_args(parser.parse_args(["--metadata", "release:m.json", "--out", "o"]))
    assert config == BuildConfig(metadata="release:m.json", out="o")
    assert config.text == TextOptions()
