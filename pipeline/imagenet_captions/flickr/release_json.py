"""Reading a release-format JSON file (the official ``imagenet_captions.json``, or its zip) safely.

The release format is Flickr metadata as the 2022 release wrote it: one JSON list of ``{filename,
title, tags, description, wnid}`` (~450k records, ~130 MB), streamed with ijson, never loaded whole.
The build's release source (``imagenet_captions.sources.release``) and the harvest's ``--diff``
(:mod:`.export`) read it through :func:`iter_release_items`, so both read a file alike:

- invalid UTF-8 bytes are replaced (U+FFFD) rather than failing the file: one bad byte in one
  user's description must not lose 450k records; a UTF-8 byte order mark at the start (some
  editors and Windows tools write one) is dropped;
- a file that is not a JSON list is an error for the whole file, :class:`ReleaseFormatError` (a
  usage error: one line, exit 2), with the byte position;
- so is nesting deeper than :data:`MAX_DEPTH` levels (a record is three deep), found by
  :class:`_DepthGuard` in each chunk before ijson sees it: ijson keeps the path of every open
  level (``item.item.item...``), so its memory grows with the square of the depth, and a 200 kB
  file of 100,000 brackets would take tens of GB.
"""

from __future__ import annotations

import codecs
import io
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

import ijson

from imagenet_captions import fsio
from imagenet_captions.errors import UsageError


class ReleaseFormatError(UsageError):
    """The release file as a whole is not what it should be (not JSON, not a list, truncated)."""


#: The deepest nesting of lists and objects a release file may have (a record is three levels deep:
#: the list, the record, its tags).
MAX_DEPTH = 64
# Deletes every byte but quotes and brackets (what decides the nesting, once escapes are gone).
_KEEP_STRUCTURE = bytes(b for b in range(256) if b not in b'"[]{}')
_AS_SQUARE = bytes.maketrans(b"{}", b"[]")


class _DepthGuard:
    """Tracks the nesting depth of a JSON byte stream fed in chunks, counting brackets outside
    strings only; raises :class:`ReleaseFormatError` past :data:`MAX_DEPTH`.

    Every step is a C-speed pass over bytes, so it costs about what ijson's parse does: escaped
    backslashes and escaped quotes are removed (``\\\\`` first, so ``\\\\"`` still ends a string), then
    every byte but quotes and brackets, then every pair of adjacent quotes (an empty string, or the
    end of one string and the start of the next with nothing that counts between them). What is left
    is a few strings that hold brackets, split on their quotes; the brackets outside them are counted
    in a loop. Across chunks it carries whether a string is open and whether a backslash ended the
    chunk (its escaped byte starts the next)."""

    def __init__(self, name: str):
        self.name = name
        self.depth = 0
        self.in_string = False
        self.escaped = False  # inside a string, the last chunk ended on an odd run of backslashes

    def feed(self, data: bytes, offset: int) -> None:
        """Check the next chunk; ``offset`` is its position in the stream, for the message."""
        if self.escaped:
            data, self.escaped = data[1:], False
        run = len(data) - len(data.rstrip(b"\\"))
        escape_next = run % 2 == 1
        if run:
            data = data[:-run]  # pairs are escaped backslashes; an odd one escapes the next chunk's first byte
        data = data.replace(b"\\\\", b"").replace(b'\\"', b"").translate(None, _KEEP_STRUCTURE)
        if self.in_string:
            data = b'"' + data  # reopen the string, so that its closing quote pairs with this one
        parts = data.replace(b'""', b"").split(b'"')
        self.in_string = len(parts) % 2 == 0
        self.escaped = escape_next and self.in_string
        depth = self.depth
        for bracket in b"".join(parts[0::2]).translate(_AS_SQUARE):
            if bracket == 0x5B:
                depth += 1
                if depth > MAX_DEPTH:
                    raise ReleaseFormatError(
                        f"{self.name}: JSON nested deeper than {MAX_DEPTH} levels (in the chunk at byte {offset}); "
                        "a release file is a list of flat records"
                    )
            else:
                depth -= 1
        self.depth = depth


class _Utf8Repair(io.RawIOBase):
    """A byte stream that yields valid UTF-8 without a BOM, decoded incrementally (invalid sequences
    become U+FFFD), and that checks each chunk's nesting (:class:`_DepthGuard`) before handing it on."""

    def __init__(self, raw: IO[bytes], name: str):
        self._raw = raw
        self._decoder = codecs.getincrementaldecoder("utf-8-sig")(errors="replace")
        self._guard = _DepthGuard(name)
        self._pending = b""
        self._handed = 0  # repaired bytes handed on so far
        self.position = 0  # bytes consumed from the underlying file, for error messages

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        while not self._pending:
            chunk = self._raw.read(1 << 20)
            self.position += len(chunk)
            final = not chunk
            self._pending = self._decoder.decode(chunk, final=final).encode("utf-8")
            self._guard.feed(self._pending, self._handed)
            self._handed += len(self._pending)
            if final and not self._pending:
                return 0
        n = min(len(buffer), len(self._pending))
        buffer[:n] = self._pending[:n]
        self._pending = self._pending[n:]
        return n


@contextmanager
def open_release(path: str | Path) -> Iterator[io.BufferedReader]:
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
                    yield io.BufferedReader(_Utf8Repair(raw, path), 1 << 20)
        else:
            f.seek(0)
            yield io.BufferedReader(_Utf8Repair(f, path), 1 << 20)


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
