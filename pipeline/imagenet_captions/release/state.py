"""What a download leaves on disk between runs: unfinished files with their sidecars, and verified files.

- A file being fetched is ``<name>.part``; beside it ``<name>.part.json`` (the sidecar) names the
  manifest entry the bytes belong to and the server's validator (ETag or Last-Modified). A later run
  resumes a partial only when its sidecar names the same entry, so the bytes of a republished file
  are never completed with another version's.
- ``<out>/.download-state.json`` records each verified file's size, mtime and digest, so a second
  run trusts a file whose record still matches without re-hashing it.

This module decides nothing about the network; it must never leave a ``.part`` whose sidecar could
name another file, and it writes every small file whole (``fsio.atomic_write``).
"""

from __future__ import annotations

import contextlib
import json
import os
import stat
import time
from typing import Any

from imagenet_captions import __version__
from imagenet_captions.fsio import write_json_atomic
from imagenet_captions.manifest import DOWNLOAD_STATE_FILE, PART_SUFFIX, SIDECAR_SUFFIX

#: how often, at most, the verified-state record is rewritten during a run (and always at its end)
STATE_SAVE_EVERY_S = 2.0


def remove(*paths: str) -> None:
    for p in paths:
        with contextlib.suppress(FileNotFoundError):
            os.remove(p)


def _read_json(path: str) -> Any:
    """The JSON in a regular file at ``path``, or None: never through a symlink (which the downloader
    never makes), never blocking on a FIFO, and never a RecursionError."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except OSError:
        return None
    try:
        with os.fdopen(fd, "rb") as f:
            if not stat.S_ISREG(os.fstat(f.fileno()).st_mode):
                return None
            return json.loads(f.read())
    except (OSError, ValueError, RecursionError):
        return None


class Partial:
    """``<final>.part`` and its sidecar: the unfinished bytes of one file, and whose they are."""

    def __init__(self, final: str, identity: dict[str, Any]) -> None:
        self.final = final
        self.part = final + PART_SUFFIX
        self.side = final + SIDECAR_SUFFIX
        self.identity = identity
        #: the validator the bytes held were served under ("" when none is known)
        self.validator = ""

    def open(self) -> int:
        """Bytes held that belong to this file (0 when none); a partial of anything else is deleted.

        A partial without a sidecar is not ours either: nothing says which file it is a prefix of.
        """
        side = _read_json(self.side)
        if not isinstance(side, dict) or side.get("file") != self.identity:
            remove(self.part, self.side)
            return 0
        self.validator = side.get("validator") or ""
        return self.held()

    def held(self) -> int:
        try:
            return os.lstat(self.part).st_size
        except FileNotFoundError:
            return 0

    def claim(self, validator: str) -> None:
        """Record whose bytes the partial will hold, before the first of them is written.

        Called from a worker thread: the sidecar is fsync'd, which can take milliseconds."""
        if self.validator == validator and os.path.exists(self.side):
            return
        self.validator = validator
        write_json_atomic(self.side, {"file": self.identity, "validator": validator})

    def restart(self) -> None:
        """The bytes held are useless (another version, a 416, a mismatch): start from byte 0."""
        remove(self.part, self.side)
        self.validator = ""

    def commit(self) -> None:
        """The verified bytes go under their final name (atomically); the sidecar goes."""
        os.replace(self.part, self.final)
        remove(self.side)


class VerifiedState:
    """Verified files (size, mtime_ns, digest): a second run trusts these without re-hashing."""

    def __init__(self, out: str) -> None:
        self.path = os.path.join(out, DOWNLOAD_STATE_FILE)
        data = _read_json(self.path)
        self.files: dict[str, dict[str, Any]] = (
            data["files"] if isinstance(data, dict) and isinstance(data.get("files"), dict) else {}
        )
        self._saved = time.monotonic()
        #: why the record could not be written, if it could not (a full disk): the caller says so
        self.unsaved: OSError | None = None

    @staticmethod
    def _record(digest: str, st: os.stat_result) -> dict[str, Any]:
        return {"size": st.st_size, "mtime_ns": st.st_mtime_ns, "digest": digest}

    def matches(self, path: str, digest: str, st: os.stat_result) -> bool:
        """Whether ``path`` was verified as ``digest`` ("algo:hex") and is unchanged since (size, mtime)."""
        return self.files.get(path) == self._record(digest, st)

    def add(self, path: str, digest: str, st: os.stat_result) -> None:
        self.files[path] = self._record(digest, st)
        if time.monotonic() - self._saved > STATE_SAVE_EVERY_S:
            self.save()

    def forget(self, path: str) -> None:
        self.files.pop(path, None)

    def save(self) -> None:
        """Write the record; a failure is kept in ``unsaved`` rather than raised, since the files
        themselves are verified and a run without the record only costs the next run a re-hash."""
        self._saved = time.monotonic()
        try:
            write_json_atomic(self.path, {"tool": f"imagenet-captions {__version__}", "files": self.files})
        except OSError as e:
            self.unsaved = e
        else:
            self.unsaved = None
