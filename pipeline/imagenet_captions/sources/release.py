"""The official ImageNet-Captions release: ``imagenet_captions.zip`` or the JSON list inside it.

The file is one JSON list of ``{filename, title, tags, description, wnid}`` (~450k records, ~130 MB),
so it is streamed with ijson, never loaded whole. Invalid UTF-8 bytes are replaced (U+FFFD) rather
than failing the file: one bad byte in one user's description must not lose 450k records. A file that
is not a JSON list of objects is an error for the whole file, raised as :class:`ReleaseFormatError`
with the byte position, before any pipeline starts (see :func:`count_release_records`).
"""

from __future__ import annotations

import codecs
import io
import re
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

import ijson

from imagenet_captions import fsio
from imagenet_captions.classes import parse_image_id
from imagenet_captions.errors import UsageError


class ReleaseFormatError(UsageError):
    """The release file as a whole is not what it should be (not JSON, not a list, truncated)."""


class _Utf8Repair(io.RawIOBase):
    """A byte stream that yields valid UTF-8: invalid sequences become U+FFFD, decoded incrementally."""

    def __init__(self, raw: IO[bytes]):
        self._raw = raw
        self._decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        self._pending = b""
        self.position = 0  # bytes consumed from the underlying file, for error messages

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        while not self._pending:
            chunk = self._raw.read(1 << 20)
            self.position += len(chunk)
            final = not chunk
            self._pending = self._decoder.decode(chunk, final=final).encode("utf-8")
            if final and not self._pending:
                return 0
        n = min(len(buffer), len(self._pending))
        buffer[:n] = self._pending[:n]
        self._pending = self._pending[n:]
        return n


@contextmanager
def open_release(path: str | Path) -> Iterator[IO[bytes]]:
    """Open the release JSON, or the single ``*.json`` inside a release zip, as repaired UTF-8 bytes."""
    path = str(path)
    if not fsio.isfile(path):
        raise UsageError(f"release file not found: {path}")
    with fsio.open_read(path) as f:
        if zipfile.is_zipfile(f):
            f.seek(0)
            with zipfile.ZipFile(f) as zf:
                names = [n for n in zf.namelist() if n.endswith(".json") and not n.startswith("__MACOSX")]
                if len(names) != 1:
                    raise ReleaseFormatError(f"{path}: expected one .json file in the zip, found {names}")
                with zf.open(names[0]) as raw:
                    yield io.BufferedReader(_Utf8Repair(raw), 1 << 20)
        else:
            f.seek(0)
            yield io.BufferedReader(_Utf8Repair(f), 1 << 20)


def iter_release_items(path: str | Path) -> Iterator[Any]:
    """Every item of the release's top-level JSON list, streamed; ReleaseFormatError if the file is not one."""
    with open_release(path) as f:
        head = f.peek(64)[:64].lstrip()
        if not head.startswith(b"["):
            raise ReleaseFormatError(f"{path}: not a JSON list (starts with {head[:20]!r})")
        try:
            yield from ijson.items(f, "item", use_float=True)
        except ijson.JSONError as e:
            raise ReleaseFormatError(f"{path}: malformed JSON: {e}") from None


def count_release_records(path: str | Path) -> int:
    """Parse the whole file once: its item count, or ReleaseFormatError. Cheap (C parser, ~1 s per 100 MB)."""
    return sum(1 for _ in iter_release_items(path))


RELEASE_FIELDS = ("filename", "title", "tags", "description", "wnid")
_SURROGATES = re.compile("[\ud800-\udfff]")


def to_raw_record(item: Any) -> tuple[dict[str, Any] | None, str | None, str]:
    """A release item as a raw record ``(record, None, key)`` or ``(None, reason, key)``.

    The raw record has ``key``, ``wnid``, ``title``, ``tags``, ``description`` and the optional
    ``photo_id``, ``license``, ``owner`` (which harvested stores carry). ``key`` is the image id, or,
    for an item without a usable filename, a stable description of the item so it can be counted.
    """
    if not isinstance(item, dict):
        return None, "malformed_record", f"<{type(item).__name__}>"
    filename = item.get("filename")
    if not isinstance(filename, str):
        return None, "malformed_record", "<no filename>"
    stem = filename.rsplit("/", 1)[-1]
    stem = stem[: -len(".JPEG")] if stem.upper().endswith(".JPEG") else stem
    parsed = parse_image_id(stem)
    if parsed is None:
        return None, "bad_filename", filename[:200]
    wnid = item.get("wnid") or parsed[0]
    if wnid != parsed[0]:
        return None, "wnid_mismatch", stem
    title, description, tags = item.get("title", ""), item.get("description", ""), item.get("tags", [])
    title = "" if title is None else title
    description = "" if description is None else description
    tags = [] if tags is None else tags
    if not isinstance(title, str) or not isinstance(description, str):
        return None, "malformed_record", stem
    if isinstance(tags, str):  # some tools write tags as one space-separated string
        tags = tags.split()
    if not isinstance(tags, list) or not all(isinstance(t, str) for t in tags):
        return None, "malformed_record", stem
    title, description, tags = _encodable(title), _encodable(description), [_encodable(t) for t in tags]
    record: dict[str, Any] = {
        "key": stem,
        "wnid": wnid,
        "title": title,
        "tags": tags,
        "description": description,
        "photo_id": _int_or_none(item.get("photo_id")),
        "license": None if item.get("license") is None else str(item.get("license")),
        "owner": item.get("owner") if isinstance(item.get("owner"), str) else None,
    }
    return record, None, stem


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
    try:
        return None if value is None else int(value)
    except (TypeError, ValueError):
        return None
