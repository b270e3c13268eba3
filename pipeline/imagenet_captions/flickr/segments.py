"""The response store's files: their names, the row type, and reading one file.

A store folder holds journal segments (``journal-<run>-<seq>.jsonl``, JSON lines, appended) and
compacted parts (``part-<run>-<seq>.parquet``, written whole); both hold :class:`StoredAnswer`
rows. This module is what the writing side (:mod:`.journal`) and the reading side (:mod:`.store`)
agree on; the store's rules (versions, effective answers) are in :mod:`.store`'s docstring.
"""

from __future__ import annotations

import json
import logging
import os
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime, timezone

import pyarrow as pa
import pyarrow.parquet as pq

from imagenet_captions.errors import UsageError

log = logging.getLogger(__name__)

RESPONSES = "responses"
STATUSES = ("ok", "not_found", "failed")
#: The name of a journal segment or a compacted part: its run and its sequence number.
SEGMENT = re.compile(r"^(journal|part)-(?P<run>[0-9A-Za-z_.-]+?)-(?P<seq>\d{5})\.(jsonl|parquet)$")

SCHEMA = pa.schema(
    [
        pa.field("photo_id", pa.int64(), nullable=False),
        pa.field("image_ids", pa.list_(pa.string()), nullable=False),
        pa.field("status", pa.string(), nullable=False),
        pa.field("code", pa.int32()),
        pa.field("error", pa.string()),
        pa.field("fetched_at", pa.timestamp("us", tz="UTC"), nullable=False),
        pa.field("attempts", pa.int32()),
        pa.field("run_id", pa.string(), nullable=False),
        pa.field("raw", pa.string()),
    ],
    metadata={"doc": "imagenet-captions harvested flickr.photos.getInfo answers, one row per answer version"},
)


@dataclass
class StoredAnswer:
    """One row of the store (and one line of the journal). ``fetched_at``: seconds since the epoch."""

    photo_id: int
    image_ids: list[str]
    status: str
    code: int | None
    error: str | None
    fetched_at: float
    attempts: int | None
    run_id: str
    raw: str | None

    @property
    def final(self) -> bool:
        return self.status != "failed" or self.code is not None


def responses_dir(out_dir: str) -> str:
    return os.path.join(out_dir, RESPONSES)


def read_journal(path: str) -> Iterator[StoredAnswer]:
    """The answers in a journal segment; a torn last line (crash mid-write) is skipped."""
    with open(path, "rb") as f:
        lines = f.read().split(b"\n")
    for i, line in enumerate(lines):
        if not line.strip():
            continue
        try:
            yield StoredAnswer(**json.loads(line))
        except (ValueError, TypeError):
            if i >= len(lines) - 2:  # the last line, possibly followed by nothing
                log.warning("ignoring a torn last line in %s (a crash mid-write)", path)
                continue
            raise UsageError(f"journal {path} is damaged at line {i + 1}") from None


def dedup(answers: Iterable[StoredAnswer]) -> list[StoredAnswer]:
    """One row per (photo, run): the newest; sorted for byte-stable files."""
    best: dict[tuple[int, str], StoredAnswer] = {}
    for a in answers:
        k = (a.photo_id, a.run_id)
        if k not in best or a.fetched_at >= best[k].fetched_at:
            best[k] = a
    return sorted(best.values(), key=lambda a: (a.photo_id, a.fetched_at, a.run_id))


def to_table(answers: Iterable[StoredAnswer]) -> pa.Table:
    rows = list(answers)
    return pa.table(
        {
            "photo_id": [a.photo_id for a in rows],
            "image_ids": [sorted(a.image_ids) for a in rows],
            "status": [a.status for a in rows],
            "code": [a.code for a in rows],
            "error": [a.error for a in rows],
            "fetched_at": [datetime.fromtimestamp(a.fetched_at, timezone.utc) for a in rows],
            "attempts": [a.attempts for a in rows],
            "run_id": [a.run_id for a in rows],
            "raw": [a.raw for a in rows],
        },
        schema=SCHEMA,
    )


def resolve(directory: str) -> str:
    """A harvest's out dir or its ``responses/`` folder: both name the store."""
    inner = os.path.join(directory, RESPONSES)
    return inner if os.path.isdir(inner) else directory


def segments(directory: str) -> list[str]:
    directory = resolve(directory)
    if not os.path.isdir(directory):
        raise UsageError(f"no response store at {directory}")
    return [os.path.join(directory, n) for n in sorted(os.listdir(directory)) if SEGMENT.match(n)]


def iter_segment(path: str, with_raw: bool) -> Iterator[StoredAnswer]:
    """The rows of one part or journal; without ``raw`` when not asked for (it is most of the
    bytes: 450k answers are over a gigabyte of JSON text), streamed in record batches."""
    if path.endswith(".jsonl"):
        for a in read_journal(path):
            if not with_raw:
                a.raw = None
            yield a
        return
    columns = [n for n in SCHEMA.names if with_raw or n != "raw"]
    try:
        for batch in pq.ParquetFile(path).iter_batches(columns=columns, batch_size=8192):
            for row in batch.to_pylist():
                row["fetched_at"] = row["fetched_at"].timestamp()
                row.setdefault("raw", None)
                yield StoredAnswer(**row)
    except (pa.ArrowInvalid, OSError) as e:
        raise UsageError(f"damaged Parquet file in the response store: {path}: {e}") from None
