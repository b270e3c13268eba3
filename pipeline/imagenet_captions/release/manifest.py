"""A release's ``manifest.json``: its names, its writer and its reader (the downloader reads it too).

The manifest is the release's table of contents and its proof: every published file's POSIX
relative path, size and sha256, the build it came from (shard count, options, counts), and for every
image shard the tar's sha256, size and sample count even when the tars are not published, so a user
who rebuilds from their own ImageNet copy can prove the result equal to the publisher's. It is
written last: its presence means the release is complete. It must never carry a wall-clock time or
anything else that would make two releases of the same build differ.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterable
from typing import Any

from imagenet_captions.errors import UsageError

MANIFEST_FILE = "manifest.json"
FORMAT = "imagenet-captions-release"
FORMAT_VERSION = 1
CARD_FILE = "README.md"
CROISSANT_FILE = "croissant.json"
CAPTIONS_DIR = "captions"
SHARDS_DIR = "shards"
SIZES_FILE = "sizes.json"
#: Present while a release is being written, removed once the manifest is in place: a folder holding
#: it is an interrupted release of that name, which the next run may overwrite.
INCOMPLETE_MARKER = ".release-incomplete"

VERSION_RE = re.compile(r"^(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)$")
SHA256_RE = re.compile(r"^[0-9a-f]{64}$")
_TOP_KEYS = (
    "format",
    "format_version",
    "name",
    "version",
    "tool_version",
    "with_images",
    "files",
    "build",
    "shards",
)


def file_entry(path: str, size: int, sha256: str) -> dict[str, Any]:
    return {"path": path, "size": size, "sha256": sha256}


def manifest_bytes(manifest: dict[str, Any]) -> bytes:
    """Canonical bytes (sorted keys, one layout), so the same release always has the same manifest."""
    return (json.dumps(manifest, indent=1, sort_keys=True, ensure_ascii=False) + "\n").encode()


def write_atomic(path: str, data: bytes) -> None:
    """Write whole or not at all: a reader (or a crashed run's successor) never sees half a file."""
    tmp = f"{path}.tmp"
    with open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def write_manifest(release_dir: str, manifest: dict[str, Any]) -> None:
    problems = check_manifest(manifest)
    if problems:  # a writer bug, not a user mistake: never publish a manifest the reader would refuse
        raise ValueError(f"refusing to write an invalid manifest: {problems[0]}")
    write_atomic(os.path.join(release_dir, MANIFEST_FILE), manifest_bytes(manifest))


def read_manifest(release_dir_or_file: str) -> dict[str, Any]:
    """The manifest of a release folder (or the file itself); UsageError when it is not one we can read.

    A newer ``format_version`` is refused rather than half understood: the downloader would
    otherwise verify some files and silently skip what it does not know.
    """
    path = release_dir_or_file
    if os.path.isdir(path):
        path = os.path.join(path, MANIFEST_FILE)
    try:
        with open(path, encoding="utf-8") as f:
            manifest = json.load(f)
    except FileNotFoundError:
        raise UsageError(f"{path} does not exist: not a complete release") from None
    except ValueError as e:
        raise UsageError(f"{path} is not JSON: {e}") from None
    problems = check_manifest(manifest)
    if problems:
        raise UsageError(f"{path} is not a release manifest: {problems[0]}")
    return manifest


def check_manifest(manifest: Any) -> list[str]:
    """What is wrong with a manifest's shape (empty when nothing): the reader's contract, in one place."""
    if not isinstance(manifest, dict):
        return ["not a JSON object"]
    if manifest.get("format") != FORMAT:
        return [f"format is {manifest.get('format')!r}, expected {FORMAT!r}"]
    if manifest.get("format_version") != FORMAT_VERSION:
        return [f"format_version {manifest.get('format_version')!r} is not {FORMAT_VERSION} (a newer tool?)"]
    problems = [f"missing {k!r}" for k in _TOP_KEYS if k not in manifest]
    if problems:
        return problems
    if not isinstance(manifest["version"], str) or not VERSION_RE.match(manifest["version"]):
        problems.append(f"version {manifest['version']!r} is not X.Y.Z")
    files = manifest["files"]
    paths = [f.get("path") for f in files if isinstance(f, dict)]
    if len(paths) != len(files) or paths != sorted(paths) or len(set(paths)) != len(paths):
        problems.append("files must be objects with unique paths, sorted by path")
    for f in files:
        if not isinstance(f, dict):
            continue
        p = f.get("path")
        if not isinstance(p, str) or not is_safe_relative(p) or p == MANIFEST_FILE:
            problems.append(f"file path {p!r} is not a relative POSIX path inside the release")
        if not isinstance(f.get("size"), int) or f["size"] < 0:
            problems.append(f"{p}: size {f.get('size')!r} is not a byte count")
        if not isinstance(f.get("sha256"), str) or not SHA256_RE.match(f["sha256"]):
            problems.append(f"{p}: sha256 {f.get('sha256')!r} is not 64 hex digits")
    listed = set(paths)
    for stem, shard in manifest["shards"].items():
        parquet = shard.get("parquet") or {}
        if parquet.get("path") not in listed:
            problems.append(f"shard {stem}: its Parquet file {parquet.get('path')!r} is not in files")
        tar = shard.get("tar")
        if tar is not None and tar.get("published") and f"{SHARDS_DIR}/{tar.get('name')}" not in listed:
            problems.append(f"shard {stem}: its tar is marked published but is not in files")
    return problems


def is_safe_relative(path: str) -> bool:
    """A downloader joins these to a local folder: no absolute paths, no ``..``, no backslashes."""
    parts = path.split("/")
    return (
        bool(path)
        and not path.startswith("/")
        and "\\" not in path
        and all(p not in ("", ".", "..") for p in parts)
    )


def verify_files(release_dir: str, entries: Iterable[dict[str, Any]]) -> list[str]:
    """Problems (missing, wrong size, wrong sha256) of files on disk against their manifest entries."""
    from imagenet_captions.fsio import sha256_file

    problems = []
    for e in entries:
        path = os.path.join(release_dir, *e["path"].split("/"))
        if not os.path.isfile(path):
            problems.append(f"{e['path']}: missing")
            continue
        if os.path.getsize(path) != e["size"]:
            problems.append(f"{e['path']}: {os.path.getsize(path)} bytes, the manifest says {e['size']}")
            continue
        digest, _ = sha256_file(path)
        if digest != e["sha256"]:
            problems.append(f"{e['path']}: sha256 differs from the manifest")
    return problems
