"""Every kind of bad ``train`` option value is one line naming the option, exit 2, no traceback."""

from __future__ import annotations

from pathlib import Path

import pytest
from trainshards import make_shards

from imagenet_captions import cli
from imagenet_captions.errors import UsageError
from imagenet_captions.train.options import TrainOptions
from imagenet_captions.train.presets import PRESETS, SOURCES, resolve


@pytest.fixture(scope="module")
def shards(tmp_path_factory) -> Path:
    return make_shards(tmp_path_factory.mktemp("shapes"))


BAD_VALUES = [
    # negative
    ("--steps", ["--steps", "-1"]),
    ("--lr", ["--lr", "-0.1"]),
    ("--workers", ["--workers", "-2"]),
    ("--warmup-steps", ["--warmup-steps", "-5"]),
    ("--seed", ["--seed", "-1"]),
    ("--weight-decay", ["--weight-decay", "-1e-4"]),
    # zero where it must be positive
    ("--batch-size", ["--batch-size", "0"]),
    ("--steps", ["--steps", "0"]),
    ("--epochs", ["--epochs", "0"]),
    ("--log-every", ["--log-every", "0"]),
    ("--lr", ["--lr", "0"]),
    ("--global-batch-size", ["--global-batch-size", "0"]),
    # out of range
    ("--beta2", ["--beta2", "1.5"]),
    ("--momentum", ["--momentum", "1"]),
    ("--label-smoothing", ["--label-smoothing", "1"]),
    ("--lr-gamma", ["--lr-gamma", "2"]),
    ("--scale", ["--scale", "0.5", "2"]),
    ("--scale", ["--scale", "0.9", "0.1"]),
    ("--lr", ["--lr", "inf"]),
    # wrong type
    ("--steps", ["--steps", "abc"]),
    ("--batch-size", ["--batch-size", "3.5"]),
    ("--lr", ["--lr", "fast"]),
    ("--scale", ["--scale", "0.5"]),
    ("--model", ["--model", "resnet9000"]),
    ("--optimizer", ["--optimizer", "adam"]),
    ("--schedule", ["--schedule", "linear"]),
    ("--precision", ["--precision", "fp8"]),
    ("--decode", ["--decode", "gpu"]),
    ("--device", ["--device", "tpu"]),
    ("--preset", ["--preset", "clip-rn101-paper"]),
    # a missing path
    ("--shards", ["--shards", "/nonexistent/{0..3}.tar"]),
    ("--resume", ["--resume", "/nonexistent/latest.pt"]),
]


@pytest.mark.parametrize("option, args", BAD_VALUES, ids=[" ".join(a) for _, a in BAD_VALUES])
def test_bad_values_are_one_line_naming_the_option(shards, tmp_path, capsys, option, args):
    base = {"--shards": str(shards), "--model": "ce-tiny", "--steps": "1", "--device": "cpu"}
    base.pop(args[0], None)
    argv = ["train", "--out", str(tmp_path / "run"), "--workers", "0"]
    argv += [x for kv in base.items() for x in kv] + args
    rc = cli.main(argv)
    err = capsys.readouterr().err
    assert rc == 2, err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert option in lines[0] and "Traceback" not in err, err


def test_a_valid_command_line_passes_the_same_checks(shards, tmp_path):
    # The negative cases above could pass by rejecting everything: this one must be accepted.
    explicit = {"shards": str(shards), "out": str(tmp_path), "steps": "3", "lr": "5e-4", "scale": ["0.5", "1"]}
    o = resolve(explicit, "ce-rn50-paper")
    assert o.steps == 3 and o.lr == 5e-4 and o.scale == (0.5, 1.0) and o.model == "ce-rn50"


def test_options_are_checked_from_python_too():
    with pytest.raises(UsageError, match="--steps"):
        TrainOptions(model="ce-tiny", steps=2.5)
    with pytest.raises(UsageError, match="--hflip"):
        TrainOptions(model="ce-tiny", steps=1, hflip="yes")
    with pytest.raises(UsageError, match="--global-batch-size 1024 does not divide over 3 ranks"):
        resolve({"shards": "s", "out": "o"}, "clip-rn50-paper", world_size=3)


def test_presets_are_options_with_every_number_sourced():
    fields = set(TrainOptions.__dataclass_fields__)
    for name, preset in PRESETS.items():
        assert isinstance(preset, TrainOptions) and preset.preset == name
        assert preset.shards is None and preset.out is None
        sourced = {k.strip() for keys in SOURCES[name] for k in keys.split(",")}
        assert sourced <= fields, sourced - fields
        set_by_preset = {
            f for f in fields if getattr(preset, f) != getattr(TrainOptions(model="ce-tiny", steps=1), f)
        }
        assert set_by_preset - {"model", "epochs", "steps", "preset"} <= sourced, set_by_preset - sourced
