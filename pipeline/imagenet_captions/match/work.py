"""``match``'s units of work as plain functions; the Beam graph (``graph.py``) only calls them.

- :func:`match_part`: read one part of the corpus in batches, match each batch, and leave the
  matched rows in the part's spill file (Arrow IPC, one record batch per output shard and flush):
  what crosses the shuffle to a shard's writer is ``(spill file, batch numbers)``, never rows, so
  memory stays flat however large the corpus. With balancing, each class's candidate keys (at
  most its target per part: a row outside a part's own smallest hashes is outside the class's)
  go to that class.
- :func:`select_class`: one class's candidates, kept by the balance order (``balance.select_stream``);
  the kept keys go to their shards.
- :func:`write_one_shard`: a shard's rows from the spill files, sorted by key, wnid and corpus
  position, duplicates and over-quota pairs removed; written (Parquet, and a tar for a webdataset
  corpus) unless the last run recorded the same input digest; its commit recorded.
- :func:`hash_file`: a corpus file's sha256 (for kinds whose reader does not read whole files).

Each yields ``(tag, value)`` pairs (Dask mixes a ParDo's tagged outputs) and one
:class:`MatchTally` at its end: every row read is in exactly one tally's outcomes.
"""

from __future__ import annotations

import dataclasses
import hashlib
import heapq
import json
import logging
import os
import time
from collections import Counter, defaultdict
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from imagenet_captions import fsio, layout, trace
from imagenet_captions.match.balance import select_stream
from imagenet_captions.match.corpora import Batch, FileDigest
from imagenet_captions.match.matcher import Matcher
from imagenet_captions.match.plan import MATCHES_DIR, SHARDS_DIR, MatchPlan
from imagenet_captions.outcomes import MAX_EXAMPLES, RECORDS, Tally
from imagenet_captions.shards import incremental
from imagenet_captions.shards.outputs import naming_output

log = logging.getLogger("imagenet_captions.match")

SHARD, CLASS, TALLY = "shard", "class", "tally"
#: What a shard's writer receives: a seed (every planned shard is written), a spill reference
#: ``(SPILL, path, batch numbers)``, or a class's kept keys ``(KEPT, wnid, keys)``.
SEED, SPILL, KEPT = "seed", "spill", "kept"
#: Matched rows a part holds before it writes them to its spill file, all shards together.
FLUSH_ROWS = 65_536
#: The spill files' compression: none; lz4 cost more CPU in the part and the writer than it saved
#: in bytes (docs/match.md): the matched rows are a small part of a caption corpus.
SPILL_COMPRESSION: str | None = None
#: The corpus file of a row is the high bits of its position, its row within the file the low ones.
POS_SHIFT = 40
#: What the report says of a labelled row (release kinds): whether its caption names its class.
OWN, OTHER, NONE = "own", "other", "none"

Tagged = tuple[str, Any]


@dataclass
class MatchTally:
    """Counts of one unit (or the whole run, once merged). ``rows``: per corpus row, its outcome;
    ``pairs``: per (row, class) match, written, ``over_quota`` or ``duplicate``; ``found`` /
    ``written`` / ``kept``: per class; ``labelled``: per known class, own / other / none;
    ``files``: corpus file index -> (sha256, size); ``shards``: the manifest entries written or
    kept, with ``seconds`` and ``kept``."""

    rows: Tally = field(default_factory=Tally)
    pairs: Counter[str] = field(default_factory=Counter)
    found: Counter[str] = field(default_factory=Counter)
    written: Counter[str] = field(default_factory=Counter)
    kept: Counter[str] = field(default_factory=Counter)
    labelled: dict[str, Counter[str]] = field(default_factory=dict)
    files: dict[int, tuple[str, int]] = field(default_factory=dict)
    shards: list[dict[str, Any]] = field(default_factory=list)

    def merge(self, other: MatchTally) -> MatchTally:
        self.rows.merge(other.rows)
        self.pairs.update(other.pairs)
        self.found.update(other.found)
        self.written.update(other.written)
        self.kept.update(other.kept)
        for wnid, counts in other.labelled.items():
            self.labelled.setdefault(wnid, Counter()).update(counts)
        self.files.update(other.files)
        self.shards.extend(other.shards)
        return self


# ---------------------------------------------------------------------------------------------------
# Matching a part
# ---------------------------------------------------------------------------------------------------


def seeds(plan: MatchPlan) -> list[tuple[int, tuple[str, Any]]]:
    """One seed per planned shard, so a shard that receives nothing is written too (empty)."""
    return [(index, (SEED, None)) for index in range(plan.num_shards)]


def make_matcher(plan: MatchPlan) -> Matcher:
    """The matcher a part uses: the run's rule, but the cleaning done by :func:`texts_of` first (the
    rule's step 1, ``clean_field``, as the matcher would do it), so the output keeps the text the
    rule saw without cleaning a caption twice."""
    return Matcher(plan.vocabulary, dataclasses.replace(plan.config.rule, clean=False))


def texts_of(plan: MatchPlan, captions: list[str | None]) -> list[str | None]:
    """The texts the rule matches: the captions after the project's text cleaning, or as they are."""
    if not plan.config.rule.clean:
        return captions
    from imagenet_captions.text.clean import clean_field

    return [clean_field(c) if c else c for c in captions]


class _Spill:
    """A part's spill file: matched rows gathered until :data:`FLUSH_ROWS`, then written sorted by
    shard, one record batch per shard (the batch numbers are what the shard's writer is told). The
    file is renamed into place whole when the part ends: a retried part writes the same file again."""

    def __init__(self, plan: MatchPlan, index: int):
        self.path = plan.spill_path(index)
        self.schema = plan.schema
        self.tables: list[pa.Table] = []
        self.shards: list[int] = []
        self.rows = 0
        self.batches: dict[int, list[int]] = defaultdict(list)
        self._written = 0
        self._ctx: Any = None
        self._writer: pa.ipc.RecordBatchFileWriter | None = None

    def add(self, table: pa.Table, shards: list[int]) -> None:
        self.tables.append(table)
        self.shards.extend(shards)
        self.rows += table.num_rows
        if self.rows >= FLUSH_ROWS:
            self.flush()

    def _open(self) -> pa.ipc.RecordBatchFileWriter:
        with naming_output(self.path):
            if not fsio.is_remote(self.path):
                fsio.makedirs(os.path.dirname(self.path))
            self._ctx = fsio.atomic_write(self.path)
            sink = self._ctx.__enter__()
            return pa.ipc.new_file(
                sink, self.schema, options=pa.ipc.IpcWriteOptions(compression=SPILL_COMPRESSION)
            )

    def flush(self) -> None:
        if not self.tables:
            return
        if self._writer is None:
            self._writer = self._open()
        shards = pa.array(self.shards, pa.int32())
        order = pc.sort_indices(shards)
        table = pa.concat_tables(self.tables).take(order).combine_chunks()
        runs = pc.run_end_encode(pc.take(shards, order))
        start = 0
        with naming_output(self.path):
            for shard, end in zip(runs.values.to_pylist(), runs.run_ends.to_pylist(), strict=True):
                for batch in table.slice(start, end - start).to_batches():
                    self._writer.write_batch(batch)
                    self.batches[shard].append(self._written)
                    self._written += 1
                start = end
        self.tables, self.shards, self.rows = [], [], 0

    def close(self, failed: bool = False) -> None:
        if self._writer is None:
            return
        if failed:
            self._ctx.__exit__(RuntimeError, RuntimeError("part failed"), None)
            return
        with naming_output(self.path):
            self._writer.close()
            self._ctx.__exit__(None, None, None)


def match_part(plan: MatchPlan, matcher: Matcher, index: int, part: Any) -> Iterator[Tagged]:
    """Match one part of the corpus (see the module docstring)."""
    tally = MatchTally()
    spill = _Spill(plan, index)
    candidates: dict[str, list[str]] | None = defaultdict(list) if plan.targets is not None else None
    try:
        for item in plan.corpus.read(part):
            if isinstance(item, FileDigest):
                tally.files[item.file] = (item.sha256, item.size)
                continue
            _match_batch(plan, matcher, item, tally, spill, candidates)
        spill.flush()
    except BaseException:
        spill.close(failed=True)
        raise
    spill.close()
    for shard, numbers in sorted(spill.batches.items()):
        yield SHARD, (shard, (SPILL, spill.path, numbers))
    if candidates is not None:
        assert plan.targets is not None
        for wnid in sorted(candidates):
            target = plan.targets.get(wnid, 0)
            kept = [
                k
                for keep, k in select_stream(wnid, dict.fromkeys(candidates[wnid]), target, plan.config.seed)
                if keep
            ]
            if kept:
                yield CLASS, (wnid, kept)
    trace.note("match", index)
    yield TALLY, tally


def _match_batch(
    plan: MatchPlan,
    matcher: Matcher,
    batch: Batch,
    tally: MatchTally,
    spill: _Spill,
    candidates: dict[str, list[str]] | None,
) -> None:
    rows = tally.rows
    rows.inputs[RECORDS] += batch.rows
    for d in batch.drops:
        rows.drop(d)
    captions = texts_of(plan, batch.captions)
    outcomes = matcher.match_many(captions)
    matched: list[int] = []
    wnids: list[str] = []
    terms: list[tuple[str, ...]] = []
    dropped: dict[str, list[int]] = defaultdict(list)
    for i, o in enumerate(outcomes):
        if type(o) is list:
            for wnid, ts in o:
                matched.append(i)
                wnids.append(wnid)
                terms.append(ts)
        else:
            dropped[o.reason].append(i)  # type: ignore[union-attr]  # a Drop: type(o) is list was tested
    for reason, where in dropped.items():
        rows.count(RECORDS, reason, len(where))
        first = (
            where[:MAX_EXAMPLES]
            if batch.keys_in_order
            else heapq.nsmallest(MAX_EXAMPLES, where, key=batch.key)
        )
        for i in first:
            rows._example((RECORDS, reason), (batch.key(i), outcomes[i].detail))  # type: ignore[union-attr]  # i indexes a Drop
    if batch.labels is not None:
        _compare_labels(batch.labels, outcomes, tally)
    if not matched:
        return
    tally.found.update(wnids)
    keys = batch.keys_of(matched)
    vocabulary = plan.vocabulary
    columns: dict[str, Any] = {
        "key": pa.array(keys, pa.string()),
        "caption": pa.array([captions[i] for i in matched], pa.string()),
        "wnid": pa.array(wnids, pa.string()),
        "label": pa.array([vocabulary.label_of(w) for w in wnids], pa.int32()),
        "terms": pa.array(terms, pa.list_(pa.string())),
    }
    if batch.columns.num_columns:
        taken = batch.columns.take(pa.array(matched, pa.int64()))
        for name in taken.column_names:
            columns[name] = taken.column(name)
    base = batch.file << POS_SHIFT
    columns["__pos"] = pa.array([base + batch.row_index(i) for i in matched], pa.int64())
    table = pa.table(columns, schema=plan.schema)
    num_shards = plan.num_shards
    spill.add(table, [layout.shard_of(k, num_shards) for k in keys] if num_shards > 1 else [0] * len(keys))
    if candidates is not None:
        for key, wnid in zip(keys, wnids, strict=True):
            candidates[wnid].append(key)


def _compare_labels(labels: list[str], outcomes: list[Any], tally: MatchTally) -> None:
    """Per known class: how often a caption names its own class (``own``; ``own_and_other`` counts
    those that name another too), only others (``other``), or none (``none``; ``no_caption``)."""
    for label, o in zip(labels, outcomes, strict=True):
        counts = tally.labelled.get(label)
        if counts is None:
            counts = tally.labelled[label] = Counter()
        if type(o) is list:
            named = {w for w, _ in o}
        elif o.reason == "several_classes":
            named = set(o.detail.split())
        else:
            counts[NONE if o.reason == "no_class" else o.reason] += 1
            continue
        if label in named:
            counts[OWN] += 1
            if len(named) > 1:
                counts["own_and_other"] += 1
        else:
            counts[OTHER] += 1


def hash_file(plan: MatchPlan, file_index: int) -> Iterator[Tagged]:
    """A corpus file's sha256 and size, for the report."""
    tally = MatchTally()
    tally.files[file_index] = fsio.sha256_file(plan.corpus.files[file_index].path)
    yield TALLY, tally


# ---------------------------------------------------------------------------------------------------
# Balancing: one class
# ---------------------------------------------------------------------------------------------------


def select_class(plan: MatchPlan, wnid: str, lists: Iterable[list[str]]) -> Iterator[Tagged]:
    """Keep a class's ``target`` candidates of smallest hash; tell each kept key's shard."""
    assert plan.targets is not None
    tally = MatchTally()
    unique = dict.fromkeys(k for keys in lists for k in keys)  # a key two parts both had counts once
    kept = [k for keep, k in select_stream(wnid, unique, plan.targets.get(wnid, 0), plan.config.seed) if keep]
    tally.kept[wnid] = len(kept)
    by_shard: dict[int, list[str]] = defaultdict(list)
    for key in kept:
        by_shard[layout.shard_of(key, plan.num_shards)].append(key)
    for shard in sorted(by_shard):
        yield SHARD, (shard, (KEPT, wnid, by_shard[shard]))
    yield TALLY, tally


# ---------------------------------------------------------------------------------------------------
# Writing a shard
# ---------------------------------------------------------------------------------------------------


def shard_files(plan: MatchPlan, index: int) -> list[str]:
    """A shard's files, relative to ``--out``: the Parquet file, and the tar (last: loaders look for it)."""
    stem = layout.shard_stem(index)
    files = [f"{MATCHES_DIR}/{stem}.parquet"]
    if plan.with_images:
        files.append(f"{SHARDS_DIR}/{stem}.tar")
    return files


def gather_rows(
    plan: MatchPlan, items: Iterable[tuple[Any, ...]]
) -> tuple[pa.Table, dict[str, set[str]] | None]:
    """A shard's matched rows from the spill files, in one chunk sorted by key, wnid and position (so
    equal inputs give equal bytes whatever the order parts arrived in), and the kept keys per class."""
    refs: dict[str, list[int]] = defaultdict(list)
    kept: dict[str, set[str]] | None = {} if plan.targets is not None else None
    for item in items:
        if item[0] == SPILL:
            refs[item[1]].extend(item[2])
        elif item[0] == KEPT:
            assert kept is not None
            kept.setdefault(item[1], set()).update(item[2])
    tables: list[pa.Table] = []
    for path in sorted(refs):
        with fsio.open_read(path) as f:
            reader = pa.ipc.open_file(f)
            tables.extend(pa.Table.from_batches([reader.get_batch(i)]) for i in sorted(set(refs[path])))
    table = pa.concat_tables(tables) if tables else plan.schema.empty_table()
    order = pc.sort_indices(
        table, sort_keys=[("key", "ascending"), ("wnid", "ascending"), ("__pos", "ascending")]
    )
    return table.take(order).combine_chunks(), kept


def settle(table: pa.Table, kept: dict[str, set[str]] | None, tally: MatchTally) -> pa.Table:
    """The rows that go into the shard: a key that two corpus rows share keeps the row of the first
    position (the others are ``duplicate_key``); with balancing, a pair outside its class's kept keys
    is ``over_quota``. Counted per corpus row (written when any of its pairs is) and per pair.

    Vectorised: Python looks only at the runs of rows that share a key (a caption naming several
    classes with ``--multiple all``, or a duplicate key), never at every row."""
    n = table.num_rows
    if n == 0:
        return table
    keys, wnids, positions = table.column("key"), table.column("wnid"), table.column("__pos")
    duplicate = _duplicates(keys, positions)
    written = pc.invert(duplicate) if duplicate is not None else pa.array([True] * n)
    if kept is not None:
        pairs = pc.binary_join_element_wise(wnids, keys, "\t")
        chosen = pa.array([f"{w}\t{k}" for w, ks in kept.items() for k in ks], pa.string())
        written = pc.and_(written, pc.is_in(pairs, value_set=chosen))
    n_written = pc.sum(written).as_py() or 0
    n_duplicate = 0 if duplicate is None else (pc.sum(duplicate).as_py() or 0)
    for outcome, count in (("written", n_written), ("duplicate_key", n_duplicate),
                           ("over_quota", n - n_written - n_duplicate)):  # fmt: skip
        if count:
            tally.pairs[outcome] += count
    rows_written = pc.count_distinct(positions.filter(written)).as_py()
    rows_duplicate = 0 if duplicate is None else pc.count_distinct(positions.filter(duplicate)).as_py()
    rows_owned = pc.count_distinct(positions).as_py() - rows_duplicate
    for reason, count in (("written", rows_written), ("duplicate_key", rows_duplicate),
                          ("over_quota", rows_owned - rows_written)):  # fmt: skip
        if count:
            tally.rows.count(RECORDS, reason, count)
    counts = pc.value_counts(wnids.filter(written))
    tally.written.update(
        dict(zip(counts.field("values").to_pylist(), counts.field("counts").to_pylist(), strict=True))
    )
    return table if n_written == n else table.filter(written)


def _duplicates(keys: pa.ChunkedArray, positions: pa.ChunkedArray) -> pa.Array | None:
    """Per row (sorted by key), whether another row of its key has a smaller corpus position; None
    when no two rows share a key."""
    n = len(keys)
    if n < 2:
        return None
    keys = keys.combine_chunks()
    same = pc.equal(keys.slice(1), keys.slice(0, n - 1))
    runs = pc.indices_nonzero(same).to_pylist()  # i: rows i and i + 1 share a key
    if not runs:
        return None
    flags = [False] * n
    rows = sorted({r for i in runs for r in (i, i + 1)})
    key_of = keys.take(pa.array(rows, pa.int64())).to_pylist()
    pos_of = positions.take(pa.array(rows, pa.int64())).to_pylist()
    owner: dict[str, int] = {}
    for key, pos in zip(key_of, pos_of, strict=True):
        if owner.setdefault(key, pos) > pos:
            owner[key] = pos
    for row, key, pos in zip(rows, key_of, pos_of, strict=True):
        flags[row] = pos != owner[key]
    return pa.array(flags, pa.bool_())


def shard_digest(plan: MatchPlan, table: pa.Table) -> str:
    """The shard's input digest: options and rows (one chunk, so equal rows give equal bytes)."""
    h = hashlib.sha256(json.dumps(plan.output_options, sort_keys=True).encode())
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, table.schema) as w:
        w.write_table(table)
    h.update(sink.getvalue())
    return h.hexdigest()


def write_one_shard(plan: MatchPlan, index: int, items: Iterable[tuple[str, Any]]) -> Iterator[Tagged]:
    """Gather, settle, then write the shard, or keep it when its input digest is unchanged."""
    tally = MatchTally()
    table, kept = gather_rows(plan, items)
    table = settle(table, kept, tally)
    digest = shard_digest(plan, table)
    stem = layout.shard_stem(index)
    prev = plan.previous.get(stem)
    if incremental.is_current(prev, digest, plan.out):
        assert prev is not None
        entry = {**prev, "seconds": 0.0, "kept": True}
        entry.pop("num_shards", None)
    else:
        t0 = time.perf_counter()
        from imagenet_captions.match.outputs import write_shard_files

        entry = write_shard_files(plan, index, table, shard_files(plan, index), digest)
        incremental.record_commit(plan.out, entry, plan.num_shards)
        entry = {**entry, "seconds": time.perf_counter() - t0, "kept": False}
        trace.note("write", stem)
    tally.shards.append(entry)
    yield TALLY, tally


def manifest_entry(entry: dict[str, Any]) -> dict[str, Any]:
    """What a shard holds, not how this run got it (time, kept): equal inputs, equal manifest."""
    return {k: v for k, v in entry.items() if k not in ("seconds", "kept", "num_shards")}
