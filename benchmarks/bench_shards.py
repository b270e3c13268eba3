"""Shards at disk speed? Measures the shard stage against tar and img2dataset on generated ImageNet-shaped data, in one run.

What it measures (every figure against a baseline measured in the same process, on the same files):

1. Marginal cost per image of pass-through shard writing against GNU ``tar cf`` of the same files, at
   two sizes so that start-up cancels: ``(t(large) - t(small)) / (large - small)``. Three writers:
   ``tar cf``; our writer alone (listing + :func:`write_shard` per shard, no Beam); the whole
   ``imagenet-captions build`` (Beam on the FnApiRunner, text cleaning included) with default options.
2. ``--resize 256``: images per second per core (CPU time of one thread) of :func:`process_image`
   against img2dataset's ``Resizer`` (its own module, loaded from the installed package) on the same
   images, interleaved in blocks so that a noisy neighbour hurts both alike.
3. Peak memory (max RSS, from ``wait4``) of the build at both sizes, and its growth per added image
   against the mean image size.

The page cache cannot be dropped without root, so every run is warm-cache: each file set is read once
before timing, and tar and our writer read the same cached files. Each timed step runs ``--repeat``
times, alternating between the contenders, and the minimum is kept (the least-disturbed run).

Usage::

    python benchmarks/bench_shards.py [--sizes 2000,10000] [--out DIR] [--repeat 3]

It prints a table and writes ``<out>/bench_shards.json``.
"""

from __future__ import annotations

import argparse
import importlib.util
import io
import json
import os
import platform
import random
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from imagenet_captions import classes
from imagenet_captions.testing.synthetic import photo_texture

IMAGE_SIZE = (500, 375)
GEN_QUALITY = 90
N_CLASSES = 100

_WORDS = [
    "beach",
    "sunset",
    "dog",
    "cat",
    "river",
    "mountain",
    "snow",
    "city",
    "street",
    "market",
    "garden",
    "flower",
    "bird",
    "lake",
    "forest",
    "holiday",
    "trip",
    "family",
    "friends",
    "park",
    "zoo",
    "museum",
    "old",
    "new",
    "red",
    "blue",
    "green",
    "morning",
    "night",
    "summer",
    "winter",
    "road",
    "bridge",
    "boat",
    "car",
    "train",
    "field",
    "farm",
    "house",
    "church",
    "tower",
    "sky",
    "clouds",
    "rain",
    "sun",
    "light",
    "shadow",
]


# ---------------------------------------------------------------------------------------------------
# Data: photo-like 500x375 JPEGs in the ILSVRC layout, and a release JSON for them
# ---------------------------------------------------------------------------------------------------


def _record(key: str, wnid: str, name: str, prng: random.Random) -> dict[str, Any]:
    words = [prng.choice(_WORDS) for _ in range(prng.randint(2, 6))]
    title = prng.choice([f"{name} {words[0]}", f"DSC{prng.randint(0, 99999):05d}", " ".join(words).title()])
    description = " ".join(prng.choice(_WORDS) for _ in range(prng.choice([0, 0, 8, 25])))
    return {
        "filename": f"{key}.JPEG",
        "title": title,
        "tags": [name.split(",")[0].lower(), *words[:3]],
        "description": description.capitalize(),
        "wnid": wnid,
    }


def generate(root: Path, count: int, seed: int = 0) -> dict[str, Any]:
    """Write ``root/train/<wnid>/<wnid>_<n>.JPEG`` (``count`` images over 100 classes) and
    ``root/imagenet_captions.json``; reuse them when a previous run left the same set (``done.json``)."""
    stamp = {"count": count, "seed": seed, "size": list(IMAGE_SIZE), "quality": GEN_QUALITY, "v": 1}
    done = root / "done.json"
    if done.exists() and json.loads(done.read_text()).get("stamp") == stamp:
        return json.loads(done.read_text())
    if root.exists():
        shutil.rmtree(root)
    rng = np.random.default_rng(seed)
    prng = random.Random(seed)
    width, height = IMAGE_SIZE
    fields = [photo_texture(rng, 1200, 1600) for _ in range(4)]
    names = dict(classes.class_index())
    wnids = classes.wnids()[:: len(classes.wnids()) // N_CLASSES][:N_CLASSES]
    records, total = [], 0
    for i in range(count):
        wnid = wnids[i % N_CLASSES]
        key = f"{wnid}_{i}"
        field = fields[i % len(fields)]
        y, x = int(rng.integers(0, field.shape[0] - height)), int(rng.integers(0, field.shape[1] - width))
        gain = rng.uniform(0.7, 1.3, 3).astype(np.float32)
        pixels = np.clip(field[y : y + height, x : x + width] * gain, 0, 255).astype(np.uint8)
        folder = root / "train" / wnid
        folder.mkdir(parents=True, exist_ok=True)
        buf = io.BytesIO()
        Image.fromarray(pixels, "RGB").save(buf, "JPEG", quality=GEN_QUALITY)
        (folder / f"{key}.JPEG").write_bytes(buf.getvalue())
        total += buf.tell()
        records.append(_record(key, wnid, names[wnid].replace("_", " "), prng))
    (root / "imagenet_captions.json").write_text(json.dumps(records), encoding="utf-8")
    info = {"stamp": stamp, "images": count, "bytes": total, "mean_bytes": total / count}
    done.write_text(json.dumps(info))
    return info


def image_paths(root: Path) -> list[Path]:
    return sorted((root / "train").glob("*/*.JPEG"))


def warm(root: Path) -> None:
    """Read every file once, so both contenders start from the same (warm) page cache."""
    for path in image_paths(root):
        path.read_bytes()


def subset(big: Path, root: Path, count: int) -> dict[str, Any]:
    """The first ``count`` images of ``big`` (hard links: no second copy to generate) and their records."""
    info = json.loads((big / "done.json").read_text())
    stamp = {**info["stamp"], "subset_of": str(big), "count": count}
    done = root / "done.json"
    if done.exists() and json.loads(done.read_text()).get("stamp") == stamp:
        return json.loads(done.read_text())
    if root.exists():
        shutil.rmtree(root)
    records = json.loads((big / "imagenet_captions.json").read_text(encoding="utf-8"))[:count]
    total = 0
    for record in records:
        src = big / "train" / record["wnid"] / record["filename"]
        dst = root / "train" / record["wnid"] / record["filename"]
        dst.parent.mkdir(parents=True, exist_ok=True)
        os.link(src, dst)
        total += dst.stat().st_size
    (root / "imagenet_captions.json").write_text(json.dumps(records), encoding="utf-8")
    out = {"stamp": stamp, "images": count, "bytes": total, "mean_bytes": total / count}
    done.write_text(json.dumps(out))
    return out


# ---------------------------------------------------------------------------------------------------
# Timed runs: each contender is a child process, measured with wait4 (wall, CPU, max RSS)
# ---------------------------------------------------------------------------------------------------


def run_child(cmd: list[str], log: Path) -> dict[str, float]:
    """Run ``cmd`` to completion; its wall time, CPU time (user + system) and max RSS.

    Max RSS comes from GNU time, not from our own ``wait4``: a child forked from this (large) process
    counts our pages until it execs, so its ``ru_maxrss`` would be at least our size."""
    os.sync()  # the previous run's dirty pages are flushed now, not during this run
    rss_file = log.with_suffix(".rss")
    timer = ["/usr/bin/time", "-f", "%M", "-o", str(rss_file)] if os.path.exists("/usr/bin/time") else []
    with open(log, "wb") as err:
        start = time.perf_counter()
        proc = subprocess.Popen(timer + cmd, stdout=err, stderr=err)
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - start
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        raise RuntimeError(f"{cmd[:3]}... failed ({proc.returncode}); see {log}")
    rss_kib = int(rss_file.read_text().split()[-1]) if timer else usage.ru_maxrss
    return {"wall_s": wall, "cpu_s": usage.ru_utime + usage.ru_stime, "maxrss_mib": rss_kib / 1024}


def contender_commands(name: str, root: Path, out: Path, resize: int | None = None) -> list[str]:
    if name == "tar":
        return ["tar", "cf", str(out / "all.tar"), "-C", str(root), "train"]
    if name == "writer":
        return [sys.executable, __file__, "--_writer", str(root), str(out)]
    cmd = [
        sys.executable,
        "-m",
        "imagenet_captions.cli",
        "build",
        "--metadata",
        f"release:{root / 'imagenet_captions.json'}",
        "--imagenet",
        str(root),
        "--out",
        str(out),
    ]
    return cmd + (["--resize", str(resize)] if resize else [])


def writer_only(root: str, out: str) -> None:
    """The shard writer without Beam: list the images, assign shards as the build does, write each.

    Records carry a plain caption (title and tags), not the text stage's: this isolates the image
    and tar path, the part that should run at disk speed.
    """
    from imagenet_captions import layout
    from imagenet_captions.records import Record, Sample
    from imagenet_captions.shards.writer import write_shard
    from imagenet_captions.sources import imagenet

    labels = classes.wnid_to_label()
    records = {
        r["filename"].rsplit(".", 1)[0]: r
        for r in json.loads(Path(root, "imagenet_captions.json").read_text(encoding="utf-8"))
    }
    folders, _ = imagenet.list_top_level(root)
    refs = [x for folder in folders for x in imagenet.list_class_folder(folder) if isinstance(x, dict)]
    num_shards = layout.derive_num_shards(len(refs), 2000, 8)
    shards: dict[int, list[Sample]] = {}
    for ref in refs:
        raw = records[ref["key"]]
        record: Record = {
            "key": ref["key"],
            "wnid": ref["wnid"],
            "label": labels[ref["wnid"]],
            "photo_id": None,
            "license": None,
            "title": raw["title"],
            "description": raw["description"],
            "tags": raw["tags"],
            "caption": " ".join([raw["title"], *raw["tags"]]),
            "lang": None,
            "lang_score": None,
        }
        shards.setdefault(layout.shard_of(ref["key"], num_shards), []).append(Sample(record, ref))
    written = sum(write_shard(i, s, str(Path(out, "shards"))).written for i, s in sorted(shards.items()))
    if written != len(refs):
        raise SystemExit(f"writer wrote {written} of {len(refs)} images")


# ---------------------------------------------------------------------------------------------------
# Resize: our process_image against img2dataset's Resizer, per core
# ---------------------------------------------------------------------------------------------------


def load_img2dataset_resizer() -> tuple[Any, str]:
    """img2dataset's own ``resizer.py``, loaded from the installed package without its ``__init__``
    (which imports the downloader's dependencies: fire, wandb, ...); None if it is not installed."""
    spec = importlib.util.find_spec("img2dataset")
    if spec is None or not spec.submodule_search_locations:
        return (
            None,
            "img2dataset is not installed (pip install img2dataset --no-deps opencv-python-headless albumentations)",
        )
    path = os.path.join(next(iter(spec.submodule_search_locations)), "resizer.py")
    module_spec = importlib.util.spec_from_file_location("img2dataset_resizer", path)
    module = importlib.util.module_from_spec(module_spec)  # type: ignore[arg-type]
    os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")
    module_spec.loader.exec_module(module)  # type: ignore[union-attr]
    from importlib.metadata import version

    return module, f"img2dataset {version('img2dataset')} resizer.py"


def _psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return 99.0 if mse == 0 else 10 * np.log10(255.0**2 / mse)


def bench_resize(paths: list[Path], size: int, rounds: int, block: int = 50) -> dict[str, Any]:
    """Images per CPU-second of each resizer on the same images, alternating blocks of ``block``.
    ``resizer`` in the result names the code behind ours (fast_image_resize or Pillow)."""
    from imagenet_captions.images import ImageOptions, process_image
    from imagenet_captions.images.process import resizer_name

    module, origin = load_img2dataset_resizer()
    if module is None:
        return {"skipped": origin}
    resizer = module.Resizer(
        image_size=size, resize_mode="keep_ratio", resize_only_if_bigger=True, encode_quality=95
    )
    datas = [p.read_bytes() for p in paths]

    def ours(resample: str) -> Any:
        options = ImageOptions(resize=size, resample=resample)
        return lambda data: process_image(data, options)[0]

    def theirs(data: bytes) -> bytes:
        out, *_, err = resizer(io.BytesIO(data))
        if err:
            raise RuntimeError(err)
        return out

    contenders = {f"ours_{r}": ours(r) for r in ("lanczos", "bicubic", "bilinear")}
    contenders["img2dataset"] = theirs
    cpu = dict.fromkeys(contenders, 0.0)
    wall = dict.fromkeys(contenders, 0.0)
    for f in contenders.values():
        f(datas[0])  # imports, first-call set-up
    for _ in range(rounds):
        for start in range(0, len(datas), block):
            chunk = datas[start : start + block]
            for name, f in contenders.items():
                c0, w0 = time.process_time(), time.perf_counter()
                for data in chunk:
                    f(data)
                cpu[name] += time.process_time() - c0
                wall[name] += time.perf_counter() - w0
    n = len(datas) * rounds
    result: dict[str, Any] = {
        "images": len(datas),
        "rounds": rounds,
        "baseline": origin,
        "resizer": resizer_name(),
    }
    for name in contenders:
        result[name] = {"images_per_cpu_s": n / cpu[name], "images_per_wall_s": n / wall[name]}
    base = result["img2dataset"]["images_per_cpu_s"]
    result["ratio_per_core"] = {name: result[name]["images_per_cpu_s"] / base for name in contenders}
    # Same quality? Both outputs against a reference: float LANCZOS of the full decode, no JPEG round trip.
    quality: dict[str, list[float]] = {name: [] for name in contenders}
    sizes: dict[str, list[int]] = {name: [] for name in contenders}
    for data in datas[:50]:
        im = Image.open(io.BytesIO(data)).convert("RGB")
        for name, f in contenders.items():
            out = f(data)
            got = Image.open(io.BytesIO(out)).convert("RGB")
            ref = np.asarray(im.resize(got.size, Image.Resampling.LANCZOS))
            quality[name].append(_psnr(np.asarray(got), ref))
            sizes[name].append(len(out))
    for name in contenders:
        result[name]["psnr_vs_lanczos_db"] = float(np.mean(quality[name]))
        result[name]["mean_bytes"] = float(np.mean(sizes[name]))
    return result


# ---------------------------------------------------------------------------------------------------
# Levers: each speed choice against the alternative it replaced, per image, in one process
# ---------------------------------------------------------------------------------------------------


def _cpu_per_item(fn: Any, items: list[Any], rounds: int) -> float:
    """Microseconds of CPU per item, the best of ``rounds`` passes."""
    best = float("inf")
    for _ in range(rounds):
        start = time.process_time()
        for item in items:
            fn(item)
        best = min(best, time.process_time() - start)
    return best / len(items) * 1e6


def bench_levers(paths: list[Path], work: Path, rounds: int = 5) -> dict[str, float]:
    """CPU microseconds per image of the writer's parts, old way and new way, on the same files."""
    import tarfile

    from imagenet_captions.images import ImageOptions, process_image
    from imagenet_captions.images.process import jpeg_header
    from imagenet_captions.layout import TAR_MODE, TAR_MTIME
    from imagenet_captions.shards.hashfile import HashingFile
    from imagenet_captions.shards.tar import TarWriter
    from imagenet_captions.sources.imagenet import ImageReader

    datas = [p.read_bytes() for p in paths]
    out: dict[str, float] = {}
    for verify in ("header", "draft", "full"):
        options = ImageOptions(verify=verify)
        out[f"check_{verify}"] = _cpu_per_item(lambda d, o=options: process_image(d, o), datas, rounds)
    out["header_scan"] = _cpu_per_item(jpeg_header, datas, rounds)
    out["pillow_open"] = _cpu_per_item(lambda d: Image.open(io.BytesIO(d)).size, datas, rounds)
    refs = [{"path": str(p), "size": len(d), "offset": None} for p, d in zip(paths, datas, strict=True)]
    reader = ImageReader()
    out["read_os"] = _cpu_per_item(reader.read, refs, rounds)
    out["read_open"] = _cpu_per_item(lambda r: Path(r["path"]).read_bytes(), refs, rounds)

    def with_tarfile(path: Path) -> None:
        with tarfile.open(path, "w", format=tarfile.USTAR_FORMAT) as tf:
            for i, data in enumerate(datas):
                for name, member in ((f"k_{i}.jpg", data), (f"k_{i}.txt", b"caption"), (f"k_{i}.cls", b"7")):
                    info = tarfile.TarInfo(name)
                    info.size, info.mtime, info.mode = len(member), TAR_MTIME, TAR_MODE
                    info.uid = info.gid = 0
                    info.uname = info.gname = ""
                    tf.addfile(info, io.BytesIO(member))

    def with_tarwriter(path: Path) -> None:
        out = HashingFile(str(path))
        with TarWriter(out) as tw:
            for i, data in enumerate(datas):
                tw.add(f"k_{i}.jpg", data)
                tw.add(f"k_{i}.txt", b"caption")
                tw.add(f"k_{i}.cls", b"7")
                tw.flush()
        out.commit()

    def with_read_writev(path: Path) -> None:
        """What the writer does for a pass-through JPEG: read it, check it, write it with the other
        members in one writev. (os.copy_file_range instead, after reading the head and the last two
        bytes, measured 74-79 us against 71-72 us: no gain, so the writer does not use it.)"""
        out = HashingFile(str(path))
        with TarWriter(out) as tw:
            for i, ref in enumerate(refs):
                data = reader.read(ref)
                jpeg_header(data)
                tw.add(f"k_{i}.jpg", data)
                tw.add(f"k_{i}.txt", b"caption")
                tw.add(f"k_{i}.cls", b"7")
                tw.flush()
        out.commit()

    for name, fn in (
        ("tar_tarfile", with_tarfile),
        ("tar_tarwriter", with_tarwriter),
        ("file_to_tar_read_writev", with_read_writev),
    ):
        target = work / f"{name}.tar"
        best = float("inf")
        for _ in range(rounds):
            target.unlink(missing_ok=True)
            os.sync()
            start = time.process_time()
            fn(target)
            best = min(best, time.process_time() - start)
        target.unlink(missing_ok=True)
        out[name] = best / len(datas) * 1e6
    return out


# ---------------------------------------------------------------------------------------------------
# The run
# ---------------------------------------------------------------------------------------------------

CONTENDERS = ("tar", "writer", "build")


def marginal(
    small: dict[str, float], large: dict[str, float], n_small: int, n_large: int
) -> dict[str, float]:
    """Per added image, in microseconds: start-up (imports, Beam, pipeline set-up) cancels."""
    return {
        "wall_us": (large["wall_s"] - small["wall_s"]) / (n_large - n_small) * 1e6,
        "cpu_us": (large["cpu_s"] - small["cpu_s"]) / (n_large - n_small) * 1e6,
    }


def marginal_median(
    small: dict[str, Any], large: dict[str, Any], n_small: int, n_large: int
) -> dict[str, float]:
    """The median over repeats of the per-repeat marginal (run i at both sizes): less sensitive than
    the difference of two minima to one lucky or unlucky run on a shared machine."""
    pairs = list(zip(small["runs"], large["runs"], strict=True))
    return {
        metric: float(np.median([(b[metric] - a[metric]) / (n_large - n_small) * 1e6 for a, b in pairs]))
        for metric in ("wall_s", "cpu_s")
    }


def timed_runs(
    names: tuple[str, ...], roots: dict[int, Path], work: Path, repeat: int, resize: int | None = None
) -> dict[str, dict[int, dict[str, Any]]]:
    """Every contender at every size, ``repeat`` times, alternating; per metric the minimum
    (the least-disturbed run) except max RSS, where the maximum is the honest figure."""
    runs: dict[str, dict[int, list[dict[str, float]]]] = {c: {n: [] for n in roots} for c in names}
    for _ in range(repeat):
        for n, root in roots.items():
            for name in names:
                out = work / f"{name}_{n}"
                if out.exists():
                    shutil.rmtree(out)
                out.mkdir(parents=True)
                runs[name][n].append(
                    run_child(contender_commands(name, root, out, resize), work / f"{name}_{n}.log")
                )
                if name == "build":
                    rep = json.loads((out / "report.json").read_text())
                    if rep["written"] != n or rep["accounting_problems"]:
                        raise RuntimeError(
                            f"build of {n} wrote {rep['written']}: {rep['accounting_problems']}"
                        )
                    # The build's own shard stage (WriteShard: join, read, check, tar, Parquet).
                    runs[name][n][-1]["write_s"] = rep["shards"]["write_s"]
                shutil.rmtree(out)
    return {
        name: {
            n: {
                "wall_s": min(r["wall_s"] for r in rs),
                "cpu_s": min(r["cpu_s"] for r in rs),
                "maxrss_mib": max(r["maxrss_mib"] for r in rs),
                **({"write_s": min(r["write_s"] for r in rs)} if "write_s" in rs[0] else {}),
                "runs": rs,
            }
            for n, rs in by_n.items()
        }
        for name, by_n in runs.items()
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="2000,10000", help="two image counts (default 2000,10000)")
    parser.add_argument(
        "--out", default="/tmp/bench_shards", help="work folder (data is generated here once)"
    )
    parser.add_argument("--repeat", type=int, default=3, help="runs per contender and size (minimum kept)")
    parser.add_argument("--resize", type=int, default=256, help="shorter side for the resize comparison")
    parser.add_argument("--resize-images", type=int, default=400, help="images in the resize comparison")
    parser.add_argument("--resize-rounds", type=int, default=3, help="passes over them")
    parser.add_argument("--lever-images", type=int, default=500, help="images in the per-part comparison")
    parser.add_argument("--no-build-resize", action="store_true", help="skip the whole build with --resize")
    parser.add_argument("--_writer", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args._writer:
        writer_only(*args._writer)
        return 0
    sizes = sorted(int(s) for s in args.sizes.split(","))
    if len(sizes) != 2 or sizes[0] >= sizes[1]:
        parser.error("--sizes takes two different counts, e.g. 2000,10000")
    out = Path(args.out)
    work = out / "runs"
    work.mkdir(parents=True, exist_ok=True)
    lo, hi = sizes
    t0 = time.perf_counter()
    big = generate(out / "data" / f"n{sizes[1]}", sizes[1])
    small = subset(out / "data" / f"n{sizes[1]}", out / "data" / f"n{sizes[0]}", sizes[0])
    roots = {n: out / "data" / f"n{n}" for n in sizes}
    print(
        f"data: {sizes} images of {IMAGE_SIZE[0]}x{IMAGE_SIZE[1]}, mean {big['mean_bytes'] / 1e3:.1f} kB "
        f"(ready in {time.perf_counter() - t0:.0f} s)",
        flush=True,
    )
    for root in roots.values():
        warm(root)

    result: dict[str, Any] = {
        "machine": {
            "python": platform.python_version(),
            "cpus": os.cpu_count(),
            "platform": platform.platform(),
            "loadavg_at_start": os.getloadavg(),
        },
        "data": {
            "sizes": sizes,
            "image_size": IMAGE_SIZE,
            "mean_bytes": big["mean_bytes"],
            "small_mean_bytes": small["mean_bytes"],
        },
        "cache": "warm (dropping the page cache needs root): every file read once before timing",
        "repeat": args.repeat,
    }
    levers = bench_levers(image_paths(roots[lo])[: args.lever_images], work)
    result["levers_cpu_us_per_image"] = levers
    print("levers, CPU us per image: " + ", ".join(f"{k} {v:.0f}" for k, v in levers.items()), flush=True)
    timed = timed_runs(CONTENDERS, roots, work, args.repeat)
    result["runs"] = timed
    per_image = {name: marginal(timed[name][lo], timed[name][hi], lo, hi) for name in CONTENDERS}
    result["marginal_per_image"] = per_image
    medians = {name: marginal_median(timed[name][lo], timed[name][hi], lo, hi) for name in CONTENDERS}
    result["marginal_per_image_median_us"] = medians
    result["ratio_to_tar_median"] = {
        name: {m: medians[name][m] / medians["tar"][m] for m in ("wall_s", "cpu_s")}
        for name in ("writer", "build")
    }
    result["ratio_to_tar"] = {
        name: {
            "wall": per_image[name]["wall_us"] / per_image["tar"]["wall_us"],
            "cpu": per_image[name]["cpu_us"] / per_image["tar"]["cpu_us"],
        }
        for name in ("writer", "build")
    }
    stage = {
        "wall_us": (timed["build"][hi]["write_s"] - timed["build"][lo]["write_s"]) / (hi - lo) * 1e6,
        "median_wall_us": float(
            np.median(
                [
                    (b["write_s"] - a["write_s"]) / (hi - lo) * 1e6
                    for a, b in zip(timed["build"][lo]["runs"], timed["build"][hi]["runs"], strict=True)
                ]
            )
        ),
    }
    stage["ratio_to_tar"] = stage["wall_us"] / per_image["tar"]["wall_us"]
    stage["median_ratio_to_tar"] = stage["median_wall_us"] / medians["tar"]["wall_s"]
    result["build_shard_stage"] = stage
    rss = {n: timed["build"][n]["maxrss_mib"] for n in sizes}
    growth = (rss[hi] - rss[lo]) * 2**20 / (hi - lo)
    result["memory"] = {
        "build_maxrss_mib": rss,
        "growth_bytes_per_image": growth,
        "growth_fraction_of_image": growth / big["mean_bytes"],
        "writer_maxrss_mib": {n: timed["writer"][n]["maxrss_mib"] for n in sizes},
    }
    print(f"pass-through, marginal per image (min of {args.repeat} runs):", flush=True)
    for name in CONTENDERS:
        m = per_image[name]
        ratio = (
            ""
            if name == "tar"
            else (
                f"  = {result['ratio_to_tar'][name]['wall']:.2f}x tar (wall), "
                f"{result['ratio_to_tar'][name]['cpu']:.2f}x (cpu)"
            )
        )
        print(f"  {name:7s} {m['wall_us']:8.0f} us wall {m['cpu_us']:8.0f} us cpu{ratio}")
    print(
        "  median of per-repeat marginals: "
        + ", ".join(
            f"{name} {medians[name]['wall_s']:.0f} us wall {medians[name]['cpu_s']:.0f} us cpu"
            for name in CONTENDERS
        )
    )
    print(
        f"  the build's shard stage (report.json write_s: join, read, check, tar, Parquet): "
        f"{stage['wall_us']:.0f} us wall = {stage['ratio_to_tar']:.2f}x tar (min); "
        f"median {stage['median_wall_us']:.0f} us = {stage['median_ratio_to_tar']:.2f}x"
    )
    print(
        f"build max RSS: {rss[lo]:.0f} MiB at {lo}, {rss[hi]:.0f} MiB at {hi}: {growth:.0f} bytes per added "
        f"image = {growth / big['mean_bytes']:.4f} of an image"
    )

    if not args.no_build_resize:
        resized = timed_runs(("build",), roots, work, 1, resize=args.resize)["build"]
        m = marginal(resized[lo], resized[hi], lo, hi)
        result["build_resize"] = {
            "runs": resized,
            "marginal_per_image": m,
            "images_per_cpu_s": 1e6 / m["cpu_us"],
        }
        print(
            f"build --resize {args.resize}: {m['cpu_us']:.0f} us cpu per added image = "
            f"{1e6 / m['cpu_us']:.0f} images/s per core",
            flush=True,
        )

    paths = image_paths(roots[lo])[: args.resize_images]
    rz = bench_resize(paths, args.resize, args.resize_rounds)
    result["resize"] = rz
    if "skipped" in rz:
        print(f"resize comparison skipped: {rz['skipped']}")
    else:
        base = rz["img2dataset"]
        print(
            f"resize {args.resize} with {rz['resizer']}, images/s per core "
            "(PSNR against float LANCZOS, mean JPEG bytes):"
        )
        for name in ("ours_lanczos", "ours_bicubic", "ours_bilinear", "img2dataset"):
            r = rz[name]
            print(
                f"  {name:13s} {r['images_per_cpu_s']:6.0f}/s = {r['images_per_cpu_s'] / base['images_per_cpu_s']:.2f}x"
                f"  {r['psnr_vs_lanczos_db']:.2f} dB  {r['mean_bytes'] / 1e3:.1f} kB"
            )
    result["loadavg_at_end"] = os.getloadavg()
    (out / "bench_shards.json").write_text(json.dumps(result, indent=1))
    print(f"written: {out / 'bench_shards.json'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
