"""Write one shard: a WebDataset tar and a Parquet file of the same rows, each complete or absent.

The build groups samples by shard and calls :func:`write_shard` once per shard (TFDS's Beam writer is
the model: one writer per shard, fixed order inside it, write to a temporary name then rename, fail
on a duplicate key). Samples arrive as records plus image *references*; the writer reads the bytes
(:mod:`.images`), so image bytes never cross a shuffle. An image that cannot be stored is dropped with
its reason and the decoder's message; the rest of the shard is written.

This module decides what a shard holds; each format's bytes are written by its own module, one call
each (:func:`.tar.write_tar`, :func:`.parquet.write_parquet`), as TFDS's file adapters do.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Generator, Iterable
from contextlib import closing
from dataclasses import dataclass, field
from typing import Any, cast

from imagenet_captions import fsio, layout, schema
from imagenet_captions.images import ImageOptions
from imagenet_captions.records import Record, Sample
from imagenet_captions.shards.hashfile import HashingFile, commit_all, discard_all
from imagenet_captions.shards.images import load_images
from imagenet_captions.shards.parquet import write_parquet
from imagenet_captions.shards.tar import TarSample, to_json_bytes, write_tar


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
            [tuple(x) for x in d["dropped"]],  # JSON's lists of (key, reason, detail)
            d["digest"],
            d["files"],
            d.get("sizes", {}),
            d.get("sha256", {}),  # none in an older build's entries
            d.get("seconds", 0.0),
            d.get("kept", False),
        )


def samples_digest(samples: Iterable[Sample], options: dict[str, Any]) -> str:
    """A digest of a shard's inputs (records, image identities, options): equal digests, equal shard.

    A text-release sample's expected image is hashed as its record's ``expect`` field: the form its
    digest has had since rebuilds began, so a rebuild made before records were typed stays current."""
    h = hashlib.sha256(json.dumps(options, sort_keys=True).encode())
    for s in samples:
        record: Any = s.record
        if s.expected is not None:
            expect = {"image_sha256": s.expected.sha256, "image_size": s.expected.size}
            record = {**s.record, "expect": expect}
        h.update(to_json_bytes((record, s.image)))
        h.update(b"\n")
    return h.hexdigest()


def write_shard(
    index: int,
    samples: list[Sample],
    out_dir: str,
    image_options: ImageOptions | None = None,
    digest: str = "",
    threads: int | None = None,
    with_images: bool | None = None,
) -> ShardResult:
    """Write shard ``index`` of ``samples`` into ``out_dir``.

    A shard of a build with images (``with_images``; by default: any sample has an image) is
    ``NNNNN.tar`` and ``NNNNN.parquet``, both written even when the shard is empty (an empty tar is
    valid), so every planned shard exists and ``{00000..N}.tar`` names them all; a text-only
    shard is only the Parquet file. An object-store ``out_dir`` (gs://, s3://) gets files written
    on local disk first, then copied whole.

    The files take their final names only once all of them are written, so a failure (a full disk)
    leaves neither, and no temporary file either: never a tar without its Parquet file. Each file's
    size and sha256 are taken as it is written (:class:`HashingFile`), not by reading it again.

    ``threads`` (default: :func:`.images.auto_threads`) read and check (or resize) the next images
    while this thread writes: reads, decodes and resizes release the GIL, so the disk, the decoder
    and the tar writer overlap. The order of the shard is fixed by the keys, never by which thread
    finishes first.
    """
    if with_images is None:
        with_images = any(s.image is not None for s in samples)
    if fsio.is_remote(out_dir):
        return _write_shard_remote(index, samples, out_dir, image_options, digest, threads, with_images)
    samples = sorted(samples, key=lambda s: layout.order_key(s.key))
    for a, b in zip(samples, samples[1:], strict=False):
        if a.key == b.key:
            raise DuplicateKeyError(f"key {a.key} appears twice in shard {index}")
    os.makedirs(out_dir, exist_ok=True)
    path = os.path.join(out_dir, layout.shard_stem(index))
    result = ShardResult(index=index, written=0, digest=digest)
    files: list[HashingFile] = []  # the Parquet file first, the tar (what loaders look for) last
    try:
        if with_images:
            rows: list[Record] = []
            members = _tar_samples(samples, image_options or ImageOptions(), threads, rows, result.dropped)
            with closing(members):
                files.append(write_tar(f"{path}.tar", members))
        else:
            rows = [s.record for s in samples]
        files.insert(0, write_parquet(f"{path}.parquet", schema.to_table(rows)))
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


def _tar_samples(
    samples: list[Sample],
    image_options: ImageOptions,
    threads: int | None,
    rows: list[Record],
    dropped: list[tuple[str, str, str]],
) -> Generator[TarSample, None, None]:
    """Each storable sample's members (``layout.MEMBER_EXTENSIONS``), as its image is loaded; the rows
    stored go to ``rows``, in the tar's order, the images that cannot be stored to ``dropped``."""
    for sample, (jpg, info, reason, message) in load_images(samples, image_options, threads):
        if reason is not None:
            dropped.append((sample.key, reason, message))
            continue
        assert jpg is not None and info is not None  # a Loaded without a reason has both
        row = cast(Record, {**sample.record, **info})  # info: the schema's image columns
        rows.append(row)
        yield TarSample(
            sample.key,
            {
                "jpg": jpg,
                "txt": row["caption"].encode(),
                "json": to_json_bytes(row),
                "cls": str(row["label"]).encode(),
            },
        )


def _write_shard_remote(
    index: int,
    samples: list[Sample],
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
