"""The pieces of a pipeline's ending that belong to the shard format: the accounting of merged
tallies, sizes.json, stale shard files, and writing the JSON outputs.

``build/finalize.py`` (and ``match``) put them together into manifest.json and report.json. The
report is built from pipeline data (the tallies every unit of work returned), not from runner
metrics, which are neither durable nor the same across runners. Its invariant: every input record
is counted exactly once, under ``written`` or a named reason, and so is every image entry
(``matched`` to a record, whose outcome then counts, or a reason of its own);
:func:`check_accounting` enforces it. The reasons are catalogued in :mod:`imagenet_captions.outcomes`.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

from imagenet_captions import fsio, layout
from imagenet_captions.outcomes import IMAGES, RECORDS, Tally
from imagenet_captions.shards.outputs import naming_output
from imagenet_captions.shards.writer import ShardResult


def outcomes_of(tally: Tally, with_images: bool) -> dict[str, Counter[str]]:
    """Per category, reason -> count. Shard results add ``written`` and the writer's drops
    (``corrupt_image`` ...) to the records and, with images, every sample a shard received is an
    image ``matched`` to its record."""
    merged: dict[str, Counter[str]] = {RECORDS: Counter(), IMAGES: Counter()}
    for (category, reason), n in tally.outcomes.items():
        merged.setdefault(category, Counter())[reason] += n
    for r in tally.shards:
        merged[RECORDS]["written"] += r.written
        for _, reason, _ in r.dropped:
            merged[RECORDS][reason] += 1
        if with_images:
            merged[IMAGES]["matched"] += r.written + len(r.dropped)
    if not with_images:
        merged.pop(IMAGES)
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


def examples_of(tally: Tally) -> dict[str, dict[str, list[dict[str, str]]]]:
    """A few (key, detail) examples per reason, smallest keys first, so a report says *which* and *why*."""
    with_writer = Tally(examples={k: list(v) for k, v in tally.examples.items()})
    for r in tally.shards:
        for key, reason, detail in r.dropped:
            with_writer._example((RECORDS, reason), (key, detail))
    return with_writer.examples_of()


def sizes_of(results: list[ShardResult], suffix: str) -> dict[str, int]:
    """open_clip's sizes.json: shard file name -> sample count, in shard order."""
    return {f"{layout.shard_stem(r.index)}.{suffix}": r.written for r in sorted(results, key=lambda r: r.index)}


def remove_stale_shards(shard_dir: str, keep: set[str]) -> list[str]:
    """Delete shard files a previous build left that this build did not produce (their keys are gone)."""
    removed = []
    for name in fsio.listdir(shard_dir):
        stem, _, ext = name.partition(".")
        if stem.isdigit() and ext in ("tar", "parquet") and name not in keep:
            fsio.remove(fsio.join(shard_dir, name))
            removed.append(name)
    return removed


def write_json(path: str, obj: Any) -> None:
    """One of a pipeline's JSON outputs; a failure to write it (a full disk) is one line naming it."""
    with naming_output(path):
        fsio.write_json_atomic(path, obj)
