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
import tarfile
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import pyarrow.parquet as pq

from imagenet_captions import schema
from imagenet_captions.images import ImageError, ImageOptions, process_image
from imagenet_captions.shards.layout import TAR_MODE, TAR_MTIME, order_key, shard_stem
from imagenet_captions.sources.imagenet import ImageReader


class DuplicateKeyError(Exception):
    """Two samples with one key in a shard: a bug upstream, so the build stops rather than guess."""


@dataclass
class ShardResult:
    """What one shard holds, and what could not go into it (key, reason, detail)."""

    index: int
    written: int
    dropped: list[tuple[str, str, str]] = field(default_factory=list)
    digest: str = ""
    files: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {
            "index": self.index,
            "written": self.written,
            "dropped": self.dropped,
            "digest": self.digest,
            "files": self.files,
        }

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> ShardResult:
        return cls(d["index"], d["written"], [tuple(x) for x in d["dropped"]], d["digest"], d["files"])  # type: ignore[misc]


def samples_digest(
    samples: Iterable[tuple[dict[str, Any], dict[str, Any] | None]], options: dict[str, Any]
) -> str:
    """A digest of a shard's inputs (records, image identities, options): equal digests, equal shard."""
    h = hashlib.sha256(json.dumps(options, sort_keys=True).encode())
    for record, ref in samples:
        h.update(json.dumps([record, ref], sort_keys=True, ensure_ascii=False).encode())
    return h.hexdigest()


def _commit(tmp: str, final: str) -> None:
    os.replace(tmp, final)


def _add(tf: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size, info.mtime, info.mode = len(data), TAR_MTIME, TAR_MODE
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    tf.addfile(info, io.BytesIO(data))


def write_shard(
    index: int,
    samples: list[tuple[dict[str, Any], dict[str, Any] | None]],
    out_dir: str,
    image_options: ImageOptions | None = None,
    digest: str = "",
) -> ShardResult:
    """Write shard ``index`` of ``samples`` (record, image reference or None) into ``out_dir``.

    With image references it writes ``NNNNN.tar`` and ``NNNNN.parquet``; without (a text-only build)
    only the Parquet file. Records must carry the schema's text columns and ``label``.
    """
    samples = sorted(samples, key=lambda s: order_key(s[0]["key"]))
    for a, b in zip(samples, samples[1:], strict=False):
        if a[0]["key"] == b[0]["key"]:
            raise DuplicateKeyError(f"key {a[0]['key']} appears twice in shard {index}")
    os.makedirs(out_dir, exist_ok=True)
    stem = shard_stem(index)
    with_images = any(ref is not None for _, ref in samples)
    result = ShardResult(index=index, written=0, digest=digest)
    rows: list[dict[str, Any]] = []
    if with_images:
        tar_path = os.path.join(out_dir, f"{stem}.tar")
        tmp = f"{tar_path}.tmp"
        image_options = image_options or ImageOptions()
        with ImageReader() as reader, tarfile.open(tmp, "w", format=tarfile.USTAR_FORMAT) as tf:
            for record, ref in samples:
                key = record["key"]
                if ref is None:
                    result.dropped.append((key, "no_image", ""))
                    continue
                try:
                    jpg, info = process_image(reader.read(ref), image_options)
                except ImageError as e:
                    result.dropped.append((key, e.reason, e.message))
                    continue
                except OSError as e:
                    result.dropped.append((key, "unreadable_image", f"{type(e).__name__}: {e}"))
                    continue
                row = {**record, **info}
                _add(tf, f"{key}.jpg", jpg)
                _add(tf, f"{key}.txt", row["caption"].encode())
                _add(tf, f"{key}.json", json.dumps(row, sort_keys=True, ensure_ascii=False).encode())
                _add(tf, f"{key}.cls", str(row["label"]).encode())
                rows.append(row)
        _commit(tmp, tar_path)
        result.files.append(f"{stem}.tar")
    else:
        rows = [record for record, _ in samples]
    parquet_path = os.path.join(out_dir, f"{stem}.parquet")
    pq.write_table(schema.to_table(rows), f"{parquet_path}.tmp", compression="zstd")
    _commit(f"{parquet_path}.tmp", parquet_path)
    result.files.append(f"{stem}.parquet")
    result.written = len(rows)
    return result
