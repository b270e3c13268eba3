"""``imagenet-captions eval`` (accuracies) and ``imagenet-captions eval robustness`` (effective robustness).

``eval robustness`` is a sub-subcommand: ``eval`` itself takes a model and data, and an optional
``robustness`` action takes an accuracies file instead. Neither imports Beam, and ``robustness``
does not import torch either, so it runs wherever numpy and matplotlib do.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import os
from pathlib import Path

from imagenet_captions.errors import UsageError
from imagenet_captions.eval import DATASETS

log = logging.getLogger(__name__)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.description = (
        "Top-1 on ImageNet and five natural shifts (eval --checkpoint ...), or effective robustness "
        "from an accuracies file (eval robustness --accuracies ...)."
    )
    parser.add_argument(
        "--checkpoint", help="our checkpoint, or open_clip:<model>:<file> for an open_clip one"
    )
    parser.add_argument(
        "--open-clip-model", help="open_clip model name of a plain open_clip --checkpoint file"
    )
    parser.add_argument("--data-root", help="folder holding the datasets (see docs/eval.md for the layout)")
    parser.add_argument(
        "--datasets",
        nargs="+",
        choices=DATASETS,
        metavar="NAME",
        help=f"which to score (default: all found under --data-root): {', '.join(DATASETS)}",
    )
    parser.add_argument(
        "--path",
        action="append",
        default=[],
        metavar="NAME=DIR",
        help="where one dataset is, overriding the default location under --data-root (repeatable)",
    )
    parser.add_argument("--imagenet-labels", help="labels file for a flat ImageNet val folder")
    parser.add_argument("--out", default="eval_accuracies.json", help="accuracies JSON to write")
    parser.add_argument("--device", default=None, help="cuda or cpu (default: cuda when available)")
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument(
        "--workers", type=int, default=min(8, os.cpu_count() or 1), help="file-reading workers"
    )
    parser.add_argument("--limit", type=int, default=None, help="score only the first N images of each set")
    sub = parser.add_subparsers(dest="action", metavar="[robustness]")
    rob = sub.add_parser(
        "robustness",
        help="effective robustness (Taori et al.) from an accuracies JSON",
        description="Effective robustness against the imagenet-testbed baselines, in logit space.",
    )
    rob.add_argument("--accuracies", required=True, help="JSON written by 'imagenet-captions eval'")
    rob.add_argument("--out", default=None, help="write the result JSON here (default: print it)")
    rob.add_argument("--plot", default=None, help="write the figure (PNG, PDF, SVG) here")
    rob.add_argument(
        "--baseline",
        default="standard",
        choices=("standard", "with-low-accuracy"),
        help="which line 'effective_robustness' uses (both are always reported)",
    )
    rob.add_argument("--label", default=None, help="the model's name in the plot")


def _write_json(path: str, obj) -> None:
    """Whole file or nothing: write to a temporary name, then rename."""
    target = Path(path)
    if target.parent and not target.parent.exists():
        raise UsageError(f"output folder {target.parent} does not exist")
    tmp = target.with_name(target.name + ".tmp")
    tmp.write_text(json.dumps(obj, indent=2, sort_keys=False, allow_nan=False) + "\n")
    os.replace(tmp, target)


def load_accuracies(path: str) -> dict[str, float]:
    p = Path(path)
    if not p.is_file():
        raise UsageError(f"accuracies file not found: {path}")
    try:
        raw = json.loads(p.read_text())
    except json.JSONDecodeError as e:
        raise UsageError(f"{path} is not JSON: {e}") from e
    if not isinstance(raw, dict):
        raise UsageError(f"{path}: expected a JSON object of accuracies")
    out = {}
    for k, v in raw.items():
        if k == "details":
            continue
        if not isinstance(v, (int, float)) or isinstance(v, bool):
            raise UsageError(f"{path}: {k!r} is {v!r}, not a number")
        if not math.isnan(v):
            out[k] = float(v)
    return out


def run_robustness(args: argparse.Namespace) -> int:
    from imagenet_captions.eval.robustness import effective_robustness

    accuracies = load_accuracies(args.accuracies)
    result = effective_robustness(accuracies, primary=args.baseline)
    for note in result["notes"]:
        log.info("%s", note)
    for warning in result["warnings"]:
        log.warning("%s", warning)
    if args.out:
        _write_json(args.out, result)
    else:
        print(json.dumps(result, indent=2))
    if args.plot:
        from imagenet_captions.eval.plot import plot_robustness

        plot_robustness(result, args.plot, args.label or Path(args.accuracies).stem)
        log.info("plot written to %s", args.plot)
    return 0


def run_eval(args: argparse.Namespace) -> int:
    if not args.checkpoint or not args.data_root:
        raise UsageError("eval needs --checkpoint and --data-root (or the 'robustness' action)")
    if not Path(args.data_root).is_dir():
        raise UsageError(f"--data-root {args.data_root} is not a directory")
    overrides = {}
    for item in args.path:
        name, sep, folder = item.partition("=")
        if not sep or name not in DATASETS:
            raise UsageError(f"--path wants NAME=DIR with NAME one of {', '.join(DATASETS)}, got {item!r}")
        overrides[name] = folder
    import torch

    from imagenet_captions.eval.evaluate import evaluate
    from imagenet_captions.train.checkpoint import load_for_inference

    device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    loaded = load_for_inference(args.checkpoint, device, model_name=args.open_clip_model)
    result = evaluate(
        loaded,
        args.data_root,
        args.datasets,
        overrides,
        args.imagenet_labels,
        args.batch_size,
        args.workers,
        args.limit,
    )
    result["details"]["checkpoint"] = os.path.basename(str(args.checkpoint))
    result = {k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in result.items()}
    _write_json(args.out, result)
    log.info("accuracies written to %s", args.out)
    return 0


def run(args: argparse.Namespace, extra: list[str]) -> int:
    if args.action == "robustness":
        return run_robustness(args)
    return run_eval(args)
