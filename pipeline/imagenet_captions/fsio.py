"""File access for local paths and object stores (gs://, s3://) behind one small set of functions.

Local paths use ``os`` directly (the fast path the benchmarks measure); any path with a scheme goes
through Beam's FileSystems, so the same build writes to a local disk, Cloud Storage or S3 (with the
``gcp`` or ``aws`` extras of apache-beam installed). Writes are atomic at the file level: a file is
written under a temporary name and renamed, so a reader never sees a partial output.
"""

from __future__ import annotations

import os
import posixpath
from collections.abc import Iterator
from contextlib import contextmanager
from typing import IO


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


def isfile(path: str) -> bool:
    return _filesystems().exists(path) if is_remote(path) else os.path.isfile(path)


def open_read(path: str) -> IO[bytes]:
    """A seekable binary reader."""
    if is_remote(path):
        from apache_beam.io.filesystem import CompressionTypes

        return _filesystems().open(path, compression_type=CompressionTypes.UNCOMPRESSED)
    return open(path, "rb")  # noqa: SIM115 - the caller owns it


def read_bytes(path: str) -> bytes:
    with open_read(path) as f:
        return f.read()


@contextmanager
def atomic_write(path: str) -> Iterator[IO[bytes]]:
    """Write ``path`` whole or not at all: a temporary name, renamed when the block ends without error."""
    tmp = f"{path}.tmp"
    if is_remote(path):
        from apache_beam.io.filesystem import CompressionTypes

        fs = _filesystems()
        f = fs.create(tmp, compression_type=CompressionTypes.UNCOMPRESSED)
        try:
            yield f
        except BaseException:
            f.close()
            fs.delete([tmp])
            raise
        f.close()
        if fs.exists(path):
            fs.delete([path])
        fs.rename([tmp], [path])
        return
    with open(tmp, "wb") as f:
        try:
            yield f
        except BaseException:
            f.close()
            os.remove(tmp)
            raise
    os.replace(tmp, path)


def listdir(path: str) -> list[str]:
    """Names directly under ``path`` (for object stores: the objects whose names continue ``path/``)."""
    if not is_remote(path):
        return sorted(os.listdir(path)) if os.path.isdir(path) else []
    prefix = path.rstrip("/") + "/"
    (result,) = _filesystems().match([prefix + "**"])  # "*" stops at "/": nested objects name sub-folders
    return sorted({m.path[len(prefix) :].split("/", 1)[0] for m in result.metadata_list})


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
