"""Training augmentation and the CPU decode: RandomResizedCrop on our own seeded RNG, with Pillow.

The crop is drawn by :func:`rrc_params` (torchvision's algorithm, on a ``random.Random`` the
loader seeds per batch, so a resumed run draws the same crops). The CPU path (:func:`decode_crop_pil`,
run in DataLoader workers) draws the crop on the full-size geometry first, then lets JPEG draft
mode decode at the smallest DCT scale that still covers it. The GPU path is :mod:`.device_decode`;
both take the same :class:`Augment`.
"""

from __future__ import annotations

import dataclasses
import io
import math
import random

import numpy as np
from PIL import Image


def rrc_params(
    h: int, w: int, scale: tuple[float, float], ratio: tuple[float, float], rng: random.Random
) -> tuple[int, int, int, int]:
    """(top, left, height, width) of a RandomResizedCrop, torchvision's algorithm on our own RNG."""
    area = h * w
    log_ratio = (math.log(ratio[0]), math.log(ratio[1]))
    for _ in range(10):
        target = area * rng.uniform(*scale)
        ar = math.exp(rng.uniform(*log_ratio))
        cw = int(round(math.sqrt(target * ar)))
        ch = int(round(math.sqrt(target / ar)))
        if 0 < cw <= w and 0 < ch <= h:
            return rng.randint(0, h - ch), rng.randint(0, w - cw), ch, cw
    in_ratio = w / h
    if in_ratio < min(ratio):
        cw, ch = w, int(round(w / min(ratio)))
    elif in_ratio > max(ratio):
        ch, cw = h, int(round(h * max(ratio)))
    else:
        cw, ch = w, h
    return (h - ch) // 2, (w - cw) // 2, ch, cw


@dataclasses.dataclass(frozen=True)
class Augment:
    """Training augmentation: RandomResizedCrop to ``size`` and an optional horizontal flip."""

    size: int
    scale: tuple[float, float] = (0.9, 1.0)
    ratio: tuple[float, float] = (3 / 4, 4 / 3)
    hflip: bool = False


def decode_crop_pil(data: bytes, aug: Augment, rng: random.Random) -> np.ndarray:
    """Decode one image with Pillow and random-resized-crop it: uint8 array [size, size, 3].

    Crop parameters are drawn on the full-size geometry first, then JPEG draft mode decodes at the
    smallest DCT scale that still leaves the crop at least ``size`` pixels, so small crops of big
    photos cost a fraction of a full decode. Greyscale and CMYK images come out RGB.
    """
    im: Image.Image = Image.open(io.BytesIO(data))
    w, h = im.size
    top, left, ch, cw = rrc_params(h, w, aug.scale, aug.ratio, rng)
    flip = aug.hflip and rng.random() < 0.5
    if im.format == "JPEG":
        im.draft("RGB", (max(1, w * aug.size // cw), max(1, h * aug.size // ch)))
    sx, sy = im.size[0] / w, im.size[1] / h
    im = im.convert("RGB")
    out = im.resize(
        (aug.size, aug.size),
        Image.Resampling.BILINEAR,
        box=(left * sx, top * sy, (left + cw) * sx, (top + ch) * sy),
    )
    if flip:
        out = out.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
    return np.asarray(out)
