"""The end of a build: sizes.json, manifest.json and report.json from the merged tallies.

Every unit of work returns a tally; Finalize merges them once and writes the build's three files in
an order that makes the last one mean "finished": sizes.json, manifest.json (what each shard holds,
read by the next build's incremental decisions), then report.json. Its invariant: every input
record is counted exactly once, under ``written`` or a named reason, and so is every image entry
(:func:`imagenet_captions.shards.report.check_accounting`).
"""

from __future__ import annotations

import time
from datetime import datetime, timezone
from typing import Any

from imagenet_captions import fsio, layout
from imagenet_captions.build.plan import BuildPlan
from imagenet_captions.build.work import manifest_entry
from imagenet_captions.outcomes import IMAGES, RECORDS, Tally
from imagenet_captions.shards import incremental, report
from imagenet_captions.shards.outputs import naming_output


def finalize(plan: BuildPlan, tally: Tally) -> dict[str, Any]:
    """Write sizes.json, manifest.json and report.json (in that order: the report last, so its
    presence means the build finished) and return the report."""
    config, with_images, results = plan.config, plan.with_images, tally.shards
    inputs = {RECORDS: tally.inputs.get(RECORDS, 0)}
    if with_images:
        inputs[IMAGES] = tally.inputs.get(IMAGES, 0)
    outcomes = report.outcomes_of(tally, with_images)
    problems = report.check_accounting(inputs, outcomes)
    report.write_json(
        fsio.join(plan.shard_dir, layout.SIZES_FILE), report.sizes_of(results, "tar" if with_images else "parquet")
    )
    with naming_output(plan.shard_dir):
        removed = report.remove_stale_shards(plan.shard_dir, {f for r in results for f in r.files})
    manifest = {
        "num_shards": plan.num_shards,
        "options": plan.output_options,
        "shards": {layout.shard_stem(r.index): manifest_entry(r) for r in sorted(results, key=lambda r: r.index)},
    }
    report.write_json(fsio.join(plan.shard_dir, layout.MANIFEST_FILE), manifest)
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
        "examples": report.examples_of(tally),
        "text": _text_stats(plan, tally),
        "options": plan.output_options,
        "started_at": datetime.fromtimestamp(plan.started, timezone.utc).isoformat(timespec="seconds"),
        "finished_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "elapsed_s": round(time.time() - plan.started, 2),
    }
    if with_images:
        rep[IMAGES] = {"input": inputs[IMAGES], "outcomes": dict(sorted(outcomes[IMAGES].items()))}
    report.write_json(fsio.join(config.out, layout.REPORT_FILE), rep)
    return rep


def _text_stats(plan: BuildPlan, tally: Tally) -> dict[str, Any]:
    if tally.text is None:
        return {}
    out = tally.text.to_dict()
    out["options"] = plan.config.text.to_report()
    return out
