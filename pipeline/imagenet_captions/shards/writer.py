"""Write one shard: a WebDataset tar and a Parquet file of the same rows, each complete or absent.

The build groups samples by shard and calls :func:`write_shard` once per shard (TFDS's Beam writer is
the model: one writer per shard, fixed order inside it, write to a temporary name then rename, fail
on a duplicate key). Samples arrive as records plus image *references*; the writer reads the bytes,
so image bytes never cross a shuffle. An image that cannot be stored is dropped with its reason and
the decoder's message; the rest of the shard is written.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
import tarfile
import tempfile
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, NamedTuple, TypeVar

import orjson
import pyarrow.parquet as pq

from imagenet_captions import fsio, schema
from imagenet_captions.images import ImageError, ImageOptions, process_image
from imagenet_captions.layout import TAR_MODE, TAR_MTIME, order_key, shard_stem
from imagenet_captions.shards.hashfile import HashingFile, commit_all, discard_all
from imagenet_captions.sources.imagenet import ImageReader

T = TypeVar("T")
R = TypeVar("R")


class DuplicateKeyError(Exception):
    """Two samples with one key in a shard: a bug upstream, so the build stops rather than guess."""


@dataclass
class ShardResult:
    """What one shard holds, and what could not go into it (key, reason, detail).

    ``seconds`` is the time this build spent writing it, ``kept`` says the last build's files were
    kept (equal input digest): the report sums them, so a user sees where a build's time went."""

    index: int
    written: int
    dropped: list[tuple[str, str, str]] = field(default_factory=list)
    digest: str = ""
    files: list[str] = field(default_factory=list)
    #: bytes of each file, recorded with the shard so a rerun can tell a whole file from one cut short
    sizes: dict[str, int] = field(default_factory=dict)
    #: sha256 of each file, hashed as it was written: what ``validate`` and a release check the bytes by
    sha256: dict[str, str] = field(default_factory=dict)
    seconds: float = 0.0
    kept: bool = False

    def to_json(self) -> dict[str, Any]:
        return {
            "index": self.index,
            "written": self.written,
            "dropped": self.dropped,
            "digest": self.digest,
            "files": self.files,
            "sizes": self.sizes,
            "sha256": self.sha256,
            "seconds": self.seconds,
            "kept": self.kept,
        }

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> ShardResult:
        return cls(
            d["index"],
            d["written"],
            [tuple(x) for x in d["dropped"]],  # type: ignore[misc]
            d["digest"],
            d["files"],
            d.get("sizes", {}),
            d.get("sha256", {}),  # none in an older build's entries
            d.get("seconds", 0.0),
            d.get("kept", False),
        )


def samples_digest(
    samples: Iterable[tuple[dict[str, Any], dict[str, Any] | None]], options: dict[str, Any]
) -> str:
    """A digest of a shard's inputs (records, image identities, options): equal digests, equal shard."""
    h = hashlib.sha256(json.dumps(options, sort_keys=True).encode())
    for record, ref in samples:
        h.update(to_json_bytes((record, ref)))
        h.update(b"\n")
    return h.hexdigest()


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


#: Threads that decode and resize images ahead of the tar writer when there is decoding to overlap
#: (``--resize``) or latency to hide (an object store); see :func:`write_shard`.
READ_THREADS = min(4, os.cpu_count() or 1)
#: Bytes pyarrow's many small writes of a Parquet file are gathered into before each ``write``.
PARQUET_BUFFER = 1 << 20
#: How many images may be read ahead of the writer: bounds memory at ~this many images per shard.
READ_AHEAD = 64


def auto_threads(samples: Sequence[tuple[Any, dict[str, Any] | None]], options: ImageOptions) -> int:
    """Read-ahead threads worth having for this shard: none for local pass-through.

    Measured on 2 cores (docs/shards.md): with ``--resize 256`` two threads write more images
    per second (decode and resize release the GIL); for local pass-through, where each image is a
    short read and a header check, the hand-off between threads costs more CPU than it hides."""
    first = next((ref for _, ref in samples if ref is not None), None)
    remote = first is not None and fsio.is_remote(first["path"])
    return READ_THREADS if options.resize or remote else 0


class Loaded(NamedTuple):
    """One image made ready for the tar: its bytes and info, or why it cannot be stored."""

    jpg: bytes | None
    info: dict[str, Any] | None
    reason: str | None = None
    message: str = ""


def load_image(
    reader: ImageReader,
    ref: dict[str, Any] | None,
    options: ImageOptions,
    expect: dict[str, Any] | None = None,
) -> Loaded:
    """Read and check (or re-encode, resize) one image; failures become a reason, never an exception.

    The info carries the sha256 and size of the source bytes as read (the image's identity in a
    release). ``expect`` (a text-release rebuild) is what the publisher read: other bytes are
    ``image_differs``, so a user's different copy of an image never passes for the publisher's."""
    if ref is None:
        return Loaded(None, None, "no_image")
    try:
        data = reader.read(ref)
        source = {"image_sha256": hashlib.sha256(data).hexdigest(), "image_size": len(data)}
        if expect and expect.get("image_sha256") and expect["image_sha256"] != source["image_sha256"]:
            return Loaded(
                None,
                None,
                "image_differs",
                f"sha256 {source['image_sha256'][:16]}.., {source['image_size']} bytes; the publisher's: "
                f"{expect['image_sha256'][:16]}.., {expect.get('image_size')} bytes",
            )
        jpg, info = process_image(data, options)
        return Loaded(jpg, {**info, **source})
    except ImageError as e:
        return Loaded(None, None, e.reason, e.message)
    except OSError as e:
        return Loaded(None, None, "unreadable_image", f"{type(e).__name__}: {e}")


def read_ahead(
    fn: Callable[[T], R], items: Sequence[T], threads: int, ahead: int = READ_AHEAD
) -> Iterator[R]:
    """``map(fn, items)`` in order, computed by ``threads`` threads at most ``ahead`` items ahead.

    Why not ``Executor.map``: it submits every item at once, so a slow consumer would hold every
    image of the shard in memory; this keeps a bounded window. ``threads <= 0`` runs inline.
    """
    if threads <= 0 or len(items) < 2:
        yield from map(fn, items)
        return
    with ThreadPoolExecutor(threads, thread_name_prefix="shard-read") as pool:
        window: deque[Future[R]] = deque()
        for item in items:
            if len(window) >= ahead:
                yield window.popleft().result()
            window.append(pool.submit(fn, item))
        while window:
            yield window.popleft().result()


def write_shard(
    index: int,
    samples: list[tuple[dict[str, Any], dict[str, Any] | None]],
    out_dir: str,
    image_options: ImageOptions | None = None,
    digest: str = "",
    threads: int | None = None,
    with_images: bool | None = None,
) -> ShardResult:
    """Write shard ``index`` of ``samples`` (record, image reference or None) into ``out_dir``.

    A shard of a build with images (``with_images``; by default: any sample has a reference) is
    ``NNNNN.tar`` and ``NNNNN.parquet``, both written even when the shard is empty (an empty tar is
    valid), so every planned shard exists and ``{00000..N}.tar`` names them all; a text-only
    shard is only the Parquet file. Records must carry the schema's text columns and ``label``. An object-store
    ``out_dir`` (gs://, s3://) gets files written on local disk first, then copied whole.

    The files take their final names only once all of them are written, so a failure (a full disk)
    leaves neither, and no temporary file either: never a tar without its Parquet file. Each file's
    size and sha256 are taken as it is written (:class:`HashingFile`), not by reading it again.

    ``threads`` (default: :func:`auto_threads`) read and check (or resize) the next images while
    this thread writes: reads, decodes and resizes release the GIL, so the disk, the decoder and the
    tar writer overlap. The order of the shard is fixed by the keys, never by which thread finishes
    first.
    """
    if with_images is None:
        with_images = any(ref is not None for _, ref in samples)
    if fsio.is_remote(out_dir):
        return _write_shard_remote(index, samples, out_dir, image_options, digest, threads, with_images)
    samples = sorted(samples, key=lambda s: order_key(s[0]["key"]))
    for a, b in zip(samples, samples[1:], strict=False):
        if a[0]["key"] == b[0]["key"]:
            raise DuplicateKeyError(f"key {a[0]['key']} appears twice in shard {index}")
    os.makedirs(out_dir, exist_ok=True)
    stem = shard_stem(index)
    result = ShardResult(index=index, written=0, digest=digest)
    files: list[HashingFile] = []  # the Parquet file first, the tar (what loaders look for) last
    try:
        if with_images:
            tar = HashingFile(os.path.join(out_dir, f"{stem}.tar"))
            files.append(tar)
            rows = _write_tar(tar, samples, image_options or ImageOptions(), threads, result)
        else:
            rows = [{k: v for k, v in record.items() if k != "expect"} for record, _ in samples]
        parquet = HashingFile(os.path.join(out_dir, f"{stem}.parquet"))
        files.insert(0, parquet)
        with io.BufferedWriter(parquet, PARQUET_BUFFER) as f:
            pq.write_table(schema.to_table(rows), f, compression="zstd")
        commit_all(files)
    except BaseException:
        discard_all(files)
        raise
    for done in reversed(files):
        name = os.path.basename(done.path)
        result.files.append(name)
        result.sizes[name] = done.size
        result.sha256[name] = done.sha256
    result.written = len(rows)
    return result


def _write_tar(
    out: HashingFile,
    samples: list[tuple[dict[str, Any], dict[str, Any] | None]],
    image_options: ImageOptions,
    threads: int | None,
    result: ShardResult,
) -> list[dict[str, Any]]:
    """Read, check and tar each sample's image into ``out``; the rows stored, the rest in ``result.dropped``."""
    if threads is None:
        threads = auto_threads(samples, image_options)
    rows: list[dict[str, Any]] = []
    with ImageReader() as reader, TarWriter(out) as tf:

        def load(sample: tuple[dict[str, Any], dict[str, Any] | None]) -> Loaded:
            return load_image(reader, sample[1], image_options, sample[0].get("expect"))

        for (record, _), (jpg, info, reason, message) in zip(
            samples, read_ahead(load, samples, threads), strict=True
        ):
            if reason is not None:
                result.dropped.append((record["key"], reason, message))
                continue
            key = record["key"]
            row = {**record, **info}
            row.pop("expect", None)
            tf.add(f"{key}.jpg", jpg)
            tf.add(f"{key}.txt", row["caption"].encode())
            tf.add(f"{key}.json", to_json_bytes(row))
            tf.add(f"{key}.cls", str(row["label"]).encode())
            tf.flush()
            rows.append(row)
    return rows


def _write_shard_remote(
    index: int,
    samples: list[tuple[dict[str, Any], dict[str, Any] | None]],
    out_dir: str,
    image_options: ImageOptions | None,
    digest: str,
    threads: int | None,
    with_images: bool,
) -> ShardResult:
    """The shard is written locally (the fast path), then each file is copied to the store, atomically."""
    with tempfile.TemporaryDirectory(prefix="imagenet-captions-shard-") as local:
        result = write_shard(index, samples, local, image_options, digest, threads, with_images)
        for name in result.files:
            with (
                open(os.path.join(local, name), "rb") as src,
                fsio.atomic_write(fsio.join(out_dir, name)) as dst,
            ):
                shutil.copyfileobj(src, dst, 1 << 22)
    return result
