"""The README's open_clip ``--train-data`` recipe runs on our shards, and eval loads its output."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
import torch
from trainshards import make_shards

from imagenet_captions.train.checkpoint import load_for_inference
from imagenet_captions.train.models import TINY_CLIP_CFG


@pytest.mark.slow
def test_open_clip_trainer_on_our_shards(tmp_path):
    import open_clip

    shards = make_shards(tmp_path / "data", n=64, per_shard=16)
    cfg = tmp_path / "ic-tiny-clip.json"  # a tiny model instead of RN50, to fit a CPU test
    cfg.write_text(json.dumps(TINY_CLIP_CFG))
    sizes = json.loads((shards / "sizes.json").read_text())
    cmd = [
        sys.executable, "-m", "imagenet_captions.train.open_clip_recipe", "--add-model-config", str(cfg),
        "--dataset-type", "webdataset", "--train-data", str(shards / "{00000..00003}.tar"),
        "--train-num-samples", str(sum(sizes.values())), "--model", "ic-tiny-clip",
        "--batch-size", "16", "--lr", "1e-3", "--wd", "0.1", "--warmup", "2", "--epochs", "1",
        "--precision", "fp32", "--workers", "1", "--device", "cpu", "--logs", str(tmp_path / "logs"),
        "--name", "recipe", "--save-frequency", "1", "--log-every-n-steps", "1", "--report-to", "",
    ]  # fmt: skip
    r = subprocess.run(
        cmd, capture_output=True, text=True, timeout=240, env={**os.environ, "OMP_NUM_THREADS": "1"}
    )
    assert r.returncode == 0, r.stderr[-3000:]
    log = (tmp_path / "logs" / "recipe" / "out.log").read_text()
    assert "Train Epoch: 0 [64/64 (100%)]" in log
    ckpt = tmp_path / "logs" / "recipe" / "checkpoints" / "epoch_1.pt"
    open_clip.add_model_config(str(cfg))
    m = load_for_inference(f"open_clip:ic-tiny-clip:{ckpt}")
    assert m.kind == "clip" and m.source == "open_clip"
    assert m.encode_text(m.tokenizer(["a photo of a red circle"])).shape == (1, 64)
    assert m.encode_image(torch.zeros(1, 3, 32, 32)).shape == (1, 64)


def test_a_refusal_of_open_clips_trainer_is_a_failed_exit(tmp_path, capsys):
    """open_clip_train.main returns -1 for "Experiment already exists": the recipe must not exit 0."""
    from imagenet_captions.train.open_clip_recipe import main

    (tmp_path / "logs" / "c").mkdir(parents=True)
    (tmp_path / "logs" / "c" / "out.log").write_text("an earlier run\n")
    rc = main(["--logs", str(tmp_path / "logs"), "--name", "c", "--device", "cpu", "--report-to", ""])
    assert rc != 0 and "already exists" in capsys.readouterr().out
