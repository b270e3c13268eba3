"""A release's ``manifest.json``: its names, its rules, its writer and its reader.

On the ground floor because every stage that meets a release reads it: ``release`` writes it,
``download`` and ``validate --against`` check against it, and a ``text-release:`` source rebuilds
from it. The shared file and folder names come from :mod:`imagenet_captions.layout`.

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
from imagenet_captions.fsio import atomic_write, sha256_file
from imagenet_captions.layout import MANIFEST_FILE, SHARD_DIR

FORMAT = "imagenet-captions-release"
FORMAT_VERSION = 1
CARD_FILE = "README.md"
CROISSANT_FILE = "croissant.json"
#: Present while a release is being written, removed once the manifest is in place: a folder holding
#: it is an interrupted release of that name, which the next run may overwrite.
INCOMPLETE_MARKER = ".release-incomplete"
#: What ``imagenet-captions download`` writes in its ``--out`` beside the release: its record of verified
#: files, each unfinished file's bytes and sidecar, and its lock. A release may not publish these names.
DOWNLOAD_STATE_FILE = ".download-state.json"
PART_SUFFIX = ".part"
SIDECAR_SUFFIX = ".part.json"
#: ``locks.LOCK_FILE``, spelt out: this module is read by floors below ``locks`` (a test keeps them equal)
DOWNLOAD_LOCK_FILE = ".lock"
RESERVED_NAMES = (MANIFEST_FILE, DOWNLOAD_STATE_FILE, DOWNLOAD_LOCK_FILE)
#: The deepest nesting of arrays and objects a reader accepts. A manifest needs 4; Python's json
#: parser recurses once per level and fails with a RecursionError on a few thousand, which a
#: hostile or broken file can hold in a few kilobytes.
MAX_NESTING = 64
#: a JSON string (escapes included): what :func:`nests_deeper_than` skips
_JSON_STRING = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"', re.DOTALL)
_NOT_BRACKETS = bytes(b for b in range(256) if b not in b"[]{}")
_OPENERS = frozenset(b"[{")

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
    with atomic_write(path) as f:
        f.write(data)


def write_manifest(release_dir: str, manifest: dict[str, Any]) -> None:
    problems = check_manifest(manifest)
    if problems:  # a writer bug, not a user mistake: never publish a manifest the reader would refuse
        raise ValueError(f"refusing to write an invalid manifest: {problems[0]}")
    write_atomic(os.path.join(release_dir, MANIFEST_FILE), manifest_bytes(manifest))


def nests_deeper_than(data: bytes, limit: int) -> bool:
    """Whether arrays and objects nest more than ``limit`` deep in a JSON text (brackets inside
    strings not counted). Counted on the bytes, without recursion, so it can run before the parser."""
    depth = 0
    for c in _JSON_STRING.sub(b"", data).translate(None, _NOT_BRACKETS):
        if c in _OPENERS:
            depth += 1
            if depth > limit:
                return True
        else:
            depth -= 1
    return False


def parse_json_object(data: bytes, name: str) -> dict[str, Any]:
    """The JSON object in ``data``, or a UsageError of one line naming ``name``.

    Every reader of a manifest (or any JSON file a command was pointed at) comes through here, so that
    none of them meets a list where it expects an object (an AttributeError halfway) or a nesting
    that exhausts the stack (a RecursionError)."""
    if nests_deeper_than(data, MAX_NESTING):
        raise UsageError(f"{name} is nested more than {MAX_NESTING} levels deep: not a file this tool writes")
    try:
        value = json.loads(data)
    except RecursionError:  # the check above should make this unreachable; a traceback must not be
        raise UsageError(f"{name} is nested too deeply to read") from None
    except ValueError as e:  # bad UTF-8 included
        raise UsageError(f"{name} is not valid JSON: {e}") from None
    if not isinstance(value, dict):
        raise UsageError(f"{name} is not a JSON object")
    return value


def read_json_object(path: str, what: str) -> dict[str, Any]:
    """The JSON object in the file ``path``, or a UsageError of one line (``what`` says what a missing
    file means, e.g. "not a complete release")."""
    try:
        with open(path, "rb") as f:
            data = f.read()
    except FileNotFoundError:
        raise UsageError(f"{path} does not exist: {what}") from None
    except OSError as e:
        raise UsageError(f"cannot read {path}: {e.strerror}") from None
    return parse_json_object(data, path)


def read_manifest(release_dir_or_file: str) -> dict[str, Any]:
    """The manifest of a release folder (or the file itself); UsageError when it is not one we can read.

    A newer ``format_version`` is refused rather than half understood: the downloader would
    otherwise verify some files and silently skip what it does not know.
    """
    path = release_dir_or_file
    if os.path.isdir(path):
        path = os.path.join(path, MANIFEST_FILE)
    manifest = read_json_object(path, "not a complete release")
    problems = check_manifest(manifest)
    if problems:
        raise UsageError(f"{path} is not a release manifest: {problems[0]}")
    return manifest


def check_manifest(manifest: Any) -> list[str]:
    """What is wrong with a manifest (empty when nothing): the reader's contract, in one place.

    The downloader runs it on bytes from the network before writing anything, so it must not raise
    on any JSON value; the paths' problems come first, as they are the ones that could do harm.
    """
    if not isinstance(manifest, dict):
        return ["not a JSON object"]
    if manifest.get("format") != FORMAT:
        return [f"format is {manifest.get('format')!r}, expected {FORMAT!r}"]
    if manifest.get("format_version") != FORMAT_VERSION:
        return [f"format_version {manifest.get('format_version')!r} is not {FORMAT_VERSION} (a newer tool?)"]
    files = manifest.get("files")
    if not isinstance(files, list):
        return ["'files' is not a list"]
    problems = file_problems(files)
    problems += [f"missing {k!r}" for k in _TOP_KEYS if k not in manifest]
    if problems:
        return problems
    if not isinstance(manifest["version"], str) or not VERSION_RE.match(manifest["version"]):
        problems.append(f"version {manifest['version']!r} is not X.Y.Z")
    paths = [f["path"] for f in files]
    if paths != sorted(paths):
        problems.append("files must be objects with unique paths, sorted by path")
    listed = set(paths)
    shards = manifest["shards"]
    if not isinstance(shards, dict) or not all(isinstance(s, dict) for s in shards.values()):
        return [*problems, "'shards' is not an object of objects"]
    for stem, shard in shards.items():
        parquet = shard.get("parquet")
        where = parquet.get("path") if isinstance(parquet, dict) else None
        if where not in listed:
            problems.append(f"shard {stem}: its Parquet file {where!r} is not in files")
        tar = shard.get("tar")
        if isinstance(tar, dict) and tar.get("published") and f"{SHARD_DIR}/{tar.get('name')}" not in listed:
            problems.append(f"shard {stem}: its tar is marked published but is not in files")
    return problems


def file_problems(files: list[Any]) -> list[str]:
    """What is wrong with a ``files`` list: entries, paths (see :func:`path_problem`), sizes, digests.

    Two paths that differ only in case, or a path that is also another's folder, cannot both exist
    on every disk a user downloads to: one would overwrite, or block, the other.
    """
    problems: list[str] = []
    seen: dict[str, str] = {}
    for i, entry in enumerate(files):
        if not isinstance(entry, dict):
            problems.append(f"entry {i} is not an object")
            continue
        path, size, sha = entry.get("path"), entry.get("size"), entry.get("sha256")
        bad = path_problem(path)
        if bad or not isinstance(path, str):  # (path_problem refuses every non-string)
            problems.append(f"file path {path!r} is not a relative POSIX path inside the release: it {bad}")
            continue
        folded = path.casefold()
        if folded in seen:
            problems.append(f"file path {path!r} repeats {seen[folded]!r}")
            continue
        seen[folded] = path
        if isinstance(size, bool) or not isinstance(size, int) or size < 0:
            problems.append(f"{path}: size {size!r} is not a byte count")
        if not isinstance(sha, str) or not SHA256_RE.match(sha):
            problems.append(f"{path}: sha256 {sha!r} is not 64 lowercase hex digits")
    for path in seen.values():
        parts = path.split("/")
        for n in range(len(parts) - 1, 0, -1):
            folder = "/".join(parts[:n]).casefold()
            if folder in seen:
                problems.append(f"file path {seen[folder]!r} is also a folder of {path!r}")
                break
    return problems


def path_problem(path: Any) -> str | None:
    """Why a manifest path cannot be joined to a local folder (a phrase after "it"), or None.

    Besides :func:`is_safe_relative`, a path must not name what the downloader writes itself.
    """
    if not isinstance(path, str) or not path:
        return "is empty or not a string"
    if "\\" in path or any(ord(c) < 32 for c in path):
        return "contains a backslash or a control character"
    if path.startswith("/") or re.match(r"^[A-Za-z]:", path):
        return "is absolute"
    parts = path.split("/")
    if ".." in parts:
        return "contains '..'"
    if any(p in ("", ".") for p in parts):
        return "has an empty or '.' component"
    if path.casefold() in RESERVED_NAMES:
        return f"names {path}, which the downloader writes itself"
    if path.casefold().endswith((PART_SUFFIX, SIDECAR_SUFFIX)):
        return f"ends in {PART_SUFFIX} or {SIDECAR_SUFFIX} (the downloader's unfinished files)"
    return None


def is_safe_relative(path: str) -> bool:
    """Whether a release may publish ``path``: a downloader joins it to its folder (:func:`path_problem`)."""
    return path_problem(path) is None


def verify_files(release_dir: str, entries: Iterable[dict[str, Any]]) -> list[str]:
    """Problems (missing, wrong size, wrong sha256) of files on disk against their manifest entries."""
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
