"""What a build must be before it is published: complete, consistent, and what its files say.

Checked from the files alone, cheaply (Parquet footers and file sizes, not rows): ``validate`` is
the full check, and a publisher should run it first; this refuses what would make a wrong release
(a partial build, a rerun's leftovers, a manifest that disagrees with the disk, a file changed after
the build, a build file that is not the shape the build writes). The digest of each file is checked
as the release reads it (:meth:`Build.confirm`), so each file is read once. It reads and never writes.
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
from typing import Any, TypeGuard

import pyarrow as pa
import pyarrow.parquet as pq

from imagenet_captions import layout
from imagenet_captions.errors import UsageError
from imagenet_captions.manifest import MAX_NESTING, nests_deeper_than
from imagenet_captions.shards.incremental import COMMITS_DIR

_STEM_RE = re.compile(r"^\d{5}$")
_SHA256_RE = re.compile(r"^[0-9a-f]{64}$")


@dataclasses.dataclass(frozen=True)
class Build:
    """A complete build, as checked: where its shards are, what its manifest and report say, and the
    size and sha256 its manifest records for every shard file (``recorded``: name -> (size, sha256))."""

    dir: str
    shard_dir: str
    text_only: bool
    manifest: dict[str, Any]
    report: dict[str, Any]
    recorded: dict[str, tuple[int, str]] = dataclasses.field(default_factory=dict)
    #: Where the Parquet files are when not beside the tars (a ``match`` output's ``matches/``).
    parquet_dir: str | None = None
    #: ``build``, or ``match`` for a class-matched subset (:mod:`imagenet_captions.release.match_check`).
    kind: str = "build"

    def shard_path(self, name: str) -> str:
        if self.parquet_dir is not None and name.endswith(".parquet"):
            return os.path.join(self.parquet_dir, name)
        return os.path.join(self.shard_dir, name)

    def confirm(self, name: str, size: int, sha256: str) -> None:
        """Refuse a shard file whose bytes, as read for the release, are not the ones the build wrote.

        The release publishes (or records, for tars it does not publish) what it read, so a file cut
        short or changed after the build would otherwise go out with its new size and digest, and
        verify for every downloader."""
        want_size, want_sha = self.recorded[name]
        _check_size(self.shard_path(name), size, want_size, self.kind)
        if sha256 != want_sha:
            raise UsageError(
                f"{self.shard_path(name)}: its sha256 is not the one in the {self.kind}'s manifest: "
                f"it changed after the {self.kind} (restore it, or {self.kind} again)"
            )


def _check_size(path: str, size: int, want: int, stage: str = "build") -> None:
    if size != want:
        raise UsageError(
            f"{path} is {size:,} bytes, the {stage}'s manifest says {want:,}: "
            f"it changed after the {stage} (restore it, or {stage} again)"
        )


def load_json(path: str, what: str) -> Any:
    try:
        with open(path, "rb") as f:
            data = f.read()
    except FileNotFoundError:
        raise UsageError(f"{path} does not exist: {what}") from None
    if nests_deeper_than(data, MAX_NESTING):  # the parser would recurse to a RecursionError
        raise UsageError(f"{path} is nested more than {MAX_NESTING} levels deep: {what}")
    try:
        return json.loads(data)
    except ValueError as e:  # UnicodeDecodeError included
        raise UsageError(f"{path} is not JSON ({e}): {what}") from None


def load_object(path: str, what: str) -> dict[str, Any]:
    """A JSON object from ``path``, or one line: every reader below takes it for one."""
    obj = load_json(path, what)
    if not isinstance(obj, dict):
        raise UsageError(f"{path} is not a JSON object ({type(obj).__name__}): {what}")
    return obj


def is_count(value: Any) -> TypeGuard[int]:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _check_report(path: str, report: dict[str, Any]) -> None:
    """The report's fields that the release copies into its manifest and card have the build's shape."""
    if not is_count(report.get("written")):
        raise UsageError(f"{path}: 'written' is not a count")
    problems = report.get("accounting_problems", [])
    if not isinstance(problems, list):
        raise UsageError(f"{path}: 'accounting_problems' is not a list")
    for what in ("records", *(["images"] if "images" in report else [])):
        part = report.get(what)
        if (
            not isinstance(part, dict)
            or not is_count(part.get("input"))
            or not isinstance(part.get("outcomes"), dict)
            or not all(is_count(n) for n in part["outcomes"].values())
        ):
            raise UsageError(f"{path}: {what!r} is not an object of an input count and outcome counts")


def _recorded(where: str, stem: str, shard: dict[str, Any], names: list[str]) -> dict[str, tuple[int, str]]:
    """Each file's size and sha256 as the build recorded them, or a refusal that says to build again.

    A build made before the shard writer recorded them gives the release nothing to check its files
    against, and hashing them now would certify whatever is on disk today, so it is refused."""
    sizes, digests = shard.get("sizes"), shard.get("sha256")
    out = {}
    for name in names:
        size = sizes.get(name) if isinstance(sizes, dict) else None
        if not is_count(size):
            raise UsageError(
                f"{where}: shard {stem} records no size for {name} (a build made by an older version): "
                "build it again with this version (into the same --out: it rewrites only the shards that lack it)"
            )
        digest = digests.get(name) if isinstance(digests, dict) else None
        if not isinstance(digest, str) or not _SHA256_RE.match(digest):
            raise UsageError(
                f"{where}: shard {stem} records no sha256 for {name} (a build made by an older version): "
                "build it again with this version (into the same --out: it rewrites only the shards that lack it)"
            )
        out[name] = (size, digest)
    return out


def inspect_build(build_dir: str) -> Build:
    """The build, or a UsageError naming the first reason it is not complete enough to publish.

    Checked from the files alone (cheaply: Parquet footers and file sizes, not rows or digests: the
    release hashes each file as it copies it and :meth:`Build.confirm` checks the digest then):
    ``validate`` is the full check, and a publisher should run it first; this refuses what would make
    a wrong release.
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
    report_path = os.path.join(build_dir, layout.REPORT_FILE)
    manifest_path = os.path.join(shard_dir, layout.MANIFEST_FILE)
    report = load_object(report_path, incomplete)
    manifest = load_object(manifest_path, incomplete)
    check_finished(build_dir, [build_dir, shard_dir], os.path.join(shard_dir, COMMITS_DIR), incomplete)
    _check_report(report_path, report)
    if report.get("accounting_problems"):
        raise UsageError(
            f"{build_dir}/report.json has accounting problems: {report['accounting_problems'][0]}"
        )
    shards = manifest.get("shards")
    if not isinstance(shards, dict) or not shards or "num_shards" not in manifest:
        raise UsageError(f"{manifest_path} lists no shards: {incomplete}")
    suffixes = (".parquet",) if text_only else (".tar", ".parquet")
    recorded = check_shard_files(
        manifest_path,
        shards,
        {suffix: ("", shard_dir) for suffix in suffixes},
    )
    total = sum(s["written"] for s in shards.values())
    if report.get("written") != total:
        raise UsageError(
            f"{build_dir}/report.json says {report.get('written')} written, the shards hold {total}"
        )
    if not text_only:
        sizes = load_json(os.path.join(shard_dir, layout.SIZES_FILE), incomplete)
        if sizes != expected_sizes(manifest):
            raise UsageError(f"{shard_dir}/sizes.json does not match the build's manifest")
    return Build(build_dir, shard_dir, text_only, manifest, report, recorded)


def check_finished(out: str, folders: list[str], commits: str, incomplete: str) -> None:
    """Refuse an output a run is still writing, or one a killed run left: temporary files in any
    of ``folders``, or shard commit records (written after the manifest, removed when it is)."""
    leftovers = sorted(
        os.path.relpath(os.path.join(d, n), out)
        for d in folders
        if os.path.isdir(d)
        for n in os.listdir(d)
        if n.endswith(".tmp")
    )
    if leftovers:
        raise UsageError(f"{out}: unfinished files left behind ({', '.join(leftovers[:3])}): {incomplete}")
    if os.path.isdir(commits) and os.listdir(commits):
        raise UsageError(f"{commits} holds the records of shards written after the manifest: {incomplete}")


def check_shard_files(
    manifest_path: str, shards: dict[str, Any], places: dict[str, tuple[str, str]], stage: str = "build"
) -> dict[str, tuple[int, str]]:
    """Each shard's files against the manifest that lists them: the names it must list, on disk
    with the size it records, a sha256 recorded, the Parquet file's row count its ``written``, and no
    shard file on disk that it does not list. Returns each file's recorded (size, sha256), by the
    file's name in its folder (``00000.parquet``).

    ``places`` maps a suffix (``.tar``, ``.parquet``) to (the folder prefix the manifest writes
    before a file's name, ``""`` for a build and ``matches/`` for a match; the local folder): the
    one rule for both outputs, whose only difference is where their files lie.
    """
    listed: dict[str, set[str]] = {folder: set() for _, folder in places.values()}
    recorded: dict[str, tuple[int, str]] = {}
    for stem, shard in sorted(shards.items()):
        if not isinstance(shard, dict):
            raise UsageError(f"{manifest_path}: shard {stem} is not an object")
        expect = [f"{prefix}{stem}{suffix}" for suffix, (prefix, _) in places.items()]
        files = shard.get("files")
        if (
            not _STEM_RE.match(stem)
            or not isinstance(files, list)
            or sorted(map(str, files)) != sorted(expect)
        ):
            raise UsageError(f"{manifest_path}: shard {stem} lists {files}, not {expect}")
        if not is_count(shard.get("written")):
            raise UsageError(f"{manifest_path}: shard {stem}: 'written' is not a count")
        local = {
            name: os.path.join(folder, f"{stem}{suffix}")
            for name, (suffix, (_, folder)) in zip(expect, places.items(), strict=True)
        }
        missing = [name for name, path in local.items() if not os.path.isfile(path)]
        if missing:
            where = local[missing[0]]
            raise UsageError(
                f"{os.path.dirname(where)}: {os.path.basename(where)} is in the {stage}'s manifest but not on disk"
            )
        for name, (size, digest) in _recorded(manifest_path, stem, shard, expect).items():
            path = local[name]
            _check_size(path, os.path.getsize(path), size, stage)
            listed[os.path.dirname(path)].add(os.path.basename(path))
            recorded[os.path.basename(path)] = (size, digest)
        parquet = local[f"{places['.parquet'][0]}{stem}.parquet"]
        try:
            rows = pq.read_metadata(parquet).num_rows
        except (OSError, pa.ArrowException) as e:
            raise UsageError(f"{parquet} is not a readable Parquet file: {e}") from None
        if rows != shard.get("written"):
            raise UsageError(f"{parquet} has {rows} rows, the manifest says {shard.get('written')}")
    for suffix, (_, folder) in places.items():
        extra = sorted(n for n in os.listdir(folder) if n.endswith(suffix) and n not in listed[folder])
        if extra:
            raise UsageError(
                f"{folder}: {extra[0]} is on disk but not in the {stage}'s manifest (a stale shard?)"
            )
    return recorded


def expected_sizes(manifest: dict[str, Any]) -> dict[str, int]:
    """What ``sizes.json`` must hold for a build's manifest: each tar's sample count."""
    return {f"{stem}.tar": s["written"] for stem, s in manifest["shards"].items()}
