"""The models this package trains: CLIP (open_clip's model zoo) and a cross-entropy classifier.

A model is described by a plain, JSON-able config dict (``model_config(name)``), and built from that
dict alone (``build_model(config)``). The checkpoint stores the dict, so a checkpoint rebuilds its
model without this module's name table, and a renamed or retuned preset never breaks old runs.

CLIP models are ``open_clip.CLIP`` built from the *full* open_clip config (embed_dim, vision_cfg,
text_cfg) copied into our config, not from open_clip's registry name, for the same reason.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any, Protocol, cast

import torch
from torch import nn

#: OpenAI CLIP's normalisation (open_clip.constants.OPENAI_DATASET_MEAN/STD).
CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)
#: The usual ImageNet normalisation used by torchvision's classifiers.
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

#: A tiny CLIP for tests and CPU smoke runs: a 2-layer ViT on 32 px images and a 2-layer text
#: transformer with a 16-token context, using CLIP's real BPE vocabulary.
TINY_CLIP_CFG: dict[str, Any] = {
    "embed_dim": 64,
    "vision_cfg": {
        "image_size": 32,
        "layers": 2,
        "width": 64,
        "head_width": 32,
        "patch_size": 8,
        "mlp_ratio": 2.0,
    },
    "text_cfg": {"context_length": 16, "vocab_size": 49408, "width": 64, "heads": 2, "layers": 2},
}

#: name -> (kind, how to get the architecture)
MODEL_NAMES: dict[str, dict[str, Any]] = {
    "clip-rn50": {"kind": "clip", "open_clip_name": "RN50"},
    "clip-vit-b-32": {"kind": "clip", "open_clip_name": "ViT-B-32"},
    "clip-tiny": {"kind": "clip", "open_clip_cfg": TINY_CLIP_CFG},
    "ce-rn50": {"kind": "classifier", "arch": "resnet50", "image_size": 224},
    "ce-tiny": {"kind": "classifier", "arch": "tiny-cnn", "image_size": 32},
}


def model_config(name: str, num_classes: int = 1000) -> dict[str, Any]:
    """The full, self-contained config of the model called ``name`` (see ``MODEL_NAMES``)."""
    if name not in MODEL_NAMES:
        from imagenet_captions.errors import UsageError

        raise UsageError(f"unknown model {name!r}; choose one of {', '.join(MODEL_NAMES)}")
    spec = MODEL_NAMES[name]
    if spec["kind"] == "clip":
        if "open_clip_cfg" in spec:
            cfg = copy.deepcopy(spec["open_clip_cfg"])
        else:
            import open_clip

            cfg = copy.deepcopy(open_clip.get_model_config(spec["open_clip_name"]))
        return {
            "name": name,
            "kind": "clip",
            "open_clip_cfg": cfg,
            "image_size": int(cfg["vision_cfg"]["image_size"]),
            "context_length": int(cfg["text_cfg"]["context_length"]),
        }
    return {
        "name": name,
        "kind": "classifier",
        "arch": spec["arch"],
        "num_classes": num_classes,
        "image_size": spec["image_size"],
    }


class TinyCNN(nn.Module):
    """Three conv blocks and a linear head: enough to tell coloured shapes apart in seconds on a CPU."""

    def __init__(self, num_classes: int) -> None:
        super().__init__()

        def block(cin: int, cout: int, stride: int) -> nn.Sequential:
            return nn.Sequential(
                nn.Conv2d(cin, cout, 3, stride, 1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True)
            )

        self.features = nn.Sequential(block(3, 16, 1), block(16, 32, 2), block(32, 64, 2))
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(64, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(torch.flatten(self.pool(self.features(x)), 1))


class ClipModel(Protocol):
    """What we use of a CLIP model (open_clip's ``CLIP``, ours or pretrained).

    ``nn.Module`` types every attribute it looks up as ``Tensor | Module``, so a call to
    ``model.encode_image`` does not type-check on a plain module; :func:`as_clip` names the methods.
    """

    logit_scale: nn.Parameter

    def encode_image(self, image: torch.Tensor) -> torch.Tensor: ...

    def encode_text(self, text: torch.Tensor) -> torch.Tensor: ...


def as_clip(model: nn.Module) -> ClipModel:
    """``model`` seen as a CLIP model; only for a model whose config kind is ``clip``."""
    return cast(ClipModel, model)


def build_model(config: dict[str, Any]) -> nn.Module:
    """A freshly initialised model from a config made by ``model_config`` (or read from a checkpoint)."""
    if config["kind"] == "clip":
        import open_clip

        cfg = copy.deepcopy(config["open_clip_cfg"])
        return open_clip.CLIP(
            embed_dim=cfg.pop("embed_dim"),
            vision_cfg=cfg.pop("vision_cfg"),
            text_cfg=cfg.pop("text_cfg"),
            quick_gelu=bool(cfg.pop("quick_gelu", False)),
            **{k: v for k, v in cfg.items() if k in ("init_logit_scale", "init_logit_bias")},
        )
    if config["arch"] == "resnet50":
        import torchvision

        return torchvision.models.resnet50(num_classes=int(config["num_classes"]))
    if config["arch"] == "tiny-cnn":
        return TinyCNN(int(config["num_classes"]))
    raise ValueError(f"unknown classifier architecture {config['arch']!r}")


def preprocess_for(config: dict[str, Any]) -> dict[str, Any]:
    """The evaluation-time preprocessing contract of a model (see the checkpoint format).

    CLIP resizes the shorter side to the crop size and centre-crops (as OpenAI's CLIP does); the
    classifier uses the usual 256/224 resize-then-crop ratio.
    """
    size = int(config["image_size"])
    if config["kind"] == "clip":
        return {
            "image_size": size,
            "resize": size,
            "mean": list(CLIP_MEAN),
            "std": list(CLIP_STD),
            "interpolation": "bicubic",
        }
    return {
        "image_size": size,
        "resize": int(round(size * 256 / 224)),
        "mean": list(IMAGENET_MEAN),
        "std": list(IMAGENET_STD),
        "interpolation": "bicubic",
    }


def tokenizer_spec(config: dict[str, Any]) -> dict[str, Any] | None:
    """Which tokenizer a model uses: CLIP's BPE (open_clip's, any standard CLIP name) at its context."""
    if config["kind"] != "clip":
        return None
    return {"type": "open_clip", "name": "RN50", "context_length": int(config["context_length"])}


# list[str] -> LongTensor[N, context_length]: token ids for a batch of captions.
Tokenizer = Callable[[list[str]], torch.Tensor]


def make_tokenizer(spec: dict[str, Any] | None) -> Tokenizer | None:
    """A callable list[str] -> LongTensor[N, context_length] for a ``tokenizer_spec`` dict."""
    if spec is None:
        return None
    if spec.get("type") != "open_clip":
        raise ValueError(f"unknown tokenizer type {spec.get('type')!r}")
    import logging

    import open_clip

    root = logging.getLogger()
    level = root.level
    root.setLevel(max(level, logging.WARNING))  # open_clip logs three INFO lines per tokenizer
    try:
        return open_clip.get_tokenizer(spec["name"], context_length=int(spec["context_length"]))
    finally:
        root.setLevel(level)
