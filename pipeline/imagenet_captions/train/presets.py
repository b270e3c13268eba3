"""Training recipes of the paper's two models, as ``TrainOptions``, with where each number comes from.

A preset is a ``TrainOptions`` without data or a run folder; the command line's explicit options
replace its values (explicit options always win), and ``TrainOptions``' field defaults apply where
neither says anything. ``SOURCES`` keeps, beside each preset, the reference for every number it
sets, so a reader can check a recipe without leaving this file.
"""

from __future__ import annotations

from typing import Any

from imagenet_captions.errors import UsageError
from imagenet_captions.train.options import TrainOptions

PRESETS: dict[str, TrainOptions] = {
    "clip-rn50-paper": TrainOptions(
        preset="clip-rn50-paper",
        model="clip-rn50",
        optimizer="adamw",
        lr=1e-3,
        warmup_steps=500,
        schedule="cosine",
        global_batch_size=1024,
        epochs=32,
        scale=(0.9, 1.0),
        hflip=False,
        beta1=0.9,
        beta2=0.98,
        eps=1e-6,
        weight_decay=0.1,
    ),
    "ce-rn50-paper": TrainOptions(
        preset="ce-rn50-paper",
        model="ce-rn50",
        optimizer="sgd",
        lr=0.1,
        momentum=0.9,
        weight_decay=1e-4,
        global_batch_size=256,
        epochs=90,
        schedule="step",
        lr_step_epochs=30,
        lr_gamma=0.1,
        warmup_steps=0,
        scale=(0.08, 1.0),
        hflip=True,
    ),
}

#: preset -> (the options a source fixes -> the source). "Our choice" marks what no source states.
SOURCES: dict[str, dict[str, str]] = {
    "clip-rn50-paper": {
        "optimizer, lr, warmup_steps, schedule, global_batch_size, epochs, scale": (
            "Fang et al., 'Data Determines Distributional Robustness in Contrastive Language-Image "
            "Pre-training (CLIP)', ICML 2022, arXiv:2205.01397 (ImageNet-Captions CLIP RN50 runs), as "
            "this project's training requirements restate them"
        ),
        "beta1, beta2, eps": "Radford et al., CLIP (arXiv:2103.00020), section 2.5: Adam beta2 0.98, eps 1e-6",
        "weight_decay": (
            "not stated in the sources above; 0.1 is our choice (open_clip's trainer applies weight "
            "decay to weights only, as we do)"
        ),
    },
    "ce-rn50-paper": {
        "optimizer, global_batch_size, lr, epochs, schedule": (
            "the cross-entropy baseline of Fang et al. 2022 (arXiv:2205.01397), as this project's "
            "training requirements restate it: SGD, batch 256, lr 0.1, 90 epochs, step decay"
        ),
        "momentum, weight_decay, lr_step_epochs, lr_gamma, scale, hflip": (
            "the standard ResNet-50 ImageNet recipe: He et al. 2016 (arXiv:1512.03385) and torchvision's "
            "references/classification README (--lr 0.1 --momentum 0.9 --wd 1e-4 --lr-step-size 30 "
            "--lr-gamma 0.1, RandomResizedCrop 0.08-1 with horizontal flip)"
        ),
    },
}


def resolve(explicit: dict[str, Any], preset: str | None, world_size: int = 1) -> TrainOptions:
    """The effective options: explicit (not None) over the preset over ``TrainOptions``' defaults.

    The per-rank batch comes from the global batch only when ``batch_size`` is not explicit, so
    ``--batch-size`` always means what it says, and a preset's global batch keeps its meaning on
    any number of ranks.
    """
    given = {k: v for k, v in explicit.items() if v is not None}
    if preset is None:
        options = TrainOptions(**given)
    elif preset not in PRESETS:
        raise UsageError(f"--preset must be one of {', '.join(PRESETS)}, not {preset!r}")
    else:
        options = PRESETS[preset].replace(**given)
    if "batch_size" not in given and options.global_batch_size:
        if options.global_batch_size % world_size:
            raise UsageError(
                f"--global-batch-size {options.global_batch_size} does not divide over {world_size} ranks"
            )
        options = options.replace(batch_size=options.global_batch_size // world_size)
    return options
