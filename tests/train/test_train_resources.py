"""Loader workers sized to the machine: its usable cores and its shared memory (``train.resources``)."""

from __future__ import annotations

import json
import os
import warnings
from pathlib import Path

import pytest
import torch
from trainshards import make_shards

from imagenet_captions import cli
from imagenet_captions.errors import UsageError
from imagenet_captions.eval.inference import image_loader
from imagenet_captions.train import resources
from imagenet_captions.train.data import pin_host_memory
from imagenet_captions.train.options import TrainOptions
from imagenet_captions.train.resources import default_workers, fit_workers

MB = 1_000_000


@pytest.fixture(scope="module")
def shards(tmp_path_factory) -> Path:
    return make_shards(tmp_path_factory.mktemp("shapes"), n=128, per_shard=64)


def _cores() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def _train(shards: Path, out: Path, *extra: str) -> int:
    common = ["--model", "ce-tiny", "--batch-size", "8", "--log-every", "1", "--device", "cpu"]
    return cli.main(["train", "--shards", str(shards), "--out", str(out), *common, *extra])


def test_default_workers_leave_a_core_to_each_ranks_main_process(monkeypatch) -> None:
    assert TrainOptions(model="ce-tiny", steps=1).workers is None  # settled by setup, not a constant
    assert default_workers() == max(1, _cores() - 1)
    monkeypatch.setenv("LOCAL_WORLD_SIZE", "64")  # more ranks than cores: one worker each, never none
    assert default_workers() == 1


def test_a_run_without_workers_uses_the_cores_it_has_and_torch_does_not_warn(shards, tmp_path) -> None:
    out = tmp_path / "run"
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert _train(shards, out, "--steps", "2") == 0
    assert json.loads((out / "options.json").read_text())["workers"] == default_workers()
    too_many = [str(w.message) for w in caught if "worker processes in total" in str(w.message)]
    assert not too_many, too_many


def test_a_resume_without_workers_keeps_the_runs_own_count(shards, tmp_path, monkeypatch) -> None:
    """The worker count decides the batches: a resumed run keeps its own, whatever this machine has."""
    out = tmp_path / "run"
    monkeypatch.setattr(resources, "default_workers", lambda: 2)
    assert _train(shards, out, "--steps", "2", "--save-every", "1") == 0
    monkeypatch.setattr(resources, "default_workers", lambda: 1)
    assert _train(shards, out, "--steps", "3", "--resume", "auto") == 0
    assert json.loads((out / "options.json").read_text())["workers"] == 2


def test_fit_workers_lowers_the_queue_then_the_workers_or_refuses() -> None:
    batch = 50 * MB
    plan = fit_workers(4, batch, 1000 * MB, may_reduce_workers=False)
    assert (plan.workers, plan.prefetch, plan.note) == (4, 2, None)
    plan = fit_workers(4, batch, 300 * MB, may_reduce_workers=False)  # 4 x 2 x 50 > 225 usable
    assert (plan.workers, plan.prefetch) == (4, 1) and "1 batch ready" in plan.note
    plan = fit_workers(15, batch, 300 * MB, may_reduce_workers=True)
    assert (plan.workers, plan.prefetch) == (4, 1) and "4 workers" in plan.note
    plan = fit_workers(15, batch, 60 * MB, may_reduce_workers=True)
    assert plan.workers == 0 and "main process" in plan.note
    with pytest.raises(UsageError, match=r"--workers 15: .* /dev/shm has 300 MB free.*at most 4 --workers"):
        fit_workers(15, batch, 300 * MB, may_reduce_workers=False)
    assert fit_workers(0, batch, 1 * MB, may_reduce_workers=False).workers == 0
    assert fit_workers(8, batch, None, may_reduce_workers=False).workers == 8  # nothing to ask: as given


def test_explicit_workers_beyond_shared_memory_are_one_line_and_exit_2(
    shards, tmp_path, capsys, monkeypatch
) -> None:
    monkeypatch.setattr(resources, "free_shared_memory", lambda path=resources.SHM_PATH: 40_000)
    out = tmp_path / "run"
    assert _train(shards, out, "--steps", "1", "--workers", "2") == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--workers 2" in err[0] and "/dev/shm" in err[0], err
    assert not out.exists()


def test_automatic_workers_shrink_to_shared_memory(shards, tmp_path, monkeypatch) -> None:
    monkeypatch.setattr(resources, "free_shared_memory", lambda path=resources.SHM_PATH: 40_000)
    monkeypatch.setattr(resources, "default_workers", lambda: 3)
    out = tmp_path / "run"
    assert _train(shards, out, "--steps", "2") == 0
    assert json.loads((out / "options.json").read_text())["workers"] == 0  # read in the main process


def test_host_memory_is_pinned_only_for_images_decoded_on_the_cpu() -> None:
    assert pin_host_memory(torch.device("cuda"), "cpu")
    assert not pin_host_memory(torch.device("cuda"), "device")  # JPEG bytes for nvJPEG
    assert not pin_host_memory(torch.device("cpu"), "cpu")


def test_eval_readers_shrink_to_shared_memory(tmp_path, monkeypatch) -> None:
    pre = {"image_size": 32, "resize": 36, "mean": [0.5] * 3, "std": [0.5] * 3, "interpolation": "bilinear"}
    paths = [str(tmp_path / f"{i}.jpg") for i in range(8)]
    loader, _ = image_loader(paths, pre, torch.device("cpu"), 4, 2)
    assert (loader.num_workers, loader.prefetch_factor) == (2, 4)
    monkeypatch.setattr(resources, "free_shared_memory", lambda path=resources.SHM_PATH: 200_000)
    loader, _ = image_loader(paths, pre, torch.device("cpu"), 4, 2)  # 4 x 12 KB float images a batch
    assert loader.num_workers == 2 and loader.prefetch_factor < 4
    monkeypatch.setattr(resources, "free_shared_memory", lambda path=resources.SHM_PATH: 10_000)
    loader, _ = image_loader(paths, pre, torch.device("cpu"), 4, 2)
    assert loader.num_workers == 0
