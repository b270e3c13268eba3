"""Train CLIP-RN50 from the shards as fast as the GPU allows? The training and eval speed figures on a GPU, in one run.

Device command (repo root; ``.whl/`` holds the wheels listed in ``benchmarks/gpu_wheels.txt``,
downloaded here by ``pip download --no-deps --only-binary=:all: --python-version 3.12 -r
benchmarks/gpu_wheels.txt -d .whl``; carry ``.whl``; wheels are zip files, so unpacking them is an
install that needs no pip)::

    python -c "import glob,zipfile; [zipfile.ZipFile(w).extractall('/tmp/site') for w in glob.glob('.whl/*.whl')]" && PYTHONPATH=/tmp/site:pipeline python benchmarks/bench_gpu.py --out "$OUT" --budget 480

CPU smoke test of the same code paths, tiny everything, under two minutes::

    PYTHONPATH=pipeline python benchmarks/bench_gpu.py --tiny --out /tmp/bench-tiny

Phases, each with its own time budget, each writing JSON lines to ``<out>/bench_gpu.jsonl`` as it
goes (so a run cut short still leaves every figure it reached):

0. ``shards``: synthetic ImageNet-like shards in the project's format (500x375 JPEGs of about
   100 KB; captions; labels), written with a plain tar writer, and a ``--resize 256`` copy.
1. ``decode``: our batched GPU decode + random-resized-crop alone (images/s), for diagnosis.
2. ``compute`` (a): the exact model, optimiser step and precision of the trainer (``Stepper``) on
   random tensors already on the GPU: eager, then ``torch.compile``.
3. ``ours_original`` / ``ours_resized`` (b): ``imagenet-captions train`` end to end from the two
   shard sets (GPU decode, compiled, bf16, channels_last, fused AdamW), steady-state samples/s.
4. ``open_clip`` (c): ``open_clip_train.main`` on the original shards with ``--precision amp_bf16
   --torchcompile --workers <cores-1>`` and the same batch size, steady-state samples/s.
5. ``inference``: ``imagenet_captions.testing.eval_bench.measure_inference`` when importable.

Steady state: for our trainer, the samples between the third logged interval and the last, over
their wall time (compile and warm-up excluded); for open_clip, the same over its log lines (sample
counter and timestamps), plus the median of its per-step rates. The summary line holds the ratios
against the targets: (b) >= 0.85 (a) original, >= 0.9 (a) resized; (b) >= 1.25 (c).
"""

from __future__ import annotations

import argparse
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
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "pipeline"))

CAPTION_WORDS = [
    "a",
    "photo",
    "of",
    "my",
    "dog",
    "on",
    "the",
    "beach",
    "at",
    "sunset",
    "with",
    "friends",
    "holiday",
    "summer",
    "trip",
    "family",
    "old",
    "car",
    "red",
    "bird",
    "flying",
    "over",
    "lake",
    "mountain",
    "view",
    "from",
    "the",
    "hotel",
    "window",
    "street",
    "market",
    "in",
    "the",
    "city",
    "night",
    "lights",
]


class Emitter:
    """Appends JSON lines to the result file (flushed at once) and echoes them."""

    def __init__(self, path: Path) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)

    def __call__(self, phase: str, **fields) -> None:
        row = {"phase": phase, "time": round(time.time(), 1), **fields}
        with open(self.path, "a", encoding="utf-8") as f:
            f.write(json.dumps(row, sort_keys=True) + "\n")
        print(json.dumps(row, sort_keys=True), flush=True)


# ---------------------------------------------------------------------------------------------------
# Phase 0: shards
# ---------------------------------------------------------------------------------------------------
def _make_image(args: tuple[int, tuple[int, int], int]) -> tuple[bytes, bytes]:
    from imagenet_captions.testing.synthetic import photo_like_jpeg, resize_jpeg

    seed, size, shorter = args
    data = photo_like_jpeg(seed, size)
    return data, resize_jpeg(data, shorter)


def write_bench_shards(
    work: Path, n: int, unique: int, per_shard: int, size: tuple[int, int], shorter: int
) -> dict:
    """Two shard sets of ``n`` samples (``unique`` distinct images, repeated under new keys)."""
    import random

    from imagenet_captions.classes import wnids
    from imagenet_captions.testing.synthetic import Sample, write_shards

    with ProcessPoolExecutor(max_workers=os.cpu_count()) as pool:
        pairs = list(pool.map(_make_image, [(i, size, shorter) for i in range(unique)], chunksize=8))
    rng = random.Random(0)
    all_wnids = wnids()
    samples_meta = []
    for i in range(n):
        label = rng.randrange(1000)
        caption = " ".join(rng.choice(CAPTION_WORDS) for _ in range(rng.randint(5, 30)))
        samples_meta.append((f"{all_wnids[label]}_{i}", caption, label))

    def samples(which: int):
        for i, (key, caption, label) in enumerate(samples_meta):
            yield Sample(key, pairs[i % unique][which], caption, label, {"key": key, "synthetic": True})

    orig = write_shards(work / "original", samples(0), per_shard)
    resized = write_shards(work / "resized", samples(1), per_shard)
    jpegs = work / "jpegs"
    jpegs.mkdir(exist_ok=True)
    for i in range(min(unique, 512)):
        (jpegs / f"{i:05d}.jpg").write_bytes(pairs[i][0])
    return {
        "original": str(orig),
        "resized": str(resized),
        "jpegs": str(jpegs),
        "samples": n,
        "shards": len(list(orig.glob("*.tar"))),
        "mean_jpeg_kb_original": round(sum(len(p[0]) for p in pairs) / unique / 1000, 1),
        "mean_jpeg_kb_resized": round(sum(len(p[1]) for p in pairs) / unique / 1000, 1),
    }


# ---------------------------------------------------------------------------------------------------
# Phases run in child processes (isolated GPU memory, killable at the budget)
# ---------------------------------------------------------------------------------------------------
def child_decode(a: argparse.Namespace, emit: Emitter) -> None:
    """Images/s of our batched device decode + random-resized-crop on the original shards."""
    import torch

    from imagenet_captions.train.data import Augment, device_decode_crop, open_samples, resolve_shards

    device = torch.device(a.device)
    spec = resolve_shards(a.shards)
    jpgs = []
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
    """(a): the trainer's exact step on random tensors on the device: eager, then compiled."""
    import torch

    from imagenet_captions.train.models import build_model, model_config
    from imagenet_captions.train.presets import resolve
    from imagenet_captions.train.step import Stepper, make_clip_loss, make_optimizer

    device = torch.device(a.device)
    cfg = model_config(a.model)
    size = int(cfg["image_size"])
    o = resolve({"lr": 1e-3}, "clip-rn50-paper")
    amp = torch.bfloat16 if device.type == "cuda" else None
    images = torch.randn(a.batch_size, 3, size, size, device=device).contiguous(
        memory_format=torch.channels_last
    )
    tokens = torch.randint(0, 49408, (a.batch_size, int(cfg["context_length"])), device=device)
    left = a.deadline - time.time()
    # Eager briefly (a reference figure), then compiled with the rest: compiling takes a while.
    plan = [("eager", False, 0.15), ("compiled", True, 1.0)] if a.compile else [("eager", False, 1.0)]
    for label, compiled, share in plan:
        torch.manual_seed(0)
        model = build_model(cfg).to(device).to(memory_format=torch.channels_last)
        opt = make_optimizer(model, o, device)
        train_model = torch.compile(model) if compiled else model
        scaler = torch.amp.GradScaler(device.type, enabled=False)
        step = Stepper(train_model, model, make_clip_loss(0, 1), opt, scaler, "clip", device, amp, None)
        t_start = time.perf_counter()
        deadline = min(a.deadline, time.time() + share * left)
        n, t0, warm = 0, None, 3
        while time.time() < deadline:
            loss = step(images, tokens)
            n += 1
            if n == warm:
                loss.item()
                t0 = time.perf_counter()
                emit("compute", mode=label, warmup_s=round(t0 - t_start, 1))
        if n:
            loss.item()
        if t0 is not None and n > warm:
            rate = (n - warm) * a.batch_size / (time.perf_counter() - t0)
            emit("compute", mode=label, samples_per_s=rate, steps=n - warm, batch_size=a.batch_size)
        del model, opt, train_model, step
        if device.type == "cuda":
            torch.cuda.empty_cache()


def child_inference(a: argparse.Namespace, emit: Emitter) -> None:
    try:
        from imagenet_captions.testing.eval_bench import measure_inference
    except ImportError as e:
        emit("inference", skipped=f"imagenet_captions.testing.eval_bench.measure_inference not importable: {e}")
        return
    kw = {"model_name": "resnet18", "image_size": 64, "workers": 1} if a.tiny else {}
    seconds = max(1.0, (a.deadline - time.time()) * 0.5)  # it runs three sub-phases of about this much in all
    emit("inference", **measure_inference(a.shards, a.device, a.batch_size, seconds, **kw))


CHILDREN = {"decode": child_decode, "compute": child_compute, "inference": child_inference}


# ---------------------------------------------------------------------------------------------------
# Running things under a budget
# ---------------------------------------------------------------------------------------------------
def run_budgeted(cmd: list[str], seconds: float, log: Path, env: dict | None = None, poll=None) -> int | None:
    """Run ``cmd`` (own process group) for at most ``seconds``; None when stopped at the budget."""
    with open(log, "ab") as fh:
        p = subprocess.Popen(
            cmd, stdout=fh, stderr=subprocess.STDOUT, env=env, start_new_session=True, cwd=ROOT
        )
        deadline = time.monotonic() + seconds
        while p.poll() is None and time.monotonic() < deadline:
            time.sleep(1.0)
            if poll:
                poll()
        if p.poll() is None:
            os.killpg(p.pid, signal.SIGTERM)
            try:
                p.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(p.pid, signal.SIGKILL)
                p.wait()
            return None
        with contextlib.suppress(ProcessLookupError):  # leftover loader workers of a finished run
            os.killpg(p.pid, signal.SIGKILL)
        return p.returncode


def steady_rate(points: list[tuple[float, int]], skip: int = 2) -> dict | None:
    """Samples/s between the (skip+1)-th point and the last: (elapsed seconds, samples seen) pairs."""
    if len(points) < skip + 2:
        return None
    (t0, s0), (t1, s1) = points[skip], points[-1]
    if t1 <= t0:
        return None
    return {"samples_per_s": (s1 - s0) / (t1 - t0), "window_s": t1 - t0, "window_samples": s1 - s0}


def phase_ours(
    name: str, shards: str, a: argparse.Namespace, work: Path, seconds: float, emit: Emitter, decode: str
) -> dict | None:
    out = work / f"run-{name}"
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
    metrics = out / "metrics.jsonl"
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

    rc = run_budgeted(cmd, seconds, work / f"{name}.log", poll=poll)
    r = rows()
    points = [(x["elapsed_s"], x["step"] * a.batch_size) for x in r]
    steady = steady_rate(points, skip=a.skip)
    stats = {k[5:]: v for k, v in (r[-1] if r else {}).items() if k.startswith("data_")}
    if steady is None:
        tail = (work / f"{name}.log").read_text(errors="replace")[-2000:]
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
    shards_dir: str, a: argparse.Namespace, work: Path, seconds: float, emit: Emitter
) -> dict | None:
    import datetime

    tars = sorted(Path(shards_dir).glob("*.tar"))
    pattern = str(Path(shards_dir) / f"{{{tars[0].stem}..{tars[-1].stem}}}.tar")
    logs = work / "open_clip_logs"
    cmd = [
        sys.executable, "-m", "imagenet_captions.train.open_clip_recipe",
        "--dataset-type", "webdataset", "--train-data", pattern, "--dataset-resampled",
        "--train-num-samples", str(10**8), "--batch-size", str(a.batch_size), "--epochs", "1",
        "--lr", "1e-3", "--wd", "0.1", "--warmup", "500", "--workers", str(a.workers),
        "--logs", str(logs), "--name", "c", "--save-frequency", "0", "--log-every-n-steps", str(a.log_every),
        "--report-to", "", "--seed", "0",
    ]  # fmt: skip
    if a.tiny:
        cfg = work / "bench-tiny-clip.json"
        from imagenet_captions.train.models import TINY_CLIP_CFG

        cfg.write_text(json.dumps(TINY_CLIP_CFG))
        cmd += [
            "--add-model-config",
            str(cfg),
            "--model",
            "bench-tiny-clip",
            "--precision",
            "fp32",
            "--device",
            "cpu",
        ]
    else:
        cmd += ["--model", "RN50", "--precision", "amp_bf16", "--torchcompile"]
    log = logs / "c" / "out.log"

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

    rc = run_budgeted(cmd, seconds, work / "open_clip.log")
    pts = parse()
    steady = steady_rate([(t, s) for t, s, _ in pts], skip=a.skip)
    if steady is None:
        tail = (work / "open_clip.log").read_text(errors="replace")[-2000:]
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

    info = {
        "python": sys.version.split()[0],
        "cpus": os.cpu_count(),
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
    with contextlib.suppress(OSError):  # loader workers hand batches over through /dev/shm
        info["dev_shm_gb"] = round(shutil.disk_usage("/dev/shm").total / 1e9, 1)
    return info


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", default=os.environ.get("OUT", ".bench"), help="results folder (default $OUT)")
    p.add_argument(
        "--work", help="scratch folder for shards and runs (default <out>/work, or /tmp on the GPU box)"
    )
    p.add_argument("--tiny", action="store_true", help="CPU smoke mode: tiny model, tiny data, short phases")
    p.add_argument("--budget", type=float, help="seconds for all phases together (default 480; --tiny 100)")
    p.add_argument("--batch-size", type=int)
    p.add_argument("--workers", type=int, help="loader workers (default cores-1)")
    p.add_argument("--no-compile", dest="compile", action="store_false")
    p.add_argument("--phases", default="shards,decode,compute,ours_original,ours_resized,open_clip,inference")
    p.add_argument("--child", choices=sorted(CHILDREN), help=argparse.SUPPRESS)
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
    a.workers = a.workers if a.workers is not None else (1 if a.tiny else max(1, (os.cpu_count() or 2) - 1))
    a.log_every = 1 if a.tiny else 10
    a.shuffle_buffer = 64 if a.tiny else 2000
    a.skip = 1 if a.tiny else 2  # logged intervals dropped as warm-up (compile, autotuning)
    if a.tiny:
        a.compile = False
    a.budget = a.budget or (100 if a.tiny else 480)
    out = Path(a.out)
    emit = Emitter(out / "bench_gpu.jsonl")
    if a.child:
        CHILDREN[a.child](a, emit)
        return 0

    # Budgets (seconds) as fractions of --budget; a phase that is skipped gives its time to none.
    shares = {
        "decode": 0.04,
        "compute": 0.2,
        "ours_original": 0.2,
        "ours_resized": 0.16,
        "open_clip": 0.28,
        "inference": 0.07,
    }
    if a.tiny:  # start-up (imports, workers) dominates on a CPU: give the short phases more
        shares = {
            "decode": 0.1,
            "compute": 0.14,
            "ours_original": 0.2,
            "ours_resized": 0.2,
            "open_clip": 0.22,
            "inference": 0.12,
        }
    phases = [x for x in a.phases.split(",") if x]
    budget = {k: v * a.budget for k, v in shares.items()}
    work = Path(a.work) if a.work else (out / "work" if a.tiny else Path("/tmp/bench_gpu_work"))
    work.mkdir(parents=True, exist_ok=True)
    t_start = time.monotonic()
    emit("environment", **environment(a), budget_s=a.budget, batch_size=a.batch_size, workers=a.workers,
         compile=a.compile, model=a.model)  # fmt: skip

    if a.tiny:
        n, unique, per_shard, size = 256, 32, 32, (160, 120)
    else:
        n, unique, per_shard, size = 24000, 2000, 1000, (500, 375)
    t = time.perf_counter()
    data = write_bench_shards(work, n, unique, per_shard, size, 256 if not a.tiny else 64)
    emit("shards", seconds=round(time.perf_counter() - t, 1), **data)

    def child(name: str, shards: str, seconds: float) -> None:
        if a.tiny:  # on a CPU a child's start-up (imports) would eat a short budget: run in-process
            ns = argparse.Namespace(**{**vars(a), "shards": shards, "deadline": time.time() + seconds})
            try:
                CHILDREN[name](ns, emit)
            except Exception as e:
                emit(name, error=f"{type(e).__name__}: {e}")
            return
        cmd = [sys.executable, str(Path(__file__).resolve()), "--child", name, "--out", str(out), "--shards", shards,
               "--deadline", str(time.time() + seconds - 4), "--device", a.device, "--model", a.model, "--batch-size",
               str(a.batch_size), "--image-size", str(a.image_size)]  # fmt: skip
        if not a.compile:
            cmd.append("--no-compile")
        if a.tiny:
            cmd.append("--tiny")
        rc = run_budgeted(cmd, seconds, work / f"{name}.log")
        if rc != 0:
            tail = (work / f"{name}.log").read_text(errors="replace")[-2000:]
            emit(name, error="stopped at budget" if rc is None else f"exit {rc}", log_tail=tail)

    results: dict[str, dict | None] = {}
    if "decode" in phases:
        child("decode", data["original"], budget["decode"])
    if "compute" in phases:
        child("compute", data["original"], budget["compute"])
    decode = "device"
    for name, key in (("ours_original", "original"), ("ours_resized", "resized")):
        if name in phases:
            results[name] = phase_ours(name, data[key], a, work, budget[name], emit, decode)
            if results[name].get("crashed") and decode == "device":  # the GPU path broke: measure the CPU one
                decode = "cpu"
                results[name] = phase_ours(name, data[key], a, work, budget[name] * 0.5, emit, decode)
    if "open_clip" in phases:
        results["open_clip"] = phase_open_clip(data["original"], a, work, budget["open_clip"], emit)
    if "inference" in phases:
        child("inference", data["jpegs"], budget["inference"])

    # Summary: ratios against the targets, from the lines written above.
    rows = [json.loads(x) for x in (out / "bench_gpu.jsonl").read_text().splitlines()]
    compute = {
        r["mode"]: r["samples_per_s"] for r in rows if r["phase"] == "compute" and "samples_per_s" in r
    }
    a_mode = "compiled" if a.compile and "compiled" in compute else "eager"
    a_rate = compute.get(a_mode)
    summary: dict = {
        "compute_samples_per_s": compute,
        "a_mode": a_mode if a_rate else None,
        "a_matches_b_mode": a_mode == ("compiled" if a.compile else "eager"),
        "total_s": round(time.monotonic() - t_start, 1),
    }
    for name in ("ours_original", "ours_resized", "open_clip"):
        summary[f"{name}_samples_per_s"] = (results.get(name) or {}).get("samples_per_s")
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
    emit("summary", **summary)
    return 0


if __name__ == "__main__":
    sys.exit(main())
