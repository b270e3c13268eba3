"""The training data as resolved from ``--shards``: which tars, how many samples each, per epoch.

``sizes.json`` beside the tars (open_clip's format, written by the build) gives each shard's count;
an epoch is a fixed number of samples, so without it ``--train-num-samples`` is required. Every
mistake is one ``UsageError`` naming ``--shards``, found before any worker starts.
"""

from __future__ import annotations

import dataclasses
import glob
import json
import os
from pathlib import Path
from typing import Any

from imagenet_captions.errors import UsageError


@dataclasses.dataclass
class ShardSpec:
    """The resolved training data: tar paths, their sample counts (if known), samples per epoch."""

    urls: list[str]
    sizes: dict[str, int] | None
    num_samples: int

    def describe(self) -> dict[str, Any]:
        return {"shards": self.urls, "num_samples": self.num_samples, "sizes": self.sizes}


def resolve_shards(spec: str, num_samples: int | None = None) -> ShardSpec:
    """Shards from a directory (its ``*.tar``, or ``<dir>/shards/*.tar``) or a brace pattern.

    ``sizes.json`` beside the tars gives each shard's count; without it ``num_samples`` is required.
    """
    from webdataset.shardlists import expand_urls

    p = Path(spec)
    if p.is_dir():
        if not list(p.glob("*.tar")) and (p / "shards").is_dir():
            p = p / "shards"
        urls = sorted(str(x) for x in p.glob("*.tar"))
        if not urls:
            raise UsageError(f"--shards: no .tar shards in {spec}")
    else:
        urls = []
        for u in expand_urls(spec):
            urls.extend(sorted(glob.glob(u)) if any(c in u for c in "*?[") else [u])
        missing = [u for u in urls if not os.path.isfile(u)]
        if not urls or missing:
            raise UsageError(f"--shards: shard not found: {missing[0] if missing else spec}")
    sizes_path = Path(urls[0]).parent / "sizes.json"
    sizes = None
    if sizes_path.is_file():
        try:
            all_sizes = json.loads(sizes_path.read_text())
            sizes = {u: int(all_sizes[os.path.basename(u)]) for u in urls}
        except (ValueError, KeyError, TypeError) as e:
            raise UsageError(f"{sizes_path} does not list every shard with a count: {e}") from e
    if num_samples is None:
        if sizes is None:
            raise UsageError(f"no sizes.json beside {urls[0]}; pass --train-num-samples")
        num_samples = sum(sizes.values())
    if num_samples <= 0:
        raise UsageError("--shards: the shards hold no samples")
    return ShardSpec(urls=urls, sizes=sizes, num_samples=int(num_samples))
