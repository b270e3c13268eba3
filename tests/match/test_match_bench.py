"""benchmarks/bench_match.py still runs against the package (it is run by hand, so a changed API
would otherwise go unnoticed until someone needs the figures)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parents[2] / "benchmarks" / "bench_match.py"


def test_bench_match_runs_at_a_tiny_size():
    proc = subprocess.run(
        [
            sys.executable,
            str(BENCH),
            "--captions",
            "300",
            "--baseline-captions",
            "50",
            "--repeat",
            "1",
            "--no-build-all",
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    result = json.loads(proc.stdout)
    for name in ("regex_alternation", "ours_default_no_clean", "ours_default_with_cleaning"):
        assert result[name]["per_cpu_s"] > 0
    assert result["ratio_ours_default_to_regex"] > 0 and result["build_s_ilsvrc2012"] > 0
