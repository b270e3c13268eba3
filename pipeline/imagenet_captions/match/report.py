"""The end of a ``match`` run: ``shards/sizes.json``, ``manifest.json`` and ``report.json`` from the
merged tallies, then the spill files and commit records are removed.

The report is pipeline data (the tallies every unit returned), never runner metrics. Its
invariant: every corpus row is counted exactly once in ``rows.outcomes`` (``written``, or a reason
of :mod:`imagenet_captions.outcomes`), and every (row, class) match once in ``pairs.outcomes``;
:func:`accounting_problems` says where that fails. ``report.json`` is written last, so its presence
means the run finished.
"""

from __future__ import annotations

import os
import shutil
import time
from collections import Counter
from datetime import datetime, timezone
from typing import Any

from imagenet_captions import fsio, layout
from imagenet_captions.match.plan import SHARDS_DIR, SPILL_DIR, MatchPlan
from imagenet_captions.match.work import OTHER, OWN, MatchTally, manifest_entry
from imagenet_captions.outcomes import RECORDS
from imagenet_captions.shards import incremental
from imagenet_captions.shards.outputs import naming_output


def accounting_problems(plan: MatchPlan, total: MatchTally, outcomes: dict[str, int]) -> list[str]:
    """Where the accounting fails (empty when every row and every match is counted exactly once)."""
    problems = []
    read = total.rows.inputs.get(RECORDS, 0)
    if sum(outcomes.values()) != read:
        problems.append(f"rows: {read} read, {sum(outcomes.values())} accounted for ({outcomes})")
    expected = plan.corpus.rows()
    if expected is not None and expected != read:
        problems.append(f"rows: the corpus has {expected}, {read} were read")
    matched = sum(total.found.values())
    if sum(total.pairs.values()) != matched:
        problems.append(
            f"pairs: {matched} matched, {sum(total.pairs.values())} accounted for ({dict(total.pairs)})"
        )
    return problems


def class_table(plan: MatchPlan, total: MatchTally) -> dict[str, dict[str, int]]:
    """Per class with a match or a target: found (pairs), written and, when balancing, the class's
    target, what its selection kept and the shortfall (target - written)."""
    wnids = set(total.found) | set(total.written)
    if plan.targets is not None:
        wnids |= {w for w, t in plan.targets.items() if t > 0}
    table = {}
    for wnid in sorted(wnids):
        row = {"found": total.found.get(wnid, 0), "written": total.written.get(wnid, 0)}
        if plan.targets is not None:
            target = plan.targets.get(wnid, 0)
            row.update(target=target, kept=total.kept.get(wnid, 0), shortfall=max(0, target - row["written"]))
        table[wnid] = row
    return table


def label_table(total: MatchTally) -> dict[str, Any]:
    """For a corpus whose rows know their class: overall and per class, how many captions name
    their own class (``own``, of which ``own_and_other`` name another too), only others
    (``other``), none (``none``), or have no caption."""
    overall: Counter[str] = Counter()
    for counts in total.labelled.values():
        overall.update(counts)

    def share(counts: Counter[str]) -> dict[str, Any]:
        n = sum(v for k, v in counts.items() if k != "own_and_other")  # a part of "own", not a row more
        out: dict[str, Any] = dict(sorted(counts.items()))
        out["rows"] = n
        for name in (OWN, OTHER):
            out[f"{name}_share"] = round(counts.get(name, 0) / n, 6) if n else 0.0
        return out

    return {
        "overall": share(overall),
        "per_class": {w: share(c) for w, c in sorted(total.labelled.items())},
    }


def finalize(plan: MatchPlan, total: MatchTally) -> dict[str, Any]:
    """Write sizes.json (with tars), manifest.json and report.json, in that order, and return the report."""
    config = plan.config
    entries = sorted(total.shards, key=lambda e: e["index"])
    outcomes = dict(sorted(total.rows.by_category(RECORDS).items()))
    problems = accounting_problems(plan, total, outcomes)
    if plan.with_images:
        sizes = {f"{layout.shard_stem(e['index'])}.tar": e["written"] for e in entries}
        _write_json(fsio.join(plan.out, SHARDS_DIR, layout.SIZES_FILE), sizes)
    manifest = {
        "num_shards": plan.num_shards,
        "labels": list(plan.vocabulary.classes),
        "options": plan.output_options,
        "shards": {layout.shard_stem(e["index"]): manifest_entry(e) for e in entries},
    }
    _write_json(fsio.join(plan.out, layout.MANIFEST_FILE), manifest)
    incremental.clear_commits(plan.out)
    remove_spill(plan.out)
    files = []
    for i, f in enumerate(plan.corpus.files):
        sha256, size = total.files.get(i, ("", f.size))
        files.append(
            {
                "path": f.path,
                "size": size,
                "sha256": sha256,
                **({"rows": f.rows} if f.rows is not None else {}),
            }
        )
    written_rows = outcomes.get("written", 0)
    report: dict[str, Any] = {
        "corpus": {"spec": config.corpus, "kind": plan.corpus.kind, "files": files},
        "rows": {
            "input": total.rows.inputs.get(RECORDS, 0),
            "outcomes": outcomes,
            "examples": total.rows.examples_of().get(RECORDS, {}),
        },
        "pairs": {"matched": sum(total.found.values()), "outcomes": dict(sorted(total.pairs.items()))},
        "written": {"rows": written_rows, "pairs": total.pairs.get("written", 0)},
        "classes": class_table(plan, total),
        "rule": config.rule.to_manifest(),
        "vocabulary": {
            **plan.vocabulary.to_manifest(),
            "selection": config.classes,
            "unique_terms": config.unique_terms,
            "exclude_terms": config.exclude_terms,
        },  # fmt: skip
        "balance": None
        if plan.targets is None
        else {
            "to": config.balance_to,
            "max_per_class": config.max_per_class,
            "seed": config.seed,
            "target": sum(plan.targets.values()),
            "written": total.pairs.get("written", 0),
        },  # fmt: skip
        "shards": {
            "num_shards": plan.num_shards,
            "written_now": sum(not e.get("kept") for e in entries),
            "kept": sum(bool(e.get("kept")) for e in entries),
            "write_s": round(sum(e.get("seconds", 0.0) for e in entries), 3),
        },
        "accounting_problems": problems,
        "options": plan.output_options,
        "started_at": datetime.fromtimestamp(plan.started, timezone.utc).isoformat(timespec="seconds"),
        "finished_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "elapsed_s": round(time.time() - plan.started, 2),
    }
    if plan.corpus.labelled:
        report["labels"] = label_table(total)
    _write_json(fsio.join(plan.out, layout.REPORT_FILE), report)
    return report


def remove_spill(out: str) -> None:
    """The parts' spill files: every shard is written, nothing reads them again."""
    folder = fsio.join(out, SPILL_DIR)
    if fsio.is_remote(folder):
        for name in fsio.listdir(folder):
            fsio.remove(fsio.join(folder, name))
    elif os.path.isdir(folder):
        shutil.rmtree(folder)


def _write_json(path: str, obj: Any) -> None:
    with naming_output(path):
        if not fsio.is_remote(path):
            fsio.makedirs(os.path.dirname(path))
        fsio.write_json_atomic(path, obj)
