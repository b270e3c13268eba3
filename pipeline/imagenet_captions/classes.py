"""The 1,000 ILSVRC-2012 classes: wnids, names and the label order (sorted wnids)."""

from __future__ import annotations

import functools
import json
import re
from importlib import resources

WNID_RE = re.compile(r"^n\d{8}$")
#: An ImageNet training image id: <wnid>_<n>. The key of every record.
IMAGE_ID_RE = re.compile(r"^(n\d{8})_(\d+)$")


@functools.lru_cache(maxsize=1)
def class_index() -> list[tuple[str, str]]:
    """[(wnid, name)] in label order; label i is the i-th wnid in sorted order."""
    raw = json.loads(
        resources.files("imagenet_captions.data").joinpath("imagenet_class_index.json").read_text()
    )
    pairs = [tuple(raw[str(i)]) for i in range(len(raw))]
    assert [w for w, _ in pairs] == sorted(w for w, _ in pairs), "class index must be in sorted wnid order"
    return pairs  # type: ignore[return-value]


@functools.lru_cache(maxsize=1)
def wnid_to_label() -> dict[str, int]:
    return {wnid: i for i, (wnid, _) in enumerate(class_index())}


def wnids() -> list[str]:
    return [w for w, _ in class_index()]


def parse_image_id(stem: str) -> tuple[str, int] | None:
    """(wnid, n) for an ImageNet image id like ``n01440764_10026``; None when it is not one."""
    m = IMAGE_ID_RE.match(stem)
    return (m.group(1), int(m.group(2))) if m else None
