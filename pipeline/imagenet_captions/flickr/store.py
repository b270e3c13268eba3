"""The response store: a write-ahead journal of answers, compacted into Parquet.

Layout of ``<out>/responses/``::

    journal-<run>-<seq>.jsonl    the write-ahead journal (JSON lines), one segment at a time
    part-<run>-<seq>.parquet     a compacted segment (written to a temporary name, then renamed)
    .lock                        held (flock) by the one harvest writing here

The writing side (journal, compaction, crash recovery, the lock) is :mod:`.journal`, and the
files' names and row type are :mod:`.segments`; this module is the reading side, and it re-exports
the names of both that callers know as ``store.X``, so ``store`` stays the one name for the store.
A torn last journal line (a crash came mid-write) is ignored when reading.

Versions: every answer is kept with its fetch time (``--refresh`` adds newer versions). Duplicates
of the same photo within one run (a Beam retry of a bundle) vanish: per ``(photo_id, run_id)``
the newest row wins, at compaction and again when reading. The *effective* answer of a photo as of
a date is its newest final answer (``ok``, ``not_found``, or ``failed`` with a Flickr code) fetched
at or before that date; a gave-up failure (``failed`` with no code) counts only when the photo has
no final answer.
"""

from __future__ import annotations

import json
import os
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from datetime import datetime, timezone
from typing import Any

import pyarrow as pa

from imagenet_captions.flickr.journal import JournalWriter, compact_journal, recover, store_lock
from imagenet_captions.flickr.scrub import scrub_value
from imagenet_captions.flickr.segments import (
    RESPONSES,
    SCHEMA,
    STATUSES,
    StoredAnswer,
    dedup,
    iter_segment,
    resolve,
    responses_dir,
    segments,
    to_table,
)

__all__ = [
    "RESPONSES",
    "SCHEMA",
    "STATUSES",
    "JournalWriter",
    "StoredAnswer",
    "answered_photo_ids",
    "compact_journal",
    "effective_answers",
    "iter_image_status",
    "iter_release_records",
    "iter_stored_rows",
    "photo_fields",
    "read_answers",
    "read_table",
    "recover",
    "release_record",
    "resolve",
    "responses_dir",
    "store_lock",
    "store_summary",
    "to_table",
]


def read_answers(directory: str, with_raw: bool = True) -> list[StoredAnswer]:
    """Every stored answer version (parts and not-yet-compacted journals), deduplicated."""
    answers: list[StoredAnswer] = []
    for path in segments(directory):
        answers.extend(iter_segment(path, with_raw))
    return dedup(answers)


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
    for path in segments(responses_dir):
        yield from iter_segment(path, with_raw)


def raw_of(responses_dir: str, answers: Iterable[StoredAnswer]) -> dict[tuple[int, str, float], str | None]:
    """The stored JSON of just these answers, by ``(photo_id, run_id, fetched_at)``, in one pass.

    The second of two passes: answers are chosen without their raw text (most of a store's bytes),
    then only the chosen rows' JSON is read, so a reader never holds every answer's JSON."""
    wanted = {(a.photo_id, a.run_id, a.fetched_at) for a in answers}
    found: dict[tuple[int, str, float], str | None] = {}
    for row in iter_stored_rows(responses_dir, with_raw=True):
        k = (row.photo_id, row.run_id, row.fetched_at)
        if k in wanted:
            found[k] = row.raw
    return found


def iter_release_records(
    responses_dir: str, as_of: datetime | None = None, redact: Callable[[str], str] | None = None
) -> Iterator[dict]:
    """One release-format record per ImageNet image id whose photo's effective answer is ``ok``,
    sorted by image id. Fields: filename, wnid, title, tags (raw, as typed), description (HTML as
    Flickr gives it), photo_id, license, owner. Images whose photo is not_found/failed are
    counted by :func:`store_summary` and listed by :func:`iter_image_status`. With ``redact``
    (the harvest's keys), every text field is scrubbed of them as :mod:`.scrub` does when an
    answer is stored: for a store written before answers were scrubbed."""
    answers = [a for a in effective_answers(responses_dir, as_of, with_raw=False).values() if a.status == "ok"]
    raw = raw_of(responses_dir, answers)
    records: list[dict] = []
    for a in answers:
        a.raw = raw[(a.photo_id, a.run_id, a.fetched_at)]
        made = [release_record(iid, a) for iid in a.image_ids]
        records.extend(made if redact is None else [scrub_value(r, redact) for r in made])
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
