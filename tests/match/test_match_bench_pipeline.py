"""benchmarks/bench_match_pipeline.py still runs against the package (at a tiny size: it is run by
hand for the figures in docs/match.md, so a changed API would otherwise go unnoticed)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[2] / "benchmarks" / "bench_match_pipeline.py"


@pytest.mark.slow
def test_the_pipeline_benchmark_runs_in_process_and_on_dask(tmp_path):
    argv = [sys.executable, str(BENCH), "--rows", "2000", "--file-rows", "1000", "--dask", "--work", str(tmp_path)]
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    runs = [json.loads(line) for line in proc.stdout.splitlines() if line.startswith("{")]
    in_process = [r for r in runs if r.get("runner") == "in-process"]
    dask = [r for r in runs if r.get("runner") == "dask, 1 worker"]
    assert len(in_process) == 1 and len(dask) == 1
    assert in_process[0]["outcomes"] == dask[0]["outcomes"] and in_process[0]["written"] > 0
    assert dask[0]["worker_cpu_s"] > 0 and dask[0]["cpu_ratio_to_in_process"] > 0
