"""``imagenet-captions demo``: the whole machine on a bundled sample, with no network and no key.

It generates the sample (see sample.py), builds shards from it exactly as ``build`` would for a real
ImageNet copy, loads them back with webdataset and pyarrow, and prints where they are and how to load
them.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import time

from imagenet_captions.build import BuildConfig, print_summary, run_build
from imagenet_captions.sample import SampleSpec, sample_paths, write_sample
from imagenet_captions.shards import layout

LOAD_HOWTO = """\
Load the shards:

  import webdataset as wds
  ds = wds.WebDataset("{shards}/{{00000..{last:05d}}}.tar", shardshuffle=False).decode("pil")
  for sample in ds:  # keys: __key__, jpg (PIL image), txt (caption), json (record), cls (label)
      print(sample["__key__"], sample["cls"], sample["txt"][:60])
      break

  import glob, pyarrow.parquet as pq
  table = pq.ParquetDataset(sorted(glob.glob("{shards}/*.parquet"))).read()  # key, wnid, label, caption, ...
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--out", default="demo-out", help="where the sample and the build go (default: demo-out)"
    )
    parser.add_argument(
        "--per-class", type=int, default=30, help="images per class in the sample (10 classes)"
    )


def check_shards(shard_dir: str) -> tuple[int, int, str]:
    """Load the shards back with webdataset and pyarrow: (samples in tars, Parquet rows, one caption)."""
    import pyarrow.parquet as pq
    import webdataset as wds

    tars = sorted(os.path.join(shard_dir, f) for f in os.listdir(shard_dir) if f.endswith(".tar"))
    n, caption = 0, ""
    for sample in wds.WebDataset(tars, shardshuffle=False, empty_check=False).decode("pil"):
        assert sample["jpg"].size[0] > 0 and "cls" in sample and "json" in sample
        n += 1
        if len(sample["txt"]) > len(caption):
            caption = sample["txt"]
    parquet = sorted(os.path.join(shard_dir, f) for f in os.listdir(shard_dir) if f.endswith(".parquet"))
    rows = pq.ParquetDataset(parquet).read().num_rows
    return n, rows, caption


def run(args: argparse.Namespace, extra: list[str]) -> int:
    t0 = time.perf_counter()
    out = os.path.abspath(args.out)
    sample_dir, build_dir = os.path.join(out, "sample"), os.path.join(out, "build")
    for d in (sample_dir, build_dir):
        shutil.rmtree(d, ignore_errors=True)
    expect = write_sample(sample_dir, SampleSpec(per_class=args.per_class))
    metadata, train = sample_paths(sample_dir)
    print(f"sample: {expect['records']} release records, {expect['images']} images in {sample_dir}")
    rep = run_build(BuildConfig(metadata=f"release:{metadata}", imagenet=train, out=build_dir), extra)
    print_summary(rep, build_dir)
    shard_dir = os.path.join(build_dir, layout.SHARD_DIR)
    n, rows, caption = check_shards(shard_dir)
    print(f"\nshards: {shard_dir} ({rep['shards']['count']} tars, {n} samples; Parquet: {rows} rows)")
    print(f"report: {os.path.join(build_dir, layout.REPORT_FILE)}")
    print(f"a caption: {json.dumps(caption[:160], ensure_ascii=False)}")
    print("\n" + LOAD_HOWTO.format(shards=shard_dir, last=rep["shards"]["num_shards"] - 1))
    print(f"demo done in {time.perf_counter() - t0:.1f} s")
    ok = n == rows == rep["written"] and not rep["accounting_problems"]
    return 0 if ok else 1
