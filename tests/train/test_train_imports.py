"""Training never pulls in Apache Beam (train and eval run where Beam is not installed)."""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

import pytest

import imagenet_captions.train


def test_train_modules_import_without_beam():
    code = (
        "import sys\n"
        "import imagenet_captions.train.loop, imagenet_captions.train.command, imagenet_captions.train.data\n"
        "import imagenet_captions.train.checkpoint, imagenet_captions.testing.synthetic\n"
        "from imagenet_captions import cli\n"
        "try:\n    cli.main(['train', '--help'])\nexcept SystemExit:\n    pass\n"
        "assert 'apache_beam' not in sys.modules, 'beam was imported'\n"
        "print('clean')\n"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr[-2000:]
    assert "--shards" in r.stdout and "clean" in r.stdout


def test_no_beam_in_train_sources():
    root = Path(imagenet_captions.train.__file__).parent
    for f in root.glob("*.py"):
        assert "apache_beam" not in f.read_text(), f


def _parsers() -> list[tuple[str, argparse.ArgumentParser]]:
    """The parsers of ``train``, ``eval`` and ``eval robustness``, built as the CLI builds them."""
    from imagenet_captions.cli import CommandParser
    from imagenet_captions.eval import command as eval_command
    from imagenet_captions.train import command as train_command

    out = []
    for name, module in (("train", train_command), ("eval", eval_command)):
        p = CommandParser(prog=f"imagenet-captions {name}")
        module.add_arguments(p)
        out.append((name, p))
        for action in p._actions:
            if isinstance(action, argparse._SubParsersAction):
                out += [(f"{name} {sub}", sp) for sub, sp in action.choices.items()]
    return out


def test_every_train_and_eval_option_has_help_and_its_default() -> None:
    """Each option says what it does and, unless it is required, what happens when it is not given."""
    missing = []
    for name, parser in _parsers():
        assert parser.format_help()  # argparse formats every help string ('%' would break it)
        for action in parser._actions:
            if (
                isinstance(action, (argparse._HelpAction, argparse._SubParsersAction))
                or action.dest == "verbose"
            ):
                continue
            flag = f"{name} {action.option_strings[-1]}"
            if not action.help or action.help == argparse.SUPPRESS:
                missing.append(f"{flag}: no help")
            elif not action.required and "default" not in action.help and "required" not in action.help:
                missing.append(f"{flag}: no default in {action.help!r}")
    assert not missing, missing


def test_train_help_shows_train_options_own_defaults() -> None:
    """The defaults in ``train --help`` are TrainOptions' (one source), not a copy that can drift."""
    import dataclasses

    from imagenet_captions.train.command import default_of
    from imagenet_captions.train.options import TrainOptions

    parser = dict(_parsers())["train"]
    helps = {a.dest: a.help for a in parser._actions}
    shown = 0
    for f in dataclasses.fields(TrainOptions):
        if f.name in helps and f.default is not None and f"default {default_of(f.name)}" in helps[f.name]:
            shown += 1
        elif f.name in helps and f.default is not None and f.name not in ("decode", "precision"):
            pytest.fail(f"--{f.name.replace('_', '-')}: {helps[f.name]!r} does not show {default_of(f.name)}")
    assert shown >= 20
    assert default_of("lr") == "0.001" and default_of("scale") == "0.9 1" and default_of("hflip") == "off"
