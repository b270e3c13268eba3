"""Benchmark of the whole ``match`` command on a generated LAION-like Parquet corpus.

    python benchmarks/bench_match_pipeline.py --rows 1000000 [--rows 10000000] [--dask] [--work DIR]

The corpus: ``--rows`` rows in files of ``--file-rows`` rows (row groups of 131,072 rows), columns
``url`` and ``caption`` as LAION's metadata has them. Each caption is one of the 1,000 real LAION
captions (``tests/match/data/laion_captions_sample_1000.parquet``) with one of its words replaced by
a word drawn from all of theirs, so the lengths, the words and the share of captions that name a
class are LAION's, while no two rows need be equal.

Each run is the command a user types (``python -m imagenet_captions.cli match``), in a child
process of its own, with the default rule (cleaning on) and, with ``--no-clean``, without it.
Reported per run: wall seconds, rows per wall second, the child's CPU seconds (user + system) and
rows per CPU second (the per-core rate: the other jobs of a shared machine inflate wall time, not
the process's CPU time), and its peak RSS (``ru_maxrss`` of that child, from ``wait4``). ``--dask``
also runs the same corpus on a local ``dask scheduler`` + 1 single-threaded ``dask worker`` (no
nanny): the client's, the worker's and the scheduler's CPU seconds during the run and their peak
RSS (``VmHWM``), and the ratios to the in-process run's of its wall time, of the worker's CPU time
(the per-core cost of the units on Dask) and of the three processes' CPU time together. Prints one JSON object per run;
docs/match.md records the figures and this command.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

ROOT = Path(__file__).resolve().parents[1]
SAMPLES = (
    ROOT / "tests" / "match" / "data" / "laion_captions_sample_1000.parquet",
    ROOT.parent / "shared" / "data" / "laion_captions_sample_1000.parquet",
)
ROW_GROUP = 131_072


def sample_captions() -> list[str]:
    path = next(p for p in SAMPLES if p.exists())
    return [c for c in pq.read_table(path, columns=["TEXT"]).column("TEXT").to_pylist() if c]


def make_corpus(folder: Path, rows: int, file_rows: int = 1_000_000, seed: int = 0) -> list[Path]:
    """``rows`` LAION-like rows in Parquet files of ``file_rows`` (see the module docstring)."""
    folder.mkdir(parents=True, exist_ok=True)
    real = [c.split(" ") for c in sample_captions()]
    pool = [w for words in real for w in words if w]
    rng = random.Random(seed)
    files = []
    done = 0
    while done < rows:
        n = min(file_rows, rows - done)
        captions = []
        for _ in range(n):
            words = list(rng.choice(real))
            words[rng.randrange(len(words))] = rng.choice(pool)
            captions.append(" ".join(words))
        ids = pa.array(range(done, done + n), pa.int64()).cast(pa.string())
        urls = pc.binary_join_element_wise("https://img.example.com/", ids, ".jpg", "")
        table = pa.table({"url": urls, "caption": pa.array(captions, pa.string())})
        path = folder / f"part-{len(files):05d}.parquet"
        pq.write_table(table, path, row_group_size=ROW_GROUP, compression="snappy")
        files.append(path)
        done += n
    return files


def _command(corpus: Path, out: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "imagenet_captions.cli", "match", "--corpus", f"parquet:{corpus}",
            "--out", str(out), *extra]  # fmt: skip


def run_match(corpus: Path, out: Path, rows: int, *extra: str) -> dict[str, Any]:
    """One whole ``match`` in a child process: wall and CPU time, peak RSS, rows/s, from the child's
    own resource usage (``wait4``, so no other child's peak is mixed in)."""
    shutil.rmtree(out, ignore_errors=True)
    log = out.parent / "match.log"
    t0 = time.perf_counter()
    with open(log, "wb") as f:
        proc = subprocess.Popen(_command(corpus, out, *extra), stdout=f, stderr=subprocess.STDOUT)
        _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - t0
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        raise SystemExit(f"match failed ({proc.returncode}): {log.read_text()[-3000:]}")
    cpu = usage.ru_utime + usage.ru_stime
    report = json.loads((out / "report.json").read_text())
    assert report["rows"]["input"] == rows and not report["accounting_problems"], report[
        "accounting_problems"
    ]
    return {
        "rows": rows,
        "options": list(extra),
        "wall_s": round(wall, 2),
        "rows_per_s": round(rows / wall),
        "cpu_s": round(cpu, 2),
        "rows_per_cpu_s": round(rows / cpu),
        "peak_rss_mb": round(usage.ru_maxrss / 1024),
        "written": report["written"]["rows"],
        "outcomes": report["rows"]["outcomes"],
    }


def _peak_rss_mb(pid: int) -> int:
    """A live process's peak RSS (VmHWM), in MB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return round(int(line.split()[1]) / 1024)
    return -1


def _cpu_s(pid: int) -> float:
    """A live process's CPU seconds (user + system)."""
    import psutil

    t = psutil.Process(pid).cpu_times()
    return t.user + t.system


def _start(cmd: list[str], log: Path, env: dict[str, str]) -> subprocess.Popen:
    with open(log, "ab") as f:
        return subprocess.Popen(cmd, stdout=f, stderr=subprocess.STDOUT, env=env, start_new_session=True)


def run_dask(corpus: Path, out: Path, rows: int, work: Path, *extra: str) -> dict[str, Any]:
    """The same match on a local scheduler and one single-threaded worker (no nanny)."""
    dask = str(Path(sys.executable).with_name("dask"))
    env = {**os.environ}
    sched_file = work / "scheduler.json"
    sched_file.unlink(missing_ok=True)
    procs = [_start([dask, "scheduler", "--host", "127.0.0.1", "--port", "0", "--no-dashboard",
                     "--scheduler-file", str(sched_file)], work / "scheduler.log", env)]  # fmt: skip
    try:
        deadline = time.monotonic() + 60
        while not sched_file.exists() and time.monotonic() < deadline:
            time.sleep(0.2)
        time.sleep(0.5)
        address = json.loads(sched_file.read_text())["address"]
        procs.append(_start([dask, "worker", address, "--nworkers", "1", "--nthreads", "1", "--no-nanny",
                             "--no-dashboard", "--host", "127.0.0.1", "--local-directory", str(work / "w0")],
                            work / "worker.log", env))  # fmt: skip
        time.sleep(5)
        before = _cpu_s(procs[1].pid), _cpu_s(procs[0].pid)
        result = run_match(corpus, out, rows, *extra, "--runner", "dask", "--dask-address", address)
        worker_cpu, scheduler_cpu = _cpu_s(procs[1].pid) - before[0], _cpu_s(procs[0].pid) - before[1]
        client_cpu = result["cpu_s"]
        result.update(
            runner="dask, 1 worker",
            cpu_s=round(client_cpu + worker_cpu + scheduler_cpu, 2),  # the three processes together
            rows_per_cpu_s=round(rows / (client_cpu + worker_cpu + scheduler_cpu)),
            client_cpu_s=client_cpu,
            worker_cpu_s=round(worker_cpu, 2),
            scheduler_cpu_s=round(scheduler_cpu, 2),
            rows_per_worker_cpu_s=round(rows / worker_cpu),
            worker_peak_rss_mb=_peak_rss_mb(procs[1].pid),
            scheduler_peak_rss_mb=_peak_rss_mb(procs[0].pid),
        )
        return result
    finally:
        for p in reversed(procs):
            if p.poll() is None:
                os.killpg(p.pid, signal.SIGTERM)
                try:
                    p.wait(timeout=15)
                except subprocess.TimeoutExpired:
                    os.killpg(p.pid, signal.SIGKILL)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument(
        "--rows", type=int, action="append", help="corpus sizes, smallest first (default 1,000,000)"
    )
    ap.add_argument("--file-rows", type=int, default=1_000_000)
    ap.add_argument("--dask", action="store_true", help="also on Dask with 1 worker (the largest corpus)")
    ap.add_argument("--no-clean", action="store_true", help="also without the text cleaning")
    ap.add_argument("--work", type=Path, help="folder for corpora and outputs (default: a temporary one)")
    args = ap.parse_args(argv)
    sizes = sorted(args.rows or [1_000_000])
    work = args.work or Path(tempfile.mkdtemp(prefix="bench-match-"))
    for rows in sizes:
        corpus = work / f"corpus-{rows}"
        if not corpus.exists():
            t0 = time.perf_counter()
            make_corpus(corpus, rows, args.file_rows)
            print(json.dumps({"generated": rows, "s": round(time.perf_counter() - t0, 1)}), flush=True)
        result = run_match(corpus, work / "out", rows)
        print(json.dumps({"runner": "in-process", **result}), flush=True)
        if args.no_clean:
            print(
                json.dumps({"runner": "in-process", **run_match(corpus, work / "out", rows, "--no-clean")}),
                flush=True,
            )
        if args.dask and rows == sizes[-1]:
            dask = run_dask(corpus, work / "out", rows, work)
            dask["wall_ratio_to_in_process"] = round(dask["wall_s"] / result["wall_s"], 2)
            dask["worker_cpu_ratio"] = round(dask["worker_cpu_s"] / result["cpu_s"], 2)
            dask["cpu_ratio_to_in_process"] = round(dask["cpu_s"] / result["cpu_s"], 2)
            print(json.dumps(dask), flush=True)


if __name__ == "__main__":
    main()
