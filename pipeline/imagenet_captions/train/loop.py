"""The training loop: one function, ``train(options)``, for CLIP and the cross-entropy classifier.

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
import math
import os
import random
import shutil
import sys
import time
from contextlib import nullcontext
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from imagenet_captions.errors import UsageError
from imagenet_captions.train import checkpoint as ckpt_mod
from imagenet_captions.train.data import Augment, LoaderConfig, ShardLoader, resolve_shards
from imagenet_captions.train.models import build_model, model_config, preprocess_for, tokenizer_spec

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
# Optimiser and schedule
# ---------------------------------------------------------------------------------------------------
def param_groups(model: nn.Module, weight_decay: float) -> list[dict[str, Any]]:
    """Weight decay on weights only: not on biases, norms' gains, embeddings' scales or logit_scale."""
    decay, no_decay = [], []
    for name, p in model.named_parameters():
        if not p.requires_grad:
            continue
        if p.ndim < 2 or "bn" in name or "ln" in name or "logit_scale" in name or name.endswith(".bias"):
            no_decay.append(p)
        else:
            decay.append(p)
    return [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]


def make_optimizer(model: nn.Module, o: dict[str, Any], device: torch.device) -> torch.optim.Optimizer:
    groups = param_groups(model, float(o["weight_decay"]))
    if o["optimizer"] == "adamw":
        fused = device.type == "cuda"  # fused AdamW: one kernel for all parameters
        return torch.optim.AdamW(
            groups, lr=o["lr"], betas=(o["beta1"], o["beta2"]), eps=o["eps"], fused=fused or None
        )
    if o["optimizer"] == "sgd":
        return torch.optim.SGD(groups, lr=o["lr"], momentum=o["momentum"], nesterov=False)
    raise UsageError(f"unknown optimizer {o['optimizer']!r}")


def lr_factor(step: int, o: dict[str, Any], total_steps: int, steps_per_epoch: int) -> float:
    """The multiplier of the base LR at ``step``: linear warm-up, then cosine, step decay or constant."""
    warm = int(o["warmup_steps"])
    if step < warm:
        return (step + 1) / warm
    if o["schedule"] == "cosine":
        span = max(1, total_steps - warm)
        return 0.5 * (1 + math.cos(math.pi * min(1.0, (step - warm) / span)))
    if o["schedule"] == "step":
        return float(o["lr_gamma"]) ** ((step // steps_per_epoch) // int(o["lr_step_epochs"]))
    if o["schedule"] == "constant":
        return 1.0
    raise UsageError(f"unknown schedule {o['schedule']!r}")


# ---------------------------------------------------------------------------------------------------
# Loss
# ---------------------------------------------------------------------------------------------------
class ClassifierLoss(nn.Module):
    def __init__(self, label_smoothing: float) -> None:
        super().__init__()
        self.label_smoothing = label_smoothing

    def forward(self, logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        return F.cross_entropy(logits.float(), labels, label_smoothing=self.label_smoothing)


def make_clip_loss(rank: int, world: int) -> nn.Module:
    import open_clip

    return open_clip.ClipLoss(
        local_loss=True, gather_with_grad=True, cache_labels=True, rank=rank, world_size=world
    )


# ---------------------------------------------------------------------------------------------------
# RNG state
# ---------------------------------------------------------------------------------------------------
def rng_state() -> dict[str, Any]:
    state = {"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    if not state:
        return
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


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
        if not self.enabled:
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


class Stepper:
    """One optimiser step (forward under autocast, loss, backward, clip, step, CLIP's clamp).

    Shared by the training loop and the GPU benchmark's compute-only phase, so that phase times
    exactly the work the trainer does per batch.
    """

    def __init__(
        self,
        train_model: nn.Module,
        model: nn.Module,
        loss_fn: nn.Module,
        optimizer: torch.optim.Optimizer,
        scaler: torch.amp.GradScaler,
        kind: str,
        device: torch.device,
        amp_dtype: torch.dtype | None,
        grad_clip_norm: float | None,
    ) -> None:
        self.train_model, self.model, self.loss_fn, self.optimizer = train_model, model, loss_fn, optimizer
        self.scaler, self.kind, self.device, self.amp_dtype = scaler, kind, device, amp_dtype
        self.grad_clip_norm = grad_clip_norm

    def __call__(self, images: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        autocast = (
            torch.autocast(device_type=self.device.type, dtype=self.amp_dtype)
            if self.amp_dtype is not None
            else nullcontext()
        )
        with autocast:
            if self.kind == "clip":
                img_f, txt_f, scale = self.train_model(images, target)
                loss = self.loss_fn(img_f, txt_f, scale)
            else:
                loss = self.loss_fn(self.train_model(images), target)
        self.optimizer.zero_grad(set_to_none=True)
        self.scaler.scale(loss).backward()
        if self.grad_clip_norm:
            self.scaler.unscale_(self.optimizer)
            torch.nn.utils.clip_grad_norm_(self.model.parameters(), float(self.grad_clip_norm))
        self.scaler.step(self.optimizer)
        self.scaler.update()
        if self.kind == "clip":
            with torch.no_grad():  # CLIP's clamp: temperature at most 100
                _unwrap(self.model).logit_scale.clamp_(0, math.log(100))
        return loss


def _unwrap(model: nn.Module) -> nn.Module:
    model = getattr(model, "_orig_mod", model)
    return getattr(model, "module", model)


def train(options: dict[str, Any]) -> dict[str, Any]:
    """Train per ``options`` (see ``command.add_arguments``); returns a summary dict (rank 0)."""
    o = dict(options)
    rank, world, device = init_distributed(o.get("device"), o.get("dist_backend"))
    is_main = rank == 0
    out = Path(o["out"])
    if is_main:
        (out / "checkpoints").mkdir(parents=True, exist_ok=True)

    # -- resume: the checkpoint's options rule what decides batches and schedule -------------------
    resume = None
    if o.get("resume"):
        path = out / "checkpoints" / "latest.pt" if o["resume"] == "auto" else Path(o["resume"])
        if path.is_file():
            resume = ckpt_mod.read_checkpoint(path)
        elif o["resume"] != "auto":
            raise UsageError(f"--resume: no checkpoint at {path}")
    if resume is not None:
        saved = resume["train_options"]
        for key in (
            "model",
            "seed",
            "workers",
            "batch_size",
            "shuffle_buffer",
            "resampled",
            "scale",
            "hflip",
        ):
            if (
                key in saved
                and o.get(key) != saved[key]
                and not (key == "scale" and tuple(o[key]) == tuple(saved[key]))
            ):
                raise UsageError(
                    f"--resume: option {key} was {saved[key]!r}, now {o.get(key)!r}; they must match"
                )
        if resume["data_position"].get("world_size") != world:
            raise UsageError(
                f"--resume: run had {resume['data_position'].get('world_size')} ranks, now {world}"
            )

    seed = int(o["seed"])
    torch.manual_seed(seed + rank)
    random.seed(seed + rank)
    np.random.seed((seed + rank) % 2**32)

    cfg = model_config(o["model"])
    if o.get("image_size"):
        cfg["image_size"] = int(o["image_size"])
    kind = cfg["kind"]
    model = build_model(cfg).to(device)
    if o["channels_last"]:
        model = model.to(memory_format=torch.channels_last)
    optimizer = make_optimizer(model, o, device)

    spec = resolve_shards(o["shards"], o.get("train_num_samples"))
    decode = o["decode"]
    if decode == "auto":
        decode = "device" if device.type == "cuda" else "cpu"
    pre = preprocess_for(cfg)
    lcfg = LoaderConfig(
        batch_size=int(o["batch_size"]),
        augment=Augment(size=int(cfg["image_size"]), scale=tuple(o["scale"]), hflip=bool(o["hflip"])),
        kind=kind,
        tokenizer=tokenizer_spec(cfg),
        seed=seed,
        workers=int(o["workers"]),
        shuffle_buffer=int(o["shuffle_buffer"]),
        resampled=bool(o["resampled"]),
        decode=decode,
    )
    loader = ShardLoader(
        spec, lcfg, pre["mean"], pre["std"], device, rank, world, channels_last=bool(o["channels_last"])
    )
    spe = loader.steps_per_epoch
    if resume is not None and resume["data_position"].get("steps_per_epoch") != spe:
        raise UsageError(
            f"--resume: the run had {resume['data_position'].get('steps_per_epoch')} steps per epoch, "
            f"now {spe} (different data or --train-num-samples)"
        )
    total_steps = int(o["steps"]) if o.get("steps") else int(o["epochs"]) * spe
    if total_steps <= 0:
        raise UsageError("nothing to train: give --steps or --epochs > 0")

    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: lr_factor(s, o, total_steps, spe))
    precision = o["precision"]
    if precision == "auto":
        precision = "bf16" if device.type == "cuda" else "fp32"
    amp_dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(precision)
    scaler = torch.amp.GradScaler(device.type, enabled=precision == "fp16")

    step, epoch, step_in_epoch = 0, 0, 0
    if resume is not None:
        model.load_state_dict(resume["state_dict"])
        optimizer.load_state_dict(resume["optimizer"])
        scheduler.load_state_dict(resume["scheduler"])
        if resume.get("scaler"):
            scaler.load_state_dict(resume["scaler"])
        step = int(resume["step"])
        epoch = int(resume["data_position"]["epoch"])
        step_in_epoch = int(resume["data_position"]["step_in_epoch"])
        rng = resume["rng"].get(str(rank)) if isinstance(resume.get("rng"), dict) else None
        set_rng_state(rng or {})
        if is_main:
            log.info("resumed from step %d (epoch %d, step %d in epoch)", step, epoch, step_in_epoch)

    train_model: nn.Module = model
    if world > 1:
        train_model = nn.parallel.DistributedDataParallel(
            model, device_ids=[device.index] if device.type == "cuda" else None
        )
    if o["compile"]:
        train_model = torch.compile(train_model)
    loss_fn: nn.Module = (
        make_clip_loss(rank, world) if kind == "clip" else ClassifierLoss(float(o["label_smoothing"]))
    )

    def payload() -> dict[str, Any]:
        rngs = [rng_state()]
        if world > 1:
            gathered: list[Any] = [None] * world
            torch.distributed.all_gather_object(gathered, rngs[0])
            rngs = gathered
        return {
            "kind": kind,
            "model": cfg,
            "state_dict": _unwrap(model).state_dict(),
            "optimizer": optimizer.state_dict(),
            "scheduler": scheduler.state_dict(),
            "scaler": scaler.state_dict() if scaler.is_enabled() else None,
            "step": step,
            "epoch": epoch,
            "data_position": {
                "epoch": epoch,
                "step_in_epoch": step_in_epoch,
                "steps_per_epoch": spe,
                "world_size": world,
                "workers": lcfg.workers,
                "batch_size": lcfg.batch_size,
                "seed": seed,
            },
            "rng": {str(r): s for r, s in enumerate(rngs)},
            "tokenizer": tokenizer_spec(cfg),
            "preprocess": pre,
            "wnids": __import__("imagenet_captions.classes", fromlist=["wnids"]).wnids(),
            "train_options": {k: (list(v) if isinstance(v, tuple) else v) for k, v in o.items()},
            "data": {
                **spec.describe(),
                "samples_seen": step * lcfg.batch_size * world,
                "loader_stats": dict(loader.stats),
            },
        }

    def save() -> None:
        p = payload()  # every rank joins the RNG gather
        if is_main:
            path = ckpt_mod.save_checkpoint(p, out / "checkpoints" / f"step_{step:08d}.pt")
            shutil.copyfile(path, out / "checkpoints" / "latest.pt.tmp")
            os.replace(out / "checkpoints" / "latest.pt.tmp", out / "checkpoints" / "latest.pt")
            keep = int(o.get("keep_checkpoints") or 0)
            if keep > 0:
                old = sorted((out / "checkpoints").glob("step_*.pt"))[:-keep]
                for f in old:
                    f.unlink()

    metrics = MetricsWriter(out, is_main)
    if is_main:
        (out / "options.json").write_text(
            json.dumps(
                {k: (list(v) if isinstance(v, tuple) else v) for k, v in o.items()}, indent=1, sort_keys=True
            )
        )
        log.info(
            "training %s on %d samples/epoch (%d shards), %d steps of %d x %d ranks (%d steps/epoch), %s on %s, decode=%s",
            o["model"],
            spec.num_samples,
            len(spec.urls),
            total_steps,
            lcfg.batch_size,
            world,
            spe,
            precision,
            device,
            decode,
        )
    global_batch = lcfg.batch_size * world
    log_every = int(o["log_every"])
    save_every = int(o.get("save_every") or 0)
    stepper = Stepper(
        train_model, model, loss_fn, optimizer, scaler, kind, device, amp_dtype, o.get("grad_clip_norm")
    )
    t_last, step_last = time.perf_counter(), step
    t0 = t_last
    last_loss = float("nan")
    losses: list[float] = []
    train_model.train()
    # One loader (one set of workers) for the whole run, across epochs.
    for batch in loader.steps(step, total_steps):
        loss = stepper(batch["images"], batch["tokens"] if kind == "clip" else batch["labels"])
        scheduler.step()
        step += 1
        if step % log_every == 0 or step == total_steps:
            last_loss = float(loss.detach().float().item())  # a sync, only at log steps
            if world > 1:
                t = torch.tensor([last_loss], device=device)
                torch.distributed.all_reduce(t)
                last_loss = float(t.item()) / world
            losses.append(last_loss)
            now = time.perf_counter()
            rate = (step - step_last) * global_batch / max(1e-9, now - t_last)
            row = {
                "step": step,
                "epoch": epoch,
                "loss": last_loss,
                "lr": optimizer.param_groups[0]["lr"],
                "samples_per_s": rate,
                "elapsed_s": now - t0,
                **{f"data_{k}": v for k, v in sorted(loader.stats.items())},
            }
            metrics.write(row)
            if is_main:
                eta = (total_steps - step) * global_batch / max(rate, 1e-9)
                print(
                    f"step {step}/{total_steps} epoch {epoch} loss {last_loss:.4f} lr {row['lr']:.3g} "
                    f"{rate:,.0f} samples/s eta {eta / 60:.1f} min",
                    file=sys.stderr,
                    flush=True,
                )
            t_last, step_last = time.perf_counter(), step
        epoch, step_in_epoch = divmod(step, spe)
        if save_every and step % save_every == 0 and step < total_steps:
            save()
        if step >= total_steps:
            break
    save()
    metrics.close()
    if world > 1:
        torch.distributed.barrier()
    summary = {
        "steps": step,
        "epoch": epoch,
        "last_loss": last_loss,
        "checkpoint": str(out / "checkpoints" / "latest.pt"),
        "loader_stats": dict(loader.stats),
        "seconds": time.perf_counter() - t0,
    }
    if is_main:
        (out / "summary.json").write_text(json.dumps(summary, indent=1, sort_keys=True))
    return summary
