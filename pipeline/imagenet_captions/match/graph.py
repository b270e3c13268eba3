"""``match``'s Beam graph, and nothing else: each DoFn calls one unit of work of ``work.py``::

    corpus parts --MatchPart--> spill references by shard ------------------------------+
        (balancing: candidate keys --GroupByKey class--> SelectClass --> kept keys) ----+
    one seed per planned shard ---------------------------------------------------------+--GroupByKey shard-->
        WriteShard (gather the spilled rows, settle, keep or write) --> tallies
    corpus files --HashFile--> digests (kinds whose reader does not read whole files)
    tallies of every unit --GroupByKey (one key)--> Finalize: sizes.json, manifest.json, report.json

Why this shape: as ``build``'s graph, it uses only what every runner translates alike (Create,
ParDo, GroupByKey, Flatten; Reshuffle after each Create spreads the parts on runners that would
fuse them). Units emit ``(tag, value)`` pairs split by a filter per tag; every branch ends in
Finalize. Elements are parts, batches' spill references, per-class key lists and tallies, never
rows: the matched rows cross the shuffle as files (a part's spill), as image bytes do in ``build``.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import apache_beam as beam

from imagenet_captions import trace
from imagenet_captions.match import work
from imagenet_captions.match.plan import MatchPlan
from imagenet_captions.runners import only_tag


class MatchPartFn(beam.DoFn):
    """One part of the corpus: read, match, spill (the automaton built once per worker)."""

    def __init__(self, plan: MatchPlan):
        self._plan = plan

    def setup(self) -> None:
        self._matcher = work.make_matcher(self._plan)

    def process(self, indexed: tuple[int, Any]) -> Iterator[work.Tagged]:
        yield from work.match_part(self._plan, self._matcher, indexed[0], indexed[1])


class HashFileFn(beam.DoFn):
    def __init__(self, plan: MatchPlan):
        self._plan = plan

    def process(self, file_index: int) -> Iterator[work.Tagged]:
        yield from work.hash_file(self._plan, file_index)


class SelectClassFn(beam.DoFn):
    def __init__(self, plan: MatchPlan):
        self._plan = plan

    def process(self, kv: tuple[str, Any]) -> Iterator[work.Tagged]:
        yield from work.select_class(self._plan, kv[0], kv[1])


class WriteShardFn(beam.DoFn):
    def __init__(self, plan: MatchPlan):
        self._plan = plan

    def process(self, kv: tuple[int, Any]) -> Iterator[work.Tagged]:
        yield from work.write_one_shard(self._plan, kv[0], kv[1])


class FinalizeFn(beam.DoFn):
    def __init__(self, plan: MatchPlan):
        self._plan = plan

    def process(self, kv: tuple[None, Any]) -> Iterator[dict[str, Any]]:
        from imagenet_captions.match.report import finalize

        total = work.MatchTally()
        for tally in kv[1]:
            total.merge(tally)
        trace.note("finalize", "report")
        yield finalize(self._plan, total)



def match_graph(p: beam.Pipeline, plan: MatchPlan) -> None:
    units = {
        "Match": p
        | "CorpusParts" >> beam.Create(list(enumerate(plan.parts)))
        | "SpreadCorpusParts" >> beam.Reshuffle()
        | "MatchPart" >> beam.ParDo(MatchPartFn(plan))
    }
    if not plan.corpus.hashes_in_read:
        units["Hash"] = (
            p
            | "CorpusFiles" >> beam.Create(list(range(len(plan.corpus.files))))
            | "SpreadCorpusFiles" >> beam.Reshuffle()
            | "HashFile" >> beam.ParDo(HashFileFn(plan))
        )
    if plan.targets is not None:
        units["Select"] = (
            only_tag(units["Match"], work.CLASS, "Candidates")
            | "ByClass" >> beam.GroupByKey()
            | "SelectClass" >> beam.ParDo(SelectClassFn(plan))
        )
    seeds = p | "Seeds" >> beam.Create(work.seeds(plan))
    to_shards = [only_tag(u, work.SHARD, f"{name}ToShards") for name, u in units.items() if name != "Hash"]
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
