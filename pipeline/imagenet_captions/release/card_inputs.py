"""What the dataset card and the Croissant file describe, read from the published Parquet files.

Counts (classes, licences, languages, empty fields) and the columns with their documentation come
from the files being published, not from the build's report, so the card states what the release
holds. One file at a time, a few columns each: memory stays flat however large the release.
"""

from __future__ import annotations

import collections

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from imagenet_captions.classes import wnids
from imagenet_captions.release import card
from imagenet_captions.schema import schema_spec


def collect_stats(parquet_paths: list[str]) -> card.ReleaseStats:
    """The card's counts, one Parquet file at a time (only the few columns they need stay in memory)."""
    per_class: collections.Counter[str] = collections.Counter()
    licenses: collections.Counter[str] = collections.Counter()
    languages: collections.Counter[str] = collections.Counter()
    empty: collections.Counter[str] = collections.Counter()
    records = with_photo_id = 0
    for path in parquet_paths:
        t = pq.read_table(
            path, columns=["wnid", "license", "lang", "title", "description", "tags", "photo_id"]
        )
        records += t.num_rows
        for column, counter in (("wnid", per_class), ("license", licenses), ("lang", languages)):
            for item in pc.value_counts(t.column(column)).to_pylist():
                if item["values"] is not None:
                    counter[item["values"]] += item["counts"]
        licenses["unknown"] += t.column("license").null_count
        for field in ("title", "description"):
            empty[field] += pc.sum(pc.equal(pc.utf8_length(t.column(field)), 0)).as_py() or 0
        empty["tags"] += pc.sum(pc.equal(pc.list_value_length(t.column("tags")), 0)).as_py() or 0
        with_photo_id += t.num_rows - t.column("photo_id").null_count
    if not licenses["unknown"]:
        del licenses["unknown"]
    all_classes = {w: per_class.get(w, 0) for w in wnids()}
    all_classes |= {w: n for w, n in per_class.items() if w not in all_classes}
    return card.ReleaseStats(
        records, all_classes, dict(licenses), dict(languages), dict(empty), with_photo_id
    )


def field_docs(schema: pa.Schema) -> list[card.FieldDoc]:
    """The published columns (the Parquet files' own schema) with the record schema's types and docs."""
    spec = {f["name"]: f for f in schema_spec()["fields"]}
    docs = []
    for f in schema:
        s = spec.get(f.name, {})
        doc = (f.metadata or {}).get(b"doc", b"").decode() or s.get("doc", "")
        docs.append(card.FieldDoc(f.name, s.get("type", str(f.type)), f.nullable, doc))
    return docs
