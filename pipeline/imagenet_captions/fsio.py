"""File access for local paths and object stores (gs://, s3://) behind one small set of functions.

Local paths use ``os`` directly (the fast path the benchmarks measure); any path with a scheme goes
through Beam's FileSystems, so the same build writes to a local disk, Cloud Storage or S3 (with the
``gcp`` or ``aws`` extras of apache-beam installed). Every output file is written by
:func:`atomic_write` (or its JSON and Parquet forms): under a temporary name unique to the process
and the call, then renamed, so a reader never sees a partial output and two runs never collide.
This module must not grow a second way to write a file.
"""

from __future__ import annotations

import json
import os
import posixpath
import secrets
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from typing import IO, TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pyarrow as pa

#: How every unfinished write's name ends (see :func:`temp_path`).
TEMP_SUFFIX = ".tmp"


def is_remote(path: str) -> bool:
    return "://" in path


def _filesystems():  # noqa: ANN202 - Beam's FileSystems class, imported only for remote paths
    from apache_beam.io.filesystems import FileSystems

    return FileSystems


def join(base: str, *parts: str) -> str:
    if is_remote(base):
        return posixpath.join(base.rstrip("/"), *parts)
    return os.path.join(base, *parts)


def basename(path: str) -> str:
    return posixpath.basename(path.rstrip("/")) if is_remote(path) else os.path.basename(path)


def makedirs(path: str) -> None:
    """Create a local folder (object stores have no folders: nothing to do)."""
    if not is_remote(path):
        os.makedirs(path, exist_ok=True)


def exists(path: str) -> bool:
    return _filesystems().exists(path) if is_remote(path) else os.path.exists(path)


def isdir(path: str) -> bool:
    """A local folder, or a prefix that names at least one object (object stores have no folders)."""
    return bool(listdir(path)) if is_remote(path) else os.path.isdir(path)


def isfile(path: str) -> bool:
    return _filesystems().exists(path) if is_remote(path) else os.path.isfile(path)


def open_read(path: str) -> IO[bytes]:
    """A seekable binary reader."""
    if is_remote(path):
        from apache_beam.io.filesystem import CompressionTypes

        return _filesystems().open(path, compression_type=CompressionTypes.UNCOMPRESSED)
    return open(path, "rb")  # noqa: SIM115 - the caller owns it


def size(path: str) -> int | None:
    """Bytes in a file, or None when there is none (one ``stat``, or one object-store listing)."""
    if not is_remote(path):
        try:
            return os.stat(path).st_size
        except FileNotFoundError:
            return None
    (result,) = _filesystems().match([path])
    return next((m.size_in_bytes for m in result.metadata_list if m.path == path), None)


def read_bytes(path: str) -> bytes:
    with open_read(path) as f:
        return f.read()


def temp_path(path: str) -> str:
    """A sibling name for ``path`` that no other process or call will pick.

    Unique per process and call, so two runs writing the same output never rename each other's
    half-written file; it always ends in ``.tmp``, so a leftover from a crash is recognisable (see
    :func:`is_temp`) and a cleanup or ``validate`` can name it."""
    return f"{path}.{os.getpid()}-{secrets.token_hex(4)}{TEMP_SUFFIX}"


def is_temp(name: str) -> bool:
    """Whether a file name is an unfinished write: ours (:func:`temp_path`) or a bare ``.tmp``."""
    return name.endswith(TEMP_SUFFIX)


def fsync_dir(path: str) -> None:
    """Make a rename or a delete in a local folder durable (the new entry survives a power cut)."""
    fd = os.open(path or ".", os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@contextmanager
def atomic_write(path: str) -> Iterator[IO[bytes]]:
    """Write ``path`` whole or not at all; the one writer every output goes through.

    A reader sees the old file or the new one, never a part: the bytes go to :func:`temp_path`,
    which is removed if the block raises. Locally the file is fsync'd before the rename and the
    folder after it, so a crash right after the block cannot leave an empty or missing file that a
    rerun would trust. Object stores have no folders and commit an object whole on close, so there
    Beam's FileSystems create the temporary object and rename it."""
    tmp = temp_path(path)
    if is_remote(path):
        yield from _atomic_write_remote(path, tmp)
        return
    f = open(tmp, "xb")  # noqa: SIM115 - closed on every path below; "x": never someone else's file
    try:
        yield f
        f.flush()
        os.fsync(f.fileno())
        f.close()
        os.replace(tmp, path)
    except BaseException:
        # close() flushes again, and raises again on a full disk: the temporary must still go, and the
        # error to report is the first one.
        with suppress(Exception):
            f.close()
        with suppress(FileNotFoundError):
            os.remove(tmp)
        raise
    fsync_dir(os.path.dirname(path))


def _atomic_write_remote(path: str, tmp: str) -> Iterator[IO[bytes]]:
    from apache_beam.io.filesystem import BeamIOError, CompressionTypes

    fs = _filesystems()
    f = fs.create(tmp, compression_type=CompressionTypes.UNCOMPRESSED)
    try:
        yield f
        f.close()
        if fs.exists(path):
            try:
                fs.delete([path])
            except BeamIOError:
                if fs.exists(path):  # another writer's delete won the race: fine; anything else is not
                    raise
        fs.rename([tmp], [path])
    except BaseException:
        # As for a local file: a close() that raises again (a full disk) must not keep the temporary
        # object, and the original error is the one to report.
        with suppress(Exception):
            f.close()
        with suppress(Exception):
            fs.delete([tmp])
        raise


def write_json_atomic(path: str, obj: Any) -> None:
    """The one JSON format of every report and manifest: sorted keys, so same content, same bytes."""
    with atomic_write(path) as f:
        f.write((json.dumps(obj, indent=2, sort_keys=True, ensure_ascii=False) + "\n").encode("utf-8"))


def write_parquet_atomic(table: pa.Table, path: str, **kwargs: Any) -> None:
    """``pyarrow.parquet.write_table`` through :func:`atomic_write` (``kwargs`` go to it unchanged)."""
    import pyarrow.parquet as pq

    with atomic_write(path) as f:
        pq.write_table(table, f, **kwargs)


def listdir(path: str) -> list[str]:
    """Names directly under ``path`` (for object stores: the objects whose names continue ``path/``)."""
    if not is_remote(path):
        return sorted(os.listdir(path)) if os.path.isdir(path) else []
    prefix = path.rstrip("/") + "/"
    (result,) = _filesystems().match([prefix + "**"])  # "*" stops at "/": nested objects name sub-folders
    return sorted({m.path[len(prefix) :].split("/", 1)[0] for m in result.metadata_list})


def walk_files(path: str) -> list[str]:
    """Every file under ``path`` at any depth, as sorted ``/``-separated paths relative to it: a
    cleanup or a check for leftovers must not miss one a nested folder hides."""
    if is_remote(path):
        prefix = path.rstrip("/") + "/"
        (result,) = _filesystems().match([prefix + "**"])
        return sorted(m.path[len(prefix) :] for m in result.metadata_list)
    found = []
    for folder, _, files in os.walk(path):
        rel = os.path.relpath(folder, path)
        found += [f if rel == "." else posixpath.join(rel.replace(os.sep, "/"), f) for f in files]
    return sorted(found)


def remove(path: str) -> None:
    if is_remote(path):
        _filesystems().delete([path])
    else:
        os.remove(path)


def sha256_file(path: str, chunk: int = 1 << 22) -> tuple[str, int]:
    """``(hex sha256, size)`` of a file's bytes, read in chunks (a release's tars are gigabytes)."""
    import hashlib

    h = hashlib.sha256()
    size = 0
    with open_read(path) as f:
        while block := f.read(chunk):
            h.update(block)
            size += len(block)
    return h.hexdigest(), size
