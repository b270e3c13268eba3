"""``imagenet-captions demo``: the whole machine on a bundled sample, with no network and no key.

It generates the sample (see sample.py) and runs both paths a user has:

1. the official release file + ImageNet images -> shards (``build --metadata release:...``);
2. the live path: ImageNet's URL list -> Flickr photo ids -> ``flickr.photos.getInfo`` answers from a
   loopback server that speaks Flickr's REST API (replaying answers made from the sample; some
   photos are gone, as on the real Flickr) -> a durable response store -> shards
   (``harvest`` then ``build --metadata responses:...``).

Then it reads the shards back (the tars with tarfile and Pillow, the Parquet with pyarrow), prints
where they are and how to load them, and ends with the next commands to run on its output: validate,
release, train. It must not import webdataset: with torch installed, webdataset imports it, and
the demo paid for torch's import and memory (nothing that does not train imports torch).
"""

from __future__ import annotations

import argparse
import io
import json
import os
import shlex
import shutil
import sys
import tarfile
import time

from imagenet_captions import layout
from imagenet_captions.build import BuildConfig, print_summary, run_build
from imagenet_captions.errors import UsageError
from imagenet_captions.sample import SampleSpec, sample_paths, write_sample

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


def check_arguments(args: argparse.Namespace) -> None:
    """Refuse, as one line, what would otherwise fail deep in the sample generator or the build."""
    if args.per_class < 1:
        raise UsageError(f"--per-class must be at least 1, not {args.per_class}")
    if os.path.exists(args.out) and not os.path.isdir(args.out):
        raise UsageError(f"--out {args.out} is a file, not a folder")


def check_shards(shard_dir: str) -> tuple[int, int, str]:
    """Read the shards back: (samples in the tars, Parquet rows, the longest caption).

    Each tar is read as the plain tar it is (tarfile, members grouped by key as webdataset groups
    them) and each image decoded with Pillow: the check webdataset's loader would make, without
    importing it (see the module docstring)."""
    import pyarrow.parquet as pq
    from PIL import Image

    tars = sorted(os.path.join(shard_dir, f) for f in os.listdir(shard_dir) if f.endswith(".tar"))
    n, caption = 0, ""
    for path in tars:
        samples: dict[str, dict[str, bytes]] = {}
        with tarfile.open(path) as tar:
            for member in tar:
                key, _, ext = member.name.partition(".")
                data = tar.extractfile(member)
                samples.setdefault(key, {})[ext] = data.read() if data is not None else b""
        for key, sample in samples.items():
            if set(sample) != set(layout.MEMBER_EXTENSIONS):
                raise RuntimeError(f"{path}: sample {key} has members {sorted(sample)}")
            with Image.open(io.BytesIO(sample["jpg"])) as image:
                image.load()
                if image.size[0] <= 0:
                    raise RuntimeError(f"{path}: sample {key} has an empty image")
            n += 1
            text = sample["txt"].decode("utf-8")
            if len(text) > len(caption):
                caption = text
    parquet = sorted(os.path.join(shard_dir, f) for f in os.listdir(shard_dir) if f.endswith(".parquet"))
    rows = pq.ParquetDataset(parquet).read().num_rows
    return n, rows, caption


def next_commands(out: str, build_dir: str) -> list[str]:
    """The commands a user runs next on the demo's output, exactly as they can be pasted."""
    shards = os.path.join(build_dir, layout.SHARD_DIR)
    q = shlex.quote
    return [
        f"imagenet-captions validate {q(build_dir)}",
        f"imagenet-captions release {q(build_dir)} --out {q(os.path.join(out, 'release'))}",
        f"imagenet-captions train --shards {q(shards)} --out {q(os.path.join(out, 'train'))} "
        "--model clip-tiny --steps 20 --batch-size 16 --workers 2 --device cpu",
    ]


def run(args: argparse.Namespace, extra: list[str]) -> int:
    check_arguments(args)
    t0 = time.perf_counter()
    out = os.path.abspath(args.out)
    sample_dir, build_dir = os.path.join(out, "sample"), os.path.join(out, "build")
    harvest_dir, harvested_build_dir = os.path.join(out, "harvest"), os.path.join(out, "build-harvested")
    for d in (sample_dir, build_dir, harvest_dir, harvested_build_dir):
        shutil.rmtree(d, ignore_errors=True)
    expect = write_sample(sample_dir, SampleSpec(per_class=args.per_class))
    metadata, train = sample_paths(sample_dir)
    print(f"sample: {expect['records']} release records, {expect['images']} images in {sample_dir}")
    rep = run_build(BuildConfig(metadata=f"release:{metadata}", imagenet=train, out=build_dir), extra)
    sys.stdout.flush()  # the summary goes to stderr: keep the order when both are piped to one place
    print_summary(rep, build_dir)
    shard_dir = os.path.join(build_dir, layout.SHARD_DIR)
    n, rows, caption = check_shards(shard_dir)
    print(f"\nshards: {shard_dir} ({rep['shards']['count']} tars, {n} samples; Parquet: {rows} rows)")
    print(f"report: {os.path.join(build_dir, layout.REPORT_FILE)}")
    print(f"a caption: {json.dumps(caption[:160], ensure_ascii=False)}")
    print("\n" + LOAD_HOWTO.format(shards=shard_dir, last=rep["shards"]["num_shards"] - 1))
    ok = n == rows == rep["written"] and not rep["accounting_problems"]

    print("\nthe live path: URL list -> Flickr API (loopback replay server) -> response store -> shards")
    harvested = harvest_and_build(metadata, train, harvest_dir, harvested_build_dir, extra)
    sys.stdout.flush()
    print_summary(harvested, harvested_build_dir)
    print(f"shards: {os.path.join(harvested_build_dir, layout.SHARD_DIR)} ({harvested['written']} samples)")
    print(f"\ndemo done in {time.perf_counter() - t0:.1f} s")
    print("\nNext: check the build, make a release of it, train a tiny CLIP on it (a short CPU run; train")
    print('needs the train extra: pip install "imagenet-captions[train]"):\n')
    for command in next_commands(out, build_dir):
        print(f"  {command}")
    ok = ok and not harvested["accounting_problems"] and harvested["written"] > 0
    return 0 if ok else 1


def harvest_and_build(metadata: str, train: str, harvest_dir: str, build_dir: str, extra: list[str]) -> dict:
    """The live path on the sample: harvest from a loopback Flickr replay server, then build from the store."""
    from imagenet_captions.flickr.replay import demo_harvest, flickr_fixtures_for

    with open(metadata, encoding="utf-8") as f:
        records = json.load(f)
    lines, responses = flickr_fixtures_for(records)
    os.makedirs(harvest_dir, exist_ok=True)
    urls = os.path.join(harvest_dir, "fall11_urls_sample.txt")
    with open(urls, "w", encoding="utf-8") as f:
        f.write("\n".join(lines) + "\n")
    store = demo_harvest(urls, responses, harvest_dir, extra)
    print(f"harvested {len(lines)} URLs into {store}")
    return run_build(BuildConfig(metadata=f"responses:{store}", imagenet=train, out=build_dir), extra)
