"""``imagenet-captions eval`` (accuracies) and ``imagenet-captions eval robustness`` (effective robustness).

``eval robustness`` is a sub-subcommand: ``eval`` itself takes a model and data, and an optional
``robustness`` action takes an accuracies file instead. Neither imports Beam, and ``robustness``
does not import torch either, so it runs wherever numpy and matplotlib do.

argparse only collects the values (no ``type=``, no ``choices=``); ``EvalOptions`` and
``RobustnessOptions`` convert and check every one before any work starts, so a bad value is one
line naming the option and exit status 2.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import math
import os
from pathlib import Path

from imagenet_captions import fsio
from imagenet_captions.errors import UsageError
from imagenet_captions.eval import DATASETS
from imagenet_captions.eval.options import BASELINES, EvalOptions, RobustnessOptions, parse_paths

log = logging.getLogger(__name__)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    defaults = {f.name: f for f in dataclasses.fields(EvalOptions)}
    parser.description = (
        "Top-1 on ImageNet and five natural shifts (eval --checkpoint ...), or effective robustness "
        "from an accuracies file (eval robustness --accuracies ...)."
    )
    parser.add_argument(
        "--checkpoint",
        help="our checkpoint, or open_clip:<model>:<file> for an open_clip one (required without 'robustness')",
    )
    parser.add_argument(
        "--open-clip-model",
        help="open_clip model name of a plain open_clip --checkpoint file (default: our checkpoint format)",
    )
    parser.add_argument(
        "--data-root",
        help="folder holding the datasets, see docs/eval.md for the layout (required without 'robustness')",
    )
    parser.add_argument(
        "--datasets",
        nargs="+",
        metavar="NAME",
        help=f"which to score (default: all found under --data-root): {', '.join(DATASETS)}",
    )
    parser.add_argument(
        "--path",
        action="append",
        default=[],
        metavar="NAME=DIR",
        help="where one dataset is, overriding the default location under --data-root (repeatable; "
        "default: the locations in docs/eval.md)",
    )
    parser.add_argument(
        "--imagenet-labels",
        help="labels file for a flat ImageNet val folder (default: LOC_val_solution.csv or val.txt beside it)",
    )
    parser.add_argument("--out", help=f"accuracies JSON to write (default {defaults['out'].default})")
    parser.add_argument("--device", help="cpu, cuda or cuda:N (default: cuda when available)")
    parser.add_argument("--batch-size", help=f"images per batch (default {defaults['batch_size'].default})")
    parser.add_argument(
        "--workers",
        help="file-reading workers (default: the usable cores less one, at most 8; fewer when /dev/shm "
        "is small)",
    )
    parser.add_argument("--limit", help="score only the first N images of each set (default: all)")
    sub = parser.add_subparsers(dest="action", metavar="[robustness]")
    rob = sub.add_parser(
        "robustness",
        help="effective robustness (Taori et al.) from an accuracies JSON",
        description="Effective robustness against the imagenet-testbed baselines, in logit space.",
    )
    rob.add_argument("--accuracies", required=True, help="JSON written by 'imagenet-captions eval'")
    rob.add_argument("--out", default=None, help="write the result JSON here (default: print it)")
    rob.add_argument(
        "--plot", default=None, help="write the figure (PNG, PDF, SVG) here (default: no figure)"
    )
    rob.add_argument(
        "--baseline",
        default="standard",
        metavar="{" + ",".join(BASELINES) + "}",
        help="which line 'effective_robustness' uses; both are always reported (default standard)",
    )
    rob.add_argument(
        "--label", default=None, help="the model's name in the plot (default: the accuracies file's name)"
    )


def _write_json(path: str, obj: object) -> None:
    """Whole file or nothing (the project's one writer); a missing folder is the user's mistake."""
    target = Path(path)
    if target.parent and not target.parent.exists():
        raise UsageError(f"output folder {target.parent} does not exist")
    fsio.write_json_atomic(path, obj)


def load_accuracies(path: str) -> dict[str, float]:
    """The numbers of an accuracies file; null (what ``eval`` writes for a set of no images) is absent."""
    p = Path(path)
    if not p.is_file():
        raise UsageError(f"--accuracies: accuracies file not found: {path}")
    try:
        raw = json.loads(p.read_text())
    except json.JSONDecodeError as e:
        raise UsageError(f"{path} is not JSON: {e}") from e
    if not isinstance(raw, dict):
        raise UsageError(f"{path}: expected a JSON object of accuracies")
    out = {}
    for k, v in raw.items():
        if k == "details" or v is None:
            continue
        if not isinstance(v, (int, float)) or isinstance(v, bool):
            raise UsageError(f"{path}: {k!r} is {v!r}, not a number")
        if not math.isnan(v):
            out[k] = float(v)
    return out


def run_robustness(args: argparse.Namespace) -> int:
    from imagenet_captions.eval.robustness import effective_robustness

    o = RobustnessOptions(
        accuracies=args.accuracies, out=args.out, plot=args.plot, baseline=args.baseline, label=args.label
    )
    accuracies = load_accuracies(o.accuracies)
    result = effective_robustness(accuracies, primary=o.baseline, source=o.accuracies)
    for note in result["notes"]:
        log.info("%s", note)
    for warning in result["warnings"]:
        log.warning("%s", warning)
    if o.out:
        _write_json(o.out, result)
    else:
        print(json.dumps(result, indent=2))
    if o.plot:
        from imagenet_captions.eval.plot import plot_robustness

        plot_robustness(result, o.plot, o.label or Path(o.accuracies).stem)
        log.info("plot written to %s", o.plot)
    return 0


def eval_options(args: argparse.Namespace) -> EvalOptions:
    """The checked options of ``eval``: argparse's strings, converted and validated once."""
    if not args.checkpoint or not args.data_root:
        raise UsageError("eval needs --checkpoint and --data-root (or the 'robustness' action)")
    given = {
        "open_clip_model": args.open_clip_model,
        "datasets": tuple(args.datasets) if args.datasets is not None else None,
        "imagenet_labels": args.imagenet_labels,
        "out": args.out,
        "device": args.device,
        "batch_size": args.batch_size,
        "workers": args.workers,
        "limit": args.limit,
    }
    return EvalOptions(
        checkpoint=args.checkpoint,
        data_root=args.data_root,
        paths=parse_paths(args.path),
        **{k: v for k, v in given.items() if v is not None},
    )


def run_eval(args: argparse.Namespace) -> int:
    o = eval_options(args)
    import torch

    from imagenet_captions.eval.evaluate import evaluate
    from imagenet_captions.train.checkpoint import load_for_inference

    device = o.device or ("cuda" if torch.cuda.is_available() else "cpu")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise UsageError(f"--device {device}, but no CUDA device is available")
    if device.startswith("cuda"):
        from imagenet_captions.train.step import fast_cuda_settings

        fast_cuda_settings(tf32=False)  # cuDNN autotuning; the fp32 heads stay full fp32
    loaded = load_for_inference(o.checkpoint, device, model_name=o.open_clip_model)
    result = evaluate(
        loaded, o.data_root, o.datasets, o.paths, o.imagenet_labels, o.batch_size, o.workers, o.limit
    )
    result["details"]["checkpoint"] = os.path.basename(o.checkpoint)
    result = {k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in result.items()}
    _write_json(o.out, result)
    log.info("accuracies written to %s", o.out)
    return 0


def run(args: argparse.Namespace, extra: list[str]) -> int:
    if args.action == "robustness":
        return run_robustness(args)
    return run_eval(args)
