"""What a build must be before it is published: complete, consistent, and what its files say.

Checked from the files alone, cheaply (Parquet footers, not rows): ``validate`` is the full check,
and a publisher should run it first; this refuses what would make a wrong release (a partial
build, a rerun's leftovers, a manifest that disagrees with the disk). It reads and never writes.
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from imagenet_captions.errors import UsageError
from imagenet_captions.shards import layout
from imagenet_captions.shards.incremental import COMMITS_DIR

_STEM_RE = re.compile(r"^\d{5}$")


@dataclasses.dataclass(frozen=True)
class Build:
    """A complete build, as checked: where its shards are and what its manifest and report say."""

    dir: str
    shard_dir: str
    text_only: bool
    manifest: dict[str, Any]
    report: dict[str, Any]

    def shard_path(self, name: str) -> str:
        return os.path.join(self.shard_dir, name)


def _load_json(path: str, what: str) -> Any:
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except FileNotFoundError:
        raise UsageError(f"{path} does not exist: {what}") from None
    except ValueError as e:
        raise UsageError(f"{path} is not JSON ({e}): {what}") from None


def inspect_build(build_dir: str) -> Build:
    """The build, or a UsageError naming the first reason it is not complete enough to publish.

    Checked from the files alone (cheaply: Parquet footers, not rows): ``validate`` is the full
    check, and a publisher should run it first; this refuses what would make a wrong release.
    """
    if not os.path.isdir(build_dir):
        raise UsageError(f"{build_dir} is not a folder")
    shard_dir = os.path.join(build_dir, layout.SHARD_DIR)
    text_only = not os.path.isdir(shard_dir)
    if text_only:
        shard_dir = os.path.join(build_dir, layout.CAPTIONS_DIR)
    if not os.path.isdir(shard_dir):
        raise UsageError(f"{build_dir} holds no {layout.SHARD_DIR}/ or {layout.CAPTIONS_DIR}/: not a build")
    incomplete = "not a complete build (did `imagenet-captions build` finish?)"
    report = _load_json(os.path.join(build_dir, layout.REPORT_FILE), incomplete)
    manifest = _load_json(os.path.join(shard_dir, layout.MANIFEST_FILE), incomplete)
    leftovers = sorted(
        os.path.relpath(os.path.join(d, n), build_dir)
        for d in (build_dir, shard_dir)
        for n in os.listdir(d)
        if n.endswith(".tmp")
    )
    if leftovers:
        raise UsageError(
            f"{build_dir}: unfinished files left behind ({', '.join(leftovers[:3])}): {incomplete}"
        )
    commits = os.path.join(shard_dir, COMMITS_DIR)
    if os.path.isdir(commits) and os.listdir(commits):
        raise UsageError(f"{commits} holds the records of shards written after the manifest: {incomplete}")
    if report.get("accounting_problems"):
        raise UsageError(
            f"{build_dir}/report.json has accounting problems: {report['accounting_problems'][0]}"
        )
    shards = manifest.get("shards")
    if not isinstance(shards, dict) or not shards or "num_shards" not in manifest:
        raise UsageError(f"{shard_dir}/manifest.json lists no shards: {incomplete}")
    suffixes = (".parquet",) if text_only else (".tar", ".parquet")
    listed = set()
    for stem, shard in sorted(shards.items()):
        expect = [f"{stem}{s}" for s in suffixes]
        if not _STEM_RE.match(stem) or sorted(shard.get("files", [])) != sorted(expect):
            raise UsageError(
                f"{shard_dir}/manifest.json: shard {stem} lists {shard.get('files')}, not {expect}"
            )
        missing = [f for f in expect if not os.path.isfile(os.path.join(shard_dir, f))]
        if missing:
            raise UsageError(f"{shard_dir}: {missing[0]} is in the build's manifest but not on disk")
        listed.update(expect)
        try:
            rows = pq.read_metadata(os.path.join(shard_dir, f"{stem}.parquet")).num_rows
        except (OSError, pa.ArrowException) as e:
            raise UsageError(f"{shard_dir}/{stem}.parquet is not a readable Parquet file: {e}") from None
        if rows != shard.get("written"):
            raise UsageError(
                f"{shard_dir}/{stem}.parquet has {rows} rows, the manifest says {shard.get('written')}"
            )
    extra = sorted(n for n in os.listdir(shard_dir) if n.endswith(suffixes) and n not in listed)
    if extra:
        raise UsageError(
            f"{shard_dir}: {extra[0]} is on disk but not in the build's manifest (a stale shard?)"
        )
    total = sum(s["written"] for s in shards.values())
    if report.get("written") != total:
        raise UsageError(
            f"{build_dir}/report.json says {report.get('written')} written, the shards hold {total}"
        )
    if not text_only:
        sizes = _load_json(os.path.join(shard_dir, layout.SIZES_FILE), incomplete)
        if sizes != {f"{stem}.tar": s["written"] for stem, s in shards.items()}:
            raise UsageError(f"{shard_dir}/sizes.json does not match the build's manifest")
    return Build(build_dir, shard_dir, text_only, manifest, report)
