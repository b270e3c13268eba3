"""The training loop for CLIP and the cross-entropy classifier: ``train(options)``.

``train`` composes four parts, each readable alone (open_clip's ``main``/``train_one_epoch`` split):
``setup`` (process group, model, optimiser, schedule, loader: everything a run holds),
``check_resume`` (a checkpoint may only continue a run that would draw the same batches),
``checkpoint_payload`` (what a checkpoint records, and so what ``eval`` and a resume can rely on)
and ``train_steps`` (the steps, logging and periodic checkpoints). They stay in one module (over
400 lines) because all four read the one ``Run`` that ``setup`` builds; the optimiser step itself,
which the GPU benchmark also times, is in ``step``.

Single process or ``torchrun`` (DDP: NCCL on GPUs, gloo on CPUs). The CLIP loss is open_clip's
``ClipLoss`` with features gathered across ranks (with gradients), each rank scoring its own rows
against every rank's columns, which equals the single-process loss on the global batch.

Exact resume: the checkpoint holds model, optimiser, LR schedule, grad scaler, RNG states and the
data position (epoch, step in epoch); the loader rebuilds the same batches from there (see
``data``), so the losses after a resume are those of an uninterrupted run.
"""

from __future__ import annotations

import json
import logging
import os
import random
import shutil
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import numpy as np
import torch
from torch import nn

from imagenet_captions import fsio
from imagenet_captions.errors import UsageError
from imagenet_captions.train import checkpoint as ckpt_mod
from imagenet_captions.train import resources
from imagenet_captions.train.data import Augment, LoaderConfig, ShardLoader, ShardSpec, resolve_shards
from imagenet_captions.train.models import build_model, model_config, preprocess_for, tokenizer_spec
from imagenet_captions.train.options import TrainOptions
from imagenet_captions.train.step import (
    ClassifierLoss,
    Stepper,
    fast_cuda_settings,
    lr_factor,
    make_clip_loss,
    make_optimizer,
    rng_state,
    set_rng_state,
    unwrap,
)

log = logging.getLogger(__name__)


# ---------------------------------------------------------------------------------------------------
# Distributed set-up
# ---------------------------------------------------------------------------------------------------
def init_distributed(device_arg: str | None, backend: str | None) -> tuple[int, int, torch.device]:
    """(rank, world size, device) from torchrun's environment; a plain run is rank 0 of 1."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    want = device_arg or ("cuda" if torch.cuda.is_available() else "cpu")
    if want.startswith("cuda") and not torch.cuda.is_available():
        raise UsageError("--device cuda, but no CUDA device is available")
    device = torch.device(f"cuda:{local_rank}" if want == "cuda" else want)
    if device.type == "cuda":
        torch.cuda.set_device(device)
    if world > 1 and not torch.distributed.is_initialized():
        torch.distributed.init_process_group(backend=backend or ("nccl" if device.type == "cuda" else "gloo"))
    return rank, world, device


# ---------------------------------------------------------------------------------------------------
# The loop
# ---------------------------------------------------------------------------------------------------
class MetricsWriter:
    """metrics.jsonl (one JSON object per logged step) and TensorBoard when it is installed."""

    def __init__(self, out: Path, enabled: bool) -> None:
        self.enabled = enabled
        self.tb = None
        self.fh = None
        if not enabled:
            return
        self.fh = open(out / "metrics.jsonl", "a", encoding="utf-8")  # noqa: SIM115 - lives with the run
        try:
            from torch.utils.tensorboard import SummaryWriter

            self.tb = SummaryWriter(str(out / "tensorboard"))
        except Exception:  # tensorboard not installed: JSON lines only
            self.tb = None

    def write(self, row: dict[str, Any]) -> None:
        if self.fh is None:  # not enabled
            return
        self.fh.write(json.dumps(row, sort_keys=True) + "\n")
        self.fh.flush()
        if self.tb is not None:
            for k, v in row.items():
                if isinstance(v, (int, float)) and k != "step":
                    self.tb.add_scalar(f"train/{k}", v, row["step"])

    def close(self) -> None:
        if self.fh:
            self.fh.close()
        if self.tb is not None:
            self.tb.close()


# ---------------------------------------------------------------------------------------------------
# Setup: everything a run holds
# ---------------------------------------------------------------------------------------------------
#: Options that decide which batches a step sees: a resume that changes one would not continue the run.
BATCH_DECIDING = ("model", "seed", "workers", "batch_size", "shuffle_buffer", "resampled", "scale", "hflip")


@dataclass
class Position:
    """Where a run is: the next step, and the epoch and step in it that the loader starts from."""

    step: int = 0
    epoch: int = 0
    step_in_epoch: int = 0


@dataclass
class Run:
    """What ``setup`` makes and the loop, the checkpoint payload and the summary read."""

    options: TrainOptions
    rank: int
    world: int
    device: torch.device
    out: Path
    cfg: dict[str, Any]
    model: nn.Module
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LambdaLR
    scaler: torch.amp.GradScaler
    spec: ShardSpec
    loader: ShardLoader
    preprocess: dict[str, Any]
    total_steps: int
    precision: str
    decode: str
    stepper: Stepper
    position: Position = field(default_factory=Position)

    @property
    def kind(self) -> str:
        return str(self.cfg["kind"])

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def global_batch(self) -> int:
        return self.loader.cfg.batch_size * self.world

    @property
    def checkpoints(self) -> Path:
        return self.out / "checkpoints"


def find_resume(options: TrainOptions, out: Path) -> dict[str, Any] | None:
    """The checkpoint to continue from: ``auto`` finds the run's own (or none, for a fresh start)."""
    if not options.resume:
        return None
    path = out / "checkpoints" / "latest.pt" if options.resume == "auto" else Path(options.resume)
    if path.is_file():
        return ckpt_mod.read_checkpoint(path)
    if options.resume != "auto":
        raise UsageError(f"--resume: no checkpoint at {path}")
    return None


def check_resume(saved: dict[str, Any], options: TrainOptions, world: int, steps_per_epoch: int) -> None:
    """Refuse a resume that would draw different batches: every batch is a function of these."""
    before = saved["train_options"]
    for key in BATCH_DECIDING:
        now = getattr(options, key)
        if key in before and now != before[key] and not (key == "scale" and tuple(now) == tuple(before[key])):
            raise UsageError(f"--resume: option {key} was {before[key]!r}, now {now!r}; they must match")
    position = saved["data_position"]
    if position.get("world_size") != world:
        raise UsageError(f"--resume: run had {position.get('world_size')} ranks, now {world}")
    if position.get("steps_per_epoch") != steps_per_epoch:
        raise UsageError(
            f"--resume: the run had {position.get('steps_per_epoch')} steps per epoch, "
            f"now {steps_per_epoch} (different data or --train-num-samples)"
        )


def restore(
    saved: dict[str, Any],
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    scheduler: torch.optim.lr_scheduler.LambdaLR,
    scaler: torch.amp.GradScaler,
    rank: int,
) -> Position:
    """Load model, optimiser, schedule, scaler and this rank's RNG; the data position to start from.

    Called before DDP or ``torch.compile`` wrap the model, so they start from the restored weights.
    """
    model.load_state_dict(saved["state_dict"])
    optimizer.load_state_dict(saved["optimizer"])
    scheduler.load_state_dict(saved["scheduler"])
    if saved.get("scaler"):
        scaler.load_state_dict(saved["scaler"])
    rng = saved["rng"].get(str(rank)) if isinstance(saved.get("rng"), dict) else None
    set_rng_state(rng or {})
    return Position(
        step=int(saved["step"]),
        epoch=int(saved["data_position"]["epoch"]),
        step_in_epoch=int(saved["data_position"]["step_in_epoch"]),
    )


def plan_workers(
    o: TrainOptions, saved: dict[str, Any] | None, spec: ShardSpec, image_size: int, decode: str
) -> resources.WorkerPlan:
    """The loader's workers and queue depth: ``--workers``, else a resumed run's own count (it decides
    the batches), else what this machine has; then fitted to its shared memory (``resources``).

    A raw batch is the images decoded to uint8 (CPU decode) or the JPEG bytes (device decode),
    sized from the shard files. Only an automatic count may go down; one worker may also become
    none, which draws the same batches.
    """
    if o.workers is not None:
        workers, fixed = o.workers, True
    elif saved is not None:
        workers, fixed = int(saved["data_position"]["workers"]), True
    else:
        workers, fixed = resources.default_workers(), False
    if decode == "cpu":
        per_sample = float(image_size * image_size * 3)
    else:
        counted = sum(spec.sizes.values()) if spec.sizes else spec.num_samples
        per_sample = resources.mean_file_bytes(spec.urls, counted)
    batch_bytes = int(o.batch_size * (per_sample + resources.SAMPLE_OVERHEAD))
    return resources.fit_workers(
        workers,
        batch_bytes,
        resources.free_shared_memory(),
        may_reduce_workers=not fixed or workers == 1,
    )


def setup(options: TrainOptions) -> Run:
    """Process group, model, optimiser, schedule and loader, resumed from a checkpoint when asked."""
    shards, out_dir, model_name = options.shards, options.out, options.model
    if shards is None or out_dir is None:
        raise UsageError("train needs --shards and --out")
    if model_name is None:  # TrainOptions refuses this already
        raise UsageError("give --model or --preset")
    rank, world, device = init_distributed(options.device, options.dist_backend)
    channels_last = options.channels_last
    if channels_last is None:
        channels_last = device.type == "cuda"
        options = options.replace(channels_last=channels_last)
    o = options
    out = Path(out_dir)  # made by ``train`` once setup has accepted the run: a refusal leaves nothing
    saved = find_resume(o, out)
    spec = resolve_shards(shards, o.train_num_samples)  # before the model: a wrong path fails fast
    cfg = model_config(model_name)
    if o.image_size:
        cfg["image_size"] = o.image_size
    decode = o.decode if o.decode != "auto" else ("device" if device.type == "cuda" else "cpu")
    plan = plan_workers(o, saved, spec, int(cfg["image_size"]), decode)
    if world > 1:  # every rank must split the shards over the same number of workers: rank 0's plan
        shared = [plan]
        torch.distributed.broadcast_object_list(shared, src=0)
        plan = shared[0]
    o = o.replace(workers=plan.workers)
    if plan.note and rank == 0:
        log.warning("%s", plan.note)
    if device.type == "cuda":
        fast_cuda_settings()

    torch.manual_seed(o.seed + rank)
    random.seed(o.seed + rank)
    np.random.seed((o.seed + rank) % 2**32)

    model = build_model(cfg).to(device)
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    optimizer = make_optimizer(model, o, device)

    pre = preprocess_for(cfg)
    lcfg = LoaderConfig(
        batch_size=o.batch_size,
        augment=Augment(size=int(cfg["image_size"]), scale=o.scale, hflip=o.hflip),
        kind=cfg["kind"],
        tokenizer=tokenizer_spec(cfg),
        seed=o.seed,
        workers=plan.workers,
        shuffle_buffer=o.shuffle_buffer,
        resampled=o.resampled,
        decode=decode,
    )
    loader = ShardLoader(
        spec,
        lcfg,
        pre["mean"],
        pre["std"],
        device,
        rank,
        world,
        channels_last=channels_last,
        worker_prefetch=plan.prefetch,
    )
    spe = loader.steps_per_epoch
    if saved is not None:
        check_resume(saved, o, world, spe)
    if o.steps:
        total_steps = o.steps
    elif o.epochs is not None:
        total_steps = o.epochs * spe
    else:  # TrainOptions refuses this already
        raise UsageError("give --steps or --epochs")

    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: lr_factor(s, o, total_steps, spe))
    precision = o.precision if o.precision != "auto" else ("bf16" if device.type == "cuda" else "fp32")
    amp_dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(precision)
    scaler = torch.amp.GradScaler(device.type, enabled=precision == "fp16")
    position = Position()
    if saved is not None:
        position = restore(saved, model, optimizer, scheduler, scaler, rank)
        if rank == 0:
            p = position
            log.info("resumed from step %d (epoch %d, step %d in epoch)", p.step, p.epoch, p.step_in_epoch)

    train_model: nn.Module = model
    if world > 1:
        train_model = nn.parallel.DistributedDataParallel(
            model, device_ids=[device.index] if device.type == "cuda" else None
        )
    if o.compile:
        # cast: compiling a module gives an OptimizedModule (an nn.Module); torch types it as a callable
        train_model = cast(nn.Module, torch.compile(train_model))
    loss_fn: nn.Module = (
        make_clip_loss(rank, world) if cfg["kind"] == "clip" else ClassifierLoss(o.label_smoothing)
    )
    stepper = Stepper(
        train_model, model, loss_fn, optimizer, scaler, cfg["kind"], device, amp_dtype, o.grad_clip_norm
    )
    return Run(
        options=o,
        rank=rank,
        world=world,
        device=device,
        out=out,
        cfg=cfg,
        model=model,
        optimizer=optimizer,
        scheduler=scheduler,
        scaler=scaler,
        spec=spec,
        loader=loader,
        preprocess=pre,
        total_steps=total_steps,
        precision=precision,
        decode=decode,
        stepper=stepper,
        position=position,
    )


# ---------------------------------------------------------------------------------------------------
# The checkpoint payload
# ---------------------------------------------------------------------------------------------------
def checkpoint_payload(run: Run) -> dict[str, Any]:
    """The checkpoint of ``run`` at its position (docs/train.md, "Checkpoint format").

    Every rank must call it: the RNG states of all ranks are gathered, so a resume restores each.
    """
    rngs = [rng_state()]
    if run.world > 1:
        gathered: list[Any] = [None] * run.world
        torch.distributed.all_gather_object(gathered, rngs[0])
        rngs = gathered
    from imagenet_captions.classes import wnids

    p, lcfg = run.position, run.loader.cfg
    return {
        "kind": run.kind,
        "model": run.cfg,
        "state_dict": unwrap(run.model).state_dict(),
        "optimizer": run.optimizer.state_dict(),
        "scheduler": run.scheduler.state_dict(),
        "scaler": run.scaler.state_dict() if run.scaler.is_enabled() else None,
        "step": p.step,
        "epoch": p.epoch,
        "data_position": {
            "epoch": p.epoch,
            "step_in_epoch": p.step_in_epoch,
            "steps_per_epoch": run.loader.steps_per_epoch,
            "world_size": run.world,
            "workers": lcfg.workers,
            "batch_size": lcfg.batch_size,
            "seed": lcfg.seed,
        },
        "rng": {str(r): s for r, s in enumerate(rngs)},
        "tokenizer": tokenizer_spec(run.cfg),
        "preprocess": run.preprocess,
        "wnids": wnids(),
        "train_options": run.options.to_json(),
        "data": {
            **run.spec.describe(),
            "samples_seen": p.step * run.global_batch,
            "loader_stats": dict(run.loader.stats),
        },
    }


def save(run: Run) -> None:
    """Write ``step_NNNNNNNN.pt`` and ``latest.pt`` whole (rank 0), pruning to ``--keep-checkpoints``."""
    payload = checkpoint_payload(run)  # every rank joins the RNG gather
    if not run.is_main:
        return
    path = ckpt_mod.save_checkpoint(payload, run.checkpoints / f"step_{run.position.step:08d}.pt")
    with open(path, "rb") as src, fsio.atomic_write(str(run.checkpoints / "latest.pt")) as dst:
        shutil.copyfileobj(src, dst, 1 << 22)
    keep = run.options.keep_checkpoints
    if keep > 0:
        for old in sorted(run.checkpoints.glob("step_*.pt"))[:-keep]:
            old.unlink()


# ---------------------------------------------------------------------------------------------------
# The loop
# ---------------------------------------------------------------------------------------------------
def train_steps(run: Run, metrics: MetricsWriter) -> float:
    """Run from ``run.position`` to ``run.total_steps``; returns the last logged loss.

    One loader (one set of workers) for the whole run, across epochs: restarting workers at each
    epoch would stall the device. The loss is read back only at log steps (reading it is a sync).
    """
    o, pos, total = run.options, run.position, run.total_steps
    spe = run.loader.steps_per_epoch
    t_last, step_last = time.perf_counter(), pos.step
    t0 = t_last
    last_loss = float("nan")
    run.stepper.train_model.train()
    for batch in run.loader.steps(pos.step, total):
        loss = run.stepper(batch["images"], batch["tokens"] if run.kind == "clip" else batch["labels"])
        run.scheduler.step()
        pos.step += 1
        if pos.step % o.log_every == 0 or pos.step == total:
            last_loss = float(loss.detach().float().item())
            if run.world > 1:
                t = torch.tensor([last_loss], device=run.device)
                torch.distributed.all_reduce(t)
                last_loss = float(t.item()) / run.world
            now = time.perf_counter()
            rate = (pos.step - step_last) * run.global_batch / max(1e-9, now - t_last)
            row = {
                "step": pos.step,
                "epoch": pos.epoch,
                "loss": last_loss,
                "lr": run.optimizer.param_groups[0]["lr"],
                "samples_per_s": rate,
                "elapsed_s": now - t0,
                **{f"data_{k}": v for k, v in sorted(run.loader.stats.items())},
            }
            metrics.write(row)
            if run.is_main:
                eta = (total - pos.step) * run.global_batch / max(rate, 1e-9)
                print(
                    f"step {pos.step}/{total} epoch {pos.epoch} loss {last_loss:.4f} lr {row['lr']:.3g} "
                    f"{rate:,.0f} samples/s eta {eta / 60:.1f} min",
                    file=sys.stderr,
                    flush=True,
                )
            t_last, step_last = time.perf_counter(), pos.step
        pos.epoch, pos.step_in_epoch = divmod(pos.step, spe)
        if o.save_every and pos.step % o.save_every == 0 and pos.step < total:
            save(run)
        if pos.step >= total:
            break
    return last_loss


def train(options: TrainOptions) -> dict[str, Any]:
    """Train per ``options``; returns the run's summary (also written to ``summary.json`` by rank 0)."""
    run = setup(options)
    if run.is_main:  # checkpoints/ comes with the first checkpoint (``save_checkpoint``)
        run.out.mkdir(parents=True, exist_ok=True)
    metrics = MetricsWriter(run.out, run.is_main)
    if run.is_main:
        (run.out / "options.json").write_text(json.dumps(run.options.to_json(), indent=1, sort_keys=True))
        log.info(
            "training %s on %d samples/epoch (%d shards), %d steps of %d x %d ranks (%d steps/epoch), "
            "%s on %s, decode=%s",
            run.options.model,
            run.spec.num_samples,
            len(run.spec.urls),
            run.total_steps,
            run.loader.cfg.batch_size,
            run.world,
            run.loader.steps_per_epoch,
            run.precision,
            run.device,
            run.decode,
        )
    t_loop = time.perf_counter()
    last_loss = train_steps(run, metrics)
    save(run)
    metrics.close()
    if run.world > 1:
        torch.distributed.barrier()
    summary = {
        "steps": run.position.step,
        "epoch": run.position.epoch,
        "last_loss": last_loss,
        "checkpoint": str(run.checkpoints / "latest.pt"),
        "loader_stats": dict(run.loader.stats),
        "seconds": time.perf_counter() - t_loop,
    }
    if run.is_main:
        (run.out / "summary.json").write_text(json.dumps(summary, indent=1, sort_keys=True))
    return summary
