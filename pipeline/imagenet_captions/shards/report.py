"""The end of a build: sizes.json, manifest.json and report.json from the merged tallies.

The report is built from pipeline data (the tallies every unit of work returned), not from runner
metrics, which are neither durable nor the same across runners. Its invariant: every input record
is counted exactly once, under ``written`` or a named reason, and so is every image entry
(``matched`` to a record, whose outcome then counts, or a reason of its own);
:func:`check_accounting` enforces it. The reasons are catalogued in :mod:`imagenet_captions.outcomes`.
"""

from __future__ import annotations

import time
from collections import Counter
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

from imagenet_captions import fsio
from imagenet_captions.outcomes import IMAGES, RECORDS, Tally
from imagenet_captions.shards import incremental, layout
from imagenet_captions.shards.outputs import naming_output
from imagenet_captions.shards.writer import ShardResult

if TYPE_CHECKING:
    from imagenet_captions.build.plan import BuildPlan


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
    return {f"{r.index:05d}.{suffix}": r.written for r in sorted(results, key=lambda r: r.index)}


def remove_stale_shards(shard_dir: str, keep: set[str]) -> list[str]:
    """Delete shard files a previous build left that this build did not produce (their keys are gone)."""
    removed = []
    for name in fsio.listdir(shard_dir):
        stem, _, ext = name.partition(".")
        if stem.isdigit() and ext in ("tar", "parquet") and name not in keep:
            fsio.remove(fsio.join(shard_dir, name))
            removed.append(name)
    return removed


def finalize(plan: BuildPlan, tally: Tally) -> dict[str, Any]:
    """Write sizes.json, manifest.json and report.json (in that order: the report last, so its
    presence means the build finished) and return the report."""
    from imagenet_captions.build.work import manifest_entry

    config, with_images, results = plan.config, plan.with_images, tally.shards
    inputs = {RECORDS: tally.inputs.get(RECORDS, 0)}
    if with_images:
        inputs[IMAGES] = tally.inputs.get(IMAGES, 0)
    outcomes = outcomes_of(tally, with_images)
    problems = check_accounting(inputs, outcomes)
    _write_json(
        fsio.join(plan.shard_dir, layout.SIZES_FILE), sizes_of(results, "tar" if with_images else "parquet")
    )
    with naming_output(plan.shard_dir):
        removed = remove_stale_shards(plan.shard_dir, {f for r in results for f in r.files})
    manifest = {
        "num_shards": plan.num_shards,
        "options": plan.output_options,
        "shards": {layout.shard_stem(r.index): manifest_entry(r) for r in sorted(results, key=lambda r: r.index)},
    }
    _write_json(fsio.join(plan.shard_dir, layout.MANIFEST_FILE), manifest)
    incremental.clear_commits(plan.shard_dir)
    rep: dict[str, Any] = {
        "inputs": {"metadata": config.metadata, "imagenet": config.imagenet, "as_of": config.as_of},
        RECORDS: {"input": inputs[RECORDS], "outcomes": dict(sorted(outcomes[RECORDS].items()))},
        "written": outcomes[RECORDS]["written"],
        "shards": {
            "dir": fsio.basename(plan.shard_dir),
            "count": len(results),
            "num_shards": plan.num_shards,
            "written_now": sum(not r.kept for r in results),
            "kept": sum(r.kept for r in results),
            "removed_stale": removed,
            "write_s": round(sum(r.seconds for r in results), 3),
        },
        "accounting_problems": problems,
        "examples": examples_of(tally),
        "text": _text_stats(plan, tally),
        "options": plan.output_options,
        "started_at": datetime.fromtimestamp(plan.started, timezone.utc).isoformat(timespec="seconds"),
        "finished_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "elapsed_s": round(time.time() - plan.started, 2),
    }
    if with_images:
        rep[IMAGES] = {"input": inputs[IMAGES], "outcomes": dict(sorted(outcomes[IMAGES].items()))}
    _write_json(fsio.join(config.out, layout.REPORT_FILE), rep)
    return rep


def _write_json(path: str, obj: Any) -> None:
    """One of the build's JSON files; a failure to write it (a full disk) is one line naming it."""
    with naming_output(path):
        fsio.write_json_atomic(path, obj)


def _text_stats(plan: BuildPlan, tally: Tally) -> dict[str, Any]:
    if tally.text is None:
        return {}
    out = tally.text.to_dict()
    out["options"] = plan.config.text.to_report()
    return out
