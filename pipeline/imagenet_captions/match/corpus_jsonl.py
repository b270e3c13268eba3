"""``jsonl:`` one JSON object a line (the follow-ups' YFCC-15M files), plain or gzip-compressed.

A line has no index to seek to, so a part is one whole file, read as a stream (split a very large
file into several to spread it over workers). Every line is a row: one that is not UTF-8 JSON, or
not an object, is ``bad_json``; an object whose caption field is there but not a string is
``caption_not_text``; a missing or null caption is left to the matcher (``no_caption``). A blank
line is a row too (``bad_json``), but a file's final newline ends its last row and starts none.
"""

from __future__ import annotations

import gzip
import io
import itertools
from collections.abc import Iterator
from typing import IO, Any, cast

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
    check_stems,
    json_value,
    list_files,
    sanitize_stem,
)
from imagenet_captions.outcomes import RECORDS, Drop
from imagenet_captions.shards.hashfile import HashingReader

#: Field names tried, in order, when ``--text-column`` / ``--url-column`` is not given (decided once,
#: from the first JSON object of the first file, as a Parquet corpus's columns are from its schema).
TEXT_FIELDS = ("caption", "TEXT", "text", "txt")
URL_FIELDS = ("url", "URL")
#: Lines of the first file looked at for its first JSON object.
PROBE_LINES = 1000


def open_text(raw: io.RawIOBase | IO[bytes], path: str) -> io.BufferedIOBase:
    """The file's bytes, gunzipped when its name ends in ``.gz``, read in large blocks."""
    buffered = io.BufferedReader(cast(io.RawIOBase, raw), 1 << 20)
    return gzip.GzipFile(fileobj=buffered) if path.endswith(".gz") else buffered


class JsonlCorpus:
    """JSON Lines files, one part each (see the module docstring)."""

    kind = "jsonl"
    labelled = False
    with_images = False
    hashes_in_read = True

    def __init__(self, path: str, options: ReadOptions):
        self.options = options
        self.files = tuple(list_files(path, "jsonl"))
        check_keep_columns(options.keep_columns)
        if options.key_column is None:
            check_stems(self.files, "jsonl")
        self.keep = tuple(options.keep_columns)
        self.schema = pa.schema(
            [pa.field("url", pa.string()), *(pa.field(c, pa.string()) for c in self.keep)]
        )
        first = _first_object(self.files[0].path)
        text_field = options.text_column or next((f for f in TEXT_FIELDS if f in first), None)
        if text_field is None:
            raise UsageError(
                f"--corpus: the first JSON object of {self.files[0].path} has none of the caption fields "
                f"{', '.join(TEXT_FIELDS)} (its fields: {', '.join(list(first)[:20])}); name one with --text-column"
            )
        self.text_field: str = text_field
        self.url_field = options.url_column or next((f for f in URL_FIELDS if f in first), URL_FIELDS[0])

    def rows(self) -> None:
        return None

    def parts(self, n: int) -> list[int]:
        return list(range(len(self.files)))

    def read(self, part: int) -> Iterator[Batch | FileDigest]:
        path = self.files[part].path
        prefix = sanitize_stem(path) + "_"
        rows = _Rows(self, part, prefix, path)
        with fsio.open_read(path) as raw:
            hashed = HashingReader(raw)
            with open_text(hashed, path) as f:
                # Iteration yields no empty string after a final newline; a blank line is a (bad) row.
                for line_no, line in enumerate(f):
                    yield from rows.add(line_no, line)
            yield from rows.flush()
            yield FileDigest(part, *hashed.finish())


def _first_object(path: str) -> dict[str, Any]:
    """The first line of ``path`` that is a JSON object (empty when the first lines hold none)."""
    with fsio.open_read(path) as raw, open_text(raw, path) as f:
        for line in itertools.islice(f, PROBE_LINES):
            try:
                obj = orjson.loads(line)
            except orjson.JSONDecodeError:
                continue
            if isinstance(obj, dict):
                return obj
    return {}


class _Rows:
    """Rows gathered into batches of :data:`BATCH_ROWS`."""

    def __init__(self, corpus: JsonlCorpus, part: int, prefix: str, path: str):
        self.c, self.part, self.prefix, self.path = corpus, part, prefix, path
        o = corpus.options
        self.text, self.url, self.key_field = corpus.text_field, corpus.url_field, o.key_column
        self._reset()

    def _reset(self) -> None:
        self.captions: list[str | None] = []
        self.keys: list[str] | None = [] if self.key_field else None
        self.index: list[int] = []
        self.urls: list[str | None] = []
        self.kept: list[list[str | None]] = [[] for _ in self.c.keep]
        self.drops: list[Drop] = []

    def _key(self, line: int, obj: dict[str, Any] | None) -> str:
        if self.key_field is not None and obj is not None:
            k = obj.get(self.key_field)
            if isinstance(k, (str, int)) and not isinstance(k, bool) and str(k):
                return str(k)
        return f"{self.prefix}{line:09d}"

    def add(self, line: int, raw: bytes) -> Iterator[Batch]:
        where = f"{fsio.basename(self.path)} line {line + 1}"
        try:
            obj = orjson.loads(raw)
        except orjson.JSONDecodeError as e:
            self.drops.append(Drop(RECORDS, "bad_json", self._key(line, None), f"{where}: {str(e)[:120]}"))
            obj = None
        if obj is not None and not isinstance(obj, dict):
            self.drops.append(Drop(RECORDS, "bad_json", self._key(line, None), f"{where}: not a JSON object"))
            obj = None
        if obj is not None:
            self._row(line, obj, where)
        if len(self.captions) + len(self.drops) >= BATCH_ROWS:
            yield from self.flush()

    def _row(self, line: int, obj: dict[str, Any], where: str) -> None:
        text = self.text
        caption = obj.get(text)
        if self.key_field is not None:
            k = obj.get(self.key_field)
            if not isinstance(k, (str, int)) or isinstance(k, bool) or not str(k):
                self.drops.append(
                    Drop(RECORDS, "bad_key", f"{self.prefix}{line:09d}", f"{where}: {self.key_field}={k!r}")
                )
                return
        if caption is not None and not isinstance(caption, str):
            self.drops.append(
                Drop(
                    RECORDS,
                    "caption_not_text",
                    self._key(line, obj),
                    f"{where}: {text} is {type(caption).__name__}",
                )
            )
            return
        self.captions.append(caption)
        self.index.append(line)
        if self.keys is not None:
            self.keys.append(self._key(line, obj))
        url = obj.get(self.url)
        self.urls.append(url if isinstance(url, str) else json_value(url))
        for column, name in zip(self.kept, self.c.keep, strict=True):
            column.append(json_value(obj.get(name)))

    def flush(self) -> Iterator[Batch]:
        if not self.captions and not self.drops:
            return
        arrays = [pa.array(self.urls, pa.string()), *(pa.array(k, pa.string()) for k in self.kept)]
        table = pa.Table.from_arrays(arrays, schema=self.c.schema)
        yield Batch(
            self.part,
            self.captions,
            table,
            keys=self.keys,
            key_prefix=self.prefix,
            index=self.index,
            drops=self.drops,
        )
        self._reset()
