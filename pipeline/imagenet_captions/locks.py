"""One writer per output folder: an advisory lock that names its holder.

Two builds into one ``--out`` at once would rename each other's files and mix two runs' manifests;
two harvests into one store would ask Flickr twice for the same photos. The holder takes an
exclusive ``flock`` on ``<folder>/.lock`` (released by the kernel when the process dies, so a crash
leaves no stale lock) and writes who it is into the file, so the one refused can say who holds it.
Object stores have no such locks: there the caller must not run two writers (docs/scale-out.md).
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import socket
from collections.abc import Iterator
from datetime import datetime, timezone

from imagenet_captions import fsio
from imagenet_captions.errors import UsageError

LOCK_FILE = ".lock"


@contextlib.contextmanager
def folder_lock(folder: str, what: str) -> Iterator[None]:
    """Hold ``folder``'s lock for the block, or raise UsageError naming the holder (``what``: "build")."""
    if fsio.is_remote(folder):
        yield
        return
    os.makedirs(folder, exist_ok=True)
    fd = os.open(os.path.join(folder, LOCK_FILE), os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 512, 0).decode("utf-8", "replace").strip() or "another process"
            raise UsageError(f"another {what} is writing to {folder}: {holder}") from None
        started = datetime.now(timezone.utc).isoformat(timespec="seconds")
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{what} pid {os.getpid()} on {socket.gethostname()} since {started}\n".encode(), 0)
        yield
    finally:
        os.close(fd)
