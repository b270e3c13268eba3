"""The release folder's safety: which ``--out`` a release may write into, and what it may remove.

A release overwrites only an empty folder or an earlier release of the same name, refuses any
file a release does not have (that folder is someone's, not ours), marks itself incomplete until
its manifest is written, and removes only the earlier release's own files that it no longer has.
"""

from __future__ import annotations

import os
import re

from imagenet_captions import fsio, layout
from imagenet_captions import manifest as mf
from imagenet_captions.errors import UsageError
from imagenet_captions.match.plan import MATCHES_DIR

#: What a release writes in each of its sub-folders.
_ALLOWED = {
    layout.CAPTIONS_DIR: re.compile(r"^\d{5}\.parquet$"),
    MATCHES_DIR: re.compile(r"^\d{5}\.parquet$"),  # a match output's release
    layout.SHARD_DIR: re.compile(rf"^(\d{{5}}\.tar|{re.escape(layout.SIZES_FILE)})$"),
}
_TOP_FILES = (layout.MANIFEST_FILE, mf.CARD_FILE, mf.CROISSANT_FILE, mf.INCOMPLETE_MARKER)
#: The temporary name of an unfinished write (``fsio.temp_path``: ``<name>.<pid>-<hex>.tmp``).
_TEMP_RE = re.compile(r"(\.\d+-[0-9a-f]+)?\.tmp$")


def _finished_name(name: str) -> str:
    """The file an unfinished write (a release killed mid-copy left it) was going to be."""
    return _TEMP_RE.sub("", name)


def prepare_out(out: str, name: str) -> None:
    """Make ``--out`` ready, or refuse it: only an empty folder or an earlier release of ``name``.

    An earlier release (its manifest, or the marker of an interrupted run, names the same release)
    is overwritten; its manifest is removed first, so a run that dies half way never leaves a folder
    that claims to be complete. Anything in it that is not part of a release's layout is refused
    rather than deleted: that folder is someone's, not ours.
    """
    if os.path.exists(out) and not os.path.isdir(out):
        raise UsageError(f"--out {out} exists and is not a folder")
    names = sorted(os.listdir(out)) if os.path.isdir(out) else []
    if names:
        previous = _previous_release_name(out)
        if previous is None:
            raise UsageError(f"--out {out} is not empty and not a release: choose an empty or new folder")
        if previous != name:
            raise UsageError(f"--out {out} holds the release {previous!r}, not {name!r}")
        strangers = _not_release_files(out)
        if strangers:
            raise UsageError(
                f"--out {out} holds files a release does not have ({strangers[0]}); move them first"
            )
    try:
        os.makedirs(out, exist_ok=True)
    except OSError as e:
        raise UsageError(f"--out {out} cannot be made: {e.strerror}") from None
    if not os.access(out, os.W_OK | os.X_OK):
        raise UsageError(f"--out {out} is not writable")
    mf.write_atomic(os.path.join(out, mf.INCOMPLETE_MARKER), name.encode() + b"\n")
    manifest_path = os.path.join(out, layout.MANIFEST_FILE)
    if os.path.exists(manifest_path):
        os.remove(manifest_path)


def _previous_release_name(out: str) -> str | None:
    marker = os.path.join(out, mf.INCOMPLETE_MARKER)
    if os.path.isfile(marker):
        with open(marker, encoding="utf-8") as f:
            return f.read().strip()
    if os.path.isfile(os.path.join(out, layout.MANIFEST_FILE)):
        try:
            return mf.read_manifest(out)["name"]
        except UsageError:
            return None
    return None


def _not_release_files(out: str) -> list[str]:
    allowed_top = {*_TOP_FILES, *_ALLOWED}
    strangers = []
    for name in sorted(os.listdir(out)):
        base = _finished_name(name)
        path = os.path.join(out, name)
        if base not in allowed_top or (base in _ALLOWED) != os.path.isdir(path):
            strangers.append(name)
        elif base in _ALLOWED and name == base:
            strangers += [
                f"{name}/{n}" for n in sorted(os.listdir(path)) if not _ALLOWED[base].match(_finished_name(n))
            ]
    return strangers


def remove_stale(out: str, keep: set[str]) -> list[str]:
    """Remove an earlier release's files that this one does not have (fewer shards, no tars now), and
    what a killed run left half-written."""
    removed = [n for n in sorted(os.listdir(out)) if fsio.is_temp(n) and _finished_name(n) in _TOP_FILES]
    for name in removed:
        os.remove(os.path.join(out, name))
    for sub in _ALLOWED:
        folder = os.path.join(out, sub)
        if not os.path.isdir(folder):
            continue
        for name in sorted(os.listdir(folder)):
            rel = f"{sub}/{name}"
            if rel not in keep:
                os.remove(os.path.join(folder, name))
                removed.append(rel)
        if not os.listdir(folder):
            os.rmdir(folder)
    return removed


def discard(out: str) -> None:
    """Remove what a refused release wrote into ``out`` (a folder that was new or empty before it).

    Only names a release writes are removed (its top files and ``captions/`` and ``shards/`` files,
    finished or not), so a file someone put there meanwhile stays, and so does the folder."""
    if not os.path.isdir(out):
        return
    for sub, pattern in _ALLOWED.items():
        folder = os.path.join(out, sub)
        if os.path.isdir(folder):
            for name in os.listdir(folder):
                if pattern.match(_finished_name(name)):
                    os.remove(os.path.join(folder, name))
            if not os.listdir(folder):
                os.rmdir(folder)
    for name in os.listdir(out):
        if _finished_name(name) in _TOP_FILES and os.path.isfile(os.path.join(out, name)):
            os.remove(os.path.join(out, name))
