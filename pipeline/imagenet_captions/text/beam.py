"""``CleanText``: the text stage as a Beam PTransform (thin DoFns around ``stage.TextStage``).

raw records ──Process (prepare + finish, one fused step)──► outcomes

or, with ``owner_duplicates`` once/drop:

raw records ──Prepare──► (owner, record, changed) ──GroupByKey owner──OwnerDedupe──Finish──► outcomes
                  └─► dropped outcomes (part filters); records without an owner skip the group

outcomes ─► "records" (dicts), "dropped" ((key, reason)), "stats" (one dict, a CombineFn's result)

Stats are computed from the outcomes as pipeline data. Without the owner group there is no
GroupByKey and no Flatten, so records stream through (the in-process runner materialises both).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

import apache_beam as beam

from imagenet_captions.text.dedupe import OWNER_DUPLICATE, dedupe_owner
from imagenet_captions.text.options import TextOptions
from imagenet_captions.text.stage import TextOutcome, TextStage
from imagenet_captions.text.stats import TextStats

_DROPPED = "dropped"


class _StageFn(beam.DoFn):
    """A DoFn that runs part of the text stage: one ``TextStage`` per worker, made in ``setup``
    because it loads the language model, which must not be pickled with the DoFn."""

    def __init__(self, options: TextOptions) -> None:
        self.options = options

    def setup(self) -> None:
        self.stage = TextStage(self.options)


class _PrepareFn(_StageFn):
    def process(self, raw: dict[str, Any]) -> Iterator[Any]:
        record, dropped, changed = self.stage.prepare(raw)
        if record is None:
            yield beam.pvalue.TaggedOutput(_DROPPED, dropped)
        else:
            owner = raw.get("owner")
            yield (str(owner) if owner not in (None, "") else None, (record, changed))


class _FinishFn(_StageFn):
    def process(self, item: tuple[dict[str, Any], set[str]]) -> Iterator[TextOutcome]:
        record, changed = item
        yield self.stage.finish(record, changed)


class _ProcessFn(_StageFn):
    """The whole stage in one step (no owner grouping): one PCollection of outcomes, no Flatten."""

    def process(self, raw: dict[str, Any]) -> Iterator[TextOutcome]:
        yield self.stage.process(raw)


class _OwnerDedupeFn(beam.DoFn):
    def __init__(self, options: TextOptions) -> None:
        self.options = options

    def process(self, element: tuple[str, Iterable[tuple[dict[str, Any], set[str]]]]) -> Iterator[Any]:
        _, items = element
        kept, dropped = dedupe_owner(
            list(items), self.options.owner_duplicates, self.options.near_duplicate_threshold
        )
        yield from kept
        for key, changed in dropped:
            yield beam.pvalue.TaggedOutput(_DROPPED, TextOutcome(None, OWNER_DUPLICATE, changed, key))


class _HasOwnerFn(beam.PartitionFn):
    """Partition 0: records with no owner (nothing to dedupe them against); 1: the rest."""

    def partition_for(self, element: Any, num_partitions: int, *args: Any, **kwargs: Any) -> int:
        owner, _ = element  # (owner or None, (record, changed)), as _PrepareFn yields it
        return 0 if owner is None else 1


class TextStatsFn(beam.CombineFn):
    """Combines TextOutcomes into one stats dict (``TextStats`` does the work)."""

    def __init__(self, options: TextOptions) -> None:
        self.options = options

    def create_accumulator(self) -> TextStats:
        return TextStats()

    def add_input(self, acc: TextStats, outcome: TextOutcome) -> TextStats:
        return acc.add(outcome)

    def merge_accumulators(self, accs: Iterable[TextStats]) -> TextStats:
        accs = iter(accs)
        first = next(accs)
        for a in accs:
            first.merge(a)
        return first

    def extract_output(self, acc: TextStats) -> dict[str, Any]:
        out = acc.to_dict()
        out["options"] = self.options.to_report()
        return out


class CleanText(beam.PTransform):
    """Raw text records -> {"records", "dropped", "stats"} (see the module docstring)."""

    def __init__(self, options: TextOptions | None = None, label: str | None = None) -> None:
        super().__init__(label)
        self.options = options or TextOptions()

    def expand(self, raws: beam.PCollection) -> dict[str, beam.PCollection]:
        o = self.options
        if o.owner_duplicates == "keep":
            # One fused step and no Flatten: the in-process runner materialises a Flatten's inputs,
            # which would hold every record in memory; this way records stream through.
            outcomes = raws | "Process" >> beam.ParDo(_ProcessFn(o))
        else:
            prepared = raws | "Prepare" >> beam.ParDo(_PrepareFn(o)).with_outputs(_DROPPED, main="ready")
            by_owner = prepared["ready"] | "SplitOwner" >> beam.Partition(_HasOwnerFn(), 2)
            deduped = (
                by_owner[1]
                | "GroupByOwner" >> beam.GroupByKey()
                | "OwnerDedupe" >> beam.ParDo(_OwnerDedupeFn(o)).with_outputs(_DROPPED, main="kept")
            )
            to_finish = (by_owner[0] | "NoOwner" >> beam.Values(), deduped["kept"]) | "Join" >> beam.Flatten()
            finished = to_finish | "Finish" >> beam.ParDo(_FinishFn(o))
            outcomes = (finished, prepared[_DROPPED], deduped[_DROPPED]) | "AllOutcomes" >> beam.Flatten()
        records = outcomes | "Records" >> beam.FlatMap(
            lambda oc: [oc.record] if oc.record is not None else []
        )
        dropped = outcomes | "Dropped" >> beam.FlatMap(
            lambda oc: [(oc.key, oc.reason)] if oc.record is None else []
        )
        stats = outcomes | "Stats" >> beam.CombineGlobally(TextStatsFn(o))
        return {"records": records, "dropped": dropped, "stats": stats}
