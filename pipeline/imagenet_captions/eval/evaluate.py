"""Top-1 of one model on ImageNet val and the five shifts, with the testbed's class-subset protocol."""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import torch

from imagenet_captions.errors import UsageError
from imagenet_captions.eval import DATASETS
from imagenet_captions.eval.datasets import SUBSET_CLASSES, locate, read_dataset
from imagenet_captions.eval.heads import Head
from imagenet_captions.eval.inference import Scorer, run_set

if TYPE_CHECKING:
    from imagenet_captions.train.checkpoint import LoadedModel

log = logging.getLogger(__name__)


def evaluate(
    loaded: LoadedModel,
    data_root: str | Path,
    datasets: Sequence[str] | None = None,
    overrides: Mapping[str, str] | None = None,
    imagenet_labels: str | None = None,
    batch_size: int = 256,
    workers: int = 4,
    limit: int | None = None,
    templates: Sequence[str] | None = None,
) -> dict:
    """Accuracies (fractions) keyed as ``eval`` writes them, plus a ``details`` entry.

    ``datasets`` None means every dataset found under ``data_root``; a dataset asked for by name
    that is not there is an error. ``limit`` scores only the first N images of each set (smoke runs;
    recorded in ``details``).
    """
    explicit = datasets is not None
    names = list(datasets) if datasets is not None else list(DATASETS)
    unknown = [n for n in names if n not in DATASETS]
    if unknown:
        raise UsageError(f"unknown dataset(s) {', '.join(unknown)}; expected some of {', '.join(DATASETS)}")
    found = {n: locate(data_root, n, dict(overrides or {})) for n in names}
    located = {n: p for n, p in found.items() if p is not None and Path(p).is_dir()}
    missing = [n for n in found if n not in located]
    if missing and explicit:
        raise UsageError(f"not found under {data_root}: {', '.join(missing)} (use --path NAME=DIR)")
    present = [n for n in names if n not in missing]
    if not present:
        raise UsageError(f"no evaluation dataset found under {data_root}")
    sets = {n: read_dataset(n, located[n], imagenet_labels) for n in present}  # read all first: fail early
    device = loaded.device if isinstance(loaded.device, torch.device) else torch.device(loaded.device)
    head = Head(loaded, templates=templates)
    result: dict = {}
    details: dict = {"not_found": missing, "limit": limit, "device": str(device), "datasets": {}}
    for name, evalset in sets.items():
        scorers = [Scorer(name, evalset.class_sublist)]
        if name == "imagenet":
            scorers += [
                Scorer(key, classes(), frozenset(classes())) for key, classes in SUBSET_CLASSES.items()
            ]
        stats = run_set(head, evalset, loaded.preprocess, scorers, device, batch_size, workers, limit)
        for s in scorers:
            result[s.key] = s.top1
            details["datasets"][s.key] = {"correct": s.correct, "total": s.total, "root": evalset.root}
        details["datasets"][name].update(stats, skipped=evalset.skipped)
        log.info(
            "%s: top-1 %.4f over %d images (%.0f images/s)",
            name,
            scorers[0].top1,
            scorers[0].total,
            stats["images_per_s"],
        )
    result["details"] = details
    return result
