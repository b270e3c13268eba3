"""What a training run does, as one frozen value: ``TrainOptions``, validated once when it is made.

Every value is checked in ``__post_init__``, where it is also coerced from the command line's
strings (the command hands argparse's raw strings over untouched), so a wrong type, a negative
count or an out-of-range rate is one ``UsageError`` line naming the option, whether the value came
from the command line, a preset or Python. ``TrainOptions`` never imports torch: ``--help`` and
the option checks stay fast. The conversion helpers are ``imagenet_captions.options``, shared with
``eval`` (which must run ``robustness`` without torch) and the harvest; ``as_device`` is here because
only the torch stages take a device.

``shards`` and ``out`` may be None in a preset (a recipe names no data and no run folder); the
command always sets both, and ``train`` refuses options without them.
"""

from __future__ import annotations

import dataclasses
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from imagenet_captions.errors import OptionError, UsageError
from imagenet_captions.options import as_bool, as_choice, as_float, as_int, as_text, flag

OPTIMIZERS = ("adamw", "sgd")
SCHEDULES = ("cosine", "step", "constant")
DECODES = ("auto", "cpu", "device")
PRECISIONS = ("auto", "fp32", "bf16", "fp16")
#: The devices ``--device`` accepts; ``cuda`` alone means this rank's local GPU under torchrun.
DEVICE_PATTERN = re.compile(r"cpu|cuda(:\d+)?")


def as_device(option: str, value: Any) -> str:
    """A device string torch will accept, checked before torch is imported or a process group starts."""
    if not isinstance(value, str) or not DEVICE_PATTERN.fullmatch(value):
        raise OptionError(f"{option} must be cpu, cuda or cuda:N, not {value!r}")
    return value


@dataclass(frozen=True)
class TrainOptions:
    """Options of ``imagenet-captions train``; field ``x_y`` is the option ``--x-y``.

    ``batch_size`` is per rank; ``global_batch_size`` is what a preset states, divided over the
    ranks by :func:`~imagenet_captions.train.presets.resolve`. ``channels_last`` None means "on a
    GPU", and ``workers`` None "what the machine has", both settled by ``setup``.
    """

    # -- what and where
    shards: str | None = None
    out: str | None = None
    model: str | None = None
    steps: int | None = None
    epochs: int | None = None
    train_num_samples: int | None = None
    device: str | None = None
    resume: str | None = None
    preset: str | None = None
    # -- optimisation
    batch_size: int = 256
    global_batch_size: int | None = None
    optimizer: str = "adamw"
    lr: float = 1e-3
    weight_decay: float = 0.1
    beta1: float = 0.9
    beta2: float = 0.98
    eps: float = 1e-6
    momentum: float = 0.9
    warmup_steps: int = 0
    schedule: str = "cosine"
    lr_step_epochs: int = 30
    lr_gamma: float = 0.1
    grad_clip_norm: float | None = None
    label_smoothing: float = 0.0
    # -- data
    #: None: this machine's cores, less one per rank (``resources.default_workers``), or a resumed
    #: run's own count; settled by ``setup`` and recorded as a number.
    workers: int | None = None
    shuffle_buffer: int = 2000
    resampled: bool = False
    decode: str = "auto"
    scale: tuple[float, float] = (0.9, 1.0)
    hflip: bool = False
    image_size: int | None = None
    # -- speed
    precision: str = "auto"
    channels_last: bool | None = None
    compile: bool = False
    dist_backend: str | None = None
    # -- logging and checkpoints
    seed: int = 0
    log_every: int = 10
    save_every: int = 0
    keep_checkpoints: int = 0

    def __post_init__(self) -> None:
        from imagenet_captions.train.models import MODEL_NAMES

        def put(name: str, value: Any) -> None:
            object.__setattr__(self, name, value)

        def optional(name: str, check: Any) -> None:
            value = getattr(self, name)
            if value is not None:
                put(name, check(flag(name), value))

        for name in ("shards", "out", "resume", "preset", "dist_backend"):
            optional(name, as_text)
        if self.model is None:
            raise UsageError("give --model or --preset")
        put("model", as_choice("--model", self.model, sorted(MODEL_NAMES)))
        for name in ("steps", "epochs", "train_num_samples", "global_batch_size", "image_size"):
            optional(name, lambda option, v: as_int(option, v, minimum=1))
        if self.steps is None and self.epochs is None:
            raise UsageError("give --steps or --epochs")
        optional("device", as_device)
        put("batch_size", as_int("--batch-size", self.batch_size, minimum=1))
        put("optimizer", as_choice("--optimizer", self.optimizer, OPTIMIZERS))
        put("lr", as_float("--lr", self.lr, 0.0, low_open=True))
        put("weight_decay", as_float("--weight-decay", self.weight_decay, 0.0))
        for name in ("beta1", "beta2", "momentum"):
            put(name, as_float(flag(name), getattr(self, name), 0.0, 1.0, high_open=True))
        put("eps", as_float("--eps", self.eps, 0.0, low_open=True))
        put("warmup_steps", as_int("--warmup-steps", self.warmup_steps, minimum=0))
        put("schedule", as_choice("--schedule", self.schedule, SCHEDULES))
        put("lr_step_epochs", as_int("--lr-step-epochs", self.lr_step_epochs, minimum=1))
        put("lr_gamma", as_float("--lr-gamma", self.lr_gamma, 0.0, 1.0, low_open=True))
        optional("grad_clip_norm", lambda option, v: as_float(option, v, 0.0, low_open=True))
        put("label_smoothing", as_float("--label-smoothing", self.label_smoothing, 0.0, 1.0, high_open=True))
        optional("workers", lambda option, v: as_int(option, v, minimum=0))
        put("shuffle_buffer", as_int("--shuffle-buffer", self.shuffle_buffer, minimum=0))
        put("decode", as_choice("--decode", self.decode, DECODES))
        put("scale", self._scale())
        put("precision", as_choice("--precision", self.precision, PRECISIONS))
        for name in ("resampled", "hflip", "compile"):
            put(name, as_bool(flag(name), getattr(self, name)))
        optional("channels_last", as_bool)
        put("seed", as_int("--seed", self.seed, minimum=0))
        put("log_every", as_int("--log-every", self.log_every, minimum=1))
        put("save_every", as_int("--save-every", self.save_every, minimum=0))
        put("keep_checkpoints", as_int("--keep-checkpoints", self.keep_checkpoints, minimum=0))
        if self.resume not in (None, "auto") and not os.path.isfile(self.resume):
            raise UsageError(f"--resume: no checkpoint at {self.resume}")

    def _scale(self) -> tuple[float, float]:
        """RandomResizedCrop's area range: two fractions of the image, smallest first."""
        value = self.scale
        if isinstance(value, (str, bytes)) or not isinstance(value, Sequence) or len(value) != 2:
            raise UsageError(f"--scale takes two numbers MIN MAX, not {value!r}")
        low, high = (as_float("--scale", v, 0.0, 1.0, low_open=True) for v in value)
        if low > high:
            raise UsageError(f"--scale MIN must not exceed MAX, not {low:g} > {high:g}")
        return (low, high)

    def replace(self, **changes: Any) -> TrainOptions:
        """A copy with ``changes``, validated again (``dataclasses.replace`` reruns ``__post_init__``)."""
        return dataclasses.replace(self, **changes)

    def to_json(self) -> dict[str, Any]:
        """Every option as JSON-able data: what ``options.json`` and the checkpoint record."""
        return {k: (list(v) if isinstance(v, tuple) else v) for k, v in dataclasses.asdict(self).items()}
