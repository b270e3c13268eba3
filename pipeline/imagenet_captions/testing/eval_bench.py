"""Inference throughput: RN50 at 224 px from a folder of JPEGs, decoded on the GPU when there is one.

``measure_inference`` is what ``benchmarks/bench_gpu.py`` calls for the eval number (the target
and the figures are in docs/eval.md, "Throughput benchmark"). It runs the same pipeline as
``imagenet-captions eval`` (file reading in DataLoader workers, batched ``decode_jpeg`` on the GPU,
resize/crop/normalise on the GPU, bf16 autocast, channels-last), and also times the model alone on
a resident batch and the decode+preprocess alone, so a shortfall can be attributed.

It lives in ``imagenet_captions.testing`` because nothing at run time needs it: it generates its
own JPEGs and measures; ``eval`` never imports it.

Run by hand::

    python -m imagenet_captions.testing.eval_bench --make-jpegs 2000 --folder /tmp/jpegs   # synthetic 500x375
    python -m imagenet_captions.testing.eval_bench --folder /tmp/jpegs --device cuda --batch-size 256 --seconds 20
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch

from imagenet_captions.errors import UsageError
from imagenet_captions.eval.inference import image_loader, prepare_batch
from imagenet_captions.train.resources import default_workers

#: Fewer full batches than this per pass over the folder and the pipeline never reaches a steady state.
MIN_BATCHES = 4
RN50_PREPROCESS = {
    "image_size": 224,
    "resize": 256,
    "mean": [0.485, 0.456, 0.406],
    "std": [0.229, 0.224, 0.225],
    "interpolation": "bilinear",
}


def write_test_jpegs(
    folder: str | Path, n: int, size: tuple[int, int] = (500, 375), seed: int = 0, unique: int = 128
) -> list[Path]:
    """``n`` photo-like JPEGs (gradients, shapes, noise; ImageNet's typical 500x375, quality 90, ~75 KB).

    Only ``unique`` of them are drawn; the rest are byte copies, which decode at the same speed and
    keep a 10,000-file folder quick to make on the benchmark machine.
    """
    from PIL import Image, ImageDraw

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    w, h = size
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    out: list[Path] = []
    for i in range(n):
        path = folder / f"img_{i:06d}.jpg"
        if i >= unique:
            path.write_bytes(out[i % unique].read_bytes())
            out.append(path)
            continue
        base = np.stack(
            [
                (np.sin(xx / rng.uniform(20, 90) + c) * 0.5 + 0.5)
                * (np.cos(yy / rng.uniform(20, 90)) * 0.5 + 0.5)
                for c in range(3)
            ],
            axis=-1,
        )
        img = (base * 200 + rng.normal(0, 20, (h, w, 3))).clip(0, 255).astype(np.uint8)
        im = Image.fromarray(img)
        draw = ImageDraw.Draw(im)
        for _ in range(6):
            x0, y0 = int(rng.integers(0, w - 40)), int(rng.integers(0, h - 40))
            box = [x0, y0, x0 + int(rng.integers(20, 200)), y0 + int(rng.integers(20, 200))]
            draw.ellipse(box, fill=tuple(int(v) for v in rng.integers(0, 255, 3)))
        im.save(path, "JPEG", quality=90)
        out.append(path)
    return out


def _jpegs(folder: str | Path) -> list[str]:
    root = Path(folder)
    if not root.is_dir():
        raise UsageError(f"{folder} is not a directory")
    paths = sorted(str(p) for p in root.rglob("*") if p.suffix.lower() in (".jpg", ".jpeg"))
    if not paths:
        raise UsageError(f"no JPEGs under {folder}")
    return paths


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def measure_inference(
    folder: str,
    device: str,
    batch_size: int,
    seconds: float,
    *,
    model_name: str = "resnet50",
    image_size: int = 224,
    workers: int | None = None,
    warmup_batches: int = 3,
) -> dict:
    """Images/s of RN50 (random weights: speed does not depend on them) at 224 px over ``folder``.

    End to end for about ``seconds``, then the model alone and the decode alone for about a third
    of that each. The folder is cycled through as often as needed. ``model_name`` (a torchvision
    classifier) and ``image_size`` exist for a tiny CPU smoke run; the measured number is RN50 at 224.
    """
    import torchvision

    dev = torch.device(device)
    paths = _jpegs(folder)
    if len(paths) < MIN_BATCHES * batch_size:
        raise UsageError(
            f"{folder}: {len(paths)} JPEGs make fewer than {MIN_BATCHES} batches of {batch_size}; with so "
            f"few, reading, decoding and the model cannot overlap and the figure measures the bench "
            f"(write more with --make-jpegs)"
        )
    on_gpu = dev.type == "cuda"
    if on_gpu:
        from imagenet_captions.train.step import fast_cuda_settings

        fast_cuda_settings(tf32=False)  # what ``eval`` sets on a GPU
    workers = workers if workers is not None else min(16, default_workers())
    model = (
        getattr(torchvision.models, model_name)(weights=None)
        .eval()
        .to(dev, memory_format=torch.channels_last)
    )
    pre = dict(RN50_PREPROCESS, image_size=image_size, resize=round(image_size * 256 / 224))
    # The loader ``eval`` uses, cycled: workers persist, and a short last batch is not timed.
    loader, gpu = image_loader(paths, pre, dev, batch_size, workers, persistent_workers=True, drop_last=True)

    def batches():
        while True:
            yield from loader

    def prepare(batch: dict) -> torch.Tensor:
        images = prepare_batch(batch, gpu)[1]
        if images is None:  # the bench's images are all made to decode
            raise RuntimeError("a benchmark batch in which no image decoded")
        return images

    autocast = torch.autocast(dev.type, dtype=torch.bfloat16, enabled=on_gpu)
    it = batches()
    with torch.inference_mode(), autocast:
        for _ in range(warmup_batches):
            model(prepare(next(it)).contiguous(memory_format=torch.channels_last))
        _sync(dev)
        n, start = 0, time.perf_counter()
        while time.perf_counter() - start < seconds:
            batch = prepare(next(it)).contiguous(memory_format=torch.channels_last)
            model(batch).argmax(dim=1)
            n += batch.shape[0]
        _sync(dev)
        end_to_end = n / (time.perf_counter() - start)

        resident = torch.randn(batch_size, 3, image_size, image_size, device=dev).contiguous(
            memory_format=torch.channels_last
        )
        m, start = 0, time.perf_counter()
        while time.perf_counter() - start < seconds / 3:
            model(resident).argmax(dim=1)
            _sync(dev)
            m += batch_size
        model_only = m / (time.perf_counter() - start)

        d, start = 0, time.perf_counter()
        while time.perf_counter() - start < seconds / 3:
            d += prepare(next(it)).shape[0]
        _sync(dev)
        decode_only = d / (time.perf_counter() - start)
    return {
        "model": model_name,
        "image_size": image_size,
        "device": str(dev),
        "device_name": torch.cuda.get_device_name(dev) if on_gpu else "cpu",
        "decode": "gpu (torchvision.io.decode_jpeg, batched)" if on_gpu else "cpu (PIL in workers)",
        "batch_size": batch_size,
        "workers": loader.num_workers,
        "files": len(paths),
        "batches_per_pass": len(paths) // batch_size,
        "images": n,
        "images_per_s": end_to_end,
        "model_only_images_per_s": model_only,
        "decode_preprocess_only_images_per_s": decode_only,
        "cpu_decode_fallback": gpu.cpu_fallback if gpu is not None else 0,
        "precision": "bf16 autocast, channels_last" if on_gpu else "fp32",
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--folder", required=True, help="folder of JPEGs (searched recursively)")
    p.add_argument(
        "--make-jpegs", type=int, default=0, help="first write this many synthetic 500x375 JPEGs (default 0)"
    )
    p.add_argument(
        "--device",
        default="cuda" if torch.cuda.is_available() else "cpu",
        help="default: cuda when available",
    )
    p.add_argument("--batch-size", type=int, default=256, help="default 256; the folder must hold 4 batches")
    p.add_argument("--seconds", type=float, default=20.0, help="end-to-end seconds (default 20)")
    p.add_argument(
        "--workers", type=int, default=None, help="file readers (default: the cores less one, at most 16)"
    )
    args = p.parse_args(argv)
    if args.make_jpegs:
        write_test_jpegs(args.folder, args.make_jpegs)
        if args.seconds <= 0:
            return 0
    print(
        json.dumps(
            measure_inference(args.folder, args.device, args.batch_size, args.seconds, workers=args.workers),
            indent=2,
        )
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
