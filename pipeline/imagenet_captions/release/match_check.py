"""What a ``match`` output must be before it is published: complete, consistent, and what its files say.

The same trust rule as for a build (:mod:`imagenet_captions.release.build_check`, whose checks this
reuses): checked from the files alone, cheaply (Parquet footers and file sizes), then each file's
sha256 as the release reads it (:meth:`Build.confirm`). A match output differs from a build only in
where its files lie (``matches/NNNNN.parquet``, ``shards/NNNNN.tar``, ``manifest.json`` at the top)
and in its report's shape (``rows`` and ``pairs``, not ``records``). It reads and never writes.
"""

from __future__ import annotations

import os
from typing import Any

from imagenet_captions import layout
from imagenet_captions.errors import UsageError
from imagenet_captions.match.plan import MATCHES_DIR, SHARDS_DIR
from imagenet_captions.release.build_check import (
    Build,
    check_finished,
    check_shard_files,
    expected_sizes,
    is_count,
    load_json,
    load_object,
)
from imagenet_captions.shards.incremental import COMMITS_DIR

INCOMPLETE = "not a complete match output (did `imagenet-captions match` finish?)"


def is_match_output(path: str) -> bool:
    """Whether ``path`` is laid out as ``match`` writes (``matches/`` and a top-level manifest),
    not as ``build`` does (a manifest inside ``shards/`` or ``captions/``)."""
    return os.path.isdir(os.path.join(path, MATCHES_DIR)) and os.path.isfile(
        os.path.join(path, layout.MANIFEST_FILE)
    )


def _check_report(path: str, report: dict[str, Any]) -> None:
    """The report's fields that the release copies into its manifest and card have the match's shape."""
    rows = report.get("rows")
    if (
        not isinstance(rows, dict)
        or not is_count(rows.get("input"))
        or not isinstance(rows.get("outcomes"), dict)
        or not all(is_count(n) for n in rows["outcomes"].values())
    ):
        raise UsageError(f"{path}: 'rows' is not an object of an input count and outcome counts")
    written = report.get("written")
    if not isinstance(written, dict) or not all(is_count(written.get(k)) for k in ("rows", "pairs")):
        raise UsageError(f"{path}: 'written' is not an object of row and pair counts")
    if not isinstance(report.get("accounting_problems", []), list):
        raise UsageError(f"{path}: 'accounting_problems' is not a list")
    corpus = report.get("corpus")
    if not isinstance(corpus, dict) or not isinstance(corpus.get("files"), list):
        raise UsageError(f"{path}: 'corpus' does not list the corpus's files")
    for what in ("rule", "vocabulary"):
        if not isinstance(report.get(what), dict):
            raise UsageError(f"{path}: {what!r} is not an object")


def inspect_match(out: str) -> Build:
    """The match output, or a UsageError naming the first reason it is not complete enough to publish.

    ``report.json`` is written last by ``match``, so without it the run did not finish; its
    accounting must close, the shard files must be the manifest's (names, sizes, row counts), and
    the Parquet rows must add up to the pairs the report says were written.
    """
    if not os.path.isdir(out):
        raise UsageError(f"{out} is not a folder")
    matches = os.path.join(out, MATCHES_DIR)
    if not os.path.isdir(matches):
        raise UsageError(f"{out} holds no {MATCHES_DIR}/: not a match output")
    shard_dir = os.path.join(out, SHARDS_DIR)
    with_tars = os.path.isdir(shard_dir)
    report_path = os.path.join(out, layout.REPORT_FILE)
    manifest_path = os.path.join(out, layout.MANIFEST_FILE)
    report = load_object(report_path, INCOMPLETE)
    manifest = load_object(manifest_path, INCOMPLETE)
    check_finished(out, [out, matches, shard_dir], os.path.join(out, COMMITS_DIR), INCOMPLETE)
    _check_report(report_path, report)
    if report.get("accounting_problems"):
        raise UsageError(f"{report_path} has accounting problems: {report['accounting_problems'][0]}")
    shards = manifest.get("shards")
    if not isinstance(shards, dict) or not shards or not is_count(manifest.get("num_shards")):
        raise UsageError(f"{manifest_path} lists no shards: {INCOMPLETE}")
    labels = manifest.get("labels")
    if not isinstance(labels, list) or not all(isinstance(w, str) for w in labels):
        raise UsageError(f"{manifest_path}: 'labels' is not the list of class ids")
    places = {".parquet": (f"{MATCHES_DIR}/", matches)}
    if with_tars:
        places[".tar"] = (f"{SHARDS_DIR}/", shard_dir)
    recorded = check_shard_files(manifest_path, shards, places, stage="match")
    total = sum(s["written"] for s in shards.values())
    if report["written"]["pairs"] != total:
        raise UsageError(
            f"{report_path} says {report['written']['pairs']} pairs written, the shards hold {total}"
        )
    if with_tars:
        sizes = load_json(os.path.join(shard_dir, layout.SIZES_FILE), INCOMPLETE)
        if sizes != expected_sizes(manifest):
            raise UsageError(f"{shard_dir}/sizes.json does not match the match's manifest")
    return Build(out, shard_dir, not with_tars, manifest, report, recorded, parquet_dir=matches, kind="match")
