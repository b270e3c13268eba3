"""``imagenet-captions harvest``: Flickr metadata for ImageNet's URL list, at the key's quota.

    imagenet-captions harvest --urls fall11_urls.txt[.gz] --out DIR [--endpoint URL] [--qps F]
                              [--limit N] [--refresh AGE] [--api-key-file FILE]
    imagenet-captions harvest --out DIR --export release.json [--as-of DATE]
    imagenet-captions harvest --out DIR --diff imagenet_captions.json [--diff-out FILE]

The key comes from ``$FLICKR_API_KEY`` (comma-separated for several keys) or ``--api-key-file``,
never from the command line. A harvest in which no photo got an answer exits 1 with one line
(:func:`nothing_harvested`); one with some answers exits 0 and counts its failures in the report. Progress (calls, rate, answers by status, time left at the quota) is
logged every ``--progress-every`` seconds; the run's accounting is ``DIR/harvest_report.json``.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys

from imagenet_captions.dates import parse_instant
from imagenet_captions.errors import UsageError
from imagenet_captions.flickr.client import DEFAULT_ENDPOINT
from imagenet_captions.flickr.keys import build_redactor


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--urls", help="ImageNet URL list (fall11_urls.txt, plain or .gz)")
    parser.add_argument("--out", required=True, help="harvest directory (responses/ and reports go here)")
    parser.add_argument(
        "--endpoint", default=DEFAULT_ENDPOINT, help="Flickr REST endpoint (default: %(default)s)"
    )
    parser.add_argument(
        "--qps",
        type=float,
        default=0.95,
        help="calls per second per key (default 0.95: Flickr allows 3,600/hour)",
    )
    parser.add_argument("--burst", type=int, default=1, help="calls a key may make back to back (default 1)")
    parser.add_argument(
        "--synsets",
        default="ilsvrc2012",
        help="classes to harvest: ilsvrc2012 (ImageNet-1k, default), all, or a file of wnids",
    )
    parser.add_argument("--limit", type=int, help="fetch at most N photos this run (the N smallest ids)")
    parser.add_argument("--refresh", metavar="AGE", help="fetch again answers older than AGE (30d, 12h, 90m)")
    parser.add_argument("--api-key-file", help="file with one API key per line (default: $FLICKR_API_KEY)")
    parser.add_argument("--concurrency", type=int, help="calls in flight (default: enough for the quota)")
    parser.add_argument("--timeout", type=float, default=30.0, help="seconds per call (default 30)")
    parser.add_argument(
        "--max-attempts", type=int, default=8, help="calls per photo before giving up (default 8)"
    )
    parser.add_argument(
        "--backoff-base", type=float, default=1.0, help="first retry's backoff cap, seconds (1)"
    )
    parser.add_argument("--backoff-max", type=float, default=120.0, help="largest backoff, seconds (120)")
    parser.add_argument("--progress-every", type=float, default=10.0, help="seconds between progress lines")
    parser.add_argument(
        "--fsync-every", type=int, default=64, help="journal fsync batch, in answers (default 64)"
    )
    parser.add_argument(
        "--fsync-interval",
        type=float,
        default=0.25,
        help="longest wait before a journal fsync, seconds (0.25)",
    )
    parser.add_argument(
        "--shared-limiter",
        action="store_true",
        help="share each key's quota with other harvest workers through Redis at $FLICKR_REDIS_URL",
    )
    parser.add_argument("--export", metavar="FILE", help="write the store as release-format JSON")
    parser.add_argument("--as-of", help="with --export/--diff: the answers as of this date (ISO 8601, UTC)")
    parser.add_argument("--diff", metavar="RELEASE", help="compare the store with a release JSON file")
    parser.add_argument(
        "--diff-out", metavar="FILE", help="where the diff report goes (default DIR/diff_report.json)"
    )


def check_paths(args: argparse.Namespace) -> None:
    """Name the option of a path that cannot work before the harvest spends any quota on it."""
    for option, path in (("--api-key-file", args.api_key_file), ("--diff", args.diff)):
        if path is not None and not os.path.isfile(path):
            raise UsageError(f"{option}: no such file: {path}")
    out = os.path.abspath(args.out)  # the harvest makes this one
    for option, path in (("--export", args.export), ("--diff-out", args.diff_out)):
        folder = os.path.dirname(os.path.abspath(path)) if path is not None else None
        if folder is not None and folder != out and not os.path.isdir(folder):
            raise UsageError(f"{option}: the folder of {path} does not exist")


def nothing_harvested(report: dict) -> str | None:
    """Why the run harvested nothing, or None. A run fails when it asked Flickr about photos and
    none got an answer (``ok`` or ``not_found``): every one gave up (the endpoint down, all 5xx) or
    got a Flickr error code (a wrong endpoint's "method not found"). A run with some answers
    succeeds, its failures counted in the report; so does a run with nothing left to ask."""
    fetched = report["fetched"]
    asked = sum(fetched.values())
    if asked == 0 or fetched["ok"] + fetched["not_found"] > 0:
        return None
    calls = (report["calls"] or {}).get("by_outcome", {})
    outcomes = ", ".join(f"{k} {v}" for k, v in sorted(calls.items(), key=lambda kv: (-kv[1], kv[0])))
    return (
        f"none of the {asked} photos got an answer (gave_up {fetched['gave_up']}, failed {fetched['failed']} "
        f"with a Flickr error code; calls: {outcomes or 'none'})"
    )


def run(args: argparse.Namespace, extra: list[str]) -> int:
    from imagenet_captions.flickr import export, pipeline, store

    # Beam logs each string type hint it meets (and more) at INFO; keep the progress lines readable.
    if not args.verbose:
        logging.getLogger("apache_beam").setLevel(logging.WARNING)
    if not (args.urls or args.export or args.diff):
        raise UsageError("nothing to do: give --urls to harvest, --export FILE or --diff RELEASE")
    as_of = parse_instant(args.as_of, "--as-of")
    check_paths(args)
    refresh = None if args.refresh is None else pipeline.parse_age(args.refresh)
    if args.urls:
        overrides = {
            "endpoint": args.endpoint,
            "qps": args.qps,
            "burst": args.burst,
            "concurrency": args.concurrency,
            "timeout": args.timeout,
            "max_attempts": args.max_attempts,
            "base_delay": args.backoff_base,
            "max_delay": args.backoff_max,
            "api_key_file": args.api_key_file,
            "fsync_every": args.fsync_every,
            "fsync_interval": args.fsync_interval,
            "progress_every": args.progress_every,
            "shared_limiter": args.shared_limiter,
        }
        report = pipeline.run_harvest(
            args.urls, args.out, overrides, args.limit, refresh, extra, args.synsets
        )
        print(
            f"harvest: lines {json.dumps(report['lines'])}; photos {json.dumps(report['photos'])}; "
            f"fetched {json.dumps(report['fetched'])}; calls {report['calls']['calls'] if report['calls'] else 0}; "
            f"report {os.path.join(args.out, pipeline.REPORT)}"
        )
        failure = nothing_harvested(report)
        if failure is not None:
            print(f"imagenet-captions harvest: error: {failure}; report {os.path.join(args.out, pipeline.REPORT)}",
                  file=sys.stderr)  # fmt: skip
            return 1
    rdir = store.responses_dir(args.out)
    # Answers are stored scrubbed of the keys; a store of an older version is scrubbed here, with the
    # keys at hand (none: nothing more to hide).
    redact = build_redactor(args.api_key_file) if (args.export or args.diff) else None
    if args.export:
        n = export.export_release(rdir, args.export, as_of, redact)
        print(f"export: {n} records -> {args.export}")
    if args.diff:
        report = export.diff_release(rdir, args.diff, as_of, redact=redact)
        path = args.diff_out or os.path.join(args.out, "diff_report.json")
        export.write_diff(report, path)
        print(f"diff: {json.dumps(report['counts'])} -> {path}")
    return 0
