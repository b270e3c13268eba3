"""The whole build on a real two-worker Dask cluster: the same bytes as in-process, each unit once,
work spread over both workers, a killed worker or scheduler survived or reported in one line, and a
worker running other code refused.

Every build runs as the command a user types (``python -m imagenet_captions.cli build``) on the
session's frozen copy of the package, as do the scheduler and the workers (see dask_cluster.py).
"""

from __future__ import annotations

import collections
import hashlib
import importlib.util
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from dask_cluster import DaskCluster, pythonpath

from imagenet_captions import fsio, layout, trace

ROOT = Path(__file__).resolve().parents[2]
BUILD_TIMEOUT_S = 300
#: The final names of a build's shard folder; anything else there must be a temporary name.
FINAL_SUFFIXES = (".tar", ".parquet")
FINAL_FILES = ("sizes.json", "manifest.json")

pytestmark = pytest.mark.slow


def _bench():
    spec = importlib.util.spec_from_file_location("bench_scaleout", ROOT / "benchmarks" / "bench_scaleout.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def build(
    frozen: Path, metadata: str, imagenet: Path, out: Path, *extra: str, trace_file: Path | None = None
) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": pythonpath(frozen)}
    if trace_file is not None:
        env[trace.ENV] = str(trace_file)
    cmd = [sys.executable, "-m", "imagenet_captions.cli", "build", "--metadata", metadata]
    cmd += ["--imagenet", str(imagenet), "--out", str(out), *extra]
    return subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=BUILD_TIMEOUT_S)


def start_build(frozen: Path, metadata: str, imagenet: Path, out: Path, *extra: str) -> subprocess.Popen:
    cmd = [sys.executable, "-m", "imagenet_captions.cli", "build", "--metadata", metadata]
    cmd += ["--imagenet", str(imagenet), "--out", str(out), *extra]
    return subprocess.Popen(
        cmd,
        env={**os.environ, "PYTHONPATH": pythonpath(frozen)},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def digests(out: Path) -> dict[str, str]:
    """sha256 of every final file of the shard folder (shards, Parquet, sizes.json, manifest.json)."""
    shard_dir = out / layout.SHARD_DIR
    return {
        p.name: hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(shard_dir.iterdir())
        if p.suffix in FINAL_SUFFIXES or p.name in FINAL_FILES
    }


def ok(done: subprocess.CompletedProcess) -> None:
    assert done.returncode == 0, done.stderr[-4000:]


def one_error_line(stderr: str) -> str:
    """The command's error: one ``imagenet-captions build: error:`` line, and no traceback."""
    assert "Traceback" not in stderr, stderr[-4000:]
    errors = [line for line in stderr.splitlines() if line.startswith("imagenet-captions build: error:")]
    assert len(errors) == 1, stderr[-4000:]
    return errors[0]


def units(lines: list[tuple[str, str, str]]) -> dict[str, collections.Counter]:
    by_stage: dict[str, collections.Counter] = collections.defaultdict(collections.Counter)
    for stage, unit, _ in lines:
        by_stage[stage][unit] += 1
    return by_stage


def assert_each_unit_once(lines: list[tuple[str, str, str]], stages: tuple[str, ...]) -> None:
    by_stage = units(lines)
    for stage in stages:
        assert by_stage[stage], f"no {stage} units in the trace: {sorted(by_stage)}"
        twice = {u: n for u, n in by_stage[stage].items() if n != 1}
        assert not twice, f"{stage} units done more than once: {twice}"


def workers_of(lines: list[tuple[str, str, str]], stage: str) -> set[str]:
    return {worker for s, _, worker in lines if s == stage}


# ---------------------------------------------------------------------------------------------------
# Inputs: the demo sample (folder, tar, response store) and a generated ImageNet-shaped tree
# ---------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def store(sample_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A response store harvested from the sample through the loopback Flickr server."""
    from imagenet_captions.flickr.replay import demo_harvest, flickr_fixtures_for

    records = json.loads((sample_dir / "imagenet_captions.json").read_text(encoding="utf-8"))
    lines, responses = flickr_fixtures_for(records)
    harvest = tmp_path_factory.mktemp("harvest")
    urls = harvest / "urls.txt"
    urls.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return Path(demo_harvest(str(urls), responses, str(harvest)))


@pytest.fixture(scope="module")
def tree(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """3,000 tiny JPEGs in the 1,000 class folders, 2,000 records with the release's class shape."""
    root = tmp_path_factory.mktemp("tree")
    _bench().write_tree(root, records=2000, per_class=3, processes=1)
    return root


def _layouts(sample_dir: Path, sample_tar: Path, store: Path) -> dict[str, tuple[str, Path]]:
    release = f"release:{sample_dir / 'imagenet_captions.json'}"
    return {
        "folder": (release, sample_dir / "train"),
        "tar": (release, sample_tar),
        "responses": (f"responses:{store}", sample_dir / "train"),
    }


# ---------------------------------------------------------------------------------------------------
# Same bytes, each unit once, both workers busy
# ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("layout_name", ["folder", "tar", "responses"])
def test_the_sample_on_dask_is_byte_identical(
    layout_name: str,
    sample_dir: Path,
    sample_tar: Path,
    store: Path,
    dask_cluster: DaskCluster,
    frozen_code: Path,
    tmp_path: Path,
):
    metadata, imagenet = _layouts(sample_dir, sample_tar, store)[layout_name]
    shards = ("--num-shards", "8")
    ok(build(frozen_code, metadata, imagenet, tmp_path / "in-process", *shards))
    dask_cluster.reset_trace()
    client_trace = tmp_path / "client-trace.tsv"
    done = build(
        frozen_code,
        metadata,
        imagenet,
        tmp_path / "dask",
        *shards,
        "--runner",
        "dask",
        "--dask-address",
        dask_cluster.address,
        trace_file=client_trace,
    )
    ok(done)
    assert digests(tmp_path / "dask") == digests(tmp_path / "in-process")
    lines = dask_cluster.trace()
    assert_each_unit_once(lines, ("read", "list", "write", "finalize"))
    assert len(units(lines)["write"]) == 8
    # The client only plans: every unit of work ran on a worker.
    assert trace.read(str(client_trace)) == []
    assert len(workers_of(lines, "write")) == 2, collections.Counter((s, w) for s, _, w in lines)


def test_a_generated_tree_spreads_over_both_workers(
    tree: Path, dask_cluster: DaskCluster, frozen_code: Path, tmp_path: Path
):
    """Every unit runs once, the metadata read is split into two parts per worker, and reads, listings
    and shard writes land on both workers. Which worker runs a task is the Dask scheduler's choice
    (it may hand a few small root tasks to one worker), so the spread is asked of up to three builds;
    a graph that could not spread (one read part, one listing task) fails all three."""
    metadata = f"release:{tree / 'imagenet_captions.json'}"
    ok(build(frozen_code, metadata, tree / "train", tmp_path / "in-process"))
    seen = []
    for attempt in range(3):
        dask_cluster.reset_trace()
        out = tmp_path / f"dask-{attempt}"
        ok(build(frozen_code, metadata, tree / "train", out, "--runner", "dask", "--dask-address", dask_cluster.address))
        assert digests(out) == digests(tmp_path / "in-process")
        lines = dask_cluster.trace()
        assert_each_unit_once(lines, ("read", "list", "write", "finalize"))
        assert len(units(lines)["read"]) == 2 * 2  # two parts per worker
        assert len(units(lines)["list"]) >= 1000  # one unit per class folder
        report = json.loads((out / "report.json").read_text())
        assert report["shards"]["written_now"] == len(units(lines)["write"])
        busy = {stage: workers_of(lines, stage) for stage in ("read", "list", "write")}
        seen.append(busy)
        if all(len(w) == 2 for w in busy.values()):
            break
    assert all(len(w) == 2 for w in seen[-1].values()), seen


# ---------------------------------------------------------------------------------------------------
# Faults
# ---------------------------------------------------------------------------------------------------


class ShardWatcher:
    """Looks at the shard folder every few milliseconds while a build runs, remembering the size
    of each final-named file the first time it was seen: a file that appears under its final name
    must already be whole (written under a temporary name, then renamed)."""

    def __init__(self, shard_dir: Path):
        self.shard_dir = shard_dir
        self.first_size: dict[str, int] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> ShardWatcher:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                for entry in os.scandir(self.shard_dir):
                    if entry.name.endswith(FINAL_SUFFIXES) and entry.name not in self.first_size:
                        self.first_size[entry.name] = entry.stat().st_size
            except FileNotFoundError:
                pass
            self._stop.wait(0.005)

    def assert_never_partial(self) -> None:
        for name, size in self.first_size.items():
            path = self.shard_dir / name
            if path.exists():
                assert path.stat().st_size == size, f"{name} was visible at {size} bytes before it was whole"


def _wait_for_writes(cluster: DaskCluster, proc: subprocess.Popen, n: int) -> None:
    deadline = time.monotonic() + BUILD_TIMEOUT_S
    while len([1 for s, _, _ in cluster.trace() if s == "write"]) < n:
        assert proc.poll() is None, (
            f"the build ended before {n} shards were written: {proc.stderr.read()[-3000:]}"
        )
        assert time.monotonic() < deadline, "no shard written in time"
        time.sleep(0.01)


def _stray_files(shard_dir: Path) -> list[str]:
    """Files left that are neither a final name nor named as a temporary one."""
    return [
        p.name
        for p in shard_dir.iterdir()
        if p.is_file()
        and not (p.suffix in FINAL_SUFFIXES or p.name in FINAL_FILES)
        and not fsio.is_temp(p.name)
    ]


def _rerun_writes_only_the_missing(
    frozen: Path, metadata: str, imagenet: Path, out: Path, reference: Path, address: str, shards: int
) -> None:
    present = (
        {p.name for p in (out / layout.SHARD_DIR).glob("*.tar")}
        if (out / layout.SHARD_DIR).exists()
        else set()
    )
    done = build(
        frozen,
        metadata,
        imagenet,
        out,
        "--num-shards",
        str(shards),
        "--runner",
        "dask",
        "--dask-address",
        address,
    )
    ok(done)
    report = json.loads((out / "report.json").read_text())
    assert report["shards"]["kept"] == len(present)
    assert report["shards"]["written_now"] == shards - len(present)
    assert digests(out) == digests(reference)


def _build_and_kill(
    tree: Path, cluster: DaskCluster, frozen_code: Path, tmp_path: Path, kill: Callable[[], None]
) -> tuple[subprocess.Popen, str, str, Path, Path, Path, int]:
    """A 32-shard Dask build of ``tree``, and ``kill()`` called once a shard is written: returns the
    finished process, its stderr, and what a rerun needs (metadata, ImageNet, output, the in-process
    reference, the shard count). No shard is ever visible before it is whole."""
    metadata, imagenet, shards = f"release:{tree / 'imagenet_captions.json'}", tree / "train", 32
    reference = tmp_path / "in-process"
    ok(build(frozen_code, metadata, imagenet, reference, "--num-shards", str(shards)))
    out = tmp_path / "dask"
    cluster.reset_trace()
    with ShardWatcher(out / layout.SHARD_DIR) as watcher:
        proc = start_build(
            frozen_code, metadata, imagenet, out, "--num-shards", str(shards),
            "--runner", "dask", "--dask-address", cluster.address,
        )  # fmt: skip
        try:
            _wait_for_writes(cluster, proc, 1)
            kill()
            _, stderr = proc.communicate(timeout=BUILD_TIMEOUT_S)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    watcher.assert_never_partial()
    return proc, stderr, metadata, imagenet, out, reference, shards


def test_killing_a_worker_mid_build(
    tree: Path, fresh_dask_cluster: DaskCluster, frozen_code: Path, tmp_path: Path
):
    """The build completes byte-identical, or fails in one line and a rerun writes only what is missing."""

    def kill() -> None:
        victim = fresh_dask_cluster.workers[0]
        os.kill(victim.pid, signal.SIGKILL)
        victim.wait(timeout=10)

    proc, stderr, metadata, imagenet, out, reference, shards = _build_and_kill(
        tree, fresh_dask_cluster, frozen_code, tmp_path, kill
    )
    if proc.returncode == 0:
        assert digests(out) == digests(reference)
        assert _stray_files(out / layout.SHARD_DIR) == []
    else:
        one_error_line(stderr)
        _rerun_writes_only_the_missing(
            frozen_code, metadata, imagenet, out, reference, fresh_dask_cluster.address, shards
        )


def test_killing_the_scheduler_fails_in_one_line_and_a_rerun_writes_only_the_missing(
    tree: Path, fresh_dask_cluster: DaskCluster, frozen_code: Path, tmp_path: Path
):
    from dask_cluster import start_cluster

    proc, stderr, metadata, imagenet, out, reference, shards = _build_and_kill(
        tree, fresh_dask_cluster, frozen_code, tmp_path,
        lambda: os.kill(fresh_dask_cluster.scheduler.pid, signal.SIGKILL),
    )  # fmt: skip
    assert proc.returncode == 2, stderr[-3000:]
    assert "Dask" in one_error_line(stderr)
    fresh_dask_cluster.stop()
    second = start_cluster(tmp_path / "second", frozen_code)
    try:
        _rerun_writes_only_the_missing(
            frozen_code, metadata, imagenet, out, reference, second.address, shards
        )
    finally:
        second.stop()


def test_a_worker_with_other_code_is_refused_by_the_build(
    sample_dir: Path, fresh_dask_cluster: DaskCluster, frozen_code: Path, tmp_path: Path
):
    stale = tmp_path / "stale"
    shutil.copytree(frozen_code.parent, stale)
    init = stale / "pipeline" / "imagenet_captions" / "__init__.py"
    init.write_text(init.read_text().replace('__version__ = "', '__version__ = "0.0.0-stale+'))
    fresh_dask_cluster.start_worker("stale", code=stale / "pipeline")
    fresh_dask_cluster.wait_for_workers(3)
    fresh_dask_cluster.reset_trace()
    done = build(
        frozen_code,
        f"release:{sample_dir / 'imagenet_captions.json'}",
        sample_dir / "train",
        tmp_path / "out",
        "--runner",
        "dask",
        "--dask-address",
        fresh_dask_cluster.address,
    )
    assert done.returncode == 2
    line = one_error_line(done.stderr)
    with fresh_dask_cluster.client() as client:
        (address,) = [a for a, w in client.scheduler_info()["workers"].items() if w["name"] == "stale"]
    assert f"worker {address} runs imagenet_captions version 0.0.0-stale+" in line, line
    assert line.count("worker ") == 1, line
    assert fresh_dask_cluster.trace() == []
    assert not (tmp_path / "out" / layout.SHARD_DIR).exists() or not list(
        (tmp_path / "out" / layout.SHARD_DIR).glob("*.tar")
    )
