"""Synthetic shards in the project's exact shard format, for tests, smoke runs and the GPU benchmark.

Two generators:

- ``shape_samples``: learnable data. Each class is a (colour, shape) pair drawn on a noisy
  background; the caption names both ("a photo of a red circle"), the label is a real ImageNet label.
  A model that learns anything reaches far above chance on fresh draws.
- ``photo_like_jpeg``: ImageNet-like JPEG bytes (500x375, about 100 KB) for throughput benchmarks;
  ``photo_texture``: photo-like pixels at several scales (the shard benchmark's images).

``write_shards`` is a plain ``tarfile`` writer (no Beam), so it also runs on the GPU machine:
``<out>/shards/00000.tar`` ... with ``<key>.jpg``, ``<key>.txt``, ``<key>.json``, ``<key>.cls``, and
``<out>/shards/sizes.json``. It writes no Parquet twins (the loader does not read them).
"""

from __future__ import annotations

import io
import json
import os
import random
import tarfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

COLOURS: dict[str, tuple[int, int, int]] = {
    "red": (220, 30, 30),
    "green": (30, 180, 40),
    "blue": (30, 60, 220),
    "yellow": (235, 215, 30),
}
SHAPES = ("circle", "square", "triangle", "cross")


@dataclass(frozen=True)
class ShapeClass:
    """One learnable class: a coloured shape standing in for an ImageNet wnid."""

    wnid: str
    colour: str
    shape: str

    @property
    def caption(self) -> str:
        return f"a photo of a {self.colour} {self.shape}"


def shape_classes(n: int) -> list[ShapeClass]:
    """``n`` distinct (colour, shape) classes mapped onto the first ``n`` ImageNet wnids (n <= 16)."""
    from imagenet_captions.classes import wnids

    pairs = [(c, s) for s in SHAPES for c in COLOURS]
    if not 1 <= n <= len(pairs):
        raise ValueError(f"between 1 and {len(pairs)} shape classes, not {n}")
    # Interleave so that small n still varies both colour and shape.
    order = sorted(range(len(pairs)), key=lambda i: (i % 5, i))
    return [ShapeClass(w, *pairs[i]) for w, i in zip(wnids()[:n], order[:n], strict=False)]


def draw_shape(
    cls: ShapeClass, rng: random.Random, size: tuple[int, int] = (48, 40), grey: bool = False
) -> Image.Image:
    """One image of ``cls``: random background noise, the shape at a random place and scale."""
    w, h = size
    noise = np.random.default_rng(rng.getrandbits(32)).integers(90, 160, (h, w, 3), dtype=np.uint8)
    im = Image.fromarray(noise, "RGB")
    d = ImageDraw.Draw(im)
    r = rng.uniform(0.28, 0.42) * min(w, h)
    cx, cy = rng.uniform(r, w - r), rng.uniform(r, h - r)
    col = COLOURS[cls.colour]
    if cls.shape == "circle":
        d.ellipse([cx - r, cy - r, cx + r, cy + r], fill=col)
    elif cls.shape == "square":
        d.rectangle([cx - r, cy - r, cx + r, cy + r], fill=col)
    elif cls.shape == "triangle":
        d.polygon([(cx, cy - r), (cx - r, cy + r), (cx + r, cy + r)], fill=col)
    else:
        t = r / 3
        d.rectangle([cx - r, cy - t, cx + r, cy + t], fill=col)
        d.rectangle([cx - t, cy - r, cx + t, cy + r], fill=col)
    return im.convert("L") if grey else im


def jpeg_bytes(im: Image.Image, quality: int = 90) -> bytes:
    buf = io.BytesIO()
    im.save(buf, "JPEG", quality=quality)
    return buf.getvalue()


@dataclass
class Sample:
    key: str
    jpg: bytes
    caption: str
    label: int
    record: dict


def shape_samples(
    classes: list[ShapeClass],
    n: int,
    seed: int,
    size: tuple[int, int] = (48, 40),
    grey_every: int = 0,
    start: int = 0,
) -> Iterator[Sample]:
    """``n`` samples cycling through ``classes``; every ``grey_every``-th is a greyscale JPEG."""
    from imagenet_captions.classes import wnid_to_label

    rng = random.Random(seed)
    labels = wnid_to_label()
    for i in range(start, start + n):
        cls = classes[i % len(classes)]
        grey = bool(grey_every) and i % grey_every == grey_every - 1
        key = f"{cls.wnid}_{i}"
        yield Sample(
            key=key,
            jpg=jpeg_bytes(draw_shape(cls, rng, size, grey)),
            caption=cls.caption,
            label=labels[cls.wnid],
            record={"key": key, "wnid": cls.wnid, "caption": cls.caption, "synthetic": True},
        )


def photo_like_jpeg(seed: int, size: tuple[int, int] = (500, 375), quality: int = 92) -> bytes:
    """An ImageNet-like JPEG (about 100 KB at 500x375): smooth colour fields plus fine texture.

    Pure noise would compress badly (far bigger than a photo) and flat colour far too well; a mix
    gives photo-like sizes and decode costs.
    """
    g = np.random.default_rng(seed)
    w, h = size
    small = g.integers(0, 256, (h // 25 + 2, w // 25 + 2, 3), dtype=np.uint8)
    base = np.asarray(Image.fromarray(small, "RGB").resize((w, h), Image.Resampling.BICUBIC), dtype=np.int16)
    texture = g.normal(0, 14, (h, w, 1)).astype(np.int16)
    im = Image.fromarray(np.clip(base + texture, 0, 255).astype(np.uint8), "RGB")
    return jpeg_bytes(im, quality)


def photo_texture(rng: np.random.Generator, height: int, width: int) -> np.ndarray:
    """Photo-like pixels (uint8, height x width x 3): multi-scale noise with smooth regions, edges and
    fine grain, so JPEG sizes and resize costs look like photos'. The shard benchmark and the resize
    tests draw from it."""
    out = np.zeros((height, width, 3), np.float32)
    for scale, amplitude in ((64, 60.0), (16, 30.0), (4, 18.0), (1, 15.0)):
        small = rng.normal(0, 1, (height // scale + 2, width // scale + 2, 3)).astype(np.float32)
        im = Image.fromarray(np.clip(small * 40 + 128, 0, 255).astype(np.uint8)).resize(
            (width + 2 * scale, height + 2 * scale), Image.Resampling.BICUBIC
        )
        out += (np.asarray(im, np.float32)[:height, :width] - 128) / 40 * amplitude
    return np.clip(out + 128, 0, 255).astype(np.uint8)


def resize_jpeg(data: bytes, shorter: int = 256, quality: int = 90) -> bytes:
    """The ``--resize 256`` copy of a JPEG: shorter side ``shorter`` px, bicubic."""
    im = Image.open(io.BytesIO(data)).convert("RGB")
    w, h = im.size
    s = shorter / min(w, h)
    size = (max(1, round(w * s)), max(1, round(h * s)))
    return jpeg_bytes(im.resize(size, Image.Resampling.BICUBIC), quality)


def _add(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    info.mtime = 0  # byte-identical outputs for identical inputs
    info.mode = 0o644
    tar.addfile(info, io.BytesIO(data))


def write_shards(out: str | os.PathLike, samples: Iterable[Sample], per_shard: int) -> Path:
    """Write ``samples`` as WebDataset shards of ``per_shard`` samples under ``<out>/shards``.

    Returns the shard directory. Each tar appears only when complete (temporary name, then rename).
    """
    shard_dir = Path(out) / "shards"
    shard_dir.mkdir(parents=True, exist_ok=True)
    sizes: dict[str, int] = {}
    tar: tarfile.TarFile | None = None
    name = ""

    def close() -> None:
        if tar is not None:
            tar.close()
            os.replace(shard_dir / (name + ".tmp"), shard_dir / name)

    for i, s in enumerate(samples):
        if tar is None or i % per_shard == 0:  # (tar is None only before the first sample)
            close()
            name = f"{i // per_shard:05d}.tar"
            tar = tarfile.open(shard_dir / (name + ".tmp"), "w")  # noqa: SIM115 - closed by close()
            sizes[name] = 0
        _add(tar, f"{s.key}.jpg", s.jpg)
        _add(tar, f"{s.key}.txt", s.caption.encode("utf-8"))
        _add(tar, f"{s.key}.json", json.dumps(s.record, sort_keys=True).encode("utf-8"))
        _add(tar, f"{s.key}.cls", str(s.label).encode("ascii"))
        sizes[name] += 1
    close()
    (shard_dir / "sizes.json").write_text(json.dumps(sizes, indent=1, sort_keys=True))
    return shard_dir
