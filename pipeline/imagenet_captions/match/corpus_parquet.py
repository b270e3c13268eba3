"""``parquet:`` caption metadata as img2dataset, LAION, DataComp and CC12M ship it.

The plan reads only each file's footer: its rows, its row groups and its columns, so a file without
the caption column or with a corrupt footer is one line before anything is written. A part is a
range of row groups of one file; a worker streams it in record batches of :data:`BATCH_ROWS` rows,
reading only the columns the output needs, with Arrow's buffered stream so a huge row group does
not land in memory whole.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from imagenet_captions import fsio
from imagenet_captions.errors import UsageError
from imagenet_captions.match.corpora import (
    BATCH_ROWS,
    TEXT_COLUMNS,
    URL_COLUMNS,
    Batch,
    CorpusFile,
    ReadOptions,
    check_keep_columns,
    check_stems,
    list_files,
    sanitize_stem,
)
from imagenet_captions.outcomes import RECORDS, Drop

#: Bytes Arrow reads a column chunk in (its buffered stream): memory per column, whatever the row group.
READ_BUFFER = 1 << 20
#: Part = (file index, first row group, end row group, index of the part's first row in the file).
Part = tuple[int, int, int, int]


def _is_text(t: pa.DataType) -> bool:
    if pa.types.is_dictionary(t):
        return _is_text(t.value_type)
    return (
        pa.types.is_string(t)
        or pa.types.is_large_string(t)
        or pa.types.is_binary(t)
        or pa.types.is_large_binary(t)
        or pa.types.is_null(t)
        or str(t) in ("string_view", "binary_view")
    )


def _is_binary(t: pa.DataType) -> bool:
    if pa.types.is_dictionary(t):
        return _is_binary(t.value_type)
    return pa.types.is_binary(t) or pa.types.is_large_binary(t) or str(t) == "binary_view"


def _open(path: str, buffered: bool = False) -> pq.ParquetFile:
    kwargs: dict[str, Any] = {"buffer_size": READ_BUFFER, "pre_buffer": False} if buffered else {}
    return pq.ParquetFile(fsio.open_read(path), **kwargs)


class ParquetCorpus:
    """Parquet files, checked by their footers (see the module docstring)."""

    kind = "parquet"
    labelled = False
    with_images = False
    hashes_in_read = False

    def __init__(self, path: str, options: ReadOptions):
        self.options = options
        files = list_files(path, "parquet")
        metas: list[pq.FileMetaData] = []
        schemas: list[pa.Schema] = []
        for f in files:
            try:
                meta = _open(f.path).metadata
                schemas.append(meta.schema.to_arrow_schema())
            except Exception as e:  # a damaged footer is the corpus's problem, named in one line
                raise UsageError(f"--corpus: {f.path} is not readable Parquet: {e}") from None
            metas.append(meta)
        first = schemas[0]
        self.text_column = options.text_column or next((c for c in TEXT_COLUMNS if c in first.names), None)
        if self.text_column is None:
            raise UsageError(
                f"--corpus: {files[0].path} has none of the caption columns {', '.join(TEXT_COLUMNS)} "
                f"(its columns: {', '.join(first.names[:20])}); name one with --text-column"
            )
        self.url_column = options.url_column or next((c for c in URL_COLUMNS if c in first.names), None)
        self.key_column = options.key_column
        self.keep = tuple(options.keep_columns)
        check_keep_columns(self.keep, also=(self.text_column, self.url_column))
        for f, schema in zip(files, schemas, strict=True):
            self._check(f.path, schema, first)
        if self.key_column is None:
            check_stems(files, "parquet")
        self.files = tuple(
            CorpusFile(f.path, f.size, m.num_rows, f.mtime_ns) for f, m in zip(files, metas, strict=True)
        )
        self._groups = [[m.row_group(i).num_rows for i in range(m.num_row_groups)] for m in metas]
        self._binary = [_is_binary(s.field(self.text_column).type) for s in schemas]
        fields = [pa.field("url", pa.string())] if self.url_column else []
        fields += [_plain(first.field(c)) for c in self.keep]
        self.schema = pa.schema(fields)

    def _check(self, path: str, schema: pa.Schema, first: pa.Schema) -> None:
        names = schema.names
        text = self.text_column
        if text not in names:
            raise UsageError(
                f"--corpus: {path} has no caption column {text!r} (its columns: {', '.join(names[:20])})"
            )
        if not _is_text(schema.field(text).type):
            raise UsageError(
                f"--corpus: the caption column {text!r} of {path} is {schema.field(text).type}, not text"
            )
        if self.options.url_column and self.url_column not in names:
            raise UsageError(f"--url-column: {path} has no column {self.url_column!r}")
        if self.key_column is not None and self.key_column not in names:
            raise UsageError(f"--key-column: {path} has no column {self.key_column!r}")
        for c in self.keep:
            if c not in names:
                raise UsageError(f"--keep-column: {path} has no column {c!r}")
            if schema.field(c).type != first.field(c).type:
                raise UsageError(
                    f"--keep-column {c}: {path} has it as {schema.field(c).type}, the first file as "
                    f"{first.field(c).type}"
                )

    def rows(self) -> int:
        return sum(f.rows or 0 for f in self.files)

    def parts(self, n: int, max_rows: int = 2_000_000) -> list[Part]:
        """Runs of whole row groups of one file, about ``rows / n`` rows each (at most ``max_rows``,
        so a worker lost costs little to redo; at least one row group)."""
        total = self.rows()
        per_part = max(1, min(max_rows, -(-total // max(1, n))))
        parts: list[Part] = []
        for fi, groups in enumerate(self._groups):
            start, first_row, rows = 0, 0, 0
            for gi, count in enumerate(groups):
                rows += count
                if rows >= per_part:
                    parts.append((fi, start, gi + 1, first_row))
                    start, first_row, rows = gi + 1, first_row + rows, 0
            if start < len(groups) or not groups:
                parts.append((fi, start, len(groups), first_row))
        return parts

    def read(self, part: Part) -> Iterator[Batch]:
        fi, start, stop, row = part
        path = self.files[fi].path
        if start >= stop:
            return
        columns = list(
            dict.fromkeys([self.text_column, *filter(None, [self.url_column, self.key_column]), *self.keep])
        )
        pf = _open(path, buffered=True)
        have = set(pf.schema_arrow.names)
        columns = [c for c in columns if c in have]
        prefix = sanitize_stem(path) + "_"
        for rb in pf.iter_batches(
            batch_size=BATCH_ROWS, row_groups=range(start, stop), columns=columns, use_threads=False
        ):
            yield self._batch(fi, rb, row, prefix, path)
            row += rb.num_rows

    def _batch(self, fi: int, rb: pa.RecordBatch, first_row: int, prefix: str, path: str) -> Batch:
        n = rb.num_rows
        captions: list[Any] = rb.column(self.text_column).to_pylist()
        keep_rows: list[int] | None = None
        drops: list[Drop] = []
        keys: list[str] | None = None  # "" for a missing key: a bad_key below
        if self.key_column is not None:
            keys = ["" if k is None else str(k) for k in rb.column(self.key_column).to_pylist()]
        if self._binary[fi]:
            captions, keep_rows, drops = _decode(captions, keys, prefix, first_row, path)
        if keys is not None:
            rows = keep_rows if keep_rows is not None else range(n)
            bad = {i for i in rows if not keys[i]}
            if bad:
                name = fsio.basename(path)
                drops += [
                    Drop(RECORDS, "bad_key", f"{name} row {first_row + i}", "no key") for i in sorted(bad)
                ]
                keep_rows = [i for i in rows if i not in bad]
        columns = []
        if self.url_column:
            if self.url_column in rb.schema.names:
                columns.append(rb.column(self.url_column).cast(pa.string()))
            else:
                columns.append(pa.nulls(n, pa.string()))
        columns += [rb.column(c).cast(self.schema.field(c).type) for c in self.keep]
        table = pa.Table.from_arrays(columns, schema=self.schema) if columns else _empty(n)
        if keep_rows is None:
            return Batch(fi, captions, table, first_row, keys, prefix)
        table = table.take(pa.array(keep_rows, pa.int64())) if table.num_columns else _empty(len(keep_rows))
        return Batch(
            fi,
            [captions[i] for i in keep_rows],
            table,
            first_row,
            None if keys is None else [keys[i] for i in keep_rows],
            prefix,
            index=[first_row + i for i in keep_rows],
            drops=drops,
        )


def _plain(f: pa.Field) -> pa.Field:
    """A kept column as the output stores it: a dictionary-encoded one as its values (batches of
    different parts have different dictionaries, and one shard's rows come from many parts)."""
    return f.with_type(f.type.value_type) if pa.types.is_dictionary(f.type) else f


def _empty(n: int) -> pa.Table:
    """A table of ``n`` rows and no column (what a corpus without URL or kept columns carries)."""
    return pa.table({"_": pa.nulls(n)}).select([])


def _decode(
    values: list[Any], keys: list[str] | None, prefix: str, first_row: int, path: str
) -> tuple[list[str | None], list[int], list[Drop]]:
    """A binary caption column as text, row for row (a row that is not UTF-8 is None there), the rows
    that decoded, and a ``caption_not_text`` Drop for each that did not."""
    captions: list[str | None] = []
    rows: list[int] = []
    drops: list[Drop] = []
    for i, v in enumerate(values):
        try:
            captions.append(None if v is None else v.decode("utf-8"))
            rows.append(i)
        except UnicodeDecodeError as e:
            captions.append(None)
            key = (keys[i] if keys is not None else None) or f"{prefix}{first_row + i:09d}"
            drops.append(
                Drop(RECORDS, "caption_not_text", key, f"{path}: not UTF-8 ({e.reason} at byte {e.start})")
            )
    return captions, rows, drops
