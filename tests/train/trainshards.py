"""Shared helpers for the training tests: learnable shards and held-out accuracy."""

from __future__ import annotations

import random
from pathlib import Path

import torch

from imagenet_captions.classes import wnid_to_label
from imagenet_captions.testing.synthetic import draw_shape, shape_classes, shape_samples, write_shards
from imagenet_captions.train.checkpoint import LoadedModel

N_CLASSES = 8


def make_shards(out: Path, n: int = 640, per_shard: int = 160, seed: int = 1) -> Path:
    """Learnable shards (8 coloured-shape classes, every 7th image greyscale) under ``out/shards``."""
    return write_shards(out, shape_samples(shape_classes(N_CLASSES), n, seed=seed, grey_every=7), per_shard)


def held_out_top1(m: LoadedModel, n: int = 200, seed: int = 999) -> float:
    """Top-1 over the 8 classes on fresh draws (a seed the shards never used), eval preprocessing.

    CLIP: zero-shot against the 8 class captions. Classifier: argmax over the 8 classes' logits.
    """
    classes = shape_classes(N_CLASSES)
    rng = random.Random(seed)
    tf = m.transform()
    x = torch.stack([tf(draw_shape(classes[i % N_CLASSES], rng, (48, 40))) for i in range(n)])
    y = torch.arange(n) % N_CLASSES
    if m.kind == "clip":
        text = m.encode_text(m.tokenizer([c.caption for c in classes]))
        pred = (m.encode_image(x) @ text.T).argmax(1)
    else:
        labels = torch.tensor([wnid_to_label()[c.wnid] for c in classes])
        pred = m.logits(x)[:, labels].argmax(1)
    return float((pred == y).float().mean())
