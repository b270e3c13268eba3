"""Names and hashing shared by the writer, the validator and the build: one place for the rules.

A key goes to shard ``sha1(key) mod num_shards``: the assignment depends on the key alone, so it
survives reruns, filtering and input order. Inside a shard, samples are ordered by a salted hash of
the key, which mixes the classes (a shard read front to back is not one class after another) and is
again independent of input order.
"""

from __future__ import annotations

import hashlib
import math

SHARD_DIR = "shards"
CAPTIONS_DIR = "captions"
SIZES_FILE = "sizes.json"
MANIFEST_FILE = "manifest.json"
REPORT_FILE = "report.json"
ORDER_SALT = b"imagenet-captions/v1"

#: Fixed tar member metadata, so the same samples always give the same bytes.
TAR_MTIME = 0
TAR_MODE = 0o644
MEMBER_EXTENSIONS = ("jpg", "txt", "json", "cls")


def shard_of(key: str, num_shards: int) -> int:
    return int.from_bytes(hashlib.sha1(key.encode()).digest()[:8], "big") % num_shards


def order_key(key: str) -> bytes:
    return hashlib.sha1(ORDER_SALT + key.encode()).digest()


def shard_stem(index: int) -> str:
    return f"{index:05d}"


def derive_num_shards(count: int, shard_size: int, min_shards: int) -> int:
    """About ``shard_size`` samples a shard, but at least ``min_shards`` (multi-GPU loaders need
    shards >= workers x ranks) unless that would leave fewer than 32 samples a shard."""
    if count <= 0:
        return 1
    by_size = math.ceil(count / shard_size)
    return max(by_size, min(min_shards, max(1, count // 32)))
