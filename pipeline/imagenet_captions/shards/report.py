"""Assemble report.json, sizes.json and manifest.json from what the pipeline computed as data.

The report is built from pipeline outputs (outcome counts, shard results), not from runner metrics,
which are neither durable nor the same across runners. Its invariant: every input record is counted
exactly once, under ``written`` or a named reason, and so is every image entry (``matched`` to a
record, whose outcome then counts, or a reason of its own). :func:`check_accounting` enforces it.
"""

from __future__ import annotations

import json
from collections import Counter
from typing import Any

from imagenet_captions import fsio
from imagenet_captions.shards.writer import ShardResult

MAX_EXAMPLES = 5


def merge_outcomes(
    outcome_counts: dict[tuple[str, str], int],
    results: list[ShardResult],
    with_images: bool = True,
) -> dict[str, Counter[str]]:
    """Per category ("records", "images"), reason -> count.

    Shard results add ``written`` and the writer's drops (``corrupt_image`` ...) to the records, and,
    in a build with images, every sample a shard received is an image ``matched`` to its record."""
    merged: dict[str, Counter[str]] = {"records": Counter(), "images": Counter()}
    for (category, reason), n in outcome_counts.items():
        merged.setdefault(category, Counter())[reason] += n
    for r in results:
        merged["records"]["written"] += r.written
        for _, reason, _ in r.dropped:
            merged["records"][reason] += 1
        if with_images:
            merged["images"]["matched"] += r.written + len(r.dropped)
    return merged


def check_accounting(inputs: dict[str, int], outcomes: dict[str, Counter[str]]) -> list[str]:
    """Problems with the accounting (empty when every input is counted exactly once)."""
    problems = []
    for category, n in inputs.items():
        counted = sum(outcomes.get(category, Counter()).values())
        if counted != n:
            problems.append(
                f"{category}: {n} in the input, {counted} accounted for ({dict(outcomes.get(category, {}))})"
            )
    return problems


def examples_from(
    outcome_examples: dict[tuple[str, str], list[tuple[str, str]]], results: list[ShardResult]
) -> dict[str, dict[str, list[dict[str, str]]]]:
    """A few (key, detail) examples per reason, smallest keys first, so a report says *which* and *why*."""
    out: dict[str, dict[str, list[dict[str, str]]]] = {}
    for (category, reason), items in sorted(outcome_examples.items()):
        out.setdefault(category, {})[reason] = [
            {"key": k, "detail": d} for k, d in sorted(items)[:MAX_EXAMPLES]
        ]
    drops = sorted(d for r in results for d in r.dropped)
    for key, reason, detail in drops:
        bucket = out.setdefault("records", {}).setdefault(reason, [])
        if len(bucket) < MAX_EXAMPLES:
            bucket.append({"key": key, "detail": detail})
    return out


def sizes_of(results: list[ShardResult], suffix: str) -> dict[str, int]:
    """open_clip's sizes.json: shard file name -> sample count, in shard order."""
    return {f"{r.index:05d}.{suffix}": r.written for r in sorted(results, key=lambda r: r.index)}


def write_json_atomic(path: str, obj: Any) -> None:
    with fsio.atomic_write(path) as f:
        f.write((json.dumps(obj, indent=2, sort_keys=True, ensure_ascii=False) + "\n").encode())


def remove_stale_shards(shard_dir: str, keep: set[str]) -> list[str]:
    """Delete shard files a previous build left that this build did not produce (their keys are gone)."""
    removed = []
    for name in fsio.listdir(shard_dir):
        stem, _, ext = name.partition(".")
        if stem.isdigit() and ext in ("tar", "parquet", "tar.tmp", "parquet.tmp") and name not in keep:
            fsio.remove(fsio.join(shard_dir, name))
            removed.append(name)
    return removed
