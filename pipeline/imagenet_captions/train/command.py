"""``imagenet-captions train``: train CLIP or the cross-entropy baseline from the shards.

Examples::

    imagenet-captions train --shards out/shards --preset clip-rn50-paper --out runs/clip
    imagenet-captions train --shards 'out/shards/{00000..00099}.tar' --model ce-rn50 --epochs 90 --out runs/ce
    torchrun --nproc_per_node 8 -m imagenet_captions.cli train --shards out/shards --preset clip-rn50-paper --out runs/clip

Options left unset come from ``--preset`` (see ``presets.py``), then from built-in defaults.
"""

from __future__ import annotations

import argparse
from typing import Any

from imagenet_captions.errors import UsageError


def add_arguments(p: argparse.ArgumentParser) -> None:
    from imagenet_captions.train.models import MODEL_NAMES
    from imagenet_captions.train.presets import PRESETS

    g = p.add_argument_group("what and where")
    g.add_argument(
        "--shards", required=True, help="shard directory (with sizes.json) or a brace pattern of .tar files"
    )
    g.add_argument("--model", choices=sorted(MODEL_NAMES), help="model to train (or set by --preset)")
    g.add_argument("--preset", choices=sorted(PRESETS), help="a paper recipe; explicit options override it")
    g.add_argument("--out", required=True, help="run directory: metrics.jsonl, checkpoints/, tensorboard/")
    g.add_argument("--steps", type=int, help="train this many optimiser steps")
    g.add_argument("--epochs", type=int, help="train this many epochs (of --train-num-samples)")
    g.add_argument("--train-num-samples", type=int, help="samples per epoch (default: the sum of sizes.json)")
    g.add_argument("--device", help="cuda, cpu, or cuda:N (default: cuda when available)")
    g.add_argument("--resume", help="'auto' (the run dir's latest checkpoint, if any) or a checkpoint path")

    g = p.add_argument_group("optimisation")
    g.add_argument("--batch-size", type=int, help="per-rank batch size")
    g.add_argument("--global-batch-size", type=int, help="global batch size (divided by the number of ranks)")
    g.add_argument("--optimizer", choices=["adamw", "sgd"])
    g.add_argument("--lr", type=float)
    g.add_argument("--weight-decay", type=float)
    g.add_argument("--beta1", type=float)
    g.add_argument("--beta2", type=float)
    g.add_argument("--eps", type=float)
    g.add_argument("--momentum", type=float)
    g.add_argument("--warmup-steps", type=int)
    g.add_argument("--schedule", choices=["cosine", "step", "constant"])
    g.add_argument("--lr-step-epochs", type=int, help="step schedule: decay every N epochs")
    g.add_argument("--lr-gamma", type=float, help="step schedule: decay factor")
    g.add_argument("--grad-clip-norm", type=float, help="clip the global gradient norm to this")
    g.add_argument("--label-smoothing", type=float)

    g = p.add_argument_group("data")
    g.add_argument("--workers", type=int, default=4, help="loader worker processes per rank")
    g.add_argument("--shuffle-buffer", type=int, default=2000, help="samples in each worker's shuffle buffer")
    g.add_argument("--resampled", action="store_true", help="draw shards with replacement")
    g.add_argument(
        "--decode",
        choices=["auto", "cpu", "device"],
        default="auto",
        help="JPEG decode: on the training device (nvjpeg, CPU fallback counted) or in CPU workers",
    )
    g.add_argument(
        "--scale", type=float, nargs=2, metavar=("MIN", "MAX"), help="RandomResizedCrop area range"
    )
    g.add_argument(
        "--hflip", action=argparse.BooleanOptionalAction, default=None, help="random horizontal flip"
    )
    g.add_argument("--image-size", type=int, help="override the model's input size")

    g = p.add_argument_group("speed")
    g.add_argument(
        "--precision",
        choices=["auto", "fp32", "bf16", "fp16"],
        default="auto",
        help="autocast dtype (auto: bf16 on GPU)",
    )
    g.add_argument(
        "--channels-last", action=argparse.BooleanOptionalAction, default=None, help="NHWC (default on GPU)"
    )
    g.add_argument("--compile", action="store_true", help="torch.compile the model")
    g.add_argument("--dist-backend", help="torch.distributed backend (default: nccl on GPU, gloo on CPU)")

    g = p.add_argument_group("logging and checkpoints")
    g.add_argument("--seed", type=int, default=0)
    g.add_argument("--log-every", type=int, default=10, help="write a metrics row every N steps")
    g.add_argument("--save-every", type=int, default=0, help="checkpoint every N steps (always at the end)")
    g.add_argument(
        "--keep-checkpoints", type=int, default=0, help="keep only the newest N step checkpoints (0: all)"
    )


def options_from_args(args: argparse.Namespace) -> dict[str, Any]:
    """The effective option dict: preset and defaults filled in, batch sizes checked."""
    import os

    from imagenet_captions.train.presets import resolve

    explicit = {k: v for k, v in vars(args).items() if k not in ("verbose", "preset")}
    o = resolve(explicit, args.preset)
    o["preset"] = args.preset
    if not o.get("model"):
        raise UsageError("give --model or --preset")
    if o.get("steps") is None and o.get("epochs") is None:
        raise UsageError("give --steps or --epochs")
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if args.batch_size is None and o.get("global_batch_size"):
        if o["global_batch_size"] % world:
            raise UsageError(f"global batch {o['global_batch_size']} does not divide over {world} ranks")
        o["batch_size"] = o["global_batch_size"] // world
    if int(o["batch_size"]) <= 0:
        raise UsageError("--batch-size must be positive")
    if o.get("channels_last") is None:
        dev = o.get("device") or ""
        import torch

        o["channels_last"] = dev.startswith("cuda") or (not dev and torch.cuda.is_available())
    if o.get("hflip") is None:
        o["hflip"] = False
    return o


def run(args: argparse.Namespace, extra: list[str]) -> int:
    from imagenet_captions.train.loop import train

    train(options_from_args(args))
    return 0
