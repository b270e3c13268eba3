"""Which shards a build must write, and the record of each shard as it commits.

A shard is kept when its input digest (records, image identities, options, the tool's version)
equals the one recorded for it and its files are on disk. What was recorded comes from two places:
``manifest.json`` (written once at the end of a build) and one small commit record per shard,
``.commits/NNNNN.json``, written right after the shard's files are renamed into place. A build killed
halfway has no new manifest but has the commit records of every shard it finished, so the rerun
writes only what is missing or changed; the final manifest absorbs the records and they are removed.
Leftover temporary files of a killed run are removed before anything is written (the output
folder's lock guarantees no other build is writing them).
"""

from __future__ import annotations

import json
import logging
import os
from typing import Any

from imagenet_captions import fsio
from imagenet_captions.errors import UsageError
from imagenet_captions.layout import MANIFEST_FILE, shard_stem
from imagenet_captions.manifest import MAX_NESTING, nests_deeper_than
from imagenet_captions.shards.outputs import naming_output

COMMITS_DIR = ".commits"

log = logging.getLogger("imagenet_captions.build")


def recorded_shards(shard_dir: str) -> tuple[int | None, dict[str, dict[str, Any]]]:
    """``(num_shards of the last manifest or None, stem -> recorded entry)``: the manifest's entries,
    overridden by the newer commit records of a build that did not finish.

    A manifest that is not one (cut short, edited by hand) is a UsageError naming it: what was built
    cannot be known, so the user decides (remove it and every shard is written again, or use a new
    ``--out``). A commit record that is not one is a crash while it was written: the shard it
    would have recorded is written again (neither it nor the manifest's older entry is trusted)."""
    path = fsio.join(shard_dir, MANIFEST_FILE)
    num_shards: int | None = None
    entries: dict[str, dict[str, Any]] = {}
    if fsio.exists(path):
        num_shards, entries = _read_manifest(path)
    commits = fsio.join(shard_dir, COMMITS_DIR)
    for name in fsio.listdir(commits):
        if name.endswith(".json"):
            stem = name[: -len(".json")]
            record = _read_json(fsio.join(commits, name))
            if _is_entry(record) and isinstance(record.get("num_shards", 0), int):
                entries[stem] = record
                num_shards = record.get("num_shards", num_shards)
            else:
                log.warning(
                    "%s is not a commit record (a crash while it was written): shard %s is written again",
                    name,
                    stem,
                )
                entries.pop(stem, None)
    return num_shards, entries


def _read_json(path: str) -> Any:
    """The JSON in a file, or None when it is not JSON (cut short, not UTF-8, empty)."""
    data = fsio.read_bytes(path)
    if nests_deeper_than(data, MAX_NESTING):  # the parser would recurse to a RecursionError
        return None
    try:
        return json.loads(data)
    except ValueError:
        return None


def _is_entry(entry: Any) -> bool:
    """Whether ``entry`` has the shape of a shard's recorded entry (what :func:`is_current` and a
    kept shard's ``ShardResult.from_json`` read)."""
    return (
        isinstance(entry, dict)
        and isinstance(entry.get("index"), int)
        and isinstance(entry.get("written"), int)
        and isinstance(entry.get("dropped"), list)
        and isinstance(entry.get("digest"), str)
        and isinstance(entry.get("files"), list)
        and all(isinstance(f, str) for f in entry["files"])
        and isinstance(entry.get("sizes", {}), dict)
        and isinstance(entry.get("sha256", {}), dict)
    )


def _read_manifest(path: str) -> tuple[int, dict[str, dict[str, Any]]]:
    manifest = _read_json(path)
    shards = manifest.get("shards") if isinstance(manifest, dict) else None
    num_shards = manifest.get("num_shards") if isinstance(manifest, dict) else None
    if (
        not isinstance(shards, dict)
        or not isinstance(num_shards, int)
        or isinstance(num_shards, bool)
        or num_shards < 1
        or not all(_is_entry(e) for e in shards.values())
    ):
        raise UsageError(
            f"{path} is not a build manifest (damaged or cut short): remove it to write every shard "
            "again, or build into a new --out"
        )
    return num_shards, dict(shards)


def is_current(entry: dict[str, Any] | None, digest: str, shard_dir: str) -> bool:
    """True when a recorded shard has this input digest and all its files, of the recorded sizes (a
    file cut short by a power loss is not kept), and the sha256 of each was recorded: the shard is
    kept as it is. An older build's entry has no sha256: its shard is written again rather than its
    files hashed, which would record as right whatever bytes are on disk."""
    if not entry or entry["digest"] != digest:
        return False
    sizes, sha256 = entry.get("sizes", {}), entry.get("sha256", {})
    for name in entry["files"]:
        size = fsio.size(fsio.join(shard_dir, name))
        if size is None or sizes.get(name) != size or name not in sha256:
            return False
    return True


def record_commit(shard_dir: str, entry: dict[str, Any], num_shards: int) -> None:
    """Note a shard as committed (its files are in place), for a rerun after a crash."""
    folder = fsio.join(shard_dir, COMMITS_DIR)
    path = fsio.join(folder, f"{shard_stem(entry['index'])}.json")
    with naming_output(path):
        fsio.makedirs(folder)
        fsio.write_json_atomic(path, {**entry, "num_shards": num_shards})


def clear_commits(shard_dir: str) -> None:
    """The manifest now holds every shard: the commit records are no longer needed."""
    folder = fsio.join(shard_dir, COMMITS_DIR)
    with naming_output(folder):
        for name in fsio.listdir(folder):
            fsio.remove(fsio.join(folder, name))
        if not fsio.is_remote(folder) and os.path.isdir(folder):
            os.rmdir(folder)


def remove_leftovers(shard_dir: str) -> list[str]:
    """Delete temporary files a killed build left behind; returns their names."""
    removed = []
    for folder in (shard_dir, fsio.join(shard_dir, COMMITS_DIR)):
        for name in fsio.listdir(folder):
            if fsio.is_temp(name):
                with naming_output(fsio.join(folder, name)):
                    fsio.remove(fsio.join(folder, name))
                removed.append(name)
    return removed
