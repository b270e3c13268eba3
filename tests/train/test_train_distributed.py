"""Several processes: torchrun + DDP on the CPU (gloo), and the CLIP loss gathered across ranks."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torch.multiprocessing as mp
from rank_loss_worker import rank_loss
from trainshards import make_shards

from imagenet_captions.train.checkpoint import read_checkpoint
from imagenet_captions.train.step import make_clip_loss


@pytest.mark.slow
def test_gathered_clip_loss_equals_the_global_batch_loss(tmp_path):
    """Each rank scores its rows against all ranks' features: the mean over ranks is the full loss,
    and each rank's gradients are the full-batch gradients of its own rows (times the world size)."""
    torch.manual_seed(0)
    img = torch.nn.functional.normalize(torch.randn(8, 16), dim=-1)
    txt = torch.nn.functional.normalize(torch.randn(8, 16), dim=-1)
    # spawn (fork of a process with live threads can deadlock); the rank function sits in a light
    # module so that the children start quickly.
    args = (2, str(tmp_path / "pg"), img, txt, str(tmp_path / "r"))
    mp.start_processes(rank_loss, args=args, nprocs=2, join=True, start_method="spawn")
    parts = [torch.load(tmp_path / f"r.{r}") for r in range(2)]
    i, t = img.clone().requires_grad_(True), txt.clone().requires_grad_(True)
    full = make_clip_loss(0, 1)(i, t, torch.tensor(10.0))
    full.backward()
    assert torch.allclose((parts[0]["loss"] + parts[1]["loss"]) / 2, full.detach(), atol=1e-6)
    # DDP averages gradients over ranks: (g_rank0 + g_rank1) / 2 is what the optimiser sees.
    assert torch.allclose(torch.cat([parts[0]["gi"], parts[1]["gi"]]) / 2, i.grad, atol=1e-6)


@pytest.mark.slow
def test_torchrun_two_processes_on_cpu(tmp_path):
    shards = make_shards(tmp_path / "data", n=128, per_shard=32)
    out = tmp_path / "run"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [
        sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
        "-m", "imagenet_captions.cli", "train", "--shards", str(shards), "--out", str(out),
        "--model", "clip-tiny", "--steps", "4", "--batch-size", "8", "--workers", "1",
        "--log-every", "1", "--device", "cpu", "--save-every", "2",
    ]  # fmt: skip
    r = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=240)
    assert r.returncode == 0, r.stderr[-3000:]
    rows = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
    assert [x["step"] for x in rows] == [1, 2, 3, 4]  # rank 0 alone writes metrics
    assert rows[-1]["data_cpu_decoded"] == 4 * 8  # this rank's share of 4 global batches of 16
    ckpt = read_checkpoint(Path(out) / "checkpoints" / "latest.pt")
    assert ckpt["data_position"]["world_size"] == 2 and sorted(ckpt["rng"]) == ["0", "1"]
    assert ckpt["data"]["samples_seen"] == 4 * 16
    assert not any(k.startswith("module.") for k in ckpt["state_dict"])
