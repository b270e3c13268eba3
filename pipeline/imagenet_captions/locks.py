"""One writer per output folder: an advisory lock that names its holder.

Two builds into one ``--out`` at once would rename each other's files and mix two runs' manifests;
two harvests into one store would ask Flickr twice for the same photos. The holder takes an
exclusive ``flock`` on ``<folder>/.lock`` (released by the kernel when the process dies, so a crash
leaves no stale lock) and writes who it is into the file, so the one refused can say who holds it.
Object stores have no such locks: there the caller must not run two writers (docs/scale-out.md).

It must never leave a trace of a command that was refused: an ``--out`` that cannot be a folder or
cannot be written is one line before anything is made, and a block that raises ``UsageError``
leaves no ``.lock`` and no folder the lock made. The ``.lock`` lives only while it is held (a
holder removes it as it ends), so one found by the next holder was left by a killed process: it is
stale, taken over, and a line naming a process no longer running here is never shown as a holder.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import logging
import os
import re
import socket
from collections.abc import Iterator
from datetime import datetime, timezone

from imagenet_captions import fsio
from imagenet_captions.errors import UsageError

LOCK_FILE = ".lock"
_HOLDER_RE = re.compile(r"^(?P<what>\S+) pid (?P<pid>\d+) on (?P<host>\S+) since (?P<since>\S+)")

log = logging.getLogger("imagenet_captions.locks")


@contextlib.contextmanager
def folder_lock(folder: str, what: str) -> Iterator[None]:
    """Hold ``folder``'s lock for the block, or raise UsageError naming the holder (``what``: "build").

    ``folder`` is made if missing. The ``.lock`` is removed when the block ends, so one that is
    there names a holder that is running or was killed; when the block raises UsageError (the
    command refused its input) the folders this call made are removed too, if nothing is in them.
    """
    if fsio.is_remote(folder):
        yield
        return
    made = missing_folders(folder)
    try:
        _make_folder(folder, what)
        fd = _lock(folder, what)
    except BaseException:
        remove_empty(made)
        raise
    refused = False
    try:
        started = datetime.now(timezone.utc).isoformat(timespec="seconds")
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{what} pid {os.getpid()} on {socket.gethostname()} since {started}\n".encode(), 0)
        yield
    except UsageError:
        refused = True
        raise
    finally:
        # Removed while still held: a process that opened the file before sees it gone (``_lock``).
        with contextlib.suppress(FileNotFoundError):
            os.remove(os.path.join(folder, LOCK_FILE))
        os.close(fd)
        if refused:
            remove_empty(made)


def missing_folders(path: str) -> list[str]:
    """``path`` and each of its ancestors that does not exist yet, deepest first: what making it makes."""
    made = []
    path = os.path.abspath(path)
    while not os.path.lexists(path):
        made.append(path)
        parent = os.path.dirname(path)
        if parent == path:
            break
        path = parent
    return made


def remove_empty(folders: list[str]) -> None:
    """Remove each of ``folders`` (deepest first) that is an empty folder; stop at the first that is not."""
    for folder in folders:
        try:
            os.rmdir(folder)
        except OSError:
            return


def _make_folder(folder: str, what: str) -> None:
    """``folder`` as a folder this process can write in, or one line saying why it cannot be one.

    Asked before anything is made: a file where the folder should be, or a folder the user cannot
    write, would otherwise fail later with a traceback, or after the command had made folders.
    ``os.access`` also says no for root in a read-only or immutable folder."""
    path = os.path.abspath(folder)
    existing = path
    while not os.path.lexists(existing):
        existing = os.path.dirname(existing)
    if not os.path.isdir(existing):
        if existing == path:
            raise UsageError(f"{folder} exists and is not a folder: the {what} writes into a folder")
        raise UsageError(f"{folder} cannot be made: {existing} is not a folder")
    if existing != path and not os.access(existing, os.W_OK | os.X_OK):
        raise UsageError(f"{folder} cannot be made: {existing} is not writable")
    try:
        os.makedirs(folder, exist_ok=True)
    except OSError as e:
        raise UsageError(f"{folder} cannot be made: {e.strerror}") from None
    if not os.access(folder, os.W_OK | os.X_OK):
        raise UsageError(f"{folder} is not writable: the {what} writes into it")


def _lock(folder: str, what: str) -> int:
    """An open, exclusively flock'd descriptor of ``folder``'s lock file, or UsageError naming the holder.

    A holder that is refused removes the file while holding it (see ``folder_lock``), so a lock
    taken on a file no longer at that path is let go and taken again on the new one."""
    path = os.path.join(folder, LOCK_FILE)
    while True:
        try:
            # Never through a link: the holder line would be written into whatever it points at.
            fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o644)
        except OSError as e:
            if e.errno == errno.ELOOP:
                raise UsageError(f"{path} is a symbolic link: remove it (a lock is never one)") from None
            raise UsageError(f"{folder} is not writable ({e.strerror}): the {what} writes into it") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 512, 0).decode("utf-8", "replace").strip()
            os.close(fd)
            raise UsageError(f"another {what} is writing to {folder}: {describe_holder(holder)}") from None
        except BaseException:
            os.close(fd)
            raise
        try:
            same = os.stat(path).st_ino == os.fstat(fd).st_ino
        except FileNotFoundError:
            same = False
        if same:
            _note_stale(fd, folder)
            return fd
        os.close(fd)


def describe_holder(line: str) -> str:
    """Who holds a lock, from the line its holder wrote, for a refused process to print.

    The lock is held (flock said so), so a line that names a process no longer running here was
    written by a process that died while something it started (a worker, a child that inherited the
    descriptor) still holds it: that pid is not the holder, and naming it would send the user after
    a process that is gone."""
    if not line:
        return "another process"
    m = _HOLDER_RE.match(line)
    if m and m["host"] == socket.gethostname() and not pid_alive(int(m["pid"])):
        return (
            f"the {m['what']} that took the lock at {m['since']} is no longer running, but a process it "
            "started still holds it (end that process, or wait for it)"
        )
    return line


def pid_alive(pid: int) -> bool:
    """Whether a process ``pid`` runs on this host (one of another user's counts as running)."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    except OSError as e:
        return e.errno != errno.ESRCH
    return True


def _note_stale(fd: int, folder: str) -> None:
    """Say that a lock file left by a process killed while holding it is taken over.

    A holder removes the file when it ends, so a line found by the next holder was written by one
    that did not end normally; flock guarantees it holds nothing now."""
    line = os.pread(fd, 512, 0).decode("utf-8", "replace").strip()
    if line:
        log.info("%s: taking over a stale lock (its holder ended without releasing it: %s)", folder, line)
