"""``benchmarks/bench_gpu.py`` without a GPU: its budget, its run folders, its commands, its children.

The GPU figures need a device machine (``benchmarks/gpu_session.sh``); what decides whether such a
run can be trusted (does it fit its time, does a rerun report its own figures, does a killed bench
leave nothing running on the GPU) is plain Python, checked here.
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import psutil
import pytest

BENCH = Path(__file__).resolve().parents[2] / "benchmarks" / "bench_gpu.py"


@pytest.fixture(scope="module")
def bench():
    spec = importlib.util.spec_from_file_location("bench_gpu", BENCH)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_default_run_fits_its_budget_even_when_every_phase_overruns(bench) -> None:
    """Shards first, then each phase's share of what is left; a child is killed at its budget and may
    take a few more seconds to go (SIGTERM, then SIGKILL after 5 s): the reserve covers the last one."""
    a = bench.parse_args([])
    assert a.budget == 240 and not a.compile
    budget = bench.Budget(a.budget, bench.PHASES, start=0.0)
    now = 25.0  # the shards, written on 16 cores
    for phase in bench.SHARES:
        seconds = budget.take(phase, now)
        assert seconds > 5, (phase, seconds)
        now += seconds + 5.5  # used its whole budget, then the kill's grace and a poll
    assert now <= a.budget


def test_an_overrun_shortens_the_later_phases_and_skipped_time_goes_to_them(bench) -> None:
    full = bench.Budget(240, ["compute", "open_clip"], start=0.0)
    slow = bench.Budget(240, ["compute", "open_clip"], start=0.0)
    assert full.take("compute", 20.0) == slow.take("compute", 20.0)
    assert slow.take("open_clip", 150.0) < full.take("open_clip", 60.0)
    only = bench.Budget(240, ["open_clip"], start=0.0)
    assert only.take("open_clip", 20.0) == pytest.approx(240 - 20 - bench.RESERVE_S)
    assert only.take("open_clip", 20.0) == 0  # taken once


def test_the_inference_folder_holds_many_batches(bench) -> None:
    for tiny, batch in ((False, 512), (True, 16), (False, 1024)):
        assert bench.data_sizes(tiny, batch)["inference_files"] >= 8 * batch


def test_compile_is_off_by_default_and_no_compile_reaches_open_clip(bench, tmp_path: Path) -> None:
    (tmp_path / "00000.tar").write_bytes(b"")
    for argv, compiled in (([], False), (["--no-compile"], False), (["--compile"], True)):
        a = bench.parse_args(argv)
        a.workers = 3
        oc = bench.open_clip_command(a, str(tmp_path), tmp_path / "logs", None)
        ours = bench.ours_command(a, str(tmp_path), tmp_path / "run", "device")
        assert ("--torchcompile" in oc) is compiled and ("--compile" in ours) is compiled, argv
        assert oc[oc.index("--workers") + 1] == ours[ours.index("--workers") + 1] == "3"


def test_each_run_has_its_own_folder_and_reads_only_its_own_rows(bench, tmp_path: Path) -> None:
    first, first_dir = bench.new_run_dir(tmp_path)
    second, second_dir = bench.new_run_dir(tmp_path)
    assert first != second and first_dir != second_dir and first_dir.is_dir() and second_dir.is_dir()
    results = tmp_path / "bench_gpu.jsonl"
    old, new = bench.Emitter(results, first), bench.Emitter(results, second)
    old("compute", mode="eager", samples_per_s=100.0)
    old("ours_original", samples_per_s=90.0)
    new("compute", mode="eager", samples_per_s=200.0)
    summary = bench.summarize(new.rows(), compile_=False)
    assert summary["compute_samples_per_s"] == {"eager": 200.0}
    assert summary["ours_original_samples_per_s"] is None  # the earlier run's 90 is not this run's
    assert len(results.read_text().splitlines()) == 3


def _gone(pid: int, timeout: float = 30.0) -> bool:
    """True once ``pid`` has exited (a zombie waiting for its reaper counts as gone)."""
    try:
        proc = psutil.Process(pid)
        proc.wait(timeout=timeout)
        return True
    except psutil.NoSuchProcess:
        return True
    except psutil.TimeoutExpired:
        return proc.status() == psutil.STATUS_ZOMBIE


def _family_script(pidfile: Path) -> str:
    """A child that starts a grandchild (as a trainer starts loader workers), writes both pids, waits."""
    return textwrap.dedent(
        f"""
        import os, subprocess, sys, time
        g = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
        open({str(pidfile)!r}, "w").write(f"{{os.getpid()}} {{g.pid}}")
        time.sleep(600)
        """
    )


def _wait_for(path: Path) -> list[int]:
    for _ in range(600):
        if path.is_file() and len(path.read_text().split()) == 2:
            return [int(x) for x in path.read_text().split()]
        time.sleep(0.1)
    raise AssertionError(f"{path} never appeared")


def test_a_child_and_its_workers_are_killed_at_its_budget(bench, tmp_path: Path) -> None:
    pidfile = tmp_path / "pids"
    cmd = [sys.executable, "-c", _family_script(pidfile)]
    rc = bench.run_budgeted(cmd, 3.0, tmp_path / "child.log")
    pids = _wait_for(pidfile)
    assert rc is None  # stopped at the budget, not finished
    assert all(_gone(p) for p in pids), pids
    assert not bench.LIVE_GROUPS


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGKILL])
def test_a_stopped_bench_leaves_no_child_running(tmp_path: Path, sig: signal.Signals) -> None:
    """SIGTERM: the bench kills its children's groups. SIGKILL: the kernel kills the child (its
    parent-death signal); a trainer's loader workers then exit on their own when their parent goes."""
    pidfile = tmp_path / "pids"
    runner = textwrap.dedent(
        f"""
        import importlib.util, sys
        from pathlib import Path
        spec = importlib.util.spec_from_file_location("bench_gpu", {str(BENCH)!r})
        bench = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(bench)
        bench.install_reaper()
        cmd = [sys.executable, "-c", {_family_script(pidfile)!r}]
        bench.run_budgeted(cmd, 600, Path({str(tmp_path / "child.log")!r}))
        """
    )
    parent = subprocess.Popen([sys.executable, "-c", runner])
    try:
        child, grandchild = _wait_for(pidfile)
        parent.send_signal(sig)
        parent.wait(timeout=60)
        assert _gone(child), "the child outlived the bench"
        if sig == signal.SIGTERM:
            assert _gone(grandchild), "the child's worker outlived the bench"
    finally:
        parent.kill()
        if pidfile.is_file():  # what the test itself left (the SIGKILL case's orphaned worker)
            for pid in (int(x) for x in pidfile.read_text().split()):
                with contextlib.suppress(psutil.NoSuchProcess):
                    psutil.Process(pid).kill()


@pytest.mark.slow
def test_the_tiny_bench_runs_end_to_end_on_the_cpu(tmp_path: Path) -> None:
    """The code paths of a device run, tiny: rows tagged with one run id and a summary."""
    out = tmp_path / "out"
    proc = subprocess.run(
        [sys.executable, str(BENCH), "--tiny", "--out", str(out), "--budget", "60", "--phases", "shards,compute,inference"],
        capture_output=True,
        text=True,
        timeout=300,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    rows = [json.loads(x) for x in (out / "bench_gpu.jsonl").read_text().splitlines()]
    assert len({r["run"] for r in rows}) == 1
    assert [r["phase"] for r in rows][:3] == ["environment", "shards", "plan"] and rows[-1][
        "phase"
    ] == "summary"
    assert rows[1]["inference_files"] >= 8 * 16
