"""The build's units of work as plain functions: read and clean a metadata part, list an ImageNet
part, finish one owner bucket, write one shard. The Beam graph (``graph.py``) only calls them.

Each unit yields ``(tag, value)`` pairs, never Beam's tagged outputs, so every runner (Dask's
included, which mixes a ParDo's tagged outputs) reads them alike:

- ``SHARD``: ``(shard index, (RECORD | IMAGE | DROPPED | SEED, key, value))`` for the shard's writer;
- ``OWNER``: ``(owner bucket, (owner, record, changed))``, only with ``--owner-duplicates``;
- ``TALLY``: one :class:`~imagenet_captions.outcomes.Tally` at the end of the unit: what it read,
  dropped (by reason, with examples), the text statistics, the shards written.

Everything a unit accounts for is in its tally, so the report is one merge of a few hundred tallies.
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import Iterable, Iterator
from typing import Any, cast

from imagenet_captions import layout, trace
from imagenet_captions.build.plan import BuildPlan
from imagenet_captions.outcomes import IMAGES, RECORDS, Drop, Tally
from imagenet_captions.records import Published, Record
from imagenet_captions.shards import incremental
from imagenet_captions.shards.join import DROPPED, IMAGE, RECORD, SEED, ShardItem, join_shard
from imagenet_captions.shards.outputs import naming_output
from imagenet_captions.shards.writer import ShardResult, samples_digest, write_shard
from imagenet_captions.sources import imagenet
from imagenet_captions.text import TextStage
from imagenet_captions.text.dedupe import OWNER_DUPLICATE, dedupe_owner
from imagenet_captions.text.stage import TextOutcome
from imagenet_captions.text.stats import TextStats

log = logging.getLogger("imagenet_captions.build")

SHARD, OWNER, TALLY = "shard", "owner", "tally"
#: Owners are grouped into this many buckets (one group each), not one group per owner: the groups
#: stay few and large, and so do the tallies they return.
OWNER_BUCKETS = 256

Tagged = tuple[str, Any]


def _to_shard(plan: BuildPlan, tag: str, key: str, value: Any) -> Tagged:
    return SHARD, (layout.shard_of(key, plan.num_shards), (tag, key, value))


def seeds(plan: BuildPlan) -> list[tuple[int, tuple[str, str, None]]]:
    """One seed per planned shard, so a shard that receives nothing is written too (empty)."""
    return [(index, (SEED, "", None)) for index in range(plan.num_shards)]


def read_part(plan: BuildPlan, stage: TextStage | None, part: Any) -> Iterator[Tagged]:
    """Read one metadata part and, when the plan cleans text (``stage`` is then given), run the text
    stage on it; a text release's published records go to their shards as they are."""
    tally = Tally()
    if plan.cleans_text:
        tally.text = TextStats()
    for item in plan.source.read(part):
        tally.inputs[RECORDS] += 1
        if isinstance(item, Drop):
            yield from _dropped(plan, tally, item)
            continue
        record = item.record if isinstance(item, Published) else item
        if record["wnid"] not in plan.classes:
            yield from _dropped(plan, tally, Drop(RECORDS, "unknown_class", record["key"], record["wnid"]))
        elif isinstance(item, Published):
            yield _to_shard(plan, RECORD, record["key"], item)
        elif plan.dedupes_owners:
            assert stage is not None  # the plan cleans text: the graph gave the stage
            cleaned, dropped, changed = stage.prepare(item)
            if cleaned is None:
                assert dropped is not None  # prepare returns a record or why it has none
                yield from _text_outcome(plan, tally, dropped)
            elif owner := item.get("owner"):
                yield OWNER, (_owner_bucket(owner), (owner, cleaned, changed))
            else:
                yield from _text_outcome(plan, tally, stage.finish(cleaned, changed))
        else:
            assert stage is not None  # the plan cleans text: the graph gave the stage
            yield from _text_outcome(plan, tally, stage.process(item))
    trace.note("read", part)
    if tally.text is not None:
        trace.note("clean", part)
    yield TALLY, tally


def finish_owners(plan: BuildPlan, stage: TextStage, items: Iterable[tuple[str, dict, set[str]]]) -> Iterator[Tagged]:
    """One owner bucket: settle each owner's duplicate descriptions, then finish its records."""
    tally = Tally(text=TextStats())
    by_owner: dict[str, list[tuple[dict[str, Any], set[str]]]] = {}
    for owner, record, changed in items:
        by_owner.setdefault(owner, []).append((record, changed))
    o = stage.options
    for owner in sorted(by_owner):
        kept, dropped = dedupe_owner(by_owner[owner], o.owner_duplicates, o.near_duplicate_threshold)
        for record, changed in kept:
            yield from _text_outcome(plan, tally, stage.finish(record, changed))
        for key, steps in dropped:
            yield from _text_outcome(plan, tally, TextOutcome(None, OWNER_DUPLICATE, steps, key))
    yield TALLY, tally


def _owner_bucket(owner: str) -> int:
    return int.from_bytes(hashlib.sha1(owner.encode()).digest()[:4], "big") % OWNER_BUCKETS


def _text_outcome(plan: BuildPlan, tally: Tally, outcome: TextOutcome) -> Iterator[Tagged]:
    tally.text.add(outcome)
    if outcome.record is not None:
        label = plan.classes.label(outcome.record["wnid"])
        record = cast(Record, {**outcome.record, "label": label})  # the text stage's fields and the label
        yield _to_shard(plan, RECORD, record["key"], record)
    else:
        yield from _dropped(plan, tally, Drop(RECORDS, outcome.reason or "unknown", outcome.key))


def _dropped(plan: BuildPlan, tally: Tally, drop: Drop) -> Iterator[Tagged]:
    """Count a dropped record; with images, tell its shard, so its image is ``record_dropped``."""
    tally.drop(drop)
    if plan.with_images:
        yield _to_shard(plan, DROPPED, drop.key, None)


def list_images(plan: BuildPlan, part: imagenet.ListingPart) -> Iterator[Tagged]:
    """List one part of the ImageNet source: each image to its shard, each other entry counted."""
    tally = Tally()
    for listed in imagenet.list_part(part, plan.classes):
        tally.inputs[IMAGES] += 1
        if isinstance(listed, Drop):
            tally.drop(listed)
        else:
            yield _to_shard(plan, IMAGE, listed["key"], listed)
    trace.note("list", part[1] if part[0] != "entries" else "top level")
    yield TALLY, tally


def write_one_shard(plan: BuildPlan, index: int, items: Iterable[ShardItem]) -> Tally:
    """Join one shard's items, then write the shard, or keep it when its input digest is unchanged.

    A file that cannot be written (a full disk) ends the build with one line naming it
    (:class:`~imagenet_captions.shards.outputs.OutputError`); the shard's files are then neither in
    place nor left half-written, and the shards committed before it are kept for the rerun."""
    samples, drops = join_shard(items, plan.with_images)
    tally = Tally()
    for d in drops:
        tally.drop(d)
    samples.sort(key=lambda s: layout.order_key(s.key))
    digest = samples_digest(samples, plan.output_options)
    stem = layout.shard_stem(index)
    prev = plan.previous.get(stem)
    if incremental.is_current(prev, digest, plan.shard_dir):
        assert prev is not None
        log.info("shard %s of %d unchanged: kept", stem, plan.num_shards)
        result = ShardResult.from_json({**prev, "seconds": 0.0, "kept": True})
    else:
        t0 = time.perf_counter()
        with naming_output(plan.shard_dir):
            result = write_shard(
                index, samples, plan.shard_dir, plan.image, digest, with_images=plan.with_images
            )
        result.seconds = time.perf_counter() - t0
        incremental.record_commit(plan.shard_dir, manifest_entry(result), plan.num_shards)
        trace.note("write", stem)
        log.info(
            "shard %s of %d written: %d samples, %d dropped, %.0f samples/s",
            stem,
            plan.num_shards,
            result.written,
            len(result.dropped),
            result.written / max(result.seconds, 1e-9),
        )
    tally.shards.append(result)
    return tally


def manifest_entry(result: ShardResult) -> dict[str, Any]:
    """What a shard holds, not how this run got it (time, kept): equal inputs, equal manifest."""
    return {k: v for k, v in result.to_json().items() if k not in ("seconds", "kept")}
