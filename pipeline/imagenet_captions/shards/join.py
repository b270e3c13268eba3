"""The join of records with their images, inside each shard's writer: one sample per key, or Drops.

Why here and not in a CoGroupByKey: a key's shard is a function of the key alone, so every record,
image reference and dropped key of one key meets in one shard's group anyway. Joining inside the
shard's writer saves the pipeline a shuffle and an element per key (docs/shards.md has the cost).
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

from imagenet_captions.outcomes import IMAGES, RECORDS, Drop
from imagenet_captions.records import ImageRef, Published, Record, Sample

#: Tags of what reaches a shard's writer: a cleaned record (a :class:`Record`, or a text release's
#: :class:`Published` record with the image its publisher read), an image reference, a key whose
#: record was dropped before the writer (its image is then ``record_dropped``, not ``no_record``),
#: and the seed every planned shard gets, so that a shard which receives nothing is still written.
RECORD, IMAGE, DROPPED, SEED = "r", "i", "d", "s"

#: What a shard's writer receives: ``(tag, key, value)``; the value is the tag's (None for a drop or
#: a seed).
ShardItem = tuple[str, str, Any]


def _content(value: Record | Published) -> str:
    """What a record is compared by: its fields (canonical JSON), then the image its publisher read."""
    if isinstance(value, Published):
        return f"{_json(value.record)}\n{json.dumps([value.image.sha256, value.image.size])}"
    return _json(value)


def _json(record: Record) -> str:
    return json.dumps(record, sort_keys=True, ensure_ascii=False)


def choose_record(records: list[Record | Published]) -> tuple[Record | Published, int]:
    """One record of several with the same key, chosen by content (not arrival order), and how many lost."""
    if len(records) == 1:
        return records[0], 0
    kept = min(records, key=_content)
    return kept, len(records) - 1


def join_shard(items: Iterable[ShardItem], with_images: bool) -> tuple[list[Sample], list[Drop]]:
    """Join one shard's tagged items by key: ``(samples, drops)``.

    Each key gets one sample, or named Drops: ``duplicate`` for the records that lost to another
    with the same key (chosen by content), ``duplicate_image``, ``no_image``, ``no_record`` and
    ``record_dropped``. Without images every record is a sample."""
    records: dict[str, list[Record | Published]] = {}
    refs: dict[str, list[ImageRef]] = {}
    dropped: set[str] = set()
    for tag, key, value in items:
        if tag == RECORD:
            records.setdefault(key, []).append(value)
        elif tag == IMAGE:
            refs.setdefault(key, []).append(value)
        elif tag == DROPPED:
            dropped.add(key)
    samples: list[Sample] = []
    drops: list[Drop] = []
    for key, group in records.items():
        chosen, lost = choose_record(group)
        drops += [Drop(RECORDS, "duplicate", key)] * lost
        record, expected = (chosen.record, chosen.image) if isinstance(chosen, Published) else (chosen, None)
        if not with_images:
            samples.append(Sample(record, None, expected))
            continue
        found = refs.pop(key, None)
        if not found:
            drops.append(Drop(RECORDS, "no_image", key))
            continue
        drops += _extra_images(key, found)
        samples.append(Sample(record, found[0], expected))
    for key, found in refs.items():  # images without a record
        drops += _extra_images(key, found)
        drops.append(Drop(IMAGES, "record_dropped" if key in dropped else "no_record", key))
    return samples, drops


def _extra_images(key: str, found: list[ImageRef]) -> list[Drop]:
    """Sort a key's images by path (the first wins) and name the others."""
    found.sort(key=lambda r: r["path"])
    return [Drop(IMAGES, "duplicate_image", key, extra["path"]) for extra in found[1:]]
