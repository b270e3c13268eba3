"""One optimiser step and its parts: parameter groups, optimiser, LR schedule, losses, RNG state.

Apart from the loop so that the GPU benchmark's compute-only phase (``benchmarks/bench_gpu.py``)
times exactly the step the trainer takes, without building a run. Never imports Beam.
"""

from __future__ import annotations

import math
import random
from contextlib import nullcontext
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from imagenet_captions.errors import UsageError
from imagenet_captions.train.models import as_clip
from imagenet_captions.train.options import TrainOptions


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


def make_optimizer(model: nn.Module, o: TrainOptions, device: torch.device) -> torch.optim.Optimizer:
    groups = param_groups(model, o.weight_decay)
    if o.optimizer == "adamw":
        fused = device.type == "cuda"  # fused AdamW: one kernel for all parameters
        return torch.optim.AdamW(groups, lr=o.lr, betas=(o.beta1, o.beta2), eps=o.eps, fused=fused or None)
    if o.optimizer == "sgd":
        return torch.optim.SGD(groups, lr=o.lr, momentum=o.momentum, nesterov=False)
    raise UsageError(f"unknown optimizer {o.optimizer!r}")


def lr_factor(step: int, o: TrainOptions, total_steps: int, steps_per_epoch: int) -> float:
    """The multiplier of the base LR at ``step``: linear warm-up, then cosine, step decay or constant."""
    warm = o.warmup_steps
    if step < warm:
        return (step + 1) / warm
    if o.schedule == "cosine":
        span = max(1, total_steps - warm)
        return 0.5 * (1 + math.cos(math.pi * min(1.0, (step - warm) / span)))
    if o.schedule == "step":
        return o.lr_gamma ** ((step // steps_per_epoch) // o.lr_step_epochs)
    if o.schedule == "constant":
        return 1.0
    raise UsageError(f"unknown schedule {o.schedule!r}")


# ---------------------------------------------------------------------------------------------------
# Device settings
# ---------------------------------------------------------------------------------------------------
def fast_cuda_settings(tf32: bool = True) -> None:
    """cuDNN autotuning and (with ``tf32``) TF32 matrix products, as ``open_clip_train.main`` sets them.

    The trainer sets both on CUDA, so that a comparison with open_clip's trainer runs both sides
    with the same kernels. Eval sets only the autotuning: its model runs in bf16 under autocast,
    where TF32 changes nothing, and its zero-shot and linear heads are computed in fp32 on purpose.
    The switches are process-wide, so callers set them only when they run on CUDA.
    """
    torch.backends.cudnn.benchmark = True
    if tf32:
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True


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
                as_clip(unwrap(self.model)).logit_scale.clamp_(0, math.log(100))
        return loss


def unwrap(model: nn.Module) -> nn.Module:
    """The module itself under DDP and ``torch.compile``: its state dict has no wrapper prefixes."""
    model = getattr(model, "_orig_mod", model)
    return getattr(model, "module", model)
