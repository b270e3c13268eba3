"""The values that travel through a build, typed: a source's raw record, the caption record, an image
reference, a text release's published record, and a shard's sample.

Records and image references are ``TypedDict``s: dicts at run time, so Beam pickles them and
Parquet takes them as rows exactly as before, while a type checker refuses a field the schema does
not have. :data:`Record`'s fields are the columns of ``schemas/caption_record.json`` (a test holds
them equal). What is not a column never rides inside a record: the image a text release's publisher
read travels beside its record (:class:`Published`, then :class:`Sample`), not as a private key.

This module sits on the ground floor beside the schema: it must never import a stage.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TypedDict


class RawRecord(TypedDict):
    """One entry of a metadata source (the release file, a response store), its fields coerced to
    their types by the source, before the text stage cleans it and assembles its caption."""

    key: str
    wnid: str
    title: str
    tags: list[str]
    description: str
    photo_id: int | None
    license: str | None
    owner: str | None


class _RecordText(TypedDict):
    """The text columns and the label: what every record that reaches a shard carries."""

    key: str
    wnid: str
    label: int
    photo_id: int | None
    title: str
    description: str
    tags: list[str]
    caption: str
    lang: str | None
    lang_score: float | None
    license: str | None


class Record(_RecordText, total=False):
    """One row of a shard's Parquet file and its ``.json`` member: the text columns, and the image
    columns the shard writer adds from the image it stored (absent in a text-only table)."""

    image_format: str | None
    image_mode: str | None
    width: int | None
    height: int | None
    jpg_width: int | None
    jpg_height: int | None
    jpg_bytes: int | None
    image_action: str | None
    image_sha256: str | None
    image_size: int | None


class _ImageRefWhere(TypedDict):
    key: str
    wnid: str
    path: str
    offset: int | None
    size: int | None


class ImageRef(_ImageRefWhere, total=False):
    """Where an image's bytes are: a file (``offset`` None) or a member of a tar (its ``offset`` and
    ``size`` in ``path``). ``size`` and ``mtime_ns`` (a loose file's, or an object's update time) are
    its identity in a shard's input digest, so a changed file rewrites its shard."""

    mtime_ns: int


@dataclass(frozen=True, slots=True)
class ExpectedImage:
    """The image bytes a text release's publisher read (the row's ``image_sha256``, ``image_size``):
    a rebuild stores only the same bytes, anything else is ``image_differs``."""

    sha256: str | None
    size: int | None


@dataclass(frozen=True, slots=True)
class Published:
    """A record as a text release published it (cleaned: the text stage does not run again), and the
    image its publisher read."""

    record: Record
    image: ExpectedImage


@dataclass(frozen=True, slots=True)
class Sample:
    """One key of a shard after the join: its record, the image to store (None in a text-only build)
    and, in a text-release rebuild, the image the publisher read."""

    record: Record
    image: ImageRef | None = None
    expected: ExpectedImage | None = None

    @property
    def key(self) -> str:
        return self.record["key"]
