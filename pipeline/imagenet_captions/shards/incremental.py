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
import os
from typing import Any

from imagenet_captions import fsio
from imagenet_captions.shards.layout import MANIFEST_FILE, shard_stem

COMMITS_DIR = ".commits"


def recorded_shards(shard_dir: str) -> tuple[int | None, dict[str, dict[str, Any]]]:
    """``(num_shards of the last manifest or None, stem -> recorded entry)``: the manifest's entries,
    overridden by the newer commit records of a build that did not finish."""
    path = fsio.join(shard_dir, MANIFEST_FILE)
    num_shards, entries = None, {}
    if fsio.exists(path):
        manifest = json.loads(fsio.read_bytes(path))
        num_shards, entries = manifest["num_shards"], dict(manifest["shards"])
    commits = fsio.join(shard_dir, COMMITS_DIR)
    for name in fsio.listdir(commits):
        if name.endswith(".json"):
            record = json.loads(fsio.read_bytes(fsio.join(commits, name)))
            entries[name[: -len(".json")]] = record
            num_shards = record.get("num_shards", num_shards)
    return num_shards, entries


def is_current(entry: dict[str, Any] | None, digest: str, shard_dir: str) -> bool:
    """True when a recorded shard has this input digest and all its files, of the recorded sizes (a
    file cut short by a power loss is not kept): the shard is kept as it is."""
    if not entry or entry["digest"] != digest:
        return False
    sizes = entry.get("sizes", {})
    for name in entry["files"]:
        size = fsio.size(fsio.join(shard_dir, name))
        if size is None or (name in sizes and sizes[name] != size):
            return False
    return True


def record_commit(shard_dir: str, entry: dict[str, Any], num_shards: int) -> None:
    """Note a shard as committed (its files are in place), for a rerun after a crash."""
    folder = fsio.join(shard_dir, COMMITS_DIR)
    fsio.makedirs(folder)
    fsio.write_json_atomic(fsio.join(folder, f"{shard_stem(entry['index'])}.json"), {**entry, "num_shards": num_shards})


def clear_commits(shard_dir: str) -> None:
    """The manifest now holds every shard: the commit records are no longer needed."""
    folder = fsio.join(shard_dir, COMMITS_DIR)
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
                fsio.remove(fsio.join(folder, name))
                removed.append(name)
    return removed
