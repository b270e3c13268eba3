"""The build's Beam graph, and nothing else: each DoFn calls one unit of work of ``work.py``::

    metadata parts --ReadAndClean--> records, dropped keys ------------------------+
        (--owner-duplicates: owner buckets --GroupByKey--FinishOwners--> records) --+
    ImageNet parts --ListImages--> image references -------------------------------+--GroupByKey shard-->
    one seed per planned shard ----------------------------------------------------+
        WriteShard (join on key, keep or write the tar + Parquet) --> tallies
    tallies of every unit --GroupByKey (one key)--> Finalize: sizes.json, manifest.json, report.json

Why this shape: it uses only what every runner translates alike (Create, ParDo, GroupByKey,
Flatten). A unit's outputs are ``(tag, value)`` pairs split by a filter per tag, not tagged
outputs; the report's inputs reach Finalize as one main input, not side inputs (Dask recomputes a
side input's whole upstream); and every branch ends in Finalize, the last step, which Dask's runner
computes with everything it depends on. A key's shard is a function of the key, so one shuffle
brings its record, images and drops to one writer: image bytes never cross it, references do.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import apache_beam as beam

from imagenet_captions import trace
from imagenet_captions.build import work
from imagenet_captions.build.finalize import finalize
from imagenet_captions.build.plan import BuildPlan
from imagenet_captions.outcomes import Tally
from imagenet_captions.runners import only_tag
from imagenet_captions.text import TextStage


class ReadAndCleanFn(beam.DoFn):
    """One metadata part: read it and run the text stage (its model loaded once per worker)."""

    def __init__(self, plan: BuildPlan):
        self._plan = plan

    def setup(self) -> None:
        self._stage = TextStage(self._plan.config.text) if self._plan.cleans_text else None

    def process(self, part: Any) -> Iterator[work.Tagged]:
        yield from work.read_part(self._plan, self._stage, part)


class FinishOwnersFn(beam.DoFn):
    """One bucket of owners (``--owner-duplicates``): their duplicates settled, their records finished."""

    def __init__(self, plan: BuildPlan):
        self._plan = plan

    def setup(self) -> None:
        self._stage = TextStage(self._plan.config.text)

    def process(self, kv: tuple[int, Any]) -> Iterator[work.Tagged]:
        yield from work.finish_owners(self._plan, self._stage, kv[1])


class ListImagesFn(beam.DoFn):
    def __init__(self, plan: BuildPlan):
        self._plan = plan

    def process(self, part: Any) -> Iterator[work.Tagged]:
        yield from work.list_images(self._plan, part)


class WriteShardFn(beam.DoFn):
    def __init__(self, plan: BuildPlan):
        self._plan = plan

    def process(self, kv: tuple[int, Any]) -> Iterator[work.Tagged]:
        yield work.TALLY, work.write_one_shard(self._plan, kv[0], kv[1])


class FinalizeFn(beam.DoFn):
    def __init__(self, plan: BuildPlan):
        self._plan = plan

    def process(self, kv: tuple[None, Any]) -> Iterator[dict[str, Any]]:
        total = Tally()
        for tally in kv[1]:
            total.merge(tally)
        trace.note("finalize", "report")
        yield finalize(self._plan, total)



def build_graph(p: beam.Pipeline, plan: BuildPlan) -> None:
    units = {
        "Read": p
        | "MetadataParts" >> beam.Create(plan.read_parts)
        | "SpreadMetadataParts" >> beam.Reshuffle()
        | "ReadAndClean" >> beam.ParDo(ReadAndCleanFn(plan))
    }
    if plan.dedupes_owners:
        units["Owners"] = (
            only_tag(units["Read"], work.OWNER, "Owners")
            | "GroupByOwner" >> beam.GroupByKey()
            | "FinishOwners" >> beam.ParDo(FinishOwnersFn(plan))
        )
    if plan.with_images:
        units["Listed"] = (
            p
            | "ImageParts" >> beam.Create(plan.listing_parts)
            | "SpreadImageParts" >> beam.Reshuffle()
            | "ListImages" >> beam.ParDo(ListImagesFn(plan))
        )
    # Each unit's output is split where it is made: its shard items go to the shuffle, its tally
    # to Finalize (one consumer of everything would make the in-process runner hold it all).
    seeds = p | "Seeds" >> beam.Create(work.seeds(plan))
    to_shards = [only_tag(u, work.SHARD, f"{name}ToShards") for name, u in units.items()]
    written = (
        [*to_shards, seeds]
        | "AllToShards" >> beam.Flatten()
        | "ByShard" >> beam.GroupByKey()
        | "WriteShard" >> beam.ParDo(WriteShardFn(plan))
    )
    tallies = [only_tag(u, work.TALLY, f"{name}Tallies") for name, u in units.items()]
    _ = (
        [*tallies, only_tag(written, work.TALLY, "WrittenTallies")]
        | "AllTallies" >> beam.Flatten()
        | "OneKey" >> beam.Map(lambda tally: (None, tally))
        | "Gather" >> beam.GroupByKey()
        | "Finalize" >> beam.ParDo(FinalizeFn(plan))
    )
