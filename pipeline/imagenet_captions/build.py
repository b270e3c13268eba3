"""The build: release metadata (or a harvested response store) + ImageNet images -> shards.

The Beam graph composes the stages; each stage's logic is a plain function elsewhere, and the DoFns
here only call them::

    metadata --read--> raw records --CleanText--label--> (shard, record) --------+
    ImageNet folder/tar --list--> (shard, image reference) ----------------------+--group by shard-->
    keys dropped before the writer -------------------> (shard, key) ------------+
        join on key + settle duplicates (join_shard) --> write (tar + Parquet) or keep (digest)
                                                                             |
    outcomes of every stage (category, reason, key, detail) ----------> report.json, sizes.json,
                                                                        manifest.json

A key's shard is a function of the key, so one shuffle brings a key's record, images and drops to
one writer, which joins them: no per-key CoGroupByKey (docs/shards.md has the measured cost).
Image bytes never cross a shuffle: references do, and the shard writer reads the bytes. Without
``--imagenet`` the build writes the text-only captions table (Parquet) instead of shards.
"""

from __future__ import annotations

import argparse
import json
import logging
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from typing import Any

import apache_beam as beam
from apache_beam.options.pipeline_options import PipelineOptions

from imagenet_captions import __version__, classes, fsio
from imagenet_captions.errors import UsageError
from imagenet_captions.images import ImageOptions, resizer_name
from imagenet_captions.images.process import RESAMPLE
from imagenet_captions.shards import layout, report
from imagenet_captions.shards.writer import ShardResult, samples_digest, write_shard
from imagenet_captions.sources import imagenet, release
from imagenet_captions.text import CleanText, TextOptions, add_text_arguments, text_options_from_args

log = logging.getLogger("imagenet_captions.build")

RECORDS, IMAGES = "records", "images"


@dataclass(frozen=True)
class BuildConfig:
    """Everything a build depends on. Equal configs over equal inputs give byte-identical shards."""

    metadata: str  # "release:<zip|json>" or "responses:<dir>"
    out: str
    imagenet: str | None = None
    num_shards: int | None = None
    shard_size: int = 2000
    min_shards: int = 8
    as_of: str | None = None
    image: ImageOptions = field(default_factory=ImageOptions)
    text: TextOptions = field(default_factory=TextOptions)

    @property
    def metadata_kind(self) -> str:
        return self.metadata.split(":", 1)[0]

    @property
    def metadata_path(self) -> str:
        return self.metadata.split(":", 1)[1]

    def output_options(self) -> dict[str, Any]:
        """What decides the bytes of a shard besides its inputs (part of each shard's input digest): the
        options and the tool's version, so an upgrade that changes outputs rewrites every shard."""
        return {
            "image": asdict(self.image),
            # Resized bytes depend on the resampler's code too (SIMD or Pillow): a switch rewrites them.
            "resizer": resizer_name() if self.image.resize else None,
            "text": _jsonable(self.text),
            "schema": "caption_record/v1",
            "version": __version__,
        }


def _jsonable(obj: Any) -> Any:
    return json.loads(json.dumps(asdict(obj) if hasattr(obj, "__dataclass_fields__") else obj, default=str))


# ---------------------------------------------------------------------------------------------------
# Plain functions the DoFns call
# ---------------------------------------------------------------------------------------------------


def read_metadata(spec: str, as_of: str | None) -> Iterator[tuple[dict[str, Any] | None, str | None, str]]:
    """Raw records from a metadata source, as ``(record, None, key)`` or ``(None, reason, key)``.

    From a harvested response store, every image id in the store is one input: its photo's answer is
    a record when ``ok``, else the outcome ``flickr_not_found`` / ``flickr_failed`` / ``flickr_gave_up``.
    """
    kind, _, path = spec.partition(":")
    if kind == "release":
        for item in release.iter_release_items(path):
            yield release.to_raw_record(item)
    elif kind == "responses":
        from imagenet_captions.flickr.store import iter_image_status, iter_release_records

        date = _parse_date(as_of)
        for item in iter_release_records(path, date):
            yield release.to_raw_record(item)
        for status in iter_image_status(path, date):
            if status["status"] != "ok":
                yield None, f"flickr_{status['status']}", status["image_id"]
    else:
        raise UsageError(f"unknown metadata kind {kind!r}: use release:<file> or responses:<dir>")


def choose_record(records: list[dict[str, Any]]) -> tuple[dict[str, Any], int]:
    """One record of several with the same key, chosen by content (not arrival order), and how many lost."""
    if len(records) == 1:
        return records[0], 0
    kept = min(records, key=lambda r: json.dumps(r, sort_keys=True, ensure_ascii=False))
    return kept, len(records) - 1


def with_label(record: dict[str, Any]) -> dict[str, Any]:
    """The record with its class index (the text stage keeps only text columns; the reader checked the wnid)."""
    return {**record, "label": classes.wnid_to_label()[record["wnid"]]}


#: Tags of what reaches a shard's writer: a cleaned record, an image reference, a key whose record was
#: dropped before the writer (its image is then ``record_dropped``, not ``no_record``).
RECORD, IMAGE, DROPPED = "r", "i", "d"

Outcome = tuple[str, str, str, str]  # (category, reason, key, detail)


def join_shard(
    items: Iterable[tuple[str, str, Any]], with_images: bool
) -> tuple[list[tuple[dict[str, Any], Any]], list[Outcome]]:
    """Join one shard's records and image references by key: ``(samples, outcomes)``.

    Why here and not in a CoGroupByKey: a key's shard is a function of the key alone, so every record,
    image and dropped key of one key meets in one shard's group anyway. Joining inside the shard's
    writer saves Beam a shuffle and an element per key (the measured cost of the in-process runner is
    per element, docs/shards.md). Each key gets one sample, or named outcomes: ``duplicate`` for the
    records that lost to another with the same key (chosen by content), ``duplicate_image``,
    ``no_image``, ``no_record`` and ``record_dropped``. Without images every record is a sample.
    """
    records: dict[str, list[dict[str, Any]]] = {}
    refs: dict[str, list[dict[str, Any]]] = {}
    dropped: set[str] = set()
    for tag, key, value in items:
        if tag == RECORD:
            records.setdefault(key, []).append(value)
        elif tag == IMAGE:
            refs.setdefault(key, []).append(value)
        else:
            dropped.add(key)
    samples: list[tuple[dict[str, Any], Any]] = []
    outcomes: list[Outcome] = []
    for key, group in records.items():
        record, lost = choose_record(group)
        outcomes += [(RECORDS, "duplicate", key, "")] * lost
        if not with_images:
            samples.append((record, None))
            continue
        found = refs.pop(key, None)
        if not found:
            outcomes.append((RECORDS, "no_image", key, ""))
            continue
        if len(found) > 1:
            found.sort(key=lambda r: r["path"])
            outcomes += [(IMAGES, "duplicate_image", key, extra["path"]) for extra in found[1:]]
        samples.append((record, found[0]))
    for key, found in refs.items():  # images without a record
        found.sort(key=lambda r: r["path"])
        outcomes += [(IMAGES, "duplicate_image", key, extra["path"]) for extra in found[1:]]
        outcomes.append((IMAGES, "record_dropped" if key in dropped else "no_record", key, ""))
    return samples, outcomes


# ---------------------------------------------------------------------------------------------------
# Thin DoFns
# ---------------------------------------------------------------------------------------------------


class ReadMetadataFn(beam.DoFn):
    """Records out, outcomes to "outcome", and how many entries the source held to "count" (one element:
    the report's input count comes from the source itself, not from counting elements downstream)."""

    def __init__(self, as_of: str | None):
        self._as_of = as_of

    def process(self, spec: str) -> Iterator[Any]:
        labels = classes.wnid_to_label()
        n = 0
        for record, reason, key in read_metadata(spec, self._as_of):
            n += 1
            if record is None:
                yield beam.pvalue.TaggedOutput("outcome", (RECORDS, reason, key, ""))
            elif record["wnid"] not in labels:
                yield beam.pvalue.TaggedOutput("outcome", (RECORDS, "unknown_class", key, record["wnid"]))
            else:
                yield record
        yield beam.pvalue.TaggedOutput("count", (RECORDS, n))


class ListImagesFn(beam.DoFn):
    """One part of the ImageNet source (a class folder or class tar) listed: ``(shard, image reference)``
    out, entries that are not images to "outcome", and the part's entry count to "count"."""

    def __init__(self, lister: Callable[[Any], Iterable[imagenet.Listed]], num_shards: int):
        self._lister, self._num_shards = lister, num_shards

    def process(self, part: Any) -> Iterator[Any]:
        n = 0
        for listed in self._lister(part):
            n += 1
            yield from listed_to_outputs(listed, self._num_shards)
        yield beam.pvalue.TaggedOutput("count", (IMAGES, n))


def listed_to_outputs(listed: imagenet.Listed, num_shards: int) -> Iterator[Any]:
    if listed.ref is None:
        yield beam.pvalue.TaggedOutput("outcome", (IMAGES, listed.reason, listed.key, listed.detail or ""))
    else:
        yield layout.shard_of(listed.key, num_shards), (IMAGE, listed.key, listed.ref)


def record_to_shard(record: dict[str, Any], num_shards: int) -> tuple[int, tuple[str, str, dict[str, Any]]]:
    key = record["key"]
    return layout.shard_of(key, num_shards), (RECORD, key, with_label(record))


def dropped_to_shard(key: str, num_shards: int) -> tuple[int, tuple[str, str, None]]:
    return layout.shard_of(key, num_shards), (DROPPED, key, None)


class WriteShardFn(beam.DoFn):
    """One shard per call: join its records and images (:func:`join_shard`), then write it, or keep it
    as is when its input digest matches the last build's manifest. Join outcomes go to "outcome"."""

    def __init__(
        self,
        shard_dir: str,
        image_options: ImageOptions,
        output_options: dict[str, Any],
        previous: dict[str, Any],
        total: int,
        with_images: bool,
    ):
        self._shard_dir, self._image_options = shard_dir, image_options
        self._output_options, self._previous, self._total = output_options, previous, total
        self._with_images = with_images

    def process(self, kv: tuple[int, Any]) -> Iterator[Any]:
        index, items = kv
        samples, outcomes = join_shard(items, self._with_images)
        for outcome in outcomes:
            yield beam.pvalue.TaggedOutput("outcome", outcome)
        samples.sort(key=lambda s: layout.order_key(s[0]["key"]))
        digest = samples_digest(samples, self._output_options)
        prev = self._previous.get(layout.shard_stem(index))
        if (
            prev
            and prev["digest"] == digest
            and all(fsio.exists(fsio.join(self._shard_dir, f)) for f in prev["files"])
        ):
            log.info("shard %05d of %d unchanged: kept", index, self._total)
            yield {**prev, "seconds": 0.0, "kept": True}
            return
        t0 = time.perf_counter()
        result = write_shard(index, samples, self._shard_dir, self._image_options, digest)
        dt = result.seconds = time.perf_counter() - t0
        log.info(
            "shard %05d of %d written: %d samples, %d dropped, %.0f samples/s",
            index,
            self._total,
            result.written,
            len(result.dropped),
            result.written / max(dt, 1e-9),
        )
        yield result.to_json()


class FinalizeFn(beam.DoFn):
    """Writes sizes.json, manifest.json and report.json once every shard is written."""

    def __init__(self, config: BuildConfig, shard_dir: str, num_shards: int, started: float):
        self._config, self._shard_dir, self._num_shards, self._started = (
            config,
            shard_dir,
            num_shards,
            started,
        )

    def process(
        self,
        _: Any,
        results: list[dict[str, Any]],
        counts: list[tuple[tuple[str, str], int]],
        examples: list[tuple[tuple[str, str], list[tuple[str, str]]]],
        inputs: list[tuple[str, int]],
        text_stats: list[dict[str, Any]],
    ) -> Iterator[dict[str, Any]]:
        yield finalize(
            self._config,
            self._shard_dir,
            self._num_shards,
            self._started,
            [ShardResult.from_json(r) for r in results],
            dict(counts),
            dict(examples),
            dict(inputs),
            text_stats[0] if text_stats else {},
        )


def finalize(
    config: BuildConfig,
    shard_dir: str,
    num_shards: int,
    started: float,
    results: list[ShardResult],
    counts: dict[tuple[str, str], int],
    examples: dict[tuple[str, str], list[tuple[str, str]]],
    inputs: dict[str, int],
    text_stats: dict[str, Any],
) -> dict[str, Any]:
    with_images = config.imagenet is not None
    inputs = {RECORDS: inputs.get(RECORDS, 0), **({IMAGES: inputs.get(IMAGES, 0)} if with_images else {})}
    outcomes = report.merge_outcomes(counts, results, with_images)
    if not with_images:
        outcomes.pop(IMAGES, None)
    problems = report.check_accounting(inputs, outcomes)
    suffix = "tar" if with_images else "parquet"
    sizes = report.sizes_of(results, suffix)
    report.write_json_atomic(fsio.join(shard_dir, layout.SIZES_FILE), sizes)
    removed = report.remove_stale_shards(shard_dir, {f for r in results for f in r.files})
    manifest = {
        "num_shards": num_shards,
        "options": config.output_options(),
        # What each shard holds, not how this run got it (time, kept): equal inputs, equal manifest.
        "shards": {
            layout.shard_stem(r.index): {k: v for k, v in r.to_json().items() if k not in ("seconds", "kept")}
            for r in sorted(results, key=lambda r: r.index)
        },
    }
    report.write_json_atomic(fsio.join(shard_dir, layout.MANIFEST_FILE), manifest)
    rep = {
        "inputs": {"metadata": config.metadata, "imagenet": config.imagenet, "as_of": config.as_of},
        RECORDS: {"input": inputs[RECORDS], "outcomes": dict(sorted(outcomes[RECORDS].items()))},
        "written": outcomes[RECORDS]["written"],
        "shards": {
            "dir": fsio.basename(shard_dir),
            "count": len(results),
            "num_shards": num_shards,
            "written_now": sum(not r.kept for r in results),
            "kept": sum(r.kept for r in results),
            "removed_stale": removed,
            "write_s": round(sum(r.seconds for r in results), 3),
        },
        "accounting_problems": problems,
        "examples": report.examples_from(examples, results),
        "text": text_stats,
        "options": config.output_options(),
        "started_at": datetime.fromtimestamp(started, timezone.utc).isoformat(timespec="seconds"),
        "finished_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "elapsed_s": round(time.time() - started, 2),
    }
    if with_images:
        rep[IMAGES] = {"input": inputs[IMAGES], "outcomes": dict(sorted(outcomes[IMAGES].items()))}
    report.write_json_atomic(fsio.join(config.out, layout.REPORT_FILE), rep)
    return rep


# ---------------------------------------------------------------------------------------------------
# The graph
# ---------------------------------------------------------------------------------------------------


def plan_num_shards(config: BuildConfig, input_records: int, shard_dir: str) -> tuple[int, dict[str, Any]]:
    """The shard count (fixed once, recorded in the manifest) and the previous build's shard entries."""
    path = fsio.join(shard_dir, layout.MANIFEST_FILE)
    previous: dict[str, Any] = {}
    recorded = None
    if fsio.exists(path):
        manifest = json.loads(fsio.read_bytes(path))
        recorded, previous = manifest["num_shards"], manifest["shards"]
    if config.num_shards is not None:
        if recorded is not None and recorded != config.num_shards:
            raise UsageError(
                f"{shard_dir} was built with {recorded} shards; --num-shards {config.num_shards} would move every "
                "key: use a new --out"
            )
        return config.num_shards, previous
    if recorded is not None:
        return recorded, previous
    return layout.derive_num_shards(input_records, config.shard_size, config.min_shards), previous


def build_graph(p: beam.Pipeline, config: BuildConfig, input_records: int) -> None:
    started = time.time()
    with_images = config.imagenet is not None
    shard_dir = fsio.join(config.out, layout.SHARD_DIR if with_images else layout.CAPTIONS_DIR)
    num_shards, previous = plan_num_shards(config, input_records, shard_dir)
    log.info("%d input records -> %d shards in %s", input_records, num_shards, shard_dir)

    read = (
        p
        | "Metadata" >> beam.Create([config.metadata])
        | "Read" >> beam.ParDo(ReadMetadataFn(config.as_of)).with_outputs("outcome", "count", main="records")
    )
    outcomes = [read.outcome]
    text = read.records | "Text" >> CleanText(config.text)
    outcomes.append(text["dropped"] | "TextDrops" >> beam.Map(lambda kr: (RECORDS, kr[1], kr[0], "")))
    input_counts = [read.count]
    # Everything goes straight to its key's shard, where the writer joins records with images and
    # settles duplicates (join_shard): one shuffle, one element per record and per image.
    to_shard = [text["records"] | "RecordToShard" >> beam.Map(record_to_shard, num_shards)]
    if with_images:
        listed = _list_images(p, config.imagenet, num_shards)
        outcomes.append(listed["outcome"])
        input_counts.append(listed["count"])
        # Keys whose record was dropped before the writer: their images are "record_dropped".
        dropped_keys = (
            read.outcome | "ReadDropKey" >> beam.Map(lambda o: o[2]),
            text["dropped"] | "TextDropKey" >> beam.Map(lambda kr: kr[0]),
        ) | "DroppedKeys" >> beam.Flatten()
        to_shard += [
            listed["refs"],
            dropped_keys | "DroppedToShard" >> beam.Map(dropped_to_shard, num_shards),
        ]

    written = (
        to_shard
        | "AllToShard" >> beam.Flatten()
        | "ByShard" >> beam.GroupByKey()
        | "WriteShard"
        >> beam.ParDo(
            WriteShardFn(shard_dir, config.image, config.output_options(), previous, num_shards, with_images)
        ).with_outputs("outcome", main="results")
    )
    results = written.results
    outcomes.append(written.outcome)
    all_outcomes = outcomes | "Outcomes" >> beam.Flatten()
    counts = (
        all_outcomes
        | "ReasonKey" >> beam.Map(lambda o: ((o[0], o[1]), 1))
        | "Count" >> beam.CombinePerKey(sum)
    )
    examples = (
        all_outcomes
        | "ExampleKey" >> beam.Map(lambda o: ((o[0], o[1]), (o[2], o[3])))
        | "Examples" >> beam.combiners.Top.SmallestPerKey(report.MAX_EXAMPLES)
    )
    inputs = input_counts | "Inputs" >> beam.Flatten() | "SumInputs" >> beam.CombinePerKey(sum)
    _ = (
        p
        | "Once" >> beam.Create([None])
        | "Finalize"
        >> beam.ParDo(
            FinalizeFn(config, shard_dir, num_shards, started),
            results=beam.pvalue.AsList(results),
            counts=beam.pvalue.AsList(counts),
            examples=beam.pvalue.AsList(examples),
            inputs=beam.pvalue.AsList(inputs),
            text_stats=beam.pvalue.AsList(text["stats"]),
        )
    )


def _list_images(p: beam.Pipeline, source: str, num_shards: int) -> Any:
    """Image listing as a Beam stage: planned here (top level only), listed in parallel by the workers.

    Returns PCollections "refs" (``(shard, (IMAGE, key, ref))``), "outcome" and "count"."""
    if imagenet.is_tar_source(source):
        parts, direct = imagenet.plan_tar(source)
        lister = imagenet.list_inner_tar
    else:
        parts, direct = imagenet.list_top_level(source)
        lister = imagenet.list_class_folder
    listed = (
        p
        | "ImageParts" >> beam.Create(parts)
        | "SpreadParts" >> beam.Reshuffle()
        | "ListImages"
        >> beam.ParDo(ListImagesFn(lister, num_shards)).with_outputs("outcome", "count", main="refs")
    )
    # Entries stored directly at the top (oddities, or images in the outer tar): one element, listed alike.
    top = (
        p
        | "TopLevel" >> beam.Create([direct])
        | "ListTopLevel"
        >> beam.ParDo(ListImagesFn(iter, num_shards)).with_outputs("outcome", "count", main="refs")
    )
    return {
        tag: (listed[tag], top[tag]) | f"Listed{tag.title()}" >> beam.Flatten()
        for tag in ("refs", "outcome", "count")
    }


# ---------------------------------------------------------------------------------------------------
# Running it
# ---------------------------------------------------------------------------------------------------


def count_inputs(config: BuildConfig) -> int:
    """Check the metadata source before any pipeline starts, and count it (it sizes the shards)."""
    kind = config.metadata_kind
    if kind == "release":
        return release.count_release_records(config.metadata_path)
    if kind == "responses":
        if not fsio.exists(config.metadata_path) and not fsio.listdir(config.metadata_path):
            raise UsageError(f"response store not found: {config.metadata_path}")
        from imagenet_captions.flickr.store import store_summary

        # Every image id in the store is one input (ok or not); the summary counts them without
        # parsing the stored answers' raw JSON, which the pipeline then reads once.
        return store_summary(config.metadata_path, _parse_date(config.as_of))["image_total"]
    raise UsageError(f"--metadata must be release:<zip|json> or responses:<dir>, not {config.metadata!r}")


def make_pipeline(beam_args: list[str]) -> beam.Pipeline:
    """In-process FnApiRunner unless --runner is given (Beam's DirectRunner would fetch the Prism binary)."""
    options = PipelineOptions(beam_args)
    if any(a == "--runner" or a.startswith("--runner=") for a in beam_args):
        return beam.Pipeline(options=options)
    from apache_beam.runners.portability.fn_api_runner import FnApiRunner

    return beam.Pipeline(runner=FnApiRunner(), options=options)


def run_build(config: BuildConfig, beam_args: list[str] | None = None) -> dict[str, Any]:
    """Run a whole build and return its report."""
    if ":" not in config.metadata:
        raise UsageError(f"--metadata must be release:<zip|json> or responses:<dir>, not {config.metadata!r}")
    if config.imagenet is not None and not fsio.exists(config.imagenet):
        raise UsageError(f"ImageNet source not found: {config.imagenet}")
    input_records = count_inputs(config)
    fsio.makedirs(config.out)
    with make_pipeline(beam_args or []) as p:
        build_graph(p, config, input_records)
    return json.loads(fsio.read_bytes(fsio.join(config.out, layout.REPORT_FILE)))


def _parse_date(value: str | None) -> datetime | None:
    if value is None:
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise UsageError(f"--as-of must be an ISO date or time, not {value!r}") from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=timezone.utc)


# ---------------------------------------------------------------------------------------------------
# The command
# ---------------------------------------------------------------------------------------------------


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--metadata",
        required=True,
        help="release:<imagenet_captions.zip|.json> or responses:<harvest out dir>",
    )
    parser.add_argument(
        "--imagenet",
        help="ImageNet train folder (train/<wnid>/*.JPEG) or ILSVRC2012_img_train.tar; "
        "without it, a text-only captions table is written",
    )
    parser.add_argument("--out", required=True, help="output directory")
    parser.add_argument(
        "--as-of", help="with responses:, use the newest answer fetched at or before this date"
    )
    add_shard_arguments(parser)
    add_text_arguments(parser)


def add_shard_arguments(parser: argparse.ArgumentParser) -> None:
    g = parser.add_argument_group("shards and images")
    g.add_argument(
        "--num-shards", type=int, help="fixed shard count (default: derived once from the input count)"
    )
    g.add_argument("--shard-size", type=int, default=2000, help="samples per shard when deriving the count")
    g.add_argument(
        "--min-shards",
        type=int,
        default=8,
        help="at least this many shards (>= loader workers x GPUs), unless shards would hold < 32",
    )
    g.add_argument("--resize", type=int, help="store images with this shorter side (default: original bytes)")
    g.add_argument("--jpeg-quality", type=int, default=95, help="quality of re-encoded and resized JPEGs")
    g.add_argument(
        "--verify",
        choices=["header", "draft", "full"],
        default=ImageOptions().verify,
        help="how pass-through JPEGs are checked: header (markers + end-of-image; the default), "
        "draft (reduced-size decode) or full (full decode)",
    )
    g.add_argument(
        "--resample",
        choices=sorted(RESAMPLE),
        default=ImageOptions().resample,
        help="resize filter: lanczos (the default, sharpest), bicubic, or bilinear (cheapest)",
    )
    g.add_argument("--max-pixels", type=int, default=100_000_000, help="decompression-bomb bound")


def config_from_args(args: argparse.Namespace) -> BuildConfig:
    if args.num_shards is not None and args.num_shards < 1:
        raise UsageError("--num-shards must be at least 1")
    return BuildConfig(
        metadata=args.metadata,
        out=args.out,
        imagenet=args.imagenet,
        num_shards=args.num_shards,
        shard_size=args.shard_size,
        min_shards=args.min_shards,
        as_of=args.as_of,
        image=ImageOptions(
            resize=args.resize,
            quality=args.jpeg_quality,
            max_pixels=args.max_pixels,
            verify=args.verify,
            resample=args.resample,
        ),
        text=text_options_from_args(args),
    )


def print_summary(rep: dict[str, Any], out: str) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"build summary: {out}")
    table.add_column("input")
    table.add_column("outcome")
    table.add_column("count", justify="right")
    for category in (RECORDS, IMAGES):
        if category not in rep:
            continue
        table.add_row(category, "[bold]input[/bold]", str(rep[category]["input"]))
        for reason, n in rep[category]["outcomes"].items():
            table.add_row("", reason, str(n))
    console = Console(stderr=True)
    console.print(table)
    shards = rep["shards"]
    console.print(
        f"shards: {shards['written_now']} written, {shards['kept']} unchanged and kept, "
        f"{len(shards['removed_stale'])} stale files removed; {shards['write_s']:.1f} s writing, "
        f"{rep['elapsed_s']:.1f} s in all"
    )
    if rep["accounting_problems"]:
        console.print(f"[red]accounting problems: {rep['accounting_problems']}[/red]")


def run(args: argparse.Namespace, extra: list[str]) -> int:
    config = config_from_args(args)
    rep = run_build(config, extra)
    print_summary(rep, config.out)
    return 1 if rep["accounting_problems"] else 0
