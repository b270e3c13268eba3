"""Every kind of bad ``eval`` / ``eval robustness`` option value: one line naming it, exit 2, no traceback."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from imagenet_captions.cli import main
from imagenet_captions.errors import UsageError
from imagenet_captions.eval.options import EvalOptions, RobustnessOptions


@pytest.fixture()
def inputs(tmp_path: Path) -> dict[str, str]:
    """Paths that exist: the checks must fail on the one bad value, not on these."""
    ckpt = tmp_path / "model.pt"
    ckpt.write_bytes(b"not loaded: the options are checked before the model")
    root = tmp_path / "data"
    (root / "imagenet-r").mkdir(parents=True)
    acc = tmp_path / "acc.json"
    acc.write_text(json.dumps({"imagenet": 0.5, "imagenet-v2": 0.4}))
    return {"ckpt": str(ckpt), "root": str(root), "acc": str(acc), "tmp": str(tmp_path)}


EVAL_BAD = [
    # negative
    ("--batch-size", ["--batch-size", "-3"]),
    ("--workers", ["--workers", "-1"]),
    ("--limit", ["--limit", "-10"]),
    # zero where it must be positive
    ("--batch-size", ["--batch-size", "0"]),
    ("--limit", ["--limit", "0"]),
    # out of range
    ("--datasets", ["--datasets", "imagenet-z"]),
    ("--path", ["--path", "imagenet-q={tmp}"]),
    # wrong type
    ("--batch-size", ["--batch-size", "many"]),
    ("--workers", ["--workers", "2.5"]),
    ("--device", ["--device", "tpu"]),
    ("--path", ["--path", "imagenet"]),
    ("--checkpoint", ["--checkpoint", "open_clip:RN50"]),
    # a missing path
    ("--checkpoint", ["--checkpoint", "{tmp}/missing.pt"]),
    ("--checkpoint", ["--checkpoint", "open_clip:RN50:{tmp}/missing.pt"]),
    ("--data-root", ["--data-root", "{tmp}/no-data"]),
    ("--imagenet-labels", ["--imagenet-labels", "{tmp}/LOC_val_solution.csv"]),
    ("--out", ["--out", "{tmp}/no-folder/acc.json"]),
    ("--path", ["--path", "imagenet-r={tmp}/no-such-folder"]),
]

ROBUSTNESS_BAD = [
    ("--baseline", ["--baseline", "best"]),
    ("--plot", ["--plot", "{tmp}/er.bmp"]),
    ("--plot", ["--plot", "{tmp}/no-folder/er.png"]),
    ("--out", ["--out", "{tmp}/no-folder/er.json"]),
    ("--out", ["--out", "{tmp}"]),
    ("--accuracies", ["--accuracies", "{tmp}/missing.json"]),
]


def _one_line(capsys, argv: list[str], option: str) -> None:
    rc = main(argv)
    err = capsys.readouterr().err
    assert rc == 2, err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert option in lines[0] and "Traceback" not in err, err


@pytest.mark.parametrize("option, args", EVAL_BAD, ids=[" ".join(a) for _, a in EVAL_BAD])
def test_eval_bad_values(inputs, capsys, option, args):
    args = [a.format(**inputs) for a in args]
    base = {"--checkpoint": inputs["ckpt"], "--data-root": inputs["root"], "--device": "cpu"}
    base.pop(args[0], None)
    argv = ["eval", *[x for kv in base.items() for x in kv], "--out", f"{inputs['tmp']}/acc.json", *args]
    _one_line(capsys, argv, option)


@pytest.mark.parametrize("option, args", ROBUSTNESS_BAD, ids=[" ".join(a) for _, a in ROBUSTNESS_BAD])
def test_robustness_bad_values(inputs, capsys, option, args):
    args = [a.format(**inputs) for a in args]
    base = [] if args[0] == "--accuracies" else ["--accuracies", inputs["acc"]]
    _one_line(capsys, ["eval", "robustness", *base, *args], option)


def test_valid_options_pass_the_same_checks(inputs):
    # The cases above could pass by rejecting everything: these must be accepted and converted.
    o = EvalOptions(
        checkpoint=inputs["ckpt"],
        data_root=inputs["root"],
        datasets=("imagenet", "imagenet-r"),
        paths={"imagenet-r": inputs["root"]},
        out=f"{inputs['tmp']}/acc.json",
        batch_size="64",
        workers="0",
        limit="5",
        device="cuda:1",
    )
    assert (o.batch_size, o.workers, o.limit, o.device) == (64, 0, 5, "cuda:1")
    r = RobustnessOptions(
        accuracies=inputs["acc"], plot=f"{inputs['tmp']}/er.PDF", baseline="with-low-accuracy"
    )
    assert r.baseline == "with-low-accuracy" and r.out is None


def test_options_are_checked_from_python_too(inputs):
    with pytest.raises(UsageError, match="--batch-size"):
        EvalOptions(checkpoint=inputs["ckpt"], data_root=inputs["root"], batch_size=True)
    with pytest.raises(UsageError, match="--datasets"):
        EvalOptions(checkpoint=inputs["ckpt"], data_root=inputs["root"], datasets="imagenet")
