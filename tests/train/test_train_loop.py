"""End-to-end training on generated shards: learning, metrics, checkpoints, exact resume."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch
from trainshards import N_CLASSES, held_out_top1, make_shards

from imagenet_captions import cli
from imagenet_captions.train.checkpoint import load_for_inference, read_checkpoint


@pytest.fixture(scope="module")
def shards(tmp_path_factory) -> Path:
    return make_shards(tmp_path_factory.mktemp("shapes"))


def _train(shards: Path, out: Path, *extra: str) -> None:
    rc = cli.main(["train", "--shards", str(shards), "--out", str(out), "--device", "cpu", *extra])
    assert rc == 0


def _metrics(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]


@pytest.mark.slow
def test_tiny_clip_learns_and_writes_a_complete_run(shards, tmp_path):
    out = tmp_path / "clip"
    _train(
        shards,
        out,
        "--model",
        "clip-tiny",
        "--steps",
        "40",
        "--batch-size",
        "32",
        "--workers",
        "2",
        "--lr",
        "3e-3",
        "--warmup-steps",
        "5",
        "--log-every",
        "5",
    )
    rows = _metrics(out)
    assert [r["step"] for r in rows] == list(range(5, 41, 5))
    for r in rows:
        assert {"step", "loss", "lr", "samples_per_s", "epoch"} <= r.keys() and r["samples_per_s"] > 0
    assert rows[-1]["data_cpu_decoded"] == 40 * 32
    assert rows[-1]["loss"] < rows[0]["loss"]
    ckpt = read_checkpoint(out / "checkpoints" / "latest.pt")
    assert ckpt["kind"] == "clip" and ckpt["step"] == 40 and ckpt["model"]["name"] == "clip-tiny"
    assert ckpt["tokenizer"] == {"type": "open_clip", "name": "RN50", "context_length": 16}
    assert ckpt["train_options"]["lr"] == 3e-3 and len(ckpt["wnids"]) == 1000
    assert ckpt["data"]["num_samples"] == 640 and len(ckpt["data"]["shards"]) == 4
    assert ckpt["data"]["samples_seen"] == 40 * 32
    assert (out / "tensorboard").is_dir()
    top1 = held_out_top1(load_for_inference(out / "checkpoints" / "latest.pt"))
    assert top1 >= 3 / N_CLASSES, top1


@pytest.mark.slow
def test_tiny_classifier_learns(shards, tmp_path):
    out = tmp_path / "ce"
    _train(
        shards,
        out,
        "--model",
        "ce-tiny",
        "--steps",
        "30",
        "--batch-size",
        "32",
        "--workers",
        "2",
        "--lr",
        "3e-3",
        "--log-every",
        "10",
        "--hflip",
    )
    ckpt = read_checkpoint(out / "checkpoints" / "latest.pt")
    assert ckpt["kind"] == "classifier" and ckpt["tokenizer"] is None
    top1 = held_out_top1(load_for_inference(out / "checkpoints" / "latest.pt"))
    assert top1 >= 3 / N_CLASSES, top1


@pytest.mark.parametrize("model", ["ce-tiny", "clip-tiny"])
def test_resume_gives_the_losses_of_an_uninterrupted_run(shards, tmp_path, model):
    # 4 steps per epoch, so the run crosses an epoch and resumes in the middle of the second.
    common = [
        "--model",
        model,
        "--steps",
        "8",
        "--batch-size",
        "32",
        "--train-num-samples",
        "128",
        "--workers",
        "2",
        "--log-every",
        "1",
        "--warmup-steps",
        "2",
        "--shuffle-buffer",
        "50",
    ]
    whole, resumed = tmp_path / "whole", tmp_path / "resumed"
    _train(shards, whole, *common, "--save-every", "6")
    (resumed / "checkpoints").mkdir(parents=True)
    shutil.copyfile(whole / "checkpoints" / "step_00000006.pt", resumed / "checkpoints" / "latest.pt")
    _train(shards, resumed, *common, "--resume", "auto")
    a = {r["step"]: r for r in _metrics(whole)}
    b = {r["step"]: r for r in _metrics(resumed)}
    assert sorted(b) == [7, 8]
    for step in (7, 8):
        assert abs(a[step]["loss"] - b[step]["loss"]) <= 1e-4, (step, a[step]["loss"], b[step]["loss"])
        assert a[step]["lr"] == pytest.approx(b[step]["lr"])
    # Different data would give different losses: the check above can fail.
    assert abs(a[7]["loss"] - a[8]["loss"]) > 1e-4
    sa = read_checkpoint(whole / "checkpoints" / "latest.pt")["state_dict"]
    sb = read_checkpoint(resumed / "checkpoints" / "latest.pt")["state_dict"]
    for k in sa:
        assert torch.allclose(sa[k].float(), sb[k].float(), atol=1e-5), k


def test_resume_refuses_changed_batching(shards, tmp_path, capsys):
    out = tmp_path / "run"
    common = ["--model", "ce-tiny", "--steps", "2", "--workers", "0", "--log-every", "1"]
    _train(shards, out, *common, "--batch-size", "16")
    rc = cli.main(
        [
            "train",
            "--shards",
            str(shards),
            "--out",
            str(out),
            "--device",
            "cpu",
            *common,
            "--batch-size",
            "8",
            "--resume",
            "auto",
        ]
    )
    assert rc == 2
    assert "batch_size" in capsys.readouterr().err


@pytest.mark.parametrize(
    "args, message",
    [
        (["--shards", "/nonexistent/{0..3}.tar", "--model", "ce-tiny", "--steps", "1"], "shard not found"),
        (["--model", "ce-tiny"], "--steps or --epochs"),
        (["--steps", "1"], "--model or --preset"),
    ],
)
def test_usage_errors_are_one_line(shards, tmp_path, capsys, args, message):
    if "--shards" not in args:
        args = ["--shards", str(shards), *args]
    rc = cli.main(["train", "--out", str(tmp_path / "x"), *args])
    assert rc == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err


def test_preset_fills_options_and_explicit_wins(shards, tmp_path):
    import argparse

    from imagenet_captions.train.command import add_arguments, options_from_args

    p = argparse.ArgumentParser()
    add_arguments(p)
    o = options_from_args(
        p.parse_args(["--shards", str(shards), "--out", "x", "--preset", "clip-rn50-paper", "--lr", "5e-4"])
    )
    assert o.model == "clip-rn50" and o.epochs == 32 and o.warmup_steps == 500
    assert o.batch_size == 1024 and o.scale == (0.9, 1.0) and o.lr == 5e-4
    o = options_from_args(p.parse_args(["--shards", str(shards), "--out", "x", "--preset", "ce-rn50-paper"]))
    assert o.optimizer == "sgd" and o.lr == 0.1 and o.batch_size == 256 and o.hflip is True


@pytest.mark.parametrize(
    "args",
    [
        ["--shards", "/nonexistent/{0..3}.tar", "--model", "ce-tiny", "--steps", "1"],
        ["--model", "ce-tiny", "--steps", "1", "--batch-size", "100000"],
    ],
)
def test_a_refused_run_leaves_no_checkpoints_folder(shards, tmp_path, capsys, args):
    """checkpoints/ appears with the first checkpoint, not when a command that is then refused starts."""
    if "--shards" not in args:
        args = ["--shards", str(shards), *args]
    out = tmp_path / "run"
    assert cli.main(["train", "--out", str(out), "--device", "cpu", "--workers", "0", *args]) == 2
    assert "Traceback" not in capsys.readouterr().err
    assert not (out / "checkpoints").exists()
