"""What the sha256s and an fsync per shard file cost the shard writer, in one process.

``write_shard`` over one shard of ImageNet-sized JPEGs, four ways, each a ratio against the writer
as it is: as built (the source's sha256 in every row, each shard file's sha256 taken as it is
written, files renamed without an fsync), with the source images' sha256 left out, with the shard
files' sha256 left out, and with an fsync before each rename (what ``fsio.atomic_write`` does for
reports and manifests). The images are ``benchmarks/bench_shards.py``'s generated 500x375 JPEGs::

    python benchmarks/bench_shards.py --sizes 2000,10000 --out /tmp/bs --repeat 1   # makes the data
    python benchmarks/bench_shard_writer.py --data /tmp/bs/data/n10000 --images 3000
"""

from __future__ import annotations

import argparse
import hashlib
import os
import shutil
import tempfile
import time

from imagenet_captions.records import Record, Sample
from imagenet_captions.shards import hashfile, images, writer
from imagenet_captions.sources import imagenet


def samples_of(data: str, n: int) -> list[Sample]:
    folders, _ = imagenet.list_top_level(data)
    refs = [x for f in folders for x in imagenet.list_class_folder(f) if isinstance(x, dict)][:n]

    def record(key: str, wnid: str) -> Record:
        return {"key": key, "wnid": wnid, "label": 0, "photo_id": None, "license": None, "title": "t",
                "description": "", "tags": [], "caption": "t", "lang": None, "lang_score": None}  # fmt: skip

    return [Sample(record(r["key"], r["wnid"]), r) for r in refs]


def per_image(samples: list, out: str, repeat: int) -> tuple[float, float]:
    """Best (wall, CPU) microseconds per image of ``write_shard`` over ``samples``."""
    best = (float("inf"), float("inf"))
    for _ in range(repeat):
        shutil.rmtree(out, ignore_errors=True)
        t, c = time.perf_counter(), time.process_time()
        writer.write_shard(0, samples, out, with_images=True)
        wall, cpu = (time.perf_counter() - t) / len(samples) * 1e6, (time.process_time() - c) / len(samples) * 1e6
        best = (min(best[0], wall), min(best[1], cpu))
    return best


class _NoHash:
    def __init__(self, data: bytes = b"") -> None:
        pass

    def update(self, data: bytes) -> None:
        pass

    def hexdigest(self) -> str:
        return "0" * 64


class _NoHashlib:
    """Stands in for the ``hashlib`` module of one of the writer's modules."""

    sha256 = _NoHash


def _commit_with_fsync(self: hashfile.HashingFile) -> None:
    self.close()
    fd = os.open(self.tmp, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(self.tmp, self.path)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--data", required=True, help="an ILSVRC-shaped folder of JPEGs")
    parser.add_argument("--images", type=int, default=3000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    samples = samples_of(args.data, args.images)
    out = tempfile.mkdtemp(prefix="bench-writer-")
    per_image(samples, out, 1)  # the page cache
    built = per_image(samples, out, args.repeat)
    images.hashlib = _NoHashlib  # type: ignore[assignment]  (the source images' sha256)
    no_hash = per_image(samples, out, args.repeat)
    images.hashlib = hashlib
    hashfile.hashlib = _NoHashlib  # type: ignore[assignment]  (the shard files' sha256)
    no_file_hash = per_image(samples, out, args.repeat)
    hashfile.hashlib = hashlib
    commit = hashfile.HashingFile.commit
    hashfile.HashingFile.commit = _commit_with_fsync  # type: ignore[method-assign]
    fsync = per_image(samples, out, args.repeat)
    hashfile.HashingFile.commit = commit  # type: ignore[method-assign]
    shutil.rmtree(out, ignore_errors=True)
    print(f"{len(samples)} images, best of {args.repeat}; load average {os.getloadavg()[0]:.1f}")
    for name, (wall, cpu) in (
        ("as built", built),
        ("without the sha256", no_hash),
        ("without the files' sha256", no_file_hash),
        ("with an fsync", fsync),
    ):
        print(f"  {name:26s} {wall:6.0f} us wall {cpu:6.0f} us CPU per image = {wall / built[0]:.2f}x as built")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
