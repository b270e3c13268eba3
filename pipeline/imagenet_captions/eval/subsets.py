"""Class subsets of the shifts, as the imagenet-testbed scores them.

ImageNet-R and ImageNet-A cover 200 ImageNet classes each: a model's 1000 logits are cut to those 200
before the argmax. ObjectNet's 113 classes that overlap ImageNet map to 125 ImageNet classes; the
testbed cuts the logits to those 125 and counts a prediction right when it is any ImageNet class of
the image's ObjectNet class, which is the same as taking, for each ObjectNet class, the maximum over
its ImageNet logits. Indices are positions in the sorted wnid list (``imagenet_captions.classes``).
"""

from __future__ import annotations

import functools
import json
from importlib import resources


def _load(name: str) -> dict:
    return json.loads(resources.files("imagenet_captions.eval").joinpath("data", name).read_text())


@functools.lru_cache(maxsize=1)
def _subsets() -> dict:
    return _load("imagenet_ood_class_subsets.json")


def imagenet_r_indices() -> list[int]:
    return list(_subsets()["imagenet_r"]["indices"])


def imagenet_a_indices() -> list[int]:
    return list(_subsets()["imagenet_a"]["indices"])


def imagenet_r_wnids() -> list[str]:
    return list(_subsets()["imagenet_r"]["wnids"])


def imagenet_a_wnids() -> list[str]:
    return list(_subsets()["imagenet_a"]["wnids"])


@functools.lru_cache(maxsize=1)
def objectnet_folder_to_imagenet() -> dict[str, tuple[int, ...]]:
    """ObjectNet image folder (e.g. ``alarm_clock``) -> its ImageNet class indices; 113 folders."""
    classes = _subsets()["objectnet"]["objectnet_class_to_imagenet"]
    return {v["folder"]: tuple(v["imagenet_indices"]) for v in classes.values()}


@functools.lru_cache(maxsize=1)
def objectnet_all_folders() -> frozenset[str]:
    """All 313 ObjectNet folders; the 200 not in the map are not scored (no ImageNet class)."""
    return frozenset(_load("objectnet_folder_to_label.json"))


def objectnet_imagenet_indices() -> list[int]:
    """The 125 ImageNet classes ObjectNet is scored on, sorted."""
    return sorted({i for ids in objectnet_folder_to_imagenet().values() for i in ids})
