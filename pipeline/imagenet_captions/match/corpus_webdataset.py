"""``webdataset:`` tars as img2dataset writes them: ``<key>.jpg|png|webp``, ``<key>.txt``, ``<key>.json``.

A part is one tar, read front to back with its data skipped (the reader seeks over image bytes):
what leaves it is each sample's caption, its fields and a *reference* to its image (the tar, the
member's offset and size), never the bytes, which the shard writer reads (image bytes never cross a
shuffle). A sample is the run of adjacent members sharing a key (the name up to the first dot of its
last path segment, as webdataset splits it); members that are not regular files are never read.

The caption is the ``.txt`` member when there is one, else the ``.json`` member's ``--text-column``
field (default ``caption``). Per sample: no image member is ``no_image_member``; a caption that is
not UTF-8 text is ``caption_not_text``; a ``.json`` member that is not a JSON object is ``bad_json``;
no caption at all is the matcher's ``no_caption``. A tar that breaks (a member's data runs past the
end of the file, or no end-of-archive block follows the last member) makes the sample at the break
``truncated_tar``: the samples after it cannot be read, nor counted.
"""

from __future__ import annotations

import io
import re
import tarfile
from collections.abc import Iterator
from typing import Any

import orjson
import pyarrow as pa

from imagenet_captions import fsio
from imagenet_captions.errors import UsageError
from imagenet_captions.match.corpora import (
    BATCH_ROWS,
    Batch,
    FileDigest,
    ReadOptions,
    check_keep_columns,
    json_value,
    list_files,
)
from imagenet_captions.outcomes import RECORDS, Drop
from imagenet_captions.shards.hashfile import HashingReader

#: Image members, in the order one is chosen when a sample has several.
IMAGE_EXTENSIONS = ("jpg", "jpeg", "png", "webp")
#: The columns that carry a sample's image reference to the shard writer (not written to Parquet).
IMAGE_REF_COLUMNS = ("__image_file", "__image_offset", "__image_size", "__image_ext")
_KEY_EXT = re.compile(r"^((?:.*/|)[^./]+)\.([^/]*)$")
_ZERO_BLOCK = bytes(tarfile.BLOCKSIZE)


class WebDatasetCorpus:
    """WebDataset tars, one part each (see the module docstring)."""

    kind = "webdataset"
    labelled = False
    with_images = True
    hashes_in_read = True

    def __init__(self, path: str, options: ReadOptions):
        self.options = options
        self.files = tuple(list_files(path, "webdataset"))
        if options.key_column is not None:
            raise UsageError("--key-column: a webdataset sample's key is its own (__key__)")
        check_keep_columns(options.keep_columns, also=("source_shard",))
        self.keep = tuple(options.keep_columns)
        for f in self.files:
            _check_tar(f.path)
        self.text_field = options.text_column or "caption"
        self.url_field = options.url_column or "url"
        self.schema = pa.schema(
            [
                pa.field("url", pa.string()),
                pa.field("source_shard", pa.string()),
                *(pa.field(c, pa.string()) for c in self.keep),
                pa.field("__image_file", pa.int32()),
                pa.field("__image_offset", pa.int64()),
                pa.field("__image_size", pa.int64()),
                pa.field("__image_ext", pa.string()),
            ]
        )

    def rows(self) -> None:
        return None

    def parts(self, n: int) -> list[int]:
        return list(range(len(self.files)))

    def read(self, part: int) -> Iterator[Batch | FileDigest]:
        path = self.files[part].path
        rows = _Samples(self, part, fsio.basename(path))
        with fsio.open_read(path) as raw:
            f = HashingReader(raw)  # the whole tar passes through once: its sha256 on the way
            members: dict[str, tarfile.TarInfo] = {}
            key: str | None = None
            end = 0
            # its first header was checked by the plan; closing it leaves ``f`` to the ``with`` above
            with tarfile.open(fileobj=f, mode="r:") as tf:
                for m in tf:
                    end = m.offset_data + m.size + (-m.size % tarfile.BLOCKSIZE)
                    found = _KEY_EXT.match(m.name)
                    if not m.isreg() or found is None:
                        continue
                    k, ext = found.group(1), found.group(2).lower()
                    if k != key and key is not None:
                        yield from rows.add(key, members, tf)
                        members = {}
                    key = k
                    members.setdefault(ext, m)
                broken = _break(f, end, members)
                if key is not None:
                    if broken is not None:
                        rows.drops.append(
                            Drop(RECORDS, "truncated_tar", key, f"{fsio.basename(path)}: {broken}")
                        )
                    else:
                        yield from rows.add(key, members, tf)
            yield from rows.flush()
            yield FileDigest(part, *f.finish())


def _check_tar(path: str) -> None:
    """A file that is not a tar from its first header on is the corpus's problem (one line): none of
    its samples can be read, nor counted."""
    with fsio.open_read(path) as f:
        try:
            with tarfile.open(fileobj=f, mode="r:"):
                pass
        except tarfile.TarError as e:
            raise UsageError(f"--corpus: {path} is not a tar ({e})") from None


def _break(f: io.RawIOBase, end: int, members: dict[str, tarfile.TarInfo]) -> str | None:
    """Why the tar ends early, or None when it ends as a tar does."""
    size = f.seek(0, 2)
    cut = [m for m in members.values() if m.offset_data + m.size > size]
    if cut:
        return f"the tar is cut short inside {cut[0].name} (at byte {size}); samples after it are lost"
    f.seek(end)
    if f.read(tarfile.BLOCKSIZE) != _ZERO_BLOCK:
        return f"the tar breaks after byte {end} (no end-of-archive block); samples after it are lost"
    return None


class _Samples:
    """Samples gathered into batches of :data:`BATCH_ROWS`."""

    def __init__(self, corpus: WebDatasetCorpus, part: int, shard: str):
        self.c, self.part, self.shard = corpus, part, shard
        self._reset()

    def _reset(self) -> None:
        self.captions: list[str | None] = []
        self.keys: list[str] = []
        self.urls: list[str | None] = []
        self.kept: list[list[str | None]] = [[] for _ in self.c.keep]
        self.refs: list[tuple[int, int, str]] = []
        self.drops: list[Drop] = []

    def add(self, key: str, members: dict[str, tarfile.TarInfo], tf: tarfile.TarFile) -> Iterator[Batch]:
        self._sample(key, members, tf)
        if len(self.captions) + len(self.drops) >= BATCH_ROWS:
            yield from self.flush()

    def _sample(self, key: str, members: dict[str, tarfile.TarInfo], tf: tarfile.TarFile) -> None:
        where = f"{self.shard}: {key}"
        image = next((e for e in IMAGE_EXTENSIONS if e in members), None)
        if image is None:
            self.drops.append(Drop(RECORDS, "no_image_member", key, f"{where} has {sorted(members)}"))
            return
        meta: dict[str, Any] = {}
        if "json" in members:
            try:
                meta = orjson.loads(_read(tf, members["json"]))
            except orjson.JSONDecodeError as e:
                self.drops.append(Drop(RECORDS, "bad_json", key, f"{where}.json: {str(e)[:120]}"))
                return
            if not isinstance(meta, dict):
                self.drops.append(Drop(RECORDS, "bad_json", key, f"{where}.json is not a JSON object"))
                return
        caption: Any
        if "txt" in members:
            try:
                caption = _read(tf, members["txt"]).decode("utf-8")
            except UnicodeDecodeError as e:
                self.drops.append(
                    Drop(RECORDS, "caption_not_text", key, f"{where}.txt is not UTF-8 ({e.reason})")
                )
                return
        else:
            caption = meta.get(self.c.text_field)
            if caption is not None and not isinstance(caption, str):
                detail = f"{where}.json {self.c.text_field} is {type(caption).__name__}"
                self.drops.append(Drop(RECORDS, "caption_not_text", key, detail))
                return
        m = members[image]
        self.captions.append(caption)
        self.keys.append(key)
        url = meta.get(self.c.url_field)
        self.urls.append(url if isinstance(url, str) else json_value(url))
        for column, name in zip(self.kept, self.c.keep, strict=True):
            column.append(json_value(meta.get(name)))
        self.refs.append((m.offset_data, m.size, image))

    def flush(self) -> Iterator[Batch]:
        if not self.captions and not self.drops:
            return
        n = len(self.captions)
        offsets, sizes, exts = zip(*self.refs, strict=True) if self.refs else ((), (), ())
        arrays = [
            pa.array(self.urls, pa.string()),
            pa.array([self.shard] * n, pa.string()),
            *(pa.array(k, pa.string()) for k in self.kept),
            pa.array([self.part] * n, pa.int32()),
            pa.array(offsets, pa.int64()),
            pa.array(sizes, pa.int64()),
            pa.array(exts, pa.string()),
        ]
        table = pa.Table.from_arrays(arrays, schema=self.c.schema)
        yield Batch(self.part, self.captions, table, keys=self.keys, drops=self.drops)
        self._reset()


def _read(tf: tarfile.TarFile, m: tarfile.TarInfo) -> bytes:
    f = tf.extractfile(m)
    assert f is not None  # a regular file always has data
    return f.read()
