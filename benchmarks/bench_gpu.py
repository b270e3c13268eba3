"""Train CLIP-RN50 from the shards as fast as the GPU allows? The training and eval speed figures on a GPU, in one run.

Device command: ``benchmarks/gpu_session.sh`` (the CUDA tests, then this bench, in one command of
about four minutes; it installs the wheels of ``benchmarks/gpu_wheels.txt`` that the machine lacks).
By hand, with those wheels on ``PYTHONPATH``::

    PYTHONPATH=pipeline python benchmarks/bench_gpu.py --out "$OUT" --budget 240

CPU smoke test of the same code paths, tiny everything::

    PYTHONPATH=pipeline python benchmarks/bench_gpu.py --tiny --out /tmp/bench-tiny

The whole run, shard writing included, fits ``--budget`` seconds (default 240): the shards are
written first (or reused from an earlier run with the same sizes), then each phase gets its share
of the time that is actually left, so a slow phase shortens the later ones instead of overrunning.
Every phase writes JSON lines to ``<out>/bench_gpu.jsonl`` as it goes (a run cut short still leaves
every figure it reached); each line carries the run's id, and the summary reads only its own run's.

0. ``shards``: synthetic ImageNet-like shards in the project's format (500x375 JPEGs of about
   100 KB; captions; labels), a ``--resize 256`` copy, and a folder of thousands of JPEGs for the
   inference phase.
1. ``decode``: our batched GPU decode + random-resized-crop alone (images/s), for diagnosis.
2. ``compute`` (a): the exact model, optimiser step and precision of the trainer (``Stepper``) on
   random tensors already on the GPU.
3. ``ours_original`` / ``ours_resized`` (b): ``imagenet-captions train`` end to end from the two
   shard sets (GPU decode, bf16, channels_last, fused AdamW), steady-state samples/s.
4. ``open_clip`` (c): ``open_clip_train.main`` on the original shards with ``--precision amp_bf16``,
   the same workers and batch size, steady-state samples/s.
5. ``inference``: ``imagenet_captions.testing.eval_bench.measure_inference`` over thousands of files
   (so reading, decoding and the model overlap across batches).

Eager by default, on every side: compiling CLIP-RN50's forward and backward takes tens of seconds
per process, which a phase of under a minute cannot amortise. ``--compile`` compiles (a), (b) and
passes ``--torchcompile`` to (c), with one inductor cache for the run's processes, so only the
first process compiles the kernels and the others load them.

Each run works in its own folder (``<work>/run-<time>-<pid>``): the trainer's ``metrics.jsonl`` and
open_clip's log are the run's own. Children run in their own process groups, killed whole at their
budget, when the bench exits or is stopped (SIGTERM, SIGINT, SIGHUP), and, on Linux, when the bench
dies outright (the kernel's parent-death signal), so no loader worker keeps the GPU busy afterwards.

Steady state: for our trainer, the samples between the third logged interval and the last, over
their wall time (warm-up excluded); for open_clip, the same over its log lines (sample counter and
timestamps), plus the median of its per-step rates. The summary line holds the ratios against the
targets: (b) >= 0.85 (a) original, >= 0.9 (a) resized; (b) >= 1.25 (c).
"""

from __future__ import annotations

import argparse
import atexit
import contextlib
import json
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterable
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "pipeline"))

CAPTION_WORDS = [
    "a", "photo", "of", "my", "dog", "on", "the", "beach", "at", "sunset", "with", "friends", "holiday",
    "summer", "trip", "family", "old", "car", "red", "bird", "flying", "over", "lake", "mountain", "view",
    "from", "the", "hotel", "window", "street", "market", "in", "the", "city", "night", "lights",
]  # fmt: skip

#: Each phase's share of the time left once the shards are written.
SHARES = {
    "decode": 0.06,
    "compute": 0.16,
    "ours_original": 0.22,
    "ours_resized": 0.16,
    "open_clip": 0.24,
    "inference": 0.16,
}
#: Seconds kept back at the end for the summary and for stopping the last child.
RESERVE_S = 6.0
PHASES = ("shards", *SHARES)


class Emitter:
    """Appends JSON lines, tagged with the run's id, to the result file (flushed at once) and echoes them."""

    def __init__(self, path: Path, run_id: str) -> None:
        self.path, self.run_id = path, run_id
        path.parent.mkdir(parents=True, exist_ok=True)

    def __call__(self, phase: str, **fields: Any) -> None:
        row = {"phase": phase, "run": self.run_id, "time": round(time.time(), 1), **fields}
        with open(self.path, "a", encoding="utf-8") as f:
            f.write(json.dumps(row, sort_keys=True) + "\n")
        print(json.dumps(row, sort_keys=True), flush=True)

    def rows(self) -> list[dict]:
        """This run's rows (a rerun appends to the same file)."""
        if not self.path.is_file():
            return []
        rows = [json.loads(x) for x in self.path.read_text().splitlines() if x.strip()]
        return [r for r in rows if r.get("run") == self.run_id]


# ---------------------------------------------------------------------------------------------------
# Sizes, budgets, folders
# ---------------------------------------------------------------------------------------------------
def data_sizes(tiny: bool, batch_size: int) -> dict[str, Any]:
    """How much synthetic data a run writes.

    Training reads the shards in cycles, so a few dozen batches are enough for a steady state. The
    inference folder holds at least eight batches: with one batch per pass (``drop_last``), reading,
    decoding and the model would never overlap and the figure would be held down by the bench.
    """
    if tiny:
        return {"samples": 256, "unique": 32, "per_shard": 32, "size": (160, 120), "shorter": 64,
                "inference_files": max(128, 8 * batch_size)}  # fmt: skip
    return {"samples": 12288, "unique": 1024, "per_shard": 1024, "size": (500, 375), "shorter": 256,
            "inference_files": max(4096, 8 * batch_size)}  # fmt: skip


class Budget:
    """Seconds for each phase: its share of what is left of the run, among the phases still to run.

    Computed when the phase starts, from the clock, so time a phase did not use goes to the later
    ones and an overrun shortens them; no phase is given time past the run's end.
    """

    def __init__(self, total_s: float, phases: Iterable[str], start: float | None = None) -> None:
        self.start = time.monotonic() if start is None else start
        self.end = self.start + total_s
        self.pending = [p for p in phases if p in SHARES]

    def left(self, now: float | None = None) -> float:
        return self.end - (time.monotonic() if now is None else now)

    def take(self, phase: str, now: float | None = None) -> float:
        """The phase's seconds (0 when nothing is left); it leaves the pending list."""
        usable = max(0.0, self.left(now) - RESERVE_S)
        weight = sum(SHARES[p] for p in self.pending) or 1.0
        seconds = usable * SHARES[phase] / weight if phase in self.pending else 0.0
        if phase in self.pending:
            self.pending.remove(phase)
        return seconds


def process_age() -> float:
    """Seconds since this process started (Linux; 0 elsewhere): the budget counts its imports too."""
    try:
        with open("/proc/self/stat") as f:
            start_ticks = int(f.read().rsplit(")", 1)[1].split()[19])
        with open("/proc/uptime") as f:
            uptime = float(f.read().split()[0])
        return max(0.0, uptime - start_ticks / os.sysconf("SC_CLK_TCK"))
    except (OSError, ValueError, IndexError):
        return 0.0


def new_run_dir(root: Path) -> tuple[str, Path]:
    """A folder of the run's own under ``root`` (never an earlier run's), and the run's id."""
    root.mkdir(parents=True, exist_ok=True)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    for k in range(1000):
        run_id = f"{stamp}-{os.getpid()}" + (f"-{k}" if k else "")
        with contextlib.suppress(FileExistsError):
            (root / f"run-{run_id}").mkdir()
            return run_id, root / f"run-{run_id}"
    raise RuntimeError(f"no free run folder under {root}")


# ---------------------------------------------------------------------------------------------------
# Phase 0: shards
# ---------------------------------------------------------------------------------------------------
def _make_image(args: tuple[int, tuple[int, int], int]) -> tuple[bytes, bytes]:
    from imagenet_captions.testing.synthetic import photo_like_jpeg, resize_jpeg

    seed, size, shorter = args
    data = photo_like_jpeg(seed, size)
    return data, resize_jpeg(data, shorter)


def write_bench_shards(root: Path, sizes: dict[str, Any]) -> dict[str, Any]:
    """Two shard sets (original, resized) and an inference folder, or the same from an earlier run.

    The data is a pure function of ``sizes``, so it is kept under a folder named by them and reused
    when ``done.json`` (written last) says it is complete.
    """
    import random

    from imagenet_captions.classes import wnids
    from imagenet_captions.testing.synthetic import Sample, write_shards

    w, h = sizes["size"]
    work = (
        root
        / f"data-{sizes['samples']}-{sizes['unique']}-{sizes['per_shard']}-{w}x{h}-{sizes['inference_files']}"
    )
    done = work / "done.json"
    if done.is_file():
        return {**json.loads(done.read_text()), "reused": True}
    if work.exists():
        shutil.rmtree(work)  # an earlier run stopped while writing it
    work.mkdir(parents=True)
    unique, n = sizes["unique"], sizes["samples"]
    with ProcessPoolExecutor(max_workers=os.cpu_count()) as pool:
        jobs = [(i, sizes["size"], sizes["shorter"]) for i in range(unique)]
        pairs = list(pool.map(_make_image, jobs, chunksize=8))
    rng = random.Random(0)
    all_wnids = wnids()
    meta = []
    for i in range(n):
        label = rng.randrange(1000)
        caption = " ".join(rng.choice(CAPTION_WORDS) for _ in range(rng.randint(5, 30)))
        meta.append((f"{all_wnids[label]}_{i}", caption, label))

    def samples(which: int):
        for i, (key, caption, label) in enumerate(meta):
            yield Sample(key, pairs[i % unique][which], caption, label, {"key": key, "synthetic": True})

    orig = write_shards(work / "original", samples(0), sizes["per_shard"])
    resized = write_shards(work / "resized", samples(1), sizes["per_shard"])
    jpegs = work / "jpegs"
    jpegs.mkdir()
    for i in range(sizes["inference_files"]):  # byte copies decode at the same speed as new images
        (jpegs / f"{i:06d}.jpg").write_bytes(pairs[i % unique][0])
    data = {
        "original": str(orig),
        "resized": str(resized),
        "jpegs": str(jpegs),
        "inference_files": sizes["inference_files"],
        "samples": n,
        "shards": len(list(orig.glob("*.tar"))),
        "mean_jpeg_kb_original": round(sum(len(p[0]) for p in pairs) / unique / 1000, 1),
        "mean_jpeg_kb_resized": round(sum(len(p[1]) for p in pairs) / unique / 1000, 1),
    }
    tmp = done.with_suffix(".tmp")
    tmp.write_text(json.dumps(data))
    os.replace(tmp, done)
    return {**data, "reused": False}


# ---------------------------------------------------------------------------------------------------
# Phases run in child processes (isolated GPU memory, killable at the budget)
# ---------------------------------------------------------------------------------------------------
def child_decode(a: argparse.Namespace, emit: Emitter) -> None:
    """Images/s of our batched device decode + random-resized-crop on the original shards."""
    import torch

    from imagenet_captions.train.data import Augment, device_decode_crop, open_samples, resolve_shards

    device = torch.device(a.device)
    spec = resolve_shards(a.shards)
    jpgs: list[torch.Tensor] = []
    for url in spec.urls:
        for s in open_samples(url, frozenset({"jpg"})):
            jpgs.append(torch.frombuffer(bytearray(s["jpg"]), dtype=torch.uint8))
            if len(jpgs) >= a.batch_size * 4:
                break
        if len(jpgs) >= a.batch_size * 4:
            break
    aug = Augment(a.image_size)
    batches = [jpgs[i : i + a.batch_size] for i in range(0, len(jpgs), a.batch_size)]
    done, t0, k, fallbacks = 0, None, 0, 0
    while time.time() < a.deadline:
        out, fb, _ = device_decode_crop(batches[k % len(batches)], aug, k, device)
        fallbacks += fb
        k += 1
        if device.type == "cuda":
            torch.cuda.synchronize()
        if k == 2:
            t0 = time.perf_counter()  # after warm-up (nvjpeg handles, allocator)
        elif k > 2:
            done += out.shape[0]
    if t0 is not None and done:
        emit(
            "decode",
            images_per_s=done / (time.perf_counter() - t0),
            batch_size=a.batch_size,
            cpu_fallbacks=fallbacks,
        )


def child_compute(a: argparse.Namespace, emit: Emitter) -> None:
    """(a): the trainer's exact step on random tensors on the device, eager or compiled as (b) runs."""
    import torch

    from imagenet_captions.train.models import build_model, model_config
    from imagenet_captions.train.presets import resolve
    from imagenet_captions.train.step import Stepper, fast_cuda_settings, make_clip_loss, make_optimizer

    device = torch.device(a.device)
    if device.type == "cuda":
        fast_cuda_settings()  # as the trainer and open_clip's trainer set them
    cfg = model_config(a.model)
    size = int(cfg["image_size"])
    o = resolve({"lr": 1e-3}, "clip-rn50-paper")
    amp = torch.bfloat16 if device.type == "cuda" else None
    images = torch.randn(a.batch_size, 3, size, size, device=device).contiguous(
        memory_format=torch.channels_last
    )
    tokens = torch.randint(0, 49408, (a.batch_size, int(cfg["context_length"])), device=device)
    label = "compiled" if a.compile else "eager"
    torch.manual_seed(0)
    model = build_model(cfg).to(device).to(memory_format=torch.channels_last)
    opt = make_optimizer(model, o, device)
    train_model = torch.compile(model) if a.compile else model
    scaler = torch.amp.GradScaler(device.type, enabled=False)
    step = Stepper(train_model, model, make_clip_loss(0, 1), opt, scaler, "clip", device, amp, None)
    t_start = time.perf_counter()
    n, t0, warm = 0, None, 3
    loss = None
    while time.time() < a.deadline:
        loss = step(images, tokens)
        n += 1
        if n == warm:
            loss.item()
            t0 = time.perf_counter()
            emit("compute", mode=label, warmup_s=round(t0 - t_start, 1))
    if loss is not None:
        loss.item()
    if t0 is not None and n > warm:
        rate = (n - warm) * a.batch_size / (time.perf_counter() - t0)
        emit("compute", mode=label, samples_per_s=rate, steps=n - warm, batch_size=a.batch_size)


def child_inference(a: argparse.Namespace, emit: Emitter) -> None:
    from imagenet_captions.testing.eval_bench import measure_inference

    kw: dict[str, Any] = {"model_name": "resnet18", "image_size": 64} if a.tiny else {}
    # measure_inference runs about 1.7x ``seconds`` (end to end, then the model and the decode alone)
    # after building the model and starting its readers.
    seconds = max(1.0, (a.deadline - time.time()) / 2.5)
    emit("inference", **measure_inference(a.shards, a.device, a.batch_size, seconds, workers=a.workers, **kw))


CHILDREN: dict[str, Callable[[argparse.Namespace, Emitter], None]] = {
    "decode": child_decode,
    "compute": child_compute,
    "inference": child_inference,
}


# ---------------------------------------------------------------------------------------------------
# Children under a budget, and never outliving the bench
# ---------------------------------------------------------------------------------------------------
#: Process groups of the children still running.
LIVE_GROUPS: set[int] = set()


def kill_children() -> None:
    """SIGKILL every child's whole process group (the child and its loader workers)."""
    for pgid in list(LIVE_GROUPS):
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pgid, signal.SIGKILL)
        LIVE_GROUPS.discard(pgid)


def install_reaper() -> None:
    """Kill the children when the bench exits, or is stopped by SIGTERM, SIGINT or SIGHUP."""
    atexit.register(kill_children)

    def stop(signum: int, frame: Any) -> None:
        kill_children()
        os._exit(128 + signum)

    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(sig, stop)


def _die_with_parent() -> None:
    """In the child, before exec: SIGKILL when the bench dies, even by SIGKILL (Linux only)."""
    with contextlib.suppress(Exception):
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG


def child_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    """The bench's environment, with this checkout's package first on the path."""
    path = os.pathsep.join(x for x in (str(ROOT / "pipeline"), os.environ.get("PYTHONPATH", "")) if x)
    return {**os.environ, "PYTHONPATH": path, "PYTHONUNBUFFERED": "1", **(extra or {})}


def run_budgeted(
    cmd: list[str], seconds: float, log: Path, env: dict[str, str] | None = None, poll=None
) -> int | None:
    """Run ``cmd`` in its own process group for at most ``seconds``; None when stopped at the budget."""
    with open(log, "ab") as fh:
        p = subprocess.Popen(
            cmd,
            stdout=fh,
            stderr=subprocess.STDOUT,
            env=env or child_env(),
            start_new_session=True,
            preexec_fn=_die_with_parent if sys.platform.startswith("linux") else None,
            cwd=ROOT,
        )
        LIVE_GROUPS.add(p.pid)
        try:
            deadline = time.monotonic() + seconds
            while p.poll() is None and time.monotonic() < deadline:
                time.sleep(0.5)
                if poll:
                    poll()
            stopped = p.poll() is None
            if stopped:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(p.pid, signal.SIGTERM)
                with contextlib.suppress(subprocess.TimeoutExpired):
                    p.wait(timeout=5)
        finally:
            with contextlib.suppress(ProcessLookupError):  # the group: leftover loader workers too
                os.killpg(p.pid, signal.SIGKILL)
            LIVE_GROUPS.discard(p.pid)
            p.wait()
        return None if stopped else p.returncode


def steady_rate(points: list[tuple[float, int]], skip: int = 2) -> dict | None:
    """Samples/s between the (skip+1)-th point and the last: (elapsed seconds, samples seen) pairs."""
    if len(points) < skip + 2:
        return None
    (t0, s0), (t1, s1) = points[skip], points[-1]
    if t1 <= t0:
        return None
    return {"samples_per_s": (s1 - s0) / (t1 - t0), "window_s": t1 - t0, "window_samples": s1 - s0}


# ---------------------------------------------------------------------------------------------------
# (b) our trainer and (c) open_clip's
# ---------------------------------------------------------------------------------------------------
def ours_command(a: argparse.Namespace, shards: str, out: Path, decode: str) -> list[str]:
    cmd = [
        sys.executable, "-m", "imagenet_captions.cli", "train", "--shards", shards, "--out", str(out),
        "--model", a.model, "--batch-size", str(a.batch_size), "--steps", "1000000", "--workers", str(a.workers),
        "--log-every", str(a.log_every), "--decode", decode, "--lr", "1e-3", "--warmup-steps", "500",
        "--device", a.device, "--shuffle-buffer", str(a.shuffle_buffer),
    ]  # fmt: skip
    if a.compile:
        cmd.append("--compile")
    if a.device.startswith("cuda"):
        cmd += ["--precision", "bf16", "--channels-last"]
    return cmd


def open_clip_command(a: argparse.Namespace, shards_dir: str, logs: Path, tiny_cfg: Path | None) -> list[str]:
    tars = sorted(Path(shards_dir).glob("*.tar"))
    pattern = str(Path(shards_dir) / f"{{{tars[0].stem}..{tars[-1].stem}}}.tar")
    cmd = [
        sys.executable, "-m", "imagenet_captions.train.open_clip_recipe",
        "--dataset-type", "webdataset", "--train-data", pattern, "--dataset-resampled",
        "--train-num-samples", str(10**8), "--batch-size", str(a.batch_size), "--epochs", "1",
        "--lr", "1e-3", "--wd", "0.1", "--warmup", "500", "--workers", str(a.workers),
        "--logs", str(logs), "--name", "c", "--save-frequency", "0", "--log-every-n-steps", str(a.log_every),
        "--report-to", "", "--seed", "0",
    ]  # fmt: skip
    if tiny_cfg is not None:
        cmd += ["--add-model-config", str(tiny_cfg), "--model", "bench-tiny-clip", "--precision", "fp32",
                "--device", "cpu"]  # fmt: skip
    else:
        cmd += ["--model", "RN50", "--precision", "amp_bf16"]
    if a.compile:
        cmd.append("--torchcompile")
    return cmd


def phase_ours(
    name: str, shards: str, a: argparse.Namespace, run_dir: Path, seconds: float, emit: Emitter, decode: str
) -> dict | None:
    out = run_dir / f"{name}-{decode}"
    metrics = out / "metrics.jsonl"
    log = run_dir / f"{name}-{decode}.log"
    seen = {"n": 0}

    def rows() -> list[dict]:
        if not metrics.is_file():
            return []
        return [json.loads(x) for x in metrics.read_text().splitlines() if x.strip()]

    def poll() -> None:
        r = rows()
        if len(r) >= seen["n"] + 5:  # a progress line every 5 intervals
            seen["n"] = len(r)
            emit(name, progress=True, step=r[-1]["step"], interval_samples_per_s=r[-1]["samples_per_s"])

    rc = run_budgeted(ours_command(a, shards, out, decode), seconds, log, env=a.env, poll=poll)
    r = rows()
    points = [(x["elapsed_s"], x["step"] * a.batch_size) for x in r]
    steady = steady_rate(points, skip=a.skip)
    stats = {k[5:]: v for k, v in (r[-1] if r else {}).items() if k.startswith("data_")}
    if steady is None:
        tail = log.read_text(errors="replace")[-2000:] if log.is_file() else ""
        emit(name, error="no steady-state window", returncode=rc, decode=decode, log_tail=tail)
        return {"crashed": rc not in (None, 0)}
    med = statistics.median(x["samples_per_s"] for x in r[a.skip :]) if len(r) > a.skip else None
    emit(name, decode=decode, stopped_at_budget=rc is None, steps=r[-1]["step"], loader=stats,
         median_interval_samples_per_s=med, **steady)  # fmt: skip
    return steady


OPEN_CLIP_LINE = re.compile(
    r"^(\d{4}-\d\d-\d\d,\d\d:\d\d:\d\d) \| INFO \| Train Epoch: \d+ \[\s*(\d+)/\d+ .*?Batch \(t\): [\d.]+, ([\d.]+)/s,"
)


def phase_open_clip(
    shards_dir: str, a: argparse.Namespace, run_dir: Path, seconds: float, emit: Emitter
) -> dict | None:
    import datetime

    tiny_cfg = None
    if a.tiny:
        from imagenet_captions.train.models import TINY_CLIP_CFG

        tiny_cfg = run_dir / "bench-tiny-clip.json"
        tiny_cfg.write_text(json.dumps(TINY_CLIP_CFG))
    logs = run_dir / "open_clip_logs"  # the run's own: open_clip refuses a folder that exists
    log = logs / "c" / "out.log"
    console = run_dir / "open_clip.log"

    def parse() -> list[tuple[float, int, float]]:
        if not log.is_file():
            return []
        pts = []
        for line in log.read_text(errors="replace").splitlines():
            m = OPEN_CLIP_LINE.match(line)
            if m:
                t = datetime.datetime.strptime(m.group(1), "%Y-%m-%d,%H:%M:%S").timestamp()
                pts.append((t, int(m.group(2)), float(m.group(3))))
        return pts

    rc = run_budgeted(open_clip_command(a, shards_dir, logs, tiny_cfg), seconds, console, env=a.env)
    pts = parse()
    steady = steady_rate([(t, s) for t, s, _ in pts], skip=a.skip)
    if steady is None:
        tail = console.read_text(errors="replace")[-2000:] if console.is_file() else ""
        emit("open_clip", error="no steady-state window", returncode=rc, log_tail=tail)
        return None
    med = statistics.median(r for _, _, r in pts[a.skip :])
    emit("open_clip", stopped_at_budget=rc is None, samples=pts[-1][1], median_step_samples_per_s=med,
         note="window rate from 1-second log timestamps", **steady)  # fmt: skip
    return steady


# ---------------------------------------------------------------------------------------------------
# Main
# ---------------------------------------------------------------------------------------------------
def environment(a: argparse.Namespace) -> dict:
    import importlib.metadata as md

    import torch

    from imagenet_captions.train.resources import free_shared_memory, usable_cpus

    info: dict[str, Any] = {
        "python": sys.version.split()[0],
        "cpus": os.cpu_count(),
        "usable_cpus": usable_cpus(),
        "torch": torch.__version__,
        "tiny": a.tiny,
    }
    for dist in ("torchvision", "open_clip_torch", "webdataset", "numpy", "pillow"):
        try:
            info[dist] = md.version(dist)
        except md.PackageNotFoundError:
            info[dist] = None
    if torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name(0)
    free = free_shared_memory()
    info["dev_shm_free_gb"] = round(free / 1e9, 2) if free is not None else None
    return info


def bench_workers(a: argparse.Namespace, data: dict[str, Any]) -> int:
    """One worker count for both trainers (a fair comparison), fitted to the cores and /dev/shm."""
    from imagenet_captions.train import resources

    wanted = a.workers if a.workers is not None else resources.default_workers()
    per_sample = data["mean_jpeg_kb_original"] * 1000 + resources.SAMPLE_OVERHEAD
    plan = resources.fit_workers(
        wanted, int(a.batch_size * per_sample), resources.free_shared_memory(), may_reduce_workers=True
    )
    return plan.workers


def summarize(rows: list[dict], compile_: bool) -> dict[str, Any]:
    """Ratios against the targets, from one run's rows."""
    compute = {
        r["mode"]: r["samples_per_s"] for r in rows if r["phase"] == "compute" and "samples_per_s" in r
    }
    mode = "compiled" if compile_ else "eager"
    a_rate = compute.get(mode)
    summary: dict[str, Any] = {"compute_samples_per_s": compute, "mode": mode}
    for name in ("ours_original", "ours_resized", "open_clip"):
        done = [r for r in rows if r["phase"] == name and "samples_per_s" in r and not r.get("progress")]
        summary[f"{name}_samples_per_s"] = done[-1]["samples_per_s"] if done else None
    b1, b2, c = (summary[f"{x}_samples_per_s"] for x in ("ours_original", "ours_resized", "open_clip"))
    if a_rate and b1:
        summary["b_original_over_a"] = b1 / a_rate
        summary["target_b_original_0.85a"] = b1 >= 0.85 * a_rate
    if a_rate and b2:
        summary["b_resized_over_a"] = b2 / a_rate
        summary["target_b_resized_0.9a"] = b2 >= 0.9 * a_rate
    if c and b1:
        summary["b_original_over_c"] = b1 / c
        summary["target_b_1.25c"] = b1 >= 1.25 * c
    inference = [r for r in rows if r["phase"] == "inference" and "images_per_s" in r]
    summary["inference_images_per_s"] = inference[-1]["images_per_s"] if inference else None
    return summary


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument(
        "--out", default=os.environ.get("OUT", ".bench"), help="results folder (default $OUT, else .bench)"
    )
    p.add_argument(
        "--work",
        help="scratch folder for shards and runs (default <out>/work with --tiny, else /tmp/bench_gpu_work)",
    )
    p.add_argument("--tiny", action="store_true", help="CPU smoke mode: tiny model, tiny data, short phases")
    p.add_argument(
        "--budget",
        type=float,
        help="seconds for the whole run, shard writing included (default 240; --tiny 90)",
    )
    p.add_argument("--batch-size", type=int, help="per step, every phase (default 512; --tiny 16)")
    p.add_argument(
        "--workers",
        type=int,
        help="loader workers of both trainers (default: the cores less one, fitted to /dev/shm)",
    )
    p.add_argument(
        "--compile",
        action=argparse.BooleanOptionalAction,
        default=False,
        help="torch.compile (a), (b) and open_clip's --torchcompile (default off: a phase cannot amortise it)",
    )
    p.add_argument("--phases", default=",".join(PHASES), help="comma-separated phases to run (default all)")
    p.add_argument("--child", choices=sorted(CHILDREN), help=argparse.SUPPRESS)
    p.add_argument("--run-id", help=argparse.SUPPRESS)
    p.add_argument("--shards", help=argparse.SUPPRESS)
    p.add_argument("--deadline", type=float, help=argparse.SUPPRESS)
    p.add_argument("--device", default=None, help=argparse.SUPPRESS)
    p.add_argument("--model", default=None, help=argparse.SUPPRESS)
    p.add_argument("--image-size", type=int, default=None, help=argparse.SUPPRESS)
    a = p.parse_args(argv)
    import torch

    a.device = a.device or ("cuda" if torch.cuda.is_available() and not a.tiny else "cpu")
    a.model = a.model or ("clip-tiny" if a.tiny else "clip-rn50")
    a.image_size = a.image_size or (32 if a.tiny else 224)
    a.batch_size = a.batch_size or (16 if a.tiny else 512)
    a.log_every = 1 if a.tiny else 10
    a.shuffle_buffer = 64 if a.tiny else 2000
    a.skip = 1 if a.tiny else 2  # logged intervals dropped as warm-up (autotuning, compiling)
    if a.tiny:
        a.compile = False
    a.budget = a.budget or (90 if a.tiny else 240)
    return a


def main(argv: list[str] | None = None) -> int:
    started = time.monotonic() - (process_age() if argv is None else 0.0)
    a = parse_args(argv)
    out = Path(a.out)
    if a.child:
        emit = Emitter(out / "bench_gpu.jsonl", a.run_id or "child")
        CHILDREN[a.child](a, emit)
        return 0

    install_reaper()
    budget = Budget(a.budget, [x for x in a.phases.split(",") if x], start=started)
    phases = set(a.phases.split(","))
    root = Path(a.work) if a.work else (out / "work" if a.tiny else Path("/tmp/bench_gpu_work"))
    run_id, run_dir = new_run_dir(root)
    emit = Emitter(out / "bench_gpu.jsonl", run_id)
    a.env = child_env({"TORCHINDUCTOR_CACHE_DIR": str(root / "inductor-cache")} if a.compile else None)
    emit("environment", **environment(a), budget_s=a.budget, batch_size=a.batch_size, compile=a.compile,
         model=a.model, run_dir=str(run_dir))  # fmt: skip

    t = time.perf_counter()
    data = write_bench_shards(root, data_sizes(a.tiny, a.batch_size))
    emit("shards", seconds=round(time.perf_counter() - t, 1), **data)
    a.workers = bench_workers(a, data)
    emit("plan", workers=a.workers, seconds_left=round(budget.left(), 1), phases=budget.pending)

    def child(name: str, shards: str) -> None:
        seconds = budget.take(name)
        if seconds < 1:
            emit(name, skipped="no time left in the budget")
            return
        if a.tiny:  # on a CPU a child's start-up (imports) would eat a short budget: run in-process
            ns = argparse.Namespace(**{**vars(a), "shards": shards, "deadline": time.time() + seconds})
            try:
                CHILDREN[name](ns, emit)
            except Exception as e:
                emit(name, error=f"{type(e).__name__}: {e}")
            return
        cmd = [sys.executable, str(Path(__file__).resolve()), "--child", name, "--out", str(out), "--run-id", run_id,
               "--shards", shards, "--deadline", str(time.time() + seconds - 2), "--device", a.device,
               "--model", a.model, "--batch-size", str(a.batch_size), "--image-size", str(a.image_size),
               "--workers", str(a.workers), "--compile" if a.compile else "--no-compile"]  # fmt: skip
        log = run_dir / f"{name}.log"
        rc = run_budgeted(cmd, seconds, log, env=a.env)
        if rc != 0:
            tail = log.read_text(errors="replace")[-2000:] if log.is_file() else ""
            emit(name, error="stopped at budget" if rc is None else f"exit {rc}", log_tail=tail)

    if "decode" in phases:
        child("decode", data["original"])
    if "compute" in phases:
        child("compute", data["original"])
    for name, key in (("ours_original", "original"), ("ours_resized", "resized")):
        if name not in phases:
            continue
        seconds = budget.take(name)
        started = time.monotonic()
        result = phase_ours(
            name, data[key], a, run_dir, seconds, emit, "device" if a.device != "cpu" else "cpu"
        )
        left = seconds - (time.monotonic() - started)
        if result and result.get("crashed") and a.device != "cpu":
            if left >= 20:  # the GPU decode broke: measure the CPU one in what is left of this phase
                phase_ours(name, data[key], a, run_dir, left, emit, "cpu")
            else:
                emit(
                    name, skipped="the device-decode run failed and too little of its budget is left to retry"
                )
    if "open_clip" in phases:
        phase_open_clip(data["original"], a, run_dir, budget.take("open_clip"), emit)
    if "inference" in phases:
        child("inference", data["jpegs"])

    emit("summary", **summarize(emit.rows(), a.compile), total_s=round(time.monotonic() - budget.start, 1))
    return 0


if __name__ == "__main__":
    rc = main()
    # Every line is written and closed: skip the interpreter's teardown (loader workers, CUDA), which
    # can take seconds that the caller's budget does not have.
    sys.stdout.flush()
    sys.stderr.flush()
    kill_children()
    os._exit(rc)
