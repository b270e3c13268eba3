"""Does the build scale out? The whole build with one worker and with two, against ``tar cf``, in one run.

What it measures, on a generated ImageNet-shaped tree (``--records`` records of the generated
release-format corpus, ``--per-class`` tiny JPEGs in each of the 1,000 class folders; the defaults
are the full scale: 448,896 records, 1,281,000 images):

1. ``tar cf`` of the tree into a file, right before the builds (the page cache decides what tar
   and the builds pay for reading; measured here, both find the files as warm as each other);
2. the whole ``imagenet-captions build`` (metadata, listing, text, shuffle, shards, report) on:
   the in-process FnApiRunner; Beam's DaskRunner on a ``dask scheduler`` with one and with two
   single-threaded ``dask worker`` processes; Beam's multi-processing DirectRunner with
   ``--direct_num_workers`` 1 and 2;
3. each build's wall time, and its peak memory: the largest sum of RSS over the client, its
   children and the Dask scheduler and workers, sampled every 0.2 s.

It prints the throughput ratios the scale-out targets are stated in (two workers against one;
two workers against tar; peak memory) and writes ``<out>/bench_scaleout.json``.

Usage::

    python benchmarks/bench_scaleout.py [--records N] [--per-class N] [--work DIR] [--only NAMES]

The tree is kept in ``--work`` and reused by a later run with the same sizes (``done.json``).
:func:`write_tree` is also the generator of the scale-out tests' small trees.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import multiprocessing
import os
import platform
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from PIL import Image

#: Images a class folder holds at the full scale (ILSVRC-2012 has 1,281,167 in 1,000 classes).
FULL_PER_CLASS = 1281
#: Distinct tiny JPEGs the tree cycles through: enough that shards are not one repeated file.
N_JPEGS = 64
TREE_VERSION = 1


def tiny_jpegs(n: int = N_JPEGS) -> list[bytes]:
    """Small valid baseline JPEGs (16x12, flat colours): a file costs one disk block, as a real
    tree's many small reads do, without gigabytes of pixels."""
    out = []
    for i in range(n):
        im = Image.new("RGB", (16, 12), ((i * 37) % 256, (i * 91) % 256, (i * 53) % 256))
        buf = io.BytesIO()
        im.save(buf, "JPEG", quality=90)
        out.append(buf.getvalue())
    return out


def _class_images(wnid: str, record_ids: list[int], per_class: int) -> list[str]:
    """The class's file stems: every record's image first, then other ids up to ``per_class``."""
    stems = [f"{wnid}_{n}" for n in record_ids[:per_class]]
    taken = set(record_ids)
    n = 0
    while len(stems) < per_class:
        n += 1
        if n not in taken:
            stems.append(f"{wnid}_{n}")
    return stems


def _write_class(job: tuple[str, str, list[str]]) -> int:
    train, wnid, stems = job
    jpegs = tiny_jpegs()
    folder = os.path.join(train, wnid)
    os.makedirs(folder, exist_ok=True)
    for i, stem in enumerate(stems):
        fd = os.open(os.path.join(folder, stem + ".JPEG"), os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        try:
            os.write(fd, jpegs[i % len(jpegs)])
        finally:
            os.close(fd)
    return len(stems)


def write_tree(
    root: Path, records: int | None = None, per_class: int = FULL_PER_CLASS, seed: int = 0, processes: int = 0
) -> dict:
    """Write ``root/train/<wnid>/<wnid>_<n>.JPEG`` and ``root/imagenet_captions.json`` (the
    generated corpus, the release's per-class record counts scaled to ``records``); reuse them when
    an earlier call left the same tree. Returns what was written.

    ``processes`` write the class folders (0: one per core; 1: this process, for callers that
    loaded this file by path, whose functions a pool cannot pickle)."""
    from imagenet_captions.classes import class_index
    from imagenet_captions.testing.corpus import generate

    stamp = {"records": records, "per_class": per_class, "seed": seed, "v": TREE_VERSION}
    done = root / "done.json"
    if done.exists() and json.loads(done.read_text()).get("stamp") == stamp:
        return json.loads(done.read_text())
    if root.exists():
        shutil.rmtree(root)
    root.mkdir(parents=True)
    ids: dict[str, list[int]] = {wnid: [] for wnid, _ in class_index()}
    n_records = 0
    tmp = root / "imagenet_captions.json.tmp"
    with tmp.open("w", encoding="utf-8") as f:
        f.write("[")
        for rec in generate(records, seed):
            f.write(",\n" if n_records else "\n")
            f.write(json.dumps(rec, ensure_ascii=True))
            ids[rec["wnid"]].append(int(rec["filename"].split("_")[1].split(".")[0]))
            n_records += 1
        f.write("\n]\n")
    tmp.replace(root / "imagenet_captions.json")
    train = str(root / "train")
    jobs = [(train, wnid, _class_images(wnid, sorted(rec_ids), per_class)) for wnid, rec_ids in ids.items()]
    if processes == 1:
        images = sum(map(_write_class, jobs))
    else:
        with multiprocessing.Pool(processes or os.cpu_count() or 1) as pool:
            images = sum(pool.imap_unordered(_write_class, jobs, chunksize=8))
    info = {"stamp": stamp, "records": n_records, "images": images, "classes": len(jobs)}
    done.write_text(json.dumps(info))
    return info


# ---------------------------------------------------------------------------------------------------
# Measuring
# ---------------------------------------------------------------------------------------------------


class PeakRss:
    """The largest sum of RSS over some root processes and all their descendants, sampled."""

    def __init__(self, pids: list[int], every_s: float = 0.2):
        self._pids = pids
        self._every = every_s
        self.peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> PeakRss:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def _sample(self) -> int:
        import psutil

        seen: dict[int, int] = {}
        for pid in self._pids:
            try:
                root = psutil.Process(pid)
                for proc in [root, *root.children(recursive=True)]:
                    with contextlib.suppress(psutil.Error):
                        seen[proc.pid] = proc.memory_info().rss
            except psutil.Error:
                pass
        return sum(seen.values())

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, self._sample())
            self._stop.wait(self._every)


def _start(cmd: list[str], log: Path, env: dict[str, str] | None = None) -> subprocess.Popen:
    with log.open("ab") as f:
        return subprocess.Popen(cmd, stdout=f, stderr=subprocess.STDOUT, env=env, start_new_session=True)


def _stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait()


class DaskProcesses:
    """A ``dask scheduler`` and ``n`` single-threaded ``dask worker`` processes on 127.0.0.1."""

    def __init__(self, n: int, work: Path):
        self.n, self.work = n, work
        self.procs: list[subprocess.Popen] = []
        self.address = ""

    def __enter__(self) -> DaskProcesses:
        dask = str(Path(sys.executable).with_name("dask"))
        sched_file = self.work / f"scheduler-{self.n}.json"
        sched_file.unlink(missing_ok=True)
        log = self.work / f"dask-{self.n}.log"
        self.procs.append(
            _start(
                [
                    dask,
                    "scheduler",
                    "--host",
                    "127.0.0.1",
                    "--port",
                    "0",
                    "--no-dashboard",
                    "--scheduler-file",
                    str(sched_file),
                ],
                log,
            )
        )
        deadline = time.monotonic() + 60
        while not sched_file.exists() or not sched_file.read_text().strip():
            if time.monotonic() > deadline:
                raise RuntimeError("dask scheduler did not start")
            time.sleep(0.1)
        time.sleep(0.2)
        self.address = json.loads(sched_file.read_text())["address"]
        for i in range(self.n):
            self.procs.append(
                _start(
                    [
                        dask,
                        "worker",
                        self.address,
                        "--name",
                        f"w{i}",
                        "--nworkers",
                        "1",
                        "--nthreads",
                        "1",
                        "--no-nanny",
                        "--no-dashboard",
                        "--host",
                        "127.0.0.1",
                        "--memory-limit",
                        "0",
                        "--local-directory",
                        str(self.work / f"dask-w{i}"),
                    ],
                    log,
                )
            )
        from distributed import Client

        with Client(self.address, timeout=30) as c:
            c.wait_for_workers(self.n, timeout=60)
        return self

    def __exit__(self, *exc: object) -> None:
        for proc in reversed(self.procs):
            _stop(proc)

    @property
    def pids(self) -> list[int]:
        return [p.pid for p in self.procs]


def timed(cmd: list[str], log: Path, extra_pids: list[int] | None = None) -> dict[str, Any]:
    """Wall time, exit status and peak RSS (with ``extra_pids``' trees) of one command."""
    t0 = time.perf_counter()
    proc = _start(cmd, log)
    with PeakRss([proc.pid, *(extra_pids or [])]) as rss:
        rc = proc.wait()
    wall = time.perf_counter() - t0
    return {"wall_s": round(wall, 2), "rc": rc, "peak_rss_gb": round(rss.peak / 1e9, 3)}


RUNS: dict[str, tuple[str, int]] = {
    "in_process": ("fnapi", 1),
    "dask_1": ("dask", 1),
    "dask_2": ("dask", 2),
    "direct_mp_1": ("direct", 1),
    "direct_mp_2": ("direct", 2),
}


def build_command(tree: Path, out: Path, kind: str, workers: int, address: str = "") -> list[str]:
    cmd = [
        sys.executable,
        "-m",
        "imagenet_captions.cli",
        "build",
        "--metadata",
        f"release:{tree / 'imagenet_captions.json'}",
        "--imagenet",
        str(tree / "train"),
        "--out",
        str(out),
    ]
    if kind == "dask":
        cmd += ["--runner", "dask", "--dask-address", address]
    elif kind == "direct":
        cmd += ["--direct_running_mode", "multi_processing", "--direct_num_workers", str(workers)]
    return cmd


def run(args: argparse.Namespace) -> dict[str, Any]:
    work: Path = args.work
    work.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    tree = write_tree(work / "tree", args.records, args.per_class)
    gen_s = time.perf_counter() - t0
    print(
        f"tree: {tree['images']} images, {tree['records']} records ({gen_s:.0f} s; reused if 0)", flush=True
    )
    logs = work / "logs"
    logs.mkdir(exist_ok=True)
    result: dict[str, Any] = {
        "machine": {
            "cores": os.cpu_count(),
            "python": platform.python_version(),
            "platform": platform.platform(),
        },
        "tree": tree,
        "runs": {},
    }
    tar_out = work / "all.tar"
    tar_out.unlink(missing_ok=True)
    result["tar"] = timed(["tar", "cf", str(tar_out), "-C", str(work / "tree"), "train"], logs / "tar.log")
    tar_out.unlink(missing_ok=True)
    print(f"tar cf: {result['tar']['wall_s']} s", flush=True)
    for name in args.only:
        kind, n = RUNS[name]
        out = work / f"out-{name}"
        shutil.rmtree(out, ignore_errors=True)
        log = logs / f"{name}.log"
        log.unlink(missing_ok=True)
        if kind == "dask":
            with DaskProcesses(n, work) as cluster:
                r = timed(build_command(work / "tree", out, kind, n, cluster.address), log, cluster.pids)
        else:
            r = timed(build_command(work / "tree", out, kind, n), log)
        report = out / "report.json"
        if report.exists():
            rep = json.loads(report.read_text())
            r["written"] = rep.get("written")
            r["shards"] = rep.get("shards", {}).get("written_now")
        result["runs"][name] = r
        print(f"{name}: {r}", flush=True)
        shutil.rmtree(out, ignore_errors=True)
    runs = result["runs"]

    def ratio(a: str, b: str) -> float | None:
        if a in runs and b in runs and runs[a]["rc"] == 0 and runs[b]["rc"] == 0:
            return round(runs[a]["wall_s"] / runs[b]["wall_s"], 2)
        return None

    result["ratios"] = {
        "dask: 2 workers' throughput / 1 worker's (target >= 1.6)": ratio("dask_1", "dask_2"),
        "direct multi-processing: 2 workers / 1": ratio("direct_mp_1", "direct_mp_2"),
        "dask 2 workers' wall / tar cf (target <= 1.5)": (
            round(runs["dask_2"]["wall_s"] / result["tar"]["wall_s"], 2) if "dask_2" in runs else None
        ),
        "direct 2 workers' wall / tar cf": (
            round(runs["direct_mp_2"]["wall_s"] / result["tar"]["wall_s"], 2)
            if "direct_mp_2" in runs
            else None
        ),
        "in-process wall / tar cf": (
            round(runs["in_process"]["wall_s"] / result["tar"]["wall_s"], 2) if "in_process" in runs else None
        ),
        "peak RSS of the whole build, GB (target < 4)": max(
            (r["peak_rss_gb"] for r in runs.values()), default=None
        ),
    }
    for k, v in result["ratios"].items():
        print(f"  {k}: {v}")
    (work / "bench_scaleout.json").write_text(json.dumps(result, indent=2))
    return result


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument(
        "--records", type=int, default=None, help="corpus records (default: 448,896, the release's)"
    )
    ap.add_argument("--per-class", type=int, default=FULL_PER_CLASS, help="images per class folder")
    ap.add_argument("--work", type=Path, default=Path(tempfile.gettempdir()) / "bench_scaleout")
    ap.add_argument("--only", default=",".join(RUNS), help=f"comma-separated runs of {', '.join(RUNS)}")
    args = ap.parse_args(argv)
    args.only = [n for n in args.only.split(",") if n]
    unknown = [n for n in args.only if n not in RUNS]
    if unknown:
        ap.error(f"unknown runs: {unknown}")
    run(args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
