"""Benchmark of the harvest: quota use under faults and a latency tail, and resume after kill -9.

    python benchmarks/bench_harvest.py            # the full run: 60 s per quota scenario (~5 min)
    python benchmarks/bench_harvest.py --quick    # 10 s per scenario, smaller resume run

The loopback Flickr server runs in its own process (``python -m imagenet_captions.flickr.fake_server``)
and enforces N calls/s per key with a 1-second sliding window (429 with HTML above it), injects
5xx, code 105, truncated bodies, HTML pages, connection resets and hangs longer than the client's
timeout, and delays every answer by a log-normal latency (median 0.15 s, p99 2.5 s).

1. Quota use: the harvest engine (the :class:`HarvestService` the Beam fetch step uses: client,
   GCRA limiter per key, journal) gets a backlog larger than the window, and the server counts the
   calls it accepts during ``--seconds``. Quota use = accepted / (N x keys x seconds); refused =
   429s / all calls. Targets: >= 98 % and < 0.5 %, for 1 key and for 3 keys (3N).
   Baseline, measured the same way in the same process: a naive client that calls, then sleeps
   1/N (what a simple script does); the ratio ours / baseline is printed.
2. Resume: ``imagenet-captions harvest`` is killed with SIGKILL halfway, then rerun: no photo with
   a stored answer may be asked again, and the final store must equal that of an uninterrupted run.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from imagenet_captions.flickr import store
from imagenet_captions.flickr.client import FlickrClient, RetryPolicy
from imagenet_captions.flickr.service import HarvestConfig, HarvestService

FAULTS = {
    "p_5xx": 0.02,
    "p_105": 0.02,
    "p_truncated": 0.01,
    "p_html": 0.01,
    "p_reset": 0.01,
    "p_hang": 0.005,
    "hang_seconds": 15.0,
    "latency_median": 0.15,
    "latency_p99": 2.5,
    "seed": 7,
}
TIMEOUT = 8.0


def answer(pid: int) -> dict:
    """A getInfo answer in Flickr's shape (about 1.5 kB, like a real one)."""
    return {
        "photo": {
            "id": str(pid),
            "secret": "a84043078e",
            "server": "699",
            "farm": 1,
            "dateuploaded": "1445974092",
            "license": "0",
            "owner": {"nsid": "18178648@N05", "username": "someone"},
            "title": {"_content": f"photo {pid}"},
            "description": {"_content": "A <b>great</b> white shark, " * 20},
            "tags": {
                "tag": [
                    {"id": f"1-{pid}-{i}", "raw": f"Tag{i}", "_content": f"tag{i}", "machine_tag": 0}
                    for i in range(8)
                ]
            },
            "media": "photo",
        },
        "stat": "ok",
    }


class Server:
    """The fake Flickr API in a child process (so its event loop does not share our GIL)."""

    def __init__(self, workdir: Path, photo_ids: range, keys: list[str], qps: float, faults: dict):
        responses = {str(p): answer(p) for p in photo_ids if p % 20 != 0}  # 5 % not found
        path = workdir / "responses.json"
        path.write_text(json.dumps(responses))
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "imagenet_captions.flickr.fake_server",
                "--responses",
                str(path),
                "--keys",
                ",".join(keys),
                "--qps",
                str(qps),
                "--faults",
                json.dumps(faults),
            ],
            stdout=subprocess.PIPE,
            text=True,
        )
        self.url = self.proc.stdout.readline().strip()
        if not self.url.startswith("http://127.0.0.1:"):
            raise RuntimeError("the fake server did not start")
        self.stats_url = self.url.replace("/services/rest/", "/stats")

    def stats(self) -> dict:
        with urllib.request.urlopen(self.stats_url, timeout=30) as r:
            return json.loads(r.read())

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(timeout=10)


def measure(stats: dict, keys: list[str], qps: float, seconds: float, since: float) -> dict:
    """Accepted calls per key in [since, since + seconds] (server clock), against the quota."""
    accepted = {
        k: sum(1 for t in stats["accept_times"].get(k, []) if since <= t < since + seconds) for k in keys
    }
    total = sum(accepted.values())
    return {
        "keys": len(keys),
        "quota_per_key": qps,
        "seconds": seconds,
        "accepted": total,
        "accepted_per_second": round(total / seconds, 3),
        "quota_use": round(total / (qps * len(keys) * seconds), 4),
        "per_key_use": {f"key{i + 1}": round(accepted[k] / (qps * seconds), 4) for i, k in enumerate(keys)},
        "max_calls_in_any_window": max(stats["max_in_window"].values(), default=0),
    }


def quota_run(workdir: Path, n_keys: int, qps: float, client_qps: float, seconds: float) -> dict:
    """Our engine with a backlog bigger than the window; measured by the server."""
    keys = [f"bench-key-{i}-{os.urandom(4).hex()}" for i in range(n_keys)]
    n_photos = int(qps * n_keys * (seconds + 30))
    photo_ids = range(10_000_000_000, 10_000_000_000 + n_photos)
    server = Server(workdir, photo_ids, keys, qps, FAULTS)
    try:
        cfg = HarvestConfig(
            str(workdir / f"responses-{n_keys}"),
            "bench",
            endpoint=server.url,
            qps=client_qps,
            timeout=TIMEOUT,
            max_attempts=8,
            base_delay=0.5,
            max_delay=8.0,
            progress_every=15.0,
        )
        service = HarvestService(cfg, keys=keys)
        futures = [service.submit(p, [f"n01440764_{p}"]) for p in photo_ids]
        before = server.stats()
        t0 = min((ts for v in before["accept_times"].values() for ts in v), default=None)
        while t0 is None:
            time.sleep(0.05)
            s = server.stats()
            t0 = min((ts for v in s["accept_times"].values() for ts in v), default=None)
        time.sleep(seconds + 1.0)
        stats = server.stats()
        done = sum(1 for f in futures if f.done())
        # Stop: cancel the backlog (the engine's loop is ours), then close.
        for f in futures:
            f.cancel()
        service.close()
    finally:
        server.stop()
    result = measure(stats, keys, qps, seconds, t0)
    calls = stats["calls"]
    result.update(
        {
            "client_qps_per_key": client_qps,
            "server_calls": calls,
            "refused": stats["refused"],
            "refused_share": round(stats["refused"] / max(1, calls), 5),
            "faults": {k: v for k, v in stats["by_kind"].items() if k != "normal"},
            "answers_completed": done,
        }
    )
    return result


def baseline_run(workdir: Path, qps: float, seconds: float) -> dict:
    """The naive client: one call at a time, then sleep 1/N. Same server, faults and latency."""
    key = f"bench-key-b-{os.urandom(4).hex()}"
    photo_ids = range(20_000_000_000, 20_000_000_000 + int(qps * (seconds + 30)))
    server = Server(workdir, photo_ids, [key], qps, FAULTS)

    async def go() -> None:
        async with FlickrClient([key], server.url, qps=1000.0, retry=RetryPolicy(8, 0.5, 8.0, TIMEOUT)) as c:
            end = time.monotonic() + seconds + 1.0
            for p in photo_ids:
                if time.monotonic() > end:
                    break
                await c.get_info(p)
                await asyncio.sleep(1.0 / qps)

    try:
        t_start = time.monotonic()
        asyncio.run(go())
        stats = server.stats()
    finally:
        server.stop()
    t0 = min((ts for v in stats["accept_times"].values() for ts in v), default=0.0)
    del t_start
    result = measure(stats, [key], qps, seconds, t0)
    result["refused_share"] = round(stats["refused"] / max(1, stats["calls"]), 5)
    return result


def resume_run(workdir: Path, n_photos: int, qps: float) -> dict:
    """Kill -9 the CLI halfway, rerun it; compare with an uninterrupted run."""
    key = f"bench-resume-{os.urandom(4).hex()}"
    photo_ids = range(30_000_000_000, 30_000_000_000 + n_photos)
    urls = workdir / "urls.txt"
    urls.write_text(
        "".join(
            f"n01440764_{i}\thttp://farm1.static.flickr.com/1/{p}_abcdef.jpg\n"
            for i, p in enumerate(photo_ids)
        )
    )
    env = {**os.environ, "FLICKR_API_KEY": key}
    faults = {**FAULTS, "latency_median": 0.05, "latency_p99": 1.0, "hang_seconds": 4.0}

    def harvest(out: Path, url: str) -> subprocess.Popen:
        return subprocess.Popen(
            [
                sys.executable,
                "-m",
                "imagenet_captions.cli",
                "harvest",
                "--urls",
                str(urls),
                "--out",
                str(out),
                "--endpoint",
                url,
                "--qps",
                str(qps * 0.99),
                "--timeout",
                "2",
                "--backoff-base",
                "0.2",
                "--backoff-max",
                "2",
                "--progress-every",
                "5",
            ],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )

    def logical(out: Path) -> dict:
        return {
            pid: (a.status, a.code, a.raw, tuple(a.image_ids))
            for pid, a in store.effective_answers(str(out / "responses")).items()
        }

    server = Server(workdir, photo_ids, [key], qps, faults)
    try:
        out = workdir / "killed"
        proc = harvest(out, server.url)
        while sum(server.stats()["answered"].values()) < n_photos // 2 and proc.poll() is None:
            time.sleep(0.2)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        before = server.stats()["answered"]
        stored = store.answered_photo_ids(str(out / "responses"))
        lost = sum(before.values()) - len(stored)
        t = time.monotonic()
        rc = harvest(out, server.url).wait()
        rerun_seconds = time.monotonic() - t
        after = server.stats()["answered"]
        asked_again = sorted(p for p in stored if after.get(str(p)) != before.get(str(p)))
        resumed = logical(out)
    finally:
        server.stop()
    server = Server(workdir, photo_ids, [key], qps, faults)
    try:
        clean = workdir / "clean"
        rc_clean = harvest(clean, server.url).wait()
    finally:
        server.stop()
    same = resumed == logical(clean)
    return {
        "photos": n_photos,
        "answers_stored_at_kill": len(stored),
        "answers_lost_at_kill": lost,
        "stored_photos_asked_again": len(asked_again),
        "rerun_rc": rc,
        "clean_rc": rc_clean,
        "rerun_seconds": round(rerun_seconds, 1),
        "final_photos": len(resumed),
        "same_final_store_as_uninterrupted": same,
    }


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="10 s per scenario")
    p.add_argument("--seconds", type=float, default=None)
    p.add_argument("--qps", type=float, default=10.0, help="the server's quota N per key (default 10)")
    p.add_argument("--margin", type=float, default=0.99, help="client qps = margin x N (default 0.99)")
    p.add_argument("--skip-resume", action="store_true")
    a = p.parse_args()
    seconds = a.seconds or (10.0 if a.quick else 60.0)
    results: dict = {"seconds": seconds, "server_quota_per_key": a.qps, "faults": FAULTS, "timeout": TIMEOUT}
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        base = baseline_run(work, a.qps, min(seconds, 20.0))
        results["baseline_naive_1key"] = base
        print("baseline (call, then sleep 1/N):", json.dumps(base), flush=True)
        for n_keys in (1, 3):
            r = quota_run(work, n_keys, a.qps, a.qps * a.margin, seconds)
            results[f"ours_{n_keys}key"] = r
            print(f"ours, {n_keys} key(s):", json.dumps(r), flush=True)
        if not a.skip_resume:
            r = resume_run(work, 150 if a.quick else 400, 20.0)
            results["resume"] = r
            print("resume:", json.dumps(r), flush=True)
    one, three = results["ours_1key"], results["ours_3key"]
    print()
    print(
        f"quota use, 1 key : {100 * one['quota_use']:.2f} % of N={a.qps:g}/s, refused {100 * one['refused_share']:.3f} %"
    )
    print(
        f"quota use, 3 keys: {100 * three['quota_use']:.2f} % of 3N={3 * a.qps:g}/s, refused {100 * three['refused_share']:.3f} %"
    )
    print(
        f"baseline naive   : {100 * base['quota_use']:.2f} % of N; ours / baseline = {one['quota_use'] / max(1e-9, base['quota_use']):.2f}x"
    )
    if "resume" in results:
        r = results["resume"]
        print(
            f"resume after kill -9: {r['answers_stored_at_kill']} stored, {r['answers_lost_at_kill']} lost in flight, "
            f"{r['stored_photos_asked_again']} asked again, same final store: {r['same_final_store_as_uninterrupted']}"
        )
    ok = (
        one["quota_use"] >= 0.98
        and three["quota_use"] >= 0.98
        and one["refused_share"] < 0.005
        and three["refused_share"] < 0.005
        and (
            "resume" not in results
            or (
                results["resume"]["stored_photos_asked_again"] == 0
                and results["resume"]["same_final_store_as_uninterrupted"]
            )
        )
    )
    print("targets met" if ok else "TARGETS NOT MET")
    print(json.dumps(results, indent=1), file=sys.stderr)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
