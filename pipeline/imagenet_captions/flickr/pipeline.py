"""HARVEST as a Beam pipeline: URL list -> photo ids -> skip what is stored -> fetch -> report.

The graph::

    ReadFromText(bytes) -> parse_line -> by outcome (counted)
        matched -> (photo_id, image_id) -> GroupByKey -> (photo_id, [image ids])
        -> SkipAnswered (loads the store's answered ids in setup) -> [--limit: the N smallest ids]
        -> Fetch (thin DoFn over the process's HarvestService; total as a side input for the ETA)
        -> counted by status

All counts are pipeline data, merged into one dict and written as a JSON file that the driver
folds into ``<out>/harvest_report.json``. The harvest runs in this process (FnApiRunner): the
quota and the journal are per process; sharing the quota across the workers of a distributed run
needs a shared limiter (see docs/harvest.md).
"""

from __future__ import annotations

import json
import logging
import os
import time
import uuid
from collections.abc import Iterable, Iterator
from datetime import datetime, timezone
from typing import Any

import apache_beam as beam
from apache_beam import coders
from apache_beam.io.filesystem import CompressionTypes
from apache_beam.options.pipeline_options import PipelineOptions
from apache_beam.runners.portability.fn_api_runner import FnApiRunner
from apache_beam.transforms.window import GlobalWindows

from imagenet_captions import fsio
from imagenet_captions.classes import is_wnid
from imagenet_captions.errors import UsageError
from imagenet_captions.flickr import service as service_mod
from imagenet_captions.flickr import store
from imagenet_captions.flickr.keys import load_api_keys
from imagenet_captions.flickr.protocol import InvalidKeyError
from imagenet_captions.flickr.service import HarvestConfig
from imagenet_captions.flickr.urls import OUTCOMES, in_synsets, is_gzip, parse_line

log = logging.getLogger(__name__)

REPORT = "harvest_report.json"


class SkipAnswered(beam.DoFn):
    """Drops photos that already have a final answer (or a fresh one, when refreshing)."""

    SKIPPED = "skipped"

    def __init__(self, responses_dir: str, fresh_after: float | None):
        self.responses_dir = responses_dir
        self.fresh_after = fresh_after

    def setup(self) -> None:
        self.answered = store.answered_photo_ids(self.responses_dir, self.fresh_after)

    def process(self, element: tuple[int, list[str]]) -> Iterator[Any]:
        if element[0] in self.answered:
            yield beam.pvalue.TaggedOutput(self.SKIPPED, element[0])
        else:
            yield element


class Fetch(beam.DoFn):
    """Hands photos to the process's :class:`HarvestService`; emits ``(photo_id, status, code)``.

    Photos are submitted as they arrive (many calls in flight); results are emitted as they
    complete, and at most ``max_pending`` wait, so memory stays flat."""

    def __init__(self, config: HarvestConfig, max_pending: int = 4096):
        self.config = config
        self.max_pending = max_pending

    def setup(self) -> None:
        self.service = service_mod.get_service(self.config)

    def start_bundle(self) -> None:
        self.pending: list = []

    def process(self, element: tuple[int, list[str]], total: int) -> Iterator[tuple[int, str, int | None]]:
        self.service.set_total(total)
        photo_id, image_ids = element
        self.pending.append(self.service.submit(photo_id, image_ids))
        while self.pending and (self.pending[0].done() or len(self.pending) > self.max_pending):
            yield self.pending.pop(0).result()

    def finish_bundle(self) -> Iterator[Any]:
        pending, self.pending = self.pending, []
        for fut in pending:
            yield GlobalWindows.windowed_value(fut.result())


def _merge_counts(dicts: Iterable[dict[str, int]]) -> dict[str, int]:
    out: dict[str, int] = {}
    for d in dicts:
        for k, v in d.items():
            out[k] = out.get(k, 0) + v
    return out


def _write_counts(obj: dict, path: str) -> None:
    """The Beam step's output is this file (Map's argument order), written as every report is."""
    fsio.write_json_atomic(path, obj)


def build_pipeline(
    p: beam.Pipeline,
    urls_path: str,
    config: HarvestConfig,
    counts_path: str,
    fresh_after: float | None = None,
    limit: int | None = None,
    synsets: frozenset[str] | None = None,
) -> None:
    """Add the harvest graph to ``p``; the counts land in ``counts_path`` (JSON). Lines of classes
    outside ``synsets`` (None: all) are counted as ``other_synset``."""
    compression = CompressionTypes.GZIP if is_gzip(urls_path) else CompressionTypes.UNCOMPRESSED
    lines = p | "Read" >> beam.io.ReadFromText(
        urls_path, coder=coders.BytesCoder(), compression_type=compression
    )
    parsed = lines | "Parse" >> beam.Map(parse_line)
    if synsets is not None:
        parsed = parsed | "Synsets" >> beam.Map(in_synsets, frozenset(synsets))
    line_counts = (
        parsed
        | "Outcome" >> beam.Map(lambda r: r.outcome)
        | "CountOutcomes" >> beam.combiners.Count.PerElement()
        | "OutcomeKeys" >> beam.MapTuple(lambda k, n: {f"lines.{k}": n})
    )
    photos = (
        parsed
        | "Matched" >> beam.Filter(lambda r: r.outcome == "matched")
        | "ByPhoto" >> beam.Map(lambda r: (r.photo_id, r.image_id))
        | "Group" >> beam.GroupByKey()
        | "Images" >> beam.MapTuple(lambda pid, ids: (pid, sorted(set(ids))))
    )
    split = photos | "Skip" >> beam.ParDo(SkipAnswered(config.responses_dir, fresh_after)).with_outputs(
        SkipAnswered.SKIPPED, main="todo"
    )
    todo = split.todo
    counts = [
        line_counts,
        photos
        | "CountPhotos" >> beam.combiners.Count.Globally()
        | "PK" >> beam.Map(lambda n: {"photos.matched": n}),
        split.skipped
        | "CountSkipped" >> beam.combiners.Count.Globally()
        | "SK" >> beam.Map(lambda n: {"photos.skipped_answered": n}),
    ]
    if limit is not None:
        todo_all = todo
        todo = (
            todo_all
            | "Limit" >> beam.combiners.Top.Smallest(limit, key=lambda kv: kv[0])
            | "Unlist" >> beam.FlatMap(lambda kvs: kvs)
        )
        counts.append(
            todo_all
            | "CountBeforeLimit" >> beam.combiners.Count.Globally()
            | "LK" >> beam.Map(lambda n, lim: {"photos.left_by_limit": max(0, n - lim)}, lim=limit)
        )
    total = todo | "CountTodo" >> beam.combiners.Count.Globally()
    results = todo | "Fetch" >> beam.ParDo(Fetch(config), total=beam.pvalue.AsSingleton(total))
    counts.append(
        results
        | "Status" >> beam.Map(lambda r: r[1])
        | "CountStatus" >> beam.combiners.Count.PerElement()
        | "StatusKeys" >> beam.MapTuple(lambda k, n: {f"fetched.{k}": n})
    )
    counts.append(total | "TK" >> beam.Map(lambda n: {"photos.to_fetch": n}))
    (
        counts
        | "AllCounts" >> beam.Flatten()
        | "Merge" >> beam.CombineGlobally(_merge_counts)
        | "Write" >> beam.Map(_write_counts, counts_path)
    )


def synset_set(spec: str) -> frozenset[str] | None:
    """``ilsvrc2012`` -> ImageNet-1k's 1,000 wnids; ``all`` -> None (no filter); else a file."""
    if spec == "all":
        return None
    if spec == "ilsvrc2012":
        from imagenet_captions.classes import wnids

        return frozenset(wnids())
    try:
        with open(spec, encoding="utf-8") as f:
            found = frozenset(w.strip() for w in f if w.strip() and not w.startswith("#"))
    except OSError as e:
        raise UsageError(f"--synsets: cannot read {spec}: {e.strerror}") from None
    bad = sorted(w for w in found if not is_wnid(w))
    if bad or not found:
        raise UsageError(f"--synsets file {spec} must list wnids (n01440764), one per line; bad: {bad[:3]}")
    return found


def parse_age(text: str) -> float:
    """``--refresh AGE``: ``90s``, ``30m``, ``12h``, ``7d``, ``2w`` (a bare number is days)."""
    units = {"s": 1, "m": 60, "h": 3600, "d": 86_400, "w": 604_800}
    t = text.strip().lower()
    try:
        value = float(t[:-1]) * units[t[-1]] if t and t[-1] in units else float(t) * 86_400
    except ValueError:
        raise UsageError(f"--refresh wants an age like 30d, 12h or 90m, not {text!r}") from None
    if value < 0:
        raise UsageError("--refresh AGE must not be negative")
    return value


def new_run_id() -> str:
    """Sortable and unique: the UTC start time plus a random suffix."""
    return datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ") + "_" + uuid.uuid4().hex[:6]


def run_harvest(
    urls_path: str,
    out_dir: str,
    config_overrides: dict[str, Any] | None = None,
    limit: int | None = None,
    refresh_age: float | None = None,
    beam_args: list[str] | None = None,
    synsets: str = "ilsvrc2012",
) -> dict[str, Any]:
    """Harvest ``urls_path`` into ``<out_dir>/responses/``; returns (and writes) the report.

    ``synsets``: ``ilsvrc2012`` (ImageNet-1k's classes, the default), ``all``, or a file of wnids
    (one per line). Recovers a crashed run's journal first, so a rerun skips every photo with a
    stored answer."""
    rdir = store.responses_dir(out_dir)
    overrides = dict(config_overrides or {})
    # The options are checked before anything else, so a bad value is one clear line, not a late failure.
    config = HarvestConfig(responses_dir=rdir, run_id=new_run_id(), **overrides)
    if limit is not None and limit < 0:
        raise UsageError(f"--limit must not be negative, not {limit}")
    if not os.path.isfile(urls_path):
        raise UsageError(f"--urls: URL list not found: {urls_path}")
    for arg in beam_args or []:
        if (
            arg.startswith("--runner") and "FnApi" not in arg and "Direct" not in arg
        ) or "multi_processing" in arg:
            raise UsageError(
                "harvest runs in one process (the quota and the journal are per process): "
                "no --runner, no multi_processing; see --shared-limiter for several processes"
            )
    wanted = synset_set(synsets)
    load_api_keys(config.api_key_file)  # fail early and clearly; the service reads them again
    os.makedirs(rdir, exist_ok=True)
    started = time.time()
    fresh_after = None if refresh_age is None else started - refresh_age
    counts_path = os.path.join(out_dir, f".harvest-counts-{config.run_id}.json")
    with store.store_lock(rdir):
        recovered = store.recover(rdir)
        if recovered:
            log.info("recovered %d journal segment(s) left by an interrupted run", recovered)
        error: BaseException | None = None
        try:
            options = PipelineOptions(beam_args or [])
            with beam.Pipeline(runner=FnApiRunner(), options=options) as p:
                build_pipeline(p, urls_path, config, counts_path, fresh_after, limit, wanted)
        except Exception as e:  # noqa: BLE001 - re-raised below, redacted
            error = e
        svc = service_mod.close_service(config)
        if svc is not None:
            log.info(svc.progress_line())
        store.recover(rdir)
        if error is not None:
            if svc is not None and svc.fatal is not None:
                raise UsageError(str(svc.fatal)) from None
            if isinstance(error, (UsageError, InvalidKeyError)):
                raise UsageError(str(error)) from None
            message = svc.redact(str(error)) if svc is not None else str(error)
            raise RuntimeError(
                f"harvest failed: {message.splitlines()[-1] if message else type(error).__name__}"
            ) from None
    with open(counts_path, encoding="utf-8") as f:
        counts = json.load(f)
    os.remove(counts_path)
    report = {
        "run_id": config.run_id,
        "urls": os.path.abspath(urls_path),
        "started": datetime.fromtimestamp(started, timezone.utc).isoformat(),
        "finished": datetime.now(timezone.utc).isoformat(),
        "seconds": round(time.time() - started, 3),
        "qps_per_key": config.qps,
        "keys": None if svc is None else svc.client.n_keys,
        "refresh_age_seconds": refresh_age,
        "limit": limit,
        "synsets": synsets if synsets in ("ilsvrc2012", "all") else os.path.abspath(synsets),
        "lines": {k: counts.get(f"lines.{k}", 0) for k in OUTCOMES},
        "photos": {
            "matched": counts.get("photos.matched", 0),
            "skipped_answered": counts.get("photos.skipped_answered", 0),
            "left_by_limit": counts.get("photos.left_by_limit", 0),
            "to_fetch": counts.get("photos.to_fetch", 0),
        },
        "fetched": {k: counts.get(f"fetched.{k}", 0) for k in ("ok", "not_found", "failed", "gave_up")},
        "calls": None if svc is None else svc.call_stats(),
        "store": store.store_summary(rdir),
    }
    fsio.write_json_atomic(os.path.join(out_dir, REPORT), report)
    return report
