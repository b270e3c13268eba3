"""Self-describing checkpoints: save, resume, and load for inference.

A checkpoint is one ``torch.save`` of a dict (format ``imagenet-captions-checkpoint``, version 1)
holding the model config, weights, optimiser/scheduler/scaler state, the step, epoch and data
position (so training resumes exactly), the RNG states, the tokenizer spec, the preprocessing, the
label space (sorted wnids), every training option and what data the run saw. Everything a later
reader needs is inside: the eval stage rebuilds the model from ``model`` alone.

``load_for_inference`` also loads open_clip's own checkpoints, so our CLIP and open_clip's
trainer (or a released open_clip weight file) are evaluated by the same code:

- ``load_for_inference("run/checkpoints/latest.pt")``: our checkpoint (CLIP or classifier);
- ``load_for_inference("epoch_32.pt", model_name="RN50")``: a file written by ``open_clip_train``
  (or any open_clip state dict), with its open_clip model name;
- ``load_for_inference("open_clip:RN50:/path/to/epoch_32.pt")``: the same as one string.
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from imagenet_captions import fsio
from imagenet_captions.errors import UsageError
from imagenet_captions.train.models import as_clip

FORMAT = "imagenet-captions-checkpoint"
VERSION = 1
OPEN_CLIP_PREFIX = "open_clip:"


def save_checkpoint(payload: dict[str, Any], path: str | os.PathLike) -> Path:
    """Write ``payload`` to ``path`` atomically (temporary name, then rename): no half checkpoints."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with fsio.atomic_write(str(path)) as f:
        torch.save({"format": FORMAT, "version": VERSION, **payload}, f)
    return path


def read_checkpoint(path: str | os.PathLike, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Our checkpoint dict, checked for format and version; a clear UsageError for anything else."""
    path = Path(path)
    if not path.is_file():
        raise UsageError(f"checkpoint not found: {path}")
    try:
        ckpt = torch.load(path, map_location=map_location, weights_only=False)
    except Exception as e:  # a truncated or foreign file: say which, without a traceback
        raise UsageError(f"cannot read checkpoint {path}: {type(e).__name__}: {e}") from e
    if not isinstance(ckpt, dict) or ckpt.get("format") != FORMAT:
        raise UsageError(
            f"{path} is not an imagenet-captions checkpoint (for an open_clip file pass its model "
            f"name, or use 'open_clip:<model>:<file>')"
        )
    if ckpt.get("version") != VERSION:
        raise UsageError(
            f"{path}: checkpoint version {ckpt.get('version')} is not supported (want {VERSION})"
        )
    return ckpt


@dataclasses.dataclass
class LoadedModel:
    """A model ready for inference, with everything needed to feed it.

    ``images`` passed to the encode methods are float tensors [N, 3, H, W] already preprocessed
    per ``preprocess`` (resize, centre crop, scale to [0, 1], normalise with mean/std); use
    ``transform()`` for a PIL -> tensor function that does exactly that.
    """

    kind: str  # "clip" or "classifier"
    model: nn.Module
    tokenizer: Any  # callable list[str] -> LongTensor, or None for classifiers
    preprocess: dict[str, Any]
    wnids: list[str]
    config: dict[str, Any]
    device: torch.device
    source: str  # "imagenet-captions" or "open_clip"

    @torch.no_grad()
    def encode_image(self, images: torch.Tensor) -> torch.Tensor:
        """L2-normalised image embeddings [N, D] (CLIP only)."""
        self._want("clip")
        return F.normalize(as_clip(self.model).encode_image(images.to(self.device)).float(), dim=-1)

    @torch.no_grad()
    def encode_text(self, tokens: torch.Tensor) -> torch.Tensor:
        """L2-normalised text embeddings [N, D] for token ids from ``tokenizer`` (CLIP only)."""
        self._want("clip")
        return F.normalize(as_clip(self.model).encode_text(tokens.to(self.device)).float(), dim=-1)

    @torch.no_grad()
    def logits(self, images: torch.Tensor) -> torch.Tensor:
        """Class logits [N, len(wnids)] in label order, float32 (classifiers only).

        Under autocast the body runs in the autocast dtype, but the linear head (the model's last
        ``nn.Linear``, applied last by every classifier ``build_model`` makes) is computed again in
        fp32 from its input: bf16 logits over 1,000 classes change argmaxes and tie rows
        (docs/eval.md, "Heads in fp32").
        """
        self._want("classifier")
        images = images.to(self.device)
        head = _last_linear(self.model)
        if head is None or not torch.is_autocast_enabled(images.device.type):
            return self.model(images).float()
        handle = head.register_forward_hook(_linear_in_fp32)
        try:
            return self.model(images).float()
        finally:
            handle.remove()

    @property
    def logit_scale(self) -> float:
        """CLIP's learned temperature (exp of the parameter), e.g. to scale zero-shot logits."""
        self._want("clip")
        return float(as_clip(self.model).logit_scale.exp().item())

    def transform(self):
        """A torchvision transform PIL image -> normalised float tensor [3, S, S] per ``preprocess``."""
        from torchvision import transforms as T

        p = self.preprocess
        interp = T.InterpolationMode(p.get("interpolation", "bicubic"))
        return T.Compose(
            [
                T.Resize(int(p["resize"]), interpolation=interp),
                T.CenterCrop(int(p["image_size"])),
                T.Lambda(lambda im: im.convert("RGB")),
                T.ToTensor(),
                T.Normalize(p["mean"], p["std"]),
            ]
        )

    def _want(self, kind: str) -> None:
        if self.kind != kind:
            raise TypeError(f"this is a {self.kind} model; that method needs a {kind} model")


def _last_linear(model: nn.Module) -> nn.Linear | None:
    linears = [m for m in model.modules() if isinstance(m, nn.Linear)]
    return linears[-1] if linears else None


def _linear_in_fp32(module: nn.Linear, args: tuple[torch.Tensor, ...], output: torch.Tensor) -> torch.Tensor:
    """Forward hook: the layer's output recomputed in fp32, outside autocast, from its input."""
    with torch.autocast(args[0].device.type, enabled=False):
        bias = None if module.bias is None else module.bias.float()
        return F.linear(args[0].float(), module.weight.float(), bias)


def load_for_inference(
    path: str | os.PathLike,
    device: str | torch.device = "cpu",
    model_name: str | None = None,
) -> LoadedModel:
    """Load a checkpoint for inference (eval mode) on ``device``; see the module docstring for forms."""
    device = torch.device(device)
    spec = str(path)
    if spec.startswith(OPEN_CLIP_PREFIX):
        name, sep, file = spec[len(OPEN_CLIP_PREFIX) :].partition(":")
        if not sep or not name or not file:
            raise UsageError(f"expected 'open_clip:<model>:<file>', got {spec!r}")
        return _load_open_clip(name, file, device)
    if model_name is not None:
        return _load_open_clip(model_name, spec, device)

    from imagenet_captions.train.models import build_model, make_tokenizer

    ckpt = read_checkpoint(spec)
    model = build_model(ckpt["model"])
    model.load_state_dict(ckpt["state_dict"])
    model.to(device).eval()
    return LoadedModel(
        kind=ckpt["kind"],
        model=model,
        tokenizer=make_tokenizer(ckpt.get("tokenizer")),
        preprocess=dict(ckpt["preprocess"]),
        wnids=list(ckpt["wnids"]),
        config=dict(ckpt["model"]),
        device=device,
        source="imagenet-captions",
    )


def _load_open_clip(model_name: str, file: str, device: torch.device) -> LoadedModel:
    """An open_clip model by registry name with weights from ``file`` (open_clip_train output or weights)."""
    import open_clip

    from imagenet_captions.classes import wnids

    if not Path(file).is_file():
        raise UsageError(f"open_clip checkpoint not found: {file}")
    if model_name not in open_clip.list_models():
        raise UsageError(f"unknown open_clip model {model_name!r}")
    model = open_clip.create_model(model_name, pretrained=None, device="cpu")
    try:
        open_clip.load_checkpoint(model, file, weights_only=False)
    except Exception as e:  # wrong architecture or not a checkpoint at all
        raise UsageError(f"cannot load {file} into open_clip {model_name}: {type(e).__name__}: {e}") from e
    model.to(device).eval()
    pcfg = open_clip.get_model_preprocess_cfg(model)
    size = pcfg.get("size", 224)
    size = int(size[0] if isinstance(size, (tuple, list)) else size)
    cfg = open_clip.get_model_config(model_name) or {}
    context_length = int(cfg.get("text_cfg", {}).get("context_length", 77))
    return LoadedModel(
        kind="clip",
        model=model,
        tokenizer=open_clip.get_tokenizer(model_name),
        preprocess={
            "image_size": size,
            "resize": size,
            "mean": [float(x) for x in pcfg.get("mean", (0.48145466, 0.4578275, 0.40821073))],
            "std": [float(x) for x in pcfg.get("std", (0.26862954, 0.26130258, 0.27577711))],
            "interpolation": str(pcfg.get("interpolation", "bicubic")),
        },
        wnids=wnids(),
        config={"name": f"open_clip:{model_name}", "kind": "clip", "context_length": context_length},
        device=device,
        source="open_clip",
    )
