"""``text-release:<dir>``: a downloaded text release as a metadata source, to rebuild its image shards.

A release (``imagenet-captions release``, fetched with ``imagenet-captions download``) holds one
Parquet file of caption rows per shard of the publisher's build, ``captions/NNNNN.parquet``, and
``manifest.json``. Its rows are used as they are: cleaned by the publisher, so the text stage does
not run again (a newer cleaning must never change a rebuild). A part is one Parquet file, so the
rows spread over the workers as they are read. The publisher's shard count, image options and
class list come from the manifest (:meth:`TextReleaseSource.publisher`), and each row's
``image_sha256``/``image_size`` say which image bytes the publisher read: they travel beside the
record (:class:`~imagenet_captions.records.Published`), and the shard writer refuses different
bytes as ``image_differs``.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any, cast

import pyarrow.parquet as pq

from imagenet_captions import fsio, layout
from imagenet_captions.classes import ClassList, parse_image_id
from imagenet_captions.errors import UsageError
from imagenet_captions.images import ImageOptions
from imagenet_captions.outcomes import RECORDS, Drop
from imagenet_captions.records import ExpectedImage, Published, Record
from imagenet_captions.schema import column_names
from imagenet_captions.sources import Publisher

MANIFEST = "manifest.json"
#: Columns of a release row that the rebuild computes again from the user's image: not the record.
IMAGE_COLUMNS = ("image_format", "image_mode", "width", "height", "jpg_width", "jpg_height", "jpg_bytes", "image_action")
#: What the publisher read, checked against the user's image (carried to the writer beside the record).
EXPECT_COLUMNS = ("image_sha256", "image_size")


class TextReleaseSource:
    """A release folder's caption Parquet files, one part each (see the module docstring)."""

    def __init__(self, path: str):
        from imagenet_captions.manifest import read_manifest

        self.path = path
        if not os.path.isfile(os.path.join(path, MANIFEST)):
            raise UsageError(f"{path} is not a text release: no {MANIFEST} (download one with imagenet-captions download)")
        self.manifest = read_manifest(path)
        build = self.manifest.get("build")
        if isinstance(build, dict) and build.get("stage") == "match":
            raise UsageError(
                f"{path} is a release of a class-matched subset (imagenet-captions match), not of a build: "
                "rebuild it with imagenet-captions match on the same corpus"
            )
        try:
            self.num_shards = int(self.manifest["build"]["num_shards"])
            self._files = {stem: entry["parquet"]["path"] for stem, entry in sorted(self.manifest["shards"].items())}
        except (ValueError, KeyError, TypeError) as e:
            raise UsageError(f"{path}/{MANIFEST} is not a release manifest: {type(e).__name__}: {e}") from None
        options = self.manifest["build"].get("options")
        self._publisher = _publisher(self.num_shards, options, f"{path}/{MANIFEST}")
        self._count: int | None = None

    def publisher(self) -> Publisher:
        return self._publisher

    def count(self) -> int:
        if self._count is None:
            n = 0
            for rel in self._files.values():
                path = fsio.join(self.path, rel)
                if not fsio.isfile(path):
                    raise UsageError(f"the text release lacks {rel}: download it again (imagenet-captions download)")
                try:
                    n += pq.ParquetFile(fsio.open_read(path)).metadata.num_rows
                except Exception as e:  # a damaged file is the user's input problem, named in one line
                    raise UsageError(f"{rel} in the text release is not readable Parquet: {e}") from None
            self._count = n
        return self._count

    def parts(self, n: int) -> list[tuple[str, str]]:
        return list(self._files.items())

    def read(self, part: tuple[str, str]) -> Iterator[Published | Drop]:
        """The rows of one shard's file; a row whose key is not an image id is ``bad_filename``, one
        whose wnid is not its key's ``wnid_mismatch``, and one that the publisher's shard count
        would not put in this shard ``malformed_record`` (a release whose files were mixed up)."""
        stem, rel = part
        text_columns = [c for c in column_names() if c not in IMAGE_COLUMNS and c not in EXPECT_COLUMNS]
        with fsio.open_read(fsio.join(self.path, rel)) as f:
            table = pq.read_table(f)
        have = set(table.column_names)
        missing = [c for c in ("key", "wnid", "label", "caption") if c not in have]
        if missing:
            for key in table.column("key").to_pylist() if "key" in have else []:
                yield Drop(RECORDS, "malformed_record", key, f"{rel} lacks columns {missing}")
            return
        for row in table.to_pylist():
            key, wnid = row["key"], row["wnid"]
            parsed = parse_image_id(key) if isinstance(key, str) else None
            if parsed is None:  # a key becomes a tar member's name: only an image id may
                yield Drop(RECORDS, "bad_filename", str(key)[:200], f"in {rel}")
                continue
            if wnid != parsed[0]:
                yield Drop(RECORDS, "wnid_mismatch", key, f"in {rel}")
                continue
            if layout.shard_of(key, self.num_shards) != int(stem):
                yield Drop(RECORDS, "malformed_record", row["key"], f"in {rel}, not in its shard")
                continue
            record = cast(Record, {c: row.get(c) for c in text_columns if c in have})  # the schema's columns
            yield Published(record, ExpectedImage(row.get("image_sha256"), row.get("image_size")))


def _publisher(num_shards: int, options: Any, name: str) -> Publisher:
    """The publisher's shard count, image options and class list (recorded only when not ILSVRC-2012's),
    or one line naming the manifest when they are not what a build records."""
    try:
        image = ImageOptions(**options["image"])
        recorded = options.get("classes")
        classes = None if recorded is None else ClassList(recorded["wnids"], recorded["source"])
    except (TypeError, KeyError, AttributeError, ValueError) as e:  # OptionError is a ValueError
        raise UsageError(f"{name} does not hold a build's options: {type(e).__name__}: {e}") from None
    return Publisher(num_shards, image, classes)
