"""Download throughput and resume cost of ``imagenet-captions download`` against ``curl``, in one run.

What it measures, from a loopback static host (``imagenet_captions.testing.static_host`` in its own
process, serving with sendfile), against curl fetching the same files from the same host in the
same run:

1. One large file (``--large-mib``, default 1024): ``imagenet-captions download`` (a fresh process,
   as a user runs it: sha256 checked, renamed into place) against ``curl -o``. Target: ratio >= 1.
2. ``--small-count`` files of ``--small-kib`` each (default 200 x 64 KiB): ours (``--jobs`` default)
   against curl run once per file in a loop, as a user's script would (target: faster), and, for
   reference, one ``curl --parallel`` process.
3. Resume: a ``--resume-mib`` file from a throttled host, the download killed with SIGKILL mid-file,
   then rerun: bytes the host sent in all minus the file's size = bytes sent twice (target: at most
   one ``--block-size`` block plus the host's 64 KiB write piece in flight).

Each timed step runs ``--repeat`` times, alternating ours and curl, and the minimum is kept. The page
cache is warm (every file is read once before timing). Usage::

    python benchmarks/bench_download.py [--large-mib 1024] [--small-count 200] [--repeat 3] [--out DIR]

It prints a table and writes ``<out>/bench_download.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

import imagenet_captions

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "release"))
from download_helpers import manifest_for  # noqa: E402

ENV = {**os.environ, "PYTHONUNBUFFERED": "1"}


class Host:
    """The static host in a child process, so that its sendfile loop does not share our GIL."""

    def __init__(self, root: Path, throttle: float | None = None) -> None:
        cmd = [sys.executable, "-m", "imagenet_captions.testing.static_host", str(root)]
        if throttle:
            cmd += ["--throttle", str(throttle)]
        self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True, env=ENV)
        self.url = self.proc.stdout.readline().strip()  # type: ignore[union-attr]

    def stats(self) -> dict[str, Any]:
        with urllib.request.urlopen(self.url + "__stats") as r:
            return json.load(r)

    def close(self) -> None:
        self.proc.send_signal(signal.SIGTERM)
        self.proc.wait(10)


def write_release(root: Path, files: dict[str, int], seed: int) -> None:
    """Random files (written in pieces: the large one does not fit in memory twice) and a manifest."""
    import hashlib
    import random

    rng = random.Random(seed)
    entries = []
    for rel, size in files.items():
        target = root / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        h = hashlib.sha256()
        with open(target, "wb") as f:
            left = size
            while left:
                piece = rng.randbytes(min(left, 64 << 20))
                f.write(piece)
                h.update(piece)
                left -= len(piece)
        entries.append({"path": rel, "size": size, "sha256": h.hexdigest()})
    manifest = manifest_for({})
    manifest["files"] = entries
    (root / "manifest.json").write_text(json.dumps(manifest))


#: CPU seconds (user + system) of the last timed child: on a shared machine, steadier than wall time
LAST_CPU = [0.0]


def timed(cmd: list[str], **kw: Any) -> float:
    r0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    t = time.perf_counter()
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, env=ENV, **kw)
    wall = time.perf_counter() - t
    r1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    LAST_CPU[0] = r1.ru_utime + r1.ru_stime - r0.ru_utime - r0.ru_stime
    return wall


def ours(url: str, out: Path, *extra: str) -> float:
    shutil.rmtree(out, ignore_errors=True)
    cmd = [
        sys.executable,
        "-m",
        "imagenet_captions.cli",
        "download",
        url,
        "--out",
        str(out),
        "--no-progress",
        *extra,
    ]
    return timed(cmd)


def warm(root: Path) -> None:
    for p in root.rglob("*"):
        if p.is_file():
            with open(p, "rb") as f:
                while f.read(16 << 20):
                    pass


def bench_large(host: Host, work: Path, size: int, repeat: int) -> dict[str, Any]:
    url = host.url + "large/manifest.json"
    t_ours, t_curl, c_ours, c_curl = [], [], [], []
    for _ in range(repeat):
        t_ours.append(ours(url, work / "ours-large"))
        c_ours.append(LAST_CPU[0])
        target = work / "curl-large.bin"
        t_curl.append(timed(["curl", "-sS", "--fail", "-o", str(target), host.url + "large/big.bin"]))
        c_curl.append(LAST_CPU[0])
        target.unlink()
    shutil.rmtree(work / "ours-large", ignore_errors=True)
    return {
        "bytes": size,
        "ours_s": min(t_ours),
        "curl_s": min(t_curl),
        "ours_MBps": size / min(t_ours) / 1e6,
        "curl_MBps": size / min(t_curl) / 1e6,
        "ratio_ours_over_curl": min(t_curl) / min(t_ours),
        "all_ours_s": t_ours,
        "all_curl_s": t_curl,
        "ours_cpu_s": min(c_ours),
        "curl_cpu_s": min(c_curl),
    }


def bench_small(host: Host, work: Path, names: list[str], size: int, repeat: int) -> dict[str, Any]:
    url = host.url + "small/manifest.json"
    t_ours, t_seq, t_par = [], [], []
    par_ok = subprocess.run(["curl", "--parallel", "--version"], capture_output=True).returncode == 0
    for _ in range(repeat):
        t_ours.append(ours(url, work / "ours-small"))
        d = work / "curl-small"
        shutil.rmtree(d, ignore_errors=True)
        d.mkdir()
        t = time.perf_counter()
        for name in names:
            subprocess.run(
                ["curl", "-sS", "--fail", "-o", str(d / Path(name).name), host.url + "small/" + name],
                check=True,
            )
        t_seq.append(time.perf_counter() - t)
        if par_ok:
            shutil.rmtree(d)
            d.mkdir()
            config = work / "curl.cfg"
            config.write_text(
                "".join(f'url = "{host.url}small/{n}"\noutput = "{d / Path(n).name}"\n' for n in names)
            )
            t_par.append(
                timed(
                    [
                        "curl",
                        "-sS",
                        "--no-progress-meter",
                        "--fail",
                        "--parallel",
                        "--parallel-max",
                        "8",
                        "-K",
                        str(config),
                    ]
                )
            )
        shutil.rmtree(d)
    shutil.rmtree(work / "ours-small", ignore_errors=True)
    total = size * len(names)
    res = {
        "files": len(names),
        "bytes": total,
        "ours_s": min(t_ours),
        "curl_sequential_s": min(t_seq),
        "ratio_ours_over_curl_sequential": min(t_seq) / min(t_ours),
        "all_ours_s": t_ours,
        "all_curl_sequential_s": t_seq,
    }
    if t_par:
        res |= {"curl_parallel8_s": min(t_par), "ratio_ours_over_curl_parallel8": min(t_par) / min(t_ours)}
    return res


def bench_resume(root: Path, work: Path, size: int, block: int) -> dict[str, Any]:
    throttle = 64e6
    host = Host(root, throttle=throttle)
    try:
        out = work / "ours-resume"
        shutil.rmtree(out, ignore_errors=True)
        cmd = [
            sys.executable,
            "-m",
            "imagenet_captions.cli",
            "download",
            host.url + "resume/manifest.json",
            "--out",
            str(out),
            "--no-progress",
            "--block-size",
            str(block),
        ]
        part = out / "mid.bin.part"
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, env=ENV)
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and not (part.exists() and part.stat().st_size > size // 2):
            if proc.poll() is not None:
                raise RuntimeError(f"the download ended (status {proc.returncode}) before it could be killed")
            time.sleep(0.02)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        held = part.stat().st_size
        time.sleep(0.5)  # the host notices the dead connection and records what it had sent
        first = host.stats()["per_path"].get("resume/mid.bin", 0)
        subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, env=ENV)
        total = host.stats()["per_path"]["resume/mid.bin"]
    finally:
        host.close()
    shutil.rmtree(work / "ours-resume", ignore_errors=True)
    return {
        "bytes": size,
        "held_at_kill": held,
        "sent_before_kill": first,
        "sent_in_all": total,
        "resent": total - size,
        "block_size": block,
        "throttle_Bps": throttle,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--large-mib", type=int, default=1024)
    parser.add_argument("--small-count", type=int, default=200)
    parser.add_argument("--small-kib", type=int, default=64)
    parser.add_argument("--resume-mib", type=int, default=256)
    parser.add_argument("--block-size", type=int, default=1 << 20)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--out", default=None, help="where the JSON goes (default: the temp dir)")
    args = parser.parse_args()
    if shutil.which("curl") is None:
        sys.exit("curl is needed: apt-get install -y curl")
    load = os.getloadavg()[0]
    with tempfile.TemporaryDirectory(prefix="bench-download-") as tmp:
        work = Path(tmp)
        root = work / "host"
        large = args.large_mib << 20
        small = args.small_kib << 10
        names = [f"captions/{i:05d}.parquet" for i in range(args.small_count)]
        write_release(root / "large", {"big.bin": large}, 1)
        write_release(root / "small", dict.fromkeys(names, small), 2)
        write_release(root / "resume", {"mid.bin": args.resume_mib << 20}, 3)
        warm(root)
        host = Host(root)
        try:
            results = {
                "large": bench_large(host, work, large, args.repeat),
                "small": bench_small(host, work, names, small, args.repeat),
            }
        finally:
            host.close()
        results["resume"] = bench_resume(root, work, args.resume_mib << 20, args.block_size)
        curl_version = subprocess.run(["curl", "--version"], capture_output=True, text=True).stdout.split(
            "\n"
        )[0]
        results["env"] = {
            "python": sys.version.split()[0],
            "curl": curl_version,
            "cpus": os.cpu_count(),
            "tool": imagenet_captions.__version__,
            "load_before": load,
            "load_after": os.getloadavg()[0],
        }
        out = Path(args.out) if args.out else work
        out.mkdir(parents=True, exist_ok=True)
        (out / "bench_download.json").write_text(json.dumps(results, indent=1))
    lg, sm, rs = results["large"], results["small"], results["resume"]
    print(
        f"load average (1 min) {load:.1f} before, {results['env']['load_after']:.1f} after, on {os.cpu_count()} CPUs"
    )
    print(
        f"large file, {lg['bytes'] >> 20} MiB: ours {lg['ours_s']:.2f} s ({lg['ours_MBps']:.0f} MB/s), "
        f"curl {lg['curl_s']:.2f} s ({lg['curl_MBps']:.0f} MB/s): ratio {lg['ratio_ours_over_curl']:.2f}; "
        f"CPU ours {lg['ours_cpu_s']:.2f} s, curl {lg['curl_cpu_s']:.2f} s"
    )
    line = (
        f"{sm['files']} small files of {args.small_kib} KiB: ours {sm['ours_s']:.2f} s, "
        f"curl sequential {sm['curl_sequential_s']:.2f} s: ratio {sm['ratio_ours_over_curl_sequential']:.2f}"
    )
    if "curl_parallel8_s" in sm:
        line += f"; curl --parallel 8: {sm['curl_parallel8_s']:.2f} s (ratio {sm['ratio_ours_over_curl_parallel8']:.2f})"
    print(line)
    print(
        f"resume after kill -9 of a {rs['bytes'] >> 20} MiB file: {rs['resent']} bytes sent twice "
        f"(block {rs['block_size']}; held {rs['held_at_kill']} of {rs['sent_before_kill']} sent before the kill)"
    )


if __name__ == "__main__":
    main()
