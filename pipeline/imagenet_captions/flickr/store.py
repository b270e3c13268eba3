"""The response store: a write-ahead journal of answers, compacted into Parquet.

Layout of ``<out>/responses/``::

    journal-<run>-<seq>.jsonl    the write-ahead journal (JSON lines), one segment at a time
    part-<run>-<seq>.parquet     a compacted segment (written to a temporary name, then renamed)
    .lock                        held (flock) by the one harvest writing here

Why a journal first: an answer costs a call out of a small hourly quota, so it must survive a
``kill -9``. Each answer is appended to the journal and the file is fsync'd in small batches
(every ``fsync_every`` answers or ``fsync_interval`` seconds, whichever comes first: 64 and 0.25 s
by default); an answer counts as done only once its batch is on disk, so a crash loses at most the
calls in flight and the last unsynced batch, which a rerun asks again. A torn last line (the crash
came mid-write) is ignored. Parquet files are written whole, never appended to.

Versions: every answer is kept with its fetch time (``--refresh`` adds newer versions). Duplicates
of the same photo within one run (a Beam retry of a bundle) vanish: per ``(photo_id, run_id)``
the newest row wins, at compaction and again when reading. The *effective* answer of a photo as of
a date is its newest final answer (``ok``, ``not_found``, or ``failed`` with a Flickr code) fetched
at or before that date; a gave-up failure (``failed`` with no code) counts only when the photo has
no final answer.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import fcntl
import json
import logging
import os
import re
import threading
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from imagenet_captions import fsio
from imagenet_captions.errors import UsageError

log = logging.getLogger(__name__)

RESPONSES = "responses"
STATUSES = ("ok", "not_found", "failed")
_SEGMENT = re.compile(r"^(journal|part)-(?P<run>[0-9A-Za-z_.-]+?)-(?P<seq>\d{5})\.(jsonl|parquet)$")

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


# -- writing ------------------------------------------------------------------------------------
class JournalWriter:
    """Appends answers to the journal from any thread; :meth:`append` returns a future that is
    done once the answer is fsync'd. A background thread writes in batches: ``fsync_every``
    answers or ``fsync_interval`` seconds, whichever first. Every ``rotate_every`` answers the
    segment is closed and compacted to Parquet, so a days-long harvest keeps a short journal."""

    def __init__(
        self,
        directory: str,
        run_id: str,
        fsync_every: int = 64,
        fsync_interval: float = 0.25,
        rotate_every: int = 20_000,
    ):
        self.directory = directory
        self.run_id = run_id
        self.fsync_every = fsync_every
        self.fsync_interval = fsync_interval
        self.rotate_every = rotate_every
        os.makedirs(directory, exist_ok=True)
        self._seq = _next_seq(directory, run_id)
        self._file = self._open_segment()
        self._lines = 0
        self._pending: list[tuple[str, concurrent.futures.Future]] = []
        self._cond = threading.Condition()
        self._closing = False
        self._error: BaseException | None = None
        self.synced = 0
        self._thread = threading.Thread(target=self._run, name="journal", daemon=True)
        self._thread.start()

    def _segment_path(self) -> str:
        return os.path.join(self.directory, f"journal-{self.run_id}-{self._seq:05d}.jsonl")

    def _open_segment(self):  # noqa: ANN202 - a binary file object
        f = open(self._segment_path(), "ab")  # noqa: SIM115 - open for the segment's lifetime
        fsio.fsync_dir(self.directory)
        return f

    def append(self, answer: StoredAnswer) -> concurrent.futures.Future:
        line = json.dumps(asdict(answer), ensure_ascii=False, separators=(",", ":")) + "\n"
        fut: concurrent.futures.Future = concurrent.futures.Future()
        with self._cond:
            if self._error is not None:
                raise RuntimeError(f"the journal failed: {self._error}")
            if self._closing:
                raise RuntimeError("the journal is closed")
            self._pending.append((line, fut))
            if len(self._pending) >= self.fsync_every:
                self._cond.notify()
        return fut

    def _run(self) -> None:
        while True:
            with self._cond:
                if not self._pending and not self._closing:
                    self._cond.wait(self.fsync_interval)
                if not self._pending and self._closing:
                    break
                batch, self._pending = self._pending, []
            if not batch:
                continue
            try:
                self._file.write("".join(line for line, _ in batch).encode("utf-8"))
                self._file.flush()
                os.fsync(self._file.fileno())
            except BaseException as e:  # disk full, ...: every waiter learns it
                with self._cond:
                    self._error = e
                for _, fut in batch:
                    _resolve(fut, e)
                continue
            self.synced += len(batch)
            self._lines += len(batch)
            for _, fut in batch:
                _resolve(fut)
            if self._lines >= self.rotate_every:
                self._rotate()
        self._file.close()
        compact_journal(self._segment_path())

    def _rotate(self) -> None:
        self._file.close()
        compact_journal(self._segment_path())
        self._seq += 1
        self._lines = 0
        self._file = self._open_segment()

    def close(self) -> None:
        """Write what is pending, close and compact the open segment."""
        with self._cond:
            self._closing = True
            self._cond.notify()
        self._thread.join()


def _resolve(fut: concurrent.futures.Future, error: BaseException | None = None) -> None:
    """Complete a waiter's future; a waiter that was cancelled meanwhile (its task stopped) is
    fine: its line is written all the same, and the journal thread must not die of it."""
    try:
        if error is None:
            fut.set_result(None)
        else:
            fut.set_exception(error)
    except concurrent.futures.InvalidStateError:
        pass


def _next_seq(directory: str, run_id: str) -> int:
    seqs = [
        int(m.group("seq"))
        for name in os.listdir(directory)
        if (m := _SEGMENT.match(name)) and m.group("run") == run_id
    ]
    return max(seqs, default=-1) + 1


def _read_journal(path: str) -> Iterator[StoredAnswer]:
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


def _dedup(answers: Iterable[StoredAnswer]) -> list[StoredAnswer]:
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


def compact_journal(journal_path: str) -> str | None:
    """Compact one closed journal segment into its Parquet part, then delete the segment.

    Idempotent: if the part already exists (a crash came between the rename and the delete), the
    segment is just deleted. Returns the part's path (None for an empty segment)."""
    directory, name = os.path.split(journal_path)
    m = _SEGMENT.match(name)
    if not m or not name.startswith("journal-"):
        raise ValueError(f"not a journal segment: {journal_path}")
    part = os.path.join(directory, f"part-{m.group('run')}-{m.group('seq')}.parquet")
    if not os.path.exists(part):
        rows = _dedup(_read_journal(journal_path))
        if rows:
            fsio.write_parquet_atomic(to_table(rows), part, compression="zstd")
        else:
            part = None  # type: ignore[assignment]
    os.remove(journal_path)
    fsio.fsync_dir(directory)
    return part


def recover(directory: str) -> int:
    """Compact every journal segment left by a crashed run; returns how many there were."""
    if not os.path.isdir(directory):
        return 0
    n = 0
    for name in sorted(os.listdir(directory)):
        if name.startswith("journal-") and _SEGMENT.match(name):
            compact_journal(os.path.join(directory, name))
            n += 1
        elif ".parquet.tmp-" in name or (".parquet." in name and fsio.is_temp(name)):
            # A part whose rename never happened (``.tmp-<pid>`` is the name older versions used).
            os.remove(os.path.join(directory, name))
    return n


@contextlib.contextmanager
def store_lock(directory: str) -> Iterator[None]:
    """One harvest at a time per store (two would both ask for the same photos)."""
    os.makedirs(directory, exist_ok=True)
    fd = os.open(os.path.join(directory, ".lock"), os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise UsageError(f"another harvest is writing to {directory}") from None
        yield
    finally:
        os.close(fd)


# -- reading ------------------------------------------------------------------------------------
def resolve(directory: str) -> str:
    """A harvest's out dir or its ``responses/`` folder: both name the store."""
    inner = os.path.join(directory, RESPONSES)
    return inner if os.path.isdir(inner) else directory


def _segments(directory: str) -> list[str]:
    directory = resolve(directory)
    if not os.path.isdir(directory):
        raise UsageError(f"no response store at {directory}")
    return [os.path.join(directory, n) for n in sorted(os.listdir(directory)) if _SEGMENT.match(n)]


def _iter_segment(path: str, with_raw: bool) -> Iterator[StoredAnswer]:
    """The rows of one part or journal; without ``raw`` when not asked for (it is most of the
    bytes: 450k answers are over a gigabyte of JSON text), streamed in record batches."""
    if path.endswith(".jsonl"):
        for a in _read_journal(path):
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


def read_answers(directory: str, with_raw: bool = True) -> list[StoredAnswer]:
    """Every stored answer version (parts and not-yet-compacted journals), deduplicated."""
    answers: list[StoredAnswer] = []
    for path in _segments(directory):
        answers.extend(_iter_segment(path, with_raw))
    return _dedup(answers)


def read_table(directory: str) -> pa.Table:
    """The whole store as one Arrow table (deduplicated, sorted)."""
    return to_table(read_answers(directory))


def _as_of_seconds(as_of: datetime | None) -> float:
    if as_of is None:
        return float("inf")
    if as_of.tzinfo is None:
        as_of = as_of.replace(tzinfo=timezone.utc)
    return as_of.timestamp()


def effective_answers(
    directory: str, as_of: datetime | None = None, with_raw: bool = True
) -> dict[int, StoredAnswer]:
    """Per photo: the answer that holds as of ``as_of`` (see the module docstring), with the image
    ids of all its versions merged (the URL list may change between runs)."""
    limit = _as_of_seconds(as_of)
    best: dict[int, StoredAnswer] = {}
    image_ids: dict[int, set[str]] = {}
    for a in read_answers(directory, with_raw):
        image_ids.setdefault(a.photo_id, set()).update(a.image_ids)
        if a.fetched_at > limit:
            continue
        cur = best.get(a.photo_id)
        if cur is None or (a.final, a.fetched_at) >= (cur.final, cur.fetched_at):
            best[a.photo_id] = a
    for pid, a in best.items():
        a.image_ids = sorted(image_ids[pid])
    return best


def answered_photo_ids(directory: str, fresh_after: float | None = None) -> set[int]:
    """Photos a harvest must not ask again: they have a final answer (fetched after
    ``fresh_after``, seconds since the epoch, when refreshing)."""
    if not os.path.isdir(directory):
        return set()
    done: set[int] = set()
    for a in read_answers(directory, with_raw=False):
        if a.final and (fresh_after is None or a.fetched_at >= fresh_after):
            done.add(a.photo_id)
    return done


def release_record(image_id: str, answer: StoredAnswer) -> dict[str, Any]:
    """The release-format record of one image whose photo answered ``ok`` (for ``harvest --export``)."""
    return {
        "filename": f"{image_id}.JPEG",
        "wnid": image_id.split("_", 1)[0],
        **photo_fields(answer.raw),
        "photo_id": answer.photo_id,
    }


def photo_fields(raw: str | None) -> dict[str, Any]:
    """Title, tags (raw, as typed), description (HTML as Flickr gives it), license and owner of a
    stored ``flickr.photos.getInfo`` answer: the one reading of Flickr's JSON, for the export and
    for the build's response-store source."""
    photo = json.loads(raw or "{}")["photo"]
    tags = (photo.get("tags") or {}).get("tag") or []
    return {
        "title": _content(photo.get("title")),
        "tags": [str(t.get("raw", t.get("_content", ""))) for t in tags if isinstance(t, dict)],
        "description": _content(photo.get("description")),
        "license": None if photo.get("license") is None else str(photo.get("license")),
        "owner": (photo.get("owner") or {}).get("nsid"),
    }


def _content(value: Any) -> str:
    if isinstance(value, dict):
        return str(value.get("_content", ""))
    return "" if value is None else str(value)


def iter_stored_rows(responses_dir: str, with_raw: bool) -> Iterator[StoredAnswer]:
    """Every stored row of every segment (parts and journals), not deduplicated, in file order."""
    for path in _segments(responses_dir):
        yield from _iter_segment(path, with_raw)


def iter_release_records(responses_dir: str, as_of: datetime | None = None) -> Iterator[dict]:
    """One release-format record per ImageNet image id whose photo's effective answer is ``ok``,
    sorted by image id. Fields: filename, wnid, title, tags (raw, as typed), description (HTML as
    Flickr gives it), photo_id, license, owner. Images whose photo is not_found/failed are
    counted by :func:`store_summary` and listed by :func:`iter_image_status`."""
    # Two passes, so that only the winning answers' JSON is ever held: choose without raw text,
    # then stream the segments again and parse just the chosen rows.
    answers = effective_answers(responses_dir, as_of, with_raw=False)
    chosen = {(a.photo_id, a.run_id, a.fetched_at): a for a in answers.values() if a.status == "ok"}
    records: list[dict] = []
    for path in _segments(responses_dir):
        for row in _iter_segment(path, with_raw=True):
            a = chosen.pop((row.photo_id, row.run_id, row.fetched_at), None)
            if a is not None:
                a.raw = row.raw
                records.extend(release_record(iid, a) for iid in a.image_ids)
                a.raw = None
    records.sort(key=lambda r: (r["filename"], r["photo_id"]))
    yield from records


def iter_image_status(responses_dir: str, as_of: datetime | None = None) -> Iterator[dict]:
    """Every image id in the store with its photo's effective status: ``{"image_id", "photo_id",
    "status", "code", "error"}``, sorted by image id (for accounting in a build report)."""
    answers = effective_answers(responses_dir, as_of, with_raw=False)
    rows = sorted(
        ((iid, a) for a in answers.values() for iid in a.image_ids),
        key=lambda pair: (pair[0], pair[1].photo_id),
    )
    for image_id, a in rows:
        yield {
            "image_id": image_id,
            "photo_id": a.photo_id,
            "status": a.status,
            "code": a.code,
            "error": a.error,
        }


def store_summary(responses_dir: str, as_of: datetime | None = None) -> dict[str, Any]:
    """Counts for a build report: image ids and photos by effective status as of ``as_of``
    (``failed`` split into ``failed`` with a Flickr code and ``gave_up``), and answer versions."""
    answers = effective_answers(responses_dir, as_of, with_raw=False)
    images: Counter = Counter()
    photos: Counter = Counter()
    for a in answers.values():
        status = a.status if a.final else "gave_up"
        photos[status] += 1
        images[status] += len(a.image_ids)
    return {
        "as_of": None if as_of is None else as_of.isoformat(),
        "images": {s: images.get(s, 0) for s in (*STATUSES, "gave_up")},
        "photos": {s: photos.get(s, 0) for s in (*STATUSES, "gave_up")},
        "image_total": sum(images.values()),
        "photo_total": sum(photos.values()),
    }
