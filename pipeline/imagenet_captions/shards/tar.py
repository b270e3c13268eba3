"""The WebDataset tar format: samples of members in, a plain ustar file whose bytes depend on nothing else.

Every pipeline that writes image shards (the build, ``match``) calls :func:`write_tar` with its own
samples; none writes tar headers of its own. A sample is a key and its members by extension
(``jpg``, ``txt``, ``json``, ``cls`` for a build), written adjacent and in the order given, with the
fixed metadata of :mod:`imagenet_captions.layout` (mtime, mode, no owner): the same samples always
give the same bytes. :func:`to_json_bytes` is the one encoding of a ``.json`` member.

This module knows nothing about records, images or where samples come from.
"""

from __future__ import annotations

import json
import tarfile
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import orjson

from imagenet_captions.layout import TAR_MODE, TAR_MTIME
from imagenet_captions.shards.hashfile import HashingFile


@dataclass(frozen=True, slots=True)
class TarSample:
    """One sample of a shard: its key (no dot: WebDataset splits the member names at the first one)
    and its members' bytes by extension, in the order they are written."""

    key: str
    members: Mapping[str, bytes]


def write_tar(path: str, samples: Iterable[TarSample]) -> HashingFile:
    """Write ``samples`` as the tar ``path``, under a temporary name; returns the closed file, its size
    and sha256 taken as it was written, for the caller to commit with the shard's other files
    (:func:`~imagenet_captions.shards.hashfile.commit_all`: a shard's files take their names together).

    ``samples`` may be lazy (images read as the tar is written). A failure, in the writing or in
    ``samples``, removes the temporary file and raises."""
    out = HashingFile(path)
    try:
        with TarWriter(out) as tw:
            for sample in samples:
                for ext, data in sample.members.items():
                    tw.add(f"{sample.key}.{ext}", data)
                tw.flush()
    except BaseException:
        out.discard()
        raise
    return out


def to_json_bytes(obj: Any) -> bytes:
    """Canonical JSON (sorted keys, UTF-8) of a record: each sample's ``.json`` member, and the digest.

    orjson, because this runs once or twice per image and the standard library's encoder is an
    order of magnitude slower for a shard row (docs/shards.md); the standard one
    is the fallback for what orjson refuses (e.g. integers beyond 64 bits)."""
    try:
        return orjson.dumps(obj, option=orjson.OPT_SORT_KEYS)
    except TypeError:  # orjson.JSONEncodeError is a TypeError
        return json.dumps(obj, sort_keys=True, ensure_ascii=False, separators=(",", ":")).encode(
            "utf-8", "replace"
        )


class TarWriter:
    """Append-only ustar writer for regular files with the fixed metadata of :mod:`layout`.

    Why not :mod:`tarfile`: it builds a ``TarInfo``, formats every header field and copies each member
    through a file object: per sample of three members, twice the CPU GNU tar spends per
    file in all (docs/shards.md). A shard's members differ only in name and size, so one header
    template, two fields and a checksum are enough, and each sample's members go to the file in one
    ``writev`` call, without copying the image bytes: most of what is left is the kernel's copy
    (docs/shards.md). The bytes
    are exactly what ``tarfile.open(path, "w", format=tarfile.USTAR_FORMAT)`` writes for the same
    members (the tests compare them), so any tar reader, webdataset included, reads the shards.
    It writes into a :class:`~imagenet_captions.shards.hashfile.HashingFile` (which hashes the bytes
    on their way out) and closes it at the end; renaming it into place is the caller's.
    """

    def __init__(self, out: HashingFile):
        self._out = out
        self._pending: list[bytes] = []

    def add(self, name: str, data: bytes) -> None:
        """Queue one member; :meth:`flush` (called per sample) writes the queue."""
        size = len(data)
        pad = -size % tarfile.BLOCKSIZE
        self._pending += (_header(name, size), data, _ZEROS[:pad])

    def flush(self) -> None:
        """Write every queued piece in one ``writev``."""
        pieces, self._pending = self._pending, []
        self._out.writev(pieces)

    def close(self) -> None:
        """End the archive as tarfile does (two zero blocks, then zeros to a whole 10 KiB record)."""
        if self._out.closed:
            return
        try:
            self.flush()
            end = 2 * tarfile.BLOCKSIZE
            end += -(self._out.size + end) % tarfile.RECORDSIZE
            self._out.write(bytes(end))
        finally:
            self._out.close()

    def __enter__(self) -> TarWriter:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, *exc: object) -> None:
        """End the archive, unless the block failed: the caller then discards the unfinished file."""
        if exc_type is None:
            self.close()


_ZEROS = bytes(tarfile.BLOCKSIZE)


def _tarinfo_header(name: str, size: int) -> bytes:
    """The header tarfile itself writes: the reference for :func:`_header` and its fallback."""
    info = tarfile.TarInfo(name)
    info.size, info.mtime, info.mode = size, TAR_MTIME, TAR_MODE
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    return info.tobuf(tarfile.USTAR_FORMAT, "utf-8", "surrogateescape")


# A header with an empty name and size 0, cut around the name (0:100), size (124:136) and checksum
# (148:156) fields; the checksum is the byte sum with the checksum field read as eight spaces.
_TEMPLATE = _tarinfo_header("x", 0)
_MID = _TEMPLATE[100:124]
_AFTER_SIZE = _TEMPLATE[136:148]
_TAIL = _TEMPLATE[156:]
_BASE_SUM = sum(_MID) + sum(_AFTER_SIZE) + 8 * ord(" ") + sum(_TAIL)


def _header(name: str, size: int) -> bytes:
    raw = name.encode("utf-8", "surrogateescape")
    if len(raw) >= 100 or size >= 0o77777777777:  # long names, huge members: tarfile's own rules
        return _tarinfo_header(name, size)
    size_field = b"%011o\0" % size
    checksum = _BASE_SUM + sum(raw) + sum(size_field)
    return b"".join((raw.ljust(100, b"\0"), _MID, size_field, _AFTER_SIZE, b"%06o\0 " % checksum, _TAIL))
