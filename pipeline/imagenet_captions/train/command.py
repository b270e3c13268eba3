"""``imagenet-captions train``: train CLIP or the cross-entropy baseline from the shards.

Examples::

    imagenet-captions train --shards out/shards --preset clip-rn50-paper --out runs/clip
    imagenet-captions train --shards 'out/shards/{00000..00099}.tar' --model ce-rn50 --epochs 90 --out runs/ce
    torchrun --nproc_per_node 8 -m imagenet_captions.cli train --shards out/shards --preset clip-rn50-paper --out runs/clip

Options left unset come from ``--preset`` (see ``presets.py``), then from ``TrainOptions``' defaults.
argparse only collects the values (no ``type=``, no ``choices=``): ``TrainOptions`` converts and
checks every one, so a bad value is one line naming the option and exit status 2, never argparse's
usage block or a traceback from deep in the run.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
from collections.abc import Iterable

from imagenet_captions.train.options import DECODES, OPTIMIZERS, PRECISIONS, SCHEDULES, TrainOptions


def _one_of(choices: Iterable[str]) -> str:
    """argparse's ``{a,b}`` metavar, kept in ``--help`` although ``TrainOptions`` checks the choice."""
    return "{" + ",".join(sorted(choices)) + "}"


def default_of(name: str) -> str:
    """``TrainOptions``' default of field ``name`` as ``--help`` shows it: one source for both."""
    value = {f.name: f.default for f in dataclasses.fields(TrainOptions)}[name]
    if isinstance(value, bool):
        return "on" if value else "off"
    if isinstance(value, tuple):
        return " ".join(f"{v:g}" for v in value)
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


def _help(text: str, name: str) -> str:
    return f"{text} (default {default_of(name)})"


def add_arguments(p: argparse.ArgumentParser) -> None:
    from imagenet_captions.train.models import MODEL_NAMES
    from imagenet_captions.train.presets import PRESETS

    p.epilog = (
        "Defaults shown are those of a run without --preset; a preset replaces them with its recipe's "
        "values, and an option given on the command line always wins (docs/train.md)."
    )
    g = p.add_argument_group("what and where")
    g.add_argument(
        "--shards", required=True, help="shard directory (with sizes.json) or a brace pattern of .tar files"
    )
    g.add_argument(
        "--model",
        metavar=_one_of(MODEL_NAMES),
        help="model to train (default: the --preset's; one is required)",
    )
    g.add_argument(
        "--preset",
        metavar=_one_of(PRESETS),
        help="a paper recipe; explicit options override it (default none)",
    )
    g.add_argument("--out", required=True, help="run directory: metrics.jsonl, checkpoints/, tensorboard/")
    g.add_argument("--steps", help="train this many optimiser steps (default: --epochs decides)")
    g.add_argument(
        "--epochs", help="train this many epochs of --train-num-samples (default: --steps decides)"
    )
    g.add_argument("--train-num-samples", help="samples per epoch (default: the sum of sizes.json)")
    g.add_argument("--device", help="cuda, cpu, or cuda:N (default: cuda when available)")
    g.add_argument(
        "--resume",
        help="'auto' (the run dir's latest checkpoint, if any) or a checkpoint path (default: a fresh run)",
    )

    g = p.add_argument_group("optimisation")
    g.add_argument("--batch-size", help=_help("per-rank batch size", "batch_size"))
    g.add_argument(
        "--global-batch-size",
        help="global batch size, divided over the ranks; --batch-size wins (default: --batch-size per rank)",
    )
    g.add_argument("--optimizer", metavar=_one_of(OPTIMIZERS), help=_help("optimiser", "optimizer"))
    g.add_argument("--lr", help=_help("peak learning rate, reached after the warm-up", "lr"))
    g.add_argument(
        "--weight-decay",
        help=_help(
            "decoupled weight decay, on weights only (not biases, norms, logit_scale)", "weight_decay"
        ),
    )
    g.add_argument("--beta1", help=_help("AdamW's first-moment decay", "beta1"))
    g.add_argument("--beta2", help=_help("AdamW's second-moment decay", "beta2"))
    g.add_argument("--eps", help=_help("AdamW's epsilon", "eps"))
    g.add_argument("--momentum", help=_help("SGD's momentum", "momentum"))
    g.add_argument(
        "--warmup-steps", help=_help("linear warm-up of the learning rate over N steps", "warmup_steps")
    )
    g.add_argument(
        "--schedule",
        metavar=_one_of(SCHEDULES),
        help=_help("learning-rate schedule after the warm-up", "schedule"),
    )
    g.add_argument("--lr-step-epochs", help=_help("step schedule: decay every N epochs", "lr_step_epochs"))
    g.add_argument("--lr-gamma", help=_help("step schedule: decay factor", "lr_gamma"))
    g.add_argument("--grad-clip-norm", help="clip the global gradient norm to this (default: no clipping)")
    g.add_argument(
        "--label-smoothing", help=_help("cross-entropy label smoothing (classifiers)", "label_smoothing")
    )

    g = p.add_argument_group("data")
    g.add_argument(
        "--workers",
        help="loader worker processes per rank (default: this machine's usable cores, less one per rank "
        "for its main process, at least 1; fewer when /dev/shm is small; a resume keeps the run's own)",
    )
    g.add_argument(
        "--shuffle-buffer", help=_help("samples in each worker's shuffle buffer", "shuffle_buffer")
    )
    g.add_argument(
        "--resampled",
        action="store_true",
        default=None,
        help=_help("draw shards with replacement", "resampled"),
    )
    g.add_argument(
        "--decode",
        metavar=_one_of(DECODES),
        help="JPEG decode: on the training device (nvjpeg, CPU fallback counted) or in CPU workers "
        "(default auto: device on a GPU)",
    )
    # nargs="+", not 2: a wrong count is then TrainOptions' one-line error, not argparse's usage block.
    g.add_argument(
        "--scale",
        nargs="+",
        metavar="MIN MAX",
        help=_help("RandomResizedCrop area range (two numbers)", "scale"),
    )
    g.add_argument(
        "--hflip",
        action=argparse.BooleanOptionalAction,
        default=None,
        help=_help("random horizontal flip", "hflip"),
    )
    g.add_argument("--image-size", help="override the model's input size (default: the model's own)")

    g = p.add_argument_group("speed")
    g.add_argument(
        "--precision",
        metavar=_one_of(PRECISIONS),
        help="autocast dtype (default auto: bf16 on a GPU, fp32 on the CPU)",
    )
    g.add_argument(
        "--channels-last",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="NHWC memory layout (default: on a GPU)",
    )
    g.add_argument(
        "--compile", action="store_true", default=None, help=_help("torch.compile the model", "compile")
    )
    g.add_argument("--dist-backend", help="torch.distributed backend (default: nccl on GPU, gloo on CPU)")

    g = p.add_argument_group("logging and checkpoints")
    g.add_argument("--seed", help=_help("seed of the shuffles, augmentation and initialisation", "seed"))
    g.add_argument("--log-every", help=_help("write a metrics row every N steps", "log_every"))
    g.add_argument("--save-every", help="checkpoint every N steps (default 0: only at the end)")
    g.add_argument("--keep-checkpoints", help="keep only the newest N step checkpoints (default 0: all)")


def options_from_args(args: argparse.Namespace) -> TrainOptions:
    """The effective options: the preset and defaults filled in, every value checked.

    The world size comes from torchrun's environment, so each rank divides a global batch alike.
    """
    from imagenet_captions.train.presets import resolve

    explicit = {k: v for k, v in vars(args).items() if k not in ("verbose", "preset")}
    return resolve(explicit, args.preset, world_size=int(os.environ.get("WORLD_SIZE", "1")))


def run(args: argparse.Namespace, extra: list[str]) -> int:
    from imagenet_captions.train.loop import train

    train(options_from_args(args))
    return 0
