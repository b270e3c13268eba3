"""Shard files written under a temporary name with their sha256 taken from the bytes as they go out,
and read back with the sha256 taken from the bytes as they come in.

Why here and not in :mod:`imagenet_captions.fsio`: a shard is several files that take their final
names together, only once all of them are complete (:func:`commit_all`), and their digests go to the
manifest; ``fsio.atomic_write`` renames each file as it closes, and fsyncs it, which shard files
skip (docs/shards.md). Hashing while writing costs one pass over bytes already in memory; hashing
afterwards would read every shard again. Every per-format writer (tar, Parquet) writes through
:class:`HashingFile`; nothing here knows a format.
"""

from __future__ import annotations

import hashlib
import io
import os
from collections.abc import Sequence
from contextlib import suppress
from typing import IO, TYPE_CHECKING

from imagenet_captions import fsio

if TYPE_CHECKING:
    from _typeshed import ReadableBuffer, WriteableBuffer


class HashingFile(io.RawIOBase):
    """A new file at a temporary sibling of ``path``: ``write``/``writev`` hash what they write;
    :meth:`commit` renames it to ``path``, :meth:`discard` removes it.

    An ``OSError`` (a full disk, a read-only file system) names ``path``, the file the user knows,
    whatever call raised it: ``writev`` on a descriptor names no file."""

    def __init__(self, path: str):
        super().__init__()
        self.path = path
        self.tmp = fsio.temp_path(path)
        self.size = 0
        self._hash = hashlib.sha256()
        try:
            self._fd = os.open(self.tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        except OSError as e:
            raise self._named(e) from None

    def _named(self, e: OSError) -> OSError:
        e.filename = self.path
        return e

    @property
    def sha256(self) -> str:
        return self._hash.hexdigest()

    def writable(self) -> bool:
        return True

    def tell(self) -> int:
        return self.size

    def write(self, data: ReadableBuffer) -> int:
        return self.writev((memoryview(data).cast("B"),))  # bytes, whatever the buffer's item size

    def writev(self, pieces: Sequence[bytes | bytearray | memoryview]) -> int:
        """Write ``pieces`` in one ``writev`` (more only if the kernel takes less) and hash them."""
        size = sum(len(p) for p in pieces)
        if not size:
            return 0
        try:
            written = os.writev(self._fd, pieces)
            if written != size:
                rest = memoryview(b"".join(pieces))[written:]
                while rest:
                    rest = rest[os.write(self._fd, rest) :]
        except OSError as e:
            raise self._named(e) from None
        for piece in pieces:
            self._hash.update(piece)
        self.size += size
        return size

    def close(self) -> None:
        if self._fd >= 0:
            fd, self._fd = self._fd, -1
            try:
                os.close(fd)
            except OSError as e:  # e.g. a network file system that reports a full disk only here
                raise self._named(e) from None
        super().close()

    def commit(self) -> None:
        """Give the closed file its final name. Not fsync'd (docs/shards.md): the recorded size and
        sha256 are what tell a whole file from one a power cut left short."""
        self.close()
        try:
            os.replace(self.tmp, self.path)
        except OSError as e:
            raise self._named(e) from None

    def discard(self) -> None:
        """Close and remove the unfinished file (on any failure: a full disk gets its space back)."""
        with suppress(OSError):
            self.close()
        with suppress(FileNotFoundError):
            os.remove(self.tmp)


def commit_all(files: Sequence[HashingFile]) -> None:
    """Rename a shard's files into place, in the order given, once every one is complete (the caller
    lists the file loaders find by name, the tar, last)."""
    for f in files:
        f.commit()


def discard_all(files: Sequence[HashingFile]) -> None:
    for f in files:
        f.discard()


class HashingReader(io.RawIOBase):
    """A seekable reader over ``raw`` that hashes the whole file once, in order, whatever the reads.

    For :mod:`tarfile` (which seeks past data it does not need and sometimes one byte back) and the
    like: every byte read at the hashed frontier is hashed; a seek forward reads and hashes the gap
    on the next read, a seek back reads nothing twice. :meth:`finish` reads what is left and returns
    ``(sha256, size)``: one pass over the file for both the check and the digest."""

    def __init__(self, raw: IO[bytes], chunk: int = 1 << 20):
        super().__init__()
        self._raw = raw
        self._chunk = chunk
        self._hash = hashlib.sha256()
        self._hashed = 0  # bytes [0, _hashed) are in the hash
        self._pos = 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._pos

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        if whence == io.SEEK_CUR:
            offset += self._pos
        elif whence == io.SEEK_END:
            self._catch_up(None)
            offset += self._hashed
        self._pos = offset
        return self._pos

    def _catch_up(self, until: int | None) -> None:
        """Hash the bytes from the frontier up to ``until`` (None: the end of the file)."""
        self._raw.seek(self._hashed)
        while until is None or self._hashed < until:
            want = self._chunk if until is None else min(self._chunk, until - self._hashed)
            block = self._raw.read(want)
            if not block:
                break
            self._hash.update(block)
            self._hashed += len(block)

    def readinto(self, buffer: WriteableBuffer) -> int:
        if self._pos > self._hashed:
            self._catch_up(self._pos)
        out = memoryview(buffer).cast("B")  # bytes, whatever the buffer's item size
        self._raw.seek(self._pos)
        data = self._raw.read(len(out))
        n = len(data)
        out[:n] = data
        if self._pos <= self._hashed < self._pos + n:
            self._hash.update(memoryview(data)[self._hashed - self._pos :])
            self._hashed = self._pos + n
        self._pos += n
        return n

    def finish(self) -> tuple[str, int]:
        """``(hex sha256, size)`` of the whole file, reading only what was not read yet."""
        self._catch_up(None)
        return self._hash.hexdigest(), self._hashed
