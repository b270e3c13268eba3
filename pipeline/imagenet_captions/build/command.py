"""``imagenet-captions build``: its arguments, the run (lock, plan, pipeline) and the summary."""

from __future__ import annotations

import argparse
import json
import logging
from dataclasses import fields
from typing import Any

from imagenet_captions import fsio, layout, locks, runners
from imagenet_captions.build.graph import build_graph
from imagenet_captions.build.plan import BuildConfig, make_plan
from imagenet_captions.flickr.keys import build_redactor
from imagenet_captions.images import ImageOptions
from imagenet_captions.images.process import RESAMPLE
from imagenet_captions.outcomes import IMAGES, RECORDS
from imagenet_captions.shards import incremental
from imagenet_captions.text import add_text_arguments, text_options_from_args

log = logging.getLogger("imagenet_captions.build")


def run_build(config: BuildConfig, beam_args: list[str] | None = None) -> dict[str, Any]:
    """Run a whole build and return its report (with ``--dry_run``: ``{"dry_run": True, "stages": [...]}``).

    The output folder is locked for the whole run (a second build into it is refused, naming the
    holder), and what a killed run left half-written is removed before anything is written."""
    beam_args = list(beam_args or [])
    with locks.folder_lock(config.out, "build"):
        plan = make_plan(config, runners.parallelism(beam_args))
        dry_run = runners.is_dry_run(beam_args)
        if not dry_run:
            removed = incremental.remove_leftovers(plan.shard_dir)
            if removed:
                log.info("removed %d unfinished files of an earlier run: %s", len(removed), removed[:5])
        log.info(
            "%d input records -> %d shards in %s (%d metadata parts, %d image parts)",
            plan.input_records,
            plan.num_shards,
            plan.shard_dir,
            len(plan.read_parts),
            len(plan.listing_parts),
        )
        stages = runners.run_graph(beam_args, lambda p: build_graph(p, plan))
        if stages is not None:
            return {"dry_run": True, "stages": stages}
    return json.loads(fsio.read_bytes(fsio.join(config.out, layout.REPORT_FILE)))


#: The option dataclasses' defaults are the only ones: the parser shows and uses these.
_BUILD: dict[str, Any] = {f.name: f.default for f in fields(BuildConfig)}
_IMAGE = ImageOptions()


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--metadata",
        required=True,
        help="release:<imagenet_captions.zip|.json>, responses:<harvest out dir> or text-release:<dir>",
    )
    parser.add_argument(
        "--imagenet",
        help="ImageNet train folder (train/<wnid>/*.JPEG) or ILSVRC2012_img_train.tar (or fall11/winter21 "
        "with --classes); without it, a text-only captions table is written",
    )
    parser.add_argument("--out", required=True, help="output directory")
    parser.add_argument(
        "--as-of", help="with responses:, use the newest answer fetched at or before this date"
    )
    parser.add_argument(
        "--classes",
        default=_BUILD["classes"],
        metavar="ilsvrc2012|all|FILE",
        help="the classes records and images may have: ILSVRC-2012's 1,000 (default), all the wnids of "
        "--imagenet (ImageNet-21k), or a file of wnids; .cls is the position in the sorted list",
    )
    add_shard_arguments(parser)
    add_text_arguments(parser)


def add_shard_arguments(parser: argparse.ArgumentParser) -> None:
    g = parser.add_argument_group("shards and images")
    g.add_argument(
        "--num-shards", type=int, help="fixed shard count (default: derived once from the input count)"
    )
    g.add_argument("--shard-size", type=int, default=_BUILD["shard_size"], help="samples per shard when deriving the count")
    g.add_argument(
        "--min-shards",
        type=int,
        default=_BUILD["min_shards"],
        help="at least this many shards (>= loader workers x GPUs), unless shards would hold < 32",
    )
    g.add_argument("--resize", type=int, help="store images with this shorter side (default: original bytes)")
    g.add_argument("--jpeg-quality", type=int, default=_IMAGE.quality, help="quality of re-encoded and resized JPEGs (1-100)")
    g.add_argument(
        "--verify",
        choices=["header", "draft", "full"],
        default=_IMAGE.verify,
        help="how pass-through JPEGs are checked: header (markers + end-of-image; the default), "
        "draft (reduced-size decode) or full (full decode)",
    )
    g.add_argument(
        "--resample",
        choices=sorted(RESAMPLE),
        default=_IMAGE.resample,
        help="resize filter: lanczos (the default, sharpest), bicubic, or bilinear (cheapest)",
    )
    g.add_argument("--max-pixels", type=int, default=_IMAGE.max_pixels, help="decompression-bomb bound")


def config_from_args(args: argparse.Namespace) -> BuildConfig:
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
        text=text_options_from_args(args, build_redactor(args.api_key_file)),
        classes=args.classes,
    )


#: Columns of the summary when stderr is not a terminal (piped, logged): rich would otherwise use
#: $COLUMNS or 80 and fold what does not fit; the table is narrower than this and never stretched.
SUMMARY_WIDTH = 100


def print_summary(rep: dict[str, Any], out: str) -> None:
    """The build's outcomes as a table on stderr, and its shards' line.

    The output folder is a line of its own, not the table's title: rich wraps a title to the table's
    width, which cut a long path mid-name. Lines are printed unwrapped (``soft_wrap``), so a path or
    a count is never split when the output is piped."""
    from rich.console import Console
    from rich.table import Table

    console = Console(stderr=True)
    if not console.is_terminal:
        console.width = SUMMARY_WIDTH
    table = Table()
    table.add_column("input", no_wrap=True)
    table.add_column("outcome", no_wrap=True)
    table.add_column("count", justify="right", no_wrap=True)
    for category in (RECORDS, IMAGES):
        if category not in rep:
            continue
        table.add_row(category, "[bold]input[/bold]", str(rep[category]["input"]))
        for reason, n in rep[category]["outcomes"].items():
            table.add_row("", reason, str(n))
    console.print(f"build summary: {out}", soft_wrap=True, markup=False, highlight=False)
    console.print(table)
    shards = rep["shards"]
    console.print(
        f"shards: {shards['written_now']} written, {shards['kept']} unchanged and kept, "
        f"{len(shards['removed_stale'])} stale files removed; {shards['write_s']:.1f} s writing, "
        f"{rep['elapsed_s']:.1f} s in all",
        soft_wrap=True,
    )
    if rep["accounting_problems"]:
        console.print(f"[red]accounting problems: {rep['accounting_problems']}[/red]", soft_wrap=True)


def run(args: argparse.Namespace, extra: list[str]) -> int:
    config = config_from_args(args)
    rep = run_build(config, extra)
    if rep.get("dry_run"):
        return runners.print_dry_run(rep, "the build's graph")
    print_summary(rep, config.out)
    return 1 if rep["accounting_problems"] else 0
