"""Classification heads: 1000 ImageNet logits (sorted-wnid order) for a batch of images.

- CLIP models get the zero-shot head: for each class, its name in each of the 80 OpenAI templates is
  encoded, the 80 embeddings are L2-normalised, averaged and normalised again (Radford et al.'s
  prompt ensembling, as open_clip and CLIP_benchmark build it). Logits are ``100 * image @ W``.
- Cross-entropy classifiers use their trained linear head; a model trained on fewer than the 1000
  classes (``wnids`` a subset) gets -inf for the classes it never saw, so it can never predict them.

:func:`predict` then applies a shift's class subset (the argmax over those classes only).
"""

from __future__ import annotations

import functools
import json
from collections.abc import Callable, Sequence
from importlib import resources
from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F

from imagenet_captions.classes import wnids as imagenet_wnids

if TYPE_CHECKING:
    from imagenet_captions.train.checkpoint import LoadedModel


@functools.lru_cache(maxsize=1)
def classnames_and_templates() -> tuple[list[str], list[str]]:
    """The 1000 CLIP class names (sorted-wnid order) and the 80 OpenAI templates (``{c}``)."""
    raw = json.loads(
        resources.files("imagenet_captions.eval")
        .joinpath("data", "imagenet_zeroshot_classnames_templates.json")
        .read_text()
    )
    return list(raw["classnames"]), list(raw["templates"])


@torch.no_grad()
def zero_shot_weights(
    encode_text: Callable[[torch.Tensor], torch.Tensor],
    tokenizer: Callable[[list[str]], torch.Tensor],
    classnames: Sequence[str],
    templates: Sequence[str],
    classes_per_batch: int = 50,
) -> torch.Tensor:
    """[C, D] class embeddings: per class, the normalised mean of its normalised template embeddings.

    Classes are encoded ``classes_per_batch`` at a time (x len(templates) texts per forward pass) so
    that memory stays bounded whatever the number of classes.
    """
    rows = []
    for start in range(0, len(classnames), classes_per_batch):
        chunk = classnames[start : start + classes_per_batch]
        texts = [t.format(c=c) for c in chunk for t in templates]
        emb = F.normalize(encode_text(tokenizer(texts)).float(), dim=-1)
        emb = emb.reshape(len(chunk), len(templates), -1).mean(dim=1)
        rows.append(F.normalize(emb, dim=-1))
    return torch.cat(rows)


class Head:
    """images (preprocessed, on the device) -> [B, 1000] logits in sorted-wnid order."""

    def __init__(
        self, loaded: LoadedModel, classes_per_batch: int = 50, templates: Sequence[str] | None = None
    ) -> None:
        self.loaded = loaded
        self.kind = loaded.kind
        all_wnids = imagenet_wnids()
        if self.kind == "clip":
            names, default_templates = classnames_and_templates()
            self.weights = zero_shot_weights(
                loaded.encode_text,
                loaded.tokenizer,
                names,
                list(templates) if templates is not None else default_templates,
                classes_per_batch,
            ).to(loaded.device)
            self.columns = None
        elif self.kind == "classifier":
            index = {w: i for i, w in enumerate(all_wnids)}
            unknown = [w for w in loaded.wnids if w not in index]
            if unknown:
                raise ValueError(f"the classifier's label space has non-ImageNet wnids: {unknown[:3]}")
            self.columns = None
            if list(loaded.wnids) != all_wnids:
                self.columns = torch.tensor([index[w] for w in loaded.wnids], device=loaded.device)
        else:
            raise ValueError(f"unknown model kind {self.kind!r}")

    @torch.no_grad()
    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        """float32 logits. The image tower runs under the caller's autocast (bf16 on a GPU); the head
        does not: features are cast to fp32 and the product with the class weights (or the linear
        layer) runs outside autocast, since bf16 logits over 1,000 close classes change argmaxes.
        """
        if self.kind == "clip":
            features = self.loaded.encode_image(images).float()
            with torch.autocast(features.device.type, enabled=False):
                return 100.0 * features @ self.weights.T.float()
        logits = self.loaded.logits(images)
        if self.columns is None:
            return logits
        full = torch.full((logits.shape[0], 1000), float("-inf"), device=logits.device)
        full[:, self.columns] = logits
        return full


def predict(logits: torch.Tensor, class_sublist: Sequence[int] | None) -> torch.Tensor:
    """Predicted ImageNet class per row: the argmax over ``class_sublist`` only, when given.

    For ObjectNet this equals taking, per ObjectNet class, the max over its ImageNet logits and
    then the argmax over ObjectNet classes, since its ImageNet classes are disjoint.
    """
    if class_sublist is None:
        return logits.argmax(dim=1)
    sub = torch.as_tensor(list(class_sublist), device=logits.device)
    return sub[logits.index_select(1, sub).argmax(dim=1)]
