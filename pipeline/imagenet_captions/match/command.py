"""``imagenet-captions match``: its arguments, the run (lock, plan, pipeline) and the summary."""

from __future__ import annotations

import argparse
import json
import logging
from typing import Any

from imagenet_captions import fsio, layout, locks, runners
from imagenet_captions.match.balance import IMAGENET_CAPTIONS
from imagenet_captions.match.corpora import KINDS, TEXT_COLUMNS, ReadOptions
from imagenet_captions.match.graph import match_graph
from imagenet_captions.match.options import CASES, MULTIPLE, OVERLAPS, PRESETS, apply_preset
from imagenet_captions.match.plan import (
    DEFAULT_SHARD_ROWS,
    MATCHES_DIR,
    SHARD_ROWS,
    SHARDS_DIR,
    SPILL_DIR,
    MatchConfig,
    make_plan,
)
from imagenet_captions.shards import incremental

log = logging.getLogger("imagenet_captions.match")


def remove_leftovers(out: str) -> list[str]:
    """Temporary files a killed run left in the output's folders (the lock says no run is writing)."""
    removed = incremental.remove_leftovers(out)
    for sub in (MATCHES_DIR, SHARDS_DIR, SPILL_DIR):
        folder = fsio.join(out, sub)
        for name in fsio.listdir(folder):
            if fsio.is_temp(name):
                fsio.remove(fsio.join(folder, name))
                removed.append(name)
    return removed


def run_match(config: MatchConfig, beam_args: list[str] | None = None) -> dict[str, Any]:
    """Run a whole match and return its report (with ``--dry_run``: ``{"dry_run": True, "stages": [...]}``).

    The output folder is locked for the whole run (a second run into it is refused, naming the
    holder); the corpus is checked before anything is written; what a killed run left half-written
    is removed first, and its committed shards are kept when their inputs are unchanged."""
    beam_args = list(beam_args or [])
    with locks.folder_lock(config.out, "match"):
        plan = make_plan(config, runners.parallelism(beam_args))
        dry_run = runners.is_dry_run(beam_args)
        if not dry_run:
            removed = remove_leftovers(config.out)
            if removed:
                log.info("removed %d unfinished files of an earlier run: %s", len(removed), removed[:5])
        rows = plan.corpus.rows()
        log.info(
            "%s corpus, %d files%s -> %d shards in %s (%d parts, %d classes)",
            plan.corpus.kind,
            len(plan.corpus.files),
            "" if rows is None else f", {rows:,} rows",
            plan.num_shards,
            config.out,
            len(plan.parts),
            len(plan.vocabulary.classes),
        )
        stages = runners.run_graph(beam_args, lambda p: match_graph(p, plan))
        if stages is not None:
            return {"dry_run": True, "stages": stages}
    return json.loads(fsio.read_bytes(fsio.join(config.out, layout.REPORT_FILE)))


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--corpus",
        required=True,
        metavar="KIND:PATH",
        help=f"the corpus: KIND one of {', '.join(KINDS)}; PATH a file, a folder or a glob (local or any "
        "Beam FileSystem)",
    )
    parser.add_argument("--out", required=True, help="output directory")
    g = parser.add_argument_group("corpus columns")
    g.add_argument(
        "--text-column",
        help=f"the caption column or JSON field (default: the first of {', '.join(TEXT_COLUMNS)})",
    )
    g.add_argument("--url-column", help="the URL column or JSON field (default: url or URL, when present)")
    g.add_argument(
        "--key-column",
        help="the key column or JSON field (default: none; the key is <file stem>_<row, 9 digits>)",
    )
    g.add_argument(
        "--keep-column",
        action="append",
        default=[],
        metavar="NAME",
        help="copy this column to the output (repeatable)",
    )
    g = parser.add_argument_group("vocabulary and rule (docs/match.md states the rule)")
    g.add_argument("--names", help="wordnet (the default), clip, or a file of wnid<TAB>term, term, ...")
    g.add_argument(
        "--classes",
        default="ilsvrc2012",
        metavar="ilsvrc2012|all|FILE",
        help="the classes to match; label = position",
    )
    g.add_argument(
        "--unique-terms", action="store_true", help="drop every term that names more than one class"
    )
    g.add_argument("--exclude-terms", metavar="FILE", help="terms never to match, one a line")
    g.add_argument("--preset", choices=sorted(PRESETS), help="a paper's rule; explicit options win")
    g.add_argument("--case", choices=CASES, help="insensitive (default) or sensitive")
    g.add_argument("--overlaps", choices=OVERLAPS, help="longest (default) or all")
    g.add_argument(
        "--multiple", choices=MULTIPLE, help="drop (default) a caption naming several classes, or all"
    )
    g.add_argument(
        "--no-clean", dest="clean", action="store_const", const=False, help="match captions as they are"
    )
    g = parser.add_argument_group("balancing")
    g.add_argument(
        "--balance-to", metavar=f"{IMAGENET_CAPTIONS}|FILE", help="per-class targets (FILE: wnid count lines)"
    )
    g.add_argument(
        "--max-per-class", type=int, help="at most N rows a class (with --balance-to: the smaller)"
    )
    g.add_argument("--seed", type=int, default=0, help="the seed of the balance order")
    g = parser.add_argument_group("shards")
    g.add_argument(
        "--num-shards", type=int, help="fixed output shard count (default: derived once from the corpus)"
    )
    g.add_argument(
        "--shard-rows",
        type=int,
        help=f"corpus rows per output shard when deriving the count (default: {DEFAULT_SHARD_ROWS:,}; "
        f"{SHARD_ROWS['webdataset']:,} for webdataset:)",
    )


def config_from_args(args: argparse.Namespace) -> MatchConfig:
    rule, names = apply_preset(args.preset, case=args.case, overlaps=args.overlaps, multiple=args.multiple,
                               clean=args.clean, names=args.names)  # fmt: skip
    return MatchConfig(
        corpus=args.corpus,
        out=args.out,
        read=ReadOptions(args.text_column, args.url_column, args.key_column, tuple(args.keep_column)),
        rule=rule,
        names=names,
        classes=args.classes,
        unique_terms=args.unique_terms,
        exclude_terms=args.exclude_terms,
        balance_to=args.balance_to,
        max_per_class=args.max_per_class,
        seed=args.seed,
        num_shards=args.num_shards,
        shard_rows=args.shard_rows,
    )


def print_summary(rep: dict[str, Any], out: str) -> None:
    """The run's outcomes on stderr, one line each, unwrapped."""
    import sys

    rows = rep["rows"]
    lines = [f"match summary: {out}", f"  rows read: {rows['input']:,}"]
    lines += [f"    {reason}: {n:,}" for reason, n in rows["outcomes"].items()]
    pairs = rep["pairs"]
    lines.append(
        f"  (row, class) matches: {pairs['matched']:,}: "
        + ", ".join(f"{k} {v:,}" for k, v in pairs["outcomes"].items())
    )
    s = rep["shards"]
    lines.append(
        f"  shards: {s['written_now']} written, {s['kept']} unchanged and kept; {rep['elapsed_s']:.1f} s in all"
    )
    if rep["accounting_problems"]:
        lines.append(f"  accounting problems: {rep['accounting_problems']}")
    print("\n".join(lines), file=sys.stderr)


def run(args: argparse.Namespace, extra: list[str]) -> int:
    config = config_from_args(args)
    rep = run_match(config, extra)
    if rep.get("dry_run"):
        return runners.print_dry_run(rep, "the match graph")
    print_summary(rep, config.out)
    return 1 if rep["accounting_problems"] else 0
