"""``release:``, the official ImageNet-Captions release as a metadata source (the zip or its JSON list).

The file is read by :func:`imagenet_captions.flickr.release_json.iter_release_items` (streamed;
invalid UTF-8 replaced, a BOM dropped, nesting bounded; a file that is not a JSON list is a
:class:`ReleaseFormatError` for the whole file, before any pipeline starts: see
:func:`count_release_records`). This module turns each item into a raw record or a named
:class:`~imagenet_captions.outcomes.Drop`.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from imagenet_captions.classes import parse_image_id
from imagenet_captions.flickr.release_json import (  # noqa: F401 - the names this source's users know
    ReleaseFormatError,
    iter_release_items,
    open_release,
)
from imagenet_captions.outcomes import RECORDS, Drop
from imagenet_captions.records import RawRecord


def count_release_records(path: str | Path) -> int:
    """Parse the whole file once: its item count, or ReleaseFormatError (ijson's C parser makes it cheap)."""
    return sum(1 for _ in iter_release_items(path))


RELEASE_FIELDS = ("filename", "title", "tags", "description", "wnid")
_SURROGATES = re.compile("[\ud800-\udfff]")


def to_raw_record(item: Any) -> RawRecord | Drop:
    """A release item as a raw record, or the :class:`Drop` that names what is wrong with it.

    The raw record has ``key``, ``wnid``, ``title``, ``tags``, ``description`` and the optional
    ``photo_id``, ``license``, ``owner`` (which harvested stores carry), each coerced here, once,
    to its type: the text stage then reads them as they are. A ``tags`` string is split on
    whitespace (some tools write Flickr's space-separated form). ``key`` is the image id, or, for
    an item without a usable filename, a stable description of the item so it can be counted.
    """
    if not isinstance(item, dict):
        return Drop(RECORDS, "malformed_record", f"<{type(item).__name__}>")
    filename = item.get("filename")
    if not isinstance(filename, str):
        return Drop(RECORDS, "malformed_record", "<no filename>")
    stem = filename.rsplit("/", 1)[-1]
    stem = stem[: -len(".JPEG")] if stem.upper().endswith(".JPEG") else stem
    parsed = parse_image_id(stem)
    if parsed is None:
        return Drop(RECORDS, "bad_filename", filename[:200])
    wnid = item.get("wnid") or parsed[0]
    if wnid != parsed[0]:
        return Drop(RECORDS, "wnid_mismatch", stem)
    return text_record(stem, wnid, item)


def text_record(key: str, wnid: str, fields: dict[str, Any]) -> RawRecord | Drop:
    """The raw record of ``key`` from release-shaped ``fields`` (title, tags, description and the
    optional photo_id, license, owner), or ``malformed_record`` when a text field has the wrong type.
    Shared by the release file and the harvested response store, so both coerce alike."""
    title, description, tags = fields.get("title", ""), fields.get("description", ""), fields.get("tags", [])
    title = "" if title is None else title
    description = "" if description is None else description
    tags = [] if tags is None else tags
    if not isinstance(title, str) or not isinstance(description, str):
        return Drop(RECORDS, "malformed_record", key)
    if isinstance(tags, str):  # some tools write tags as one space-separated string
        tags = tags.split()
    if not isinstance(tags, list) or not all(isinstance(t, str) for t in tags):
        return Drop(RECORDS, "malformed_record", key)
    owner = fields.get("owner")
    return {
        "key": key,
        "wnid": wnid,
        "title": _encodable(title),
        "tags": [_encodable(t) for t in tags],
        "description": _encodable(description),
        "photo_id": _int_or_none(fields.get("photo_id")),
        "license": None if fields.get("license") is None else str(fields.get("license")),
        "owner": owner if isinstance(owner, str) else None,
    }


class ReleaseSource:
    """``release:<zip|json>`` as a metadata source (see :mod:`imagenet_captions.sources`).

    A part is a range of item positions: a JSON list has no index, so each part streams the file
    from its start and builds records only for its own range. Parsing is cheap beside the text
    stage that follows in the same worker, and it spreads the records over the workers right
    after the read (one part would put every record's cleaning on one thread)."""

    def __init__(self, path: str):
        self.path = path
        self._count: int | None = None

    def count(self) -> int:
        if self._count is None:
            self._count = count_release_records(self.path)
        return self._count

    def parts(self, n: int) -> list[tuple[int, int]]:
        return item_ranges(self.count(), n)

    def publisher(self) -> None:
        """None: the release file's records are raw, the build cleans them."""
        return None

    def read(self, part: tuple[int, int]) -> Iterator[RawRecord | Drop]:
        start, stop = part
        for i, item in enumerate(iter_release_items(self.path)):
            if i >= stop:
                return
            if i >= start:
                yield to_raw_record(item)


def item_ranges(total: int, n: int) -> list[tuple[int, int]]:
    """``[start, stop)`` ranges covering ``range(total)`` in at most ``n`` nearly equal parts."""
    n = max(1, min(n, total))
    return [(total * i // n, total * (i + 1) // n) for i in range(n)]


def _encodable(text: str) -> str:
    """Text that encodes as UTF-8: lone surrogates (a JSON "\\ud800" escape decodes to one) become U+FFFD.

    Beam's coders encode every element, even between fused steps, and fail on a lone surrogate; this
    is the one place every record passes through before its first PCollection."""
    if text.isascii():
        return text
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return _SURROGATES.sub("\ufffd", text)
    return text


def _int_or_none(value: Any) -> int | None:
    """A photo id as the records' int64 column holds it; None when it is none, or not one (a float's
    fraction, text, a number beyond int64: the column could not hold it, and the writer would fail)."""
    try:
        number = None if value is None or isinstance(value, bool) else int(value)
    except (TypeError, ValueError, OverflowError):  # OverflowError: int(float("inf"))
        return None
    return number if number is not None and -(2**63) <= number < 2**63 else None
