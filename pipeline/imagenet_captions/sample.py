"""The bundled sample: a small ImageNet-shaped training set and release-format metadata, generated.

Deterministic (fixed seeds, no clock), so the demo and the tests see the same bytes everywhere. It
carries what real inputs carry: the three real ImageNet-Captions records (class n03146219), Flickr
text with HTML, entities, mojibake and many languages, and ImageNet's odd files (a CMYK JPEG, a PNG
named .JPEG, greyscale, a truncated file, an empty file), plus a duplicate record, a record with no
image and an image with no record, so the report's accounting has something to show.

The images are learnable: each class has its own colour and shape, so a tiny model trained on the
sample does better than chance.
"""

from __future__ import annotations

import io
import json
import os
import random
import tarfile
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageDraw

from imagenet_captions.classes import class_index

#: Ten classes: the real records' class (cuirass) and nine others with distinct shapes and colours.
SAMPLE_WNIDS = [
    "n01440764",
    "n01530575",
    "n01644373",
    "n02085620",
    "n02123045",
    "n02504458",
    "n03146219",
    "n03417042",
    "n04254680",
    "n07747607",
]
_SHAPES = ["ellipse", "rectangle", "triangle", "cross", "ring"]

_TITLES = [
    "{name} at the lake",
    "My {name}",
    "IMG_{n:04d}",
    "DSC{n:05d}",
    "{name} &amp;amp; friends",
    "Caf\u00c3\u00a9 {name}",
    "Un {name} dans le jardin",
    "Ein {name} im Schnee",
    "{name}\u3068\u79c1",
    "",
    "\u05e9\u05dc\u05d5\u05dd {name}",
    "{name} \U0001f41f\U0001f3a3",
    "El {name} de mi abuela",
    "{name}",
]
_DESCRIPTIONS = [
    "",
    'Shot at <a href="http://example.com/pier" rel="nofollow">the pier</a><br />\nLovely&nbsp;day &quot;really&quot;',
    'Uploaded with <a href="http://flickr.com/tools">Flickr Uploadr</a>',
    "<b>Bold</b> text &#039;quoted&#039; <script>alert(1)</script>",
    "Le caf\u00c3\u00a9 \u00c3\u00a9tait ferm\u00c3\u00a9.",
    "Unser {name} spielt im Schnee.\u200b\u0000",
    "Copyright all rights reserved",
    "A {name} seen on our trip.\n\nSecond paragraph with   extra   spaces.",
    "&lt;i&gt;escaped markup&lt;/i&gt; and &amp;amp; twice",
]
_TAGS = [
    [],
    ["{tag}"],
    ["{tag}", "nature", "geo:lat=43.2"],
    ["{tag}", "Sea Side", "upload:by=flickrmobile"],
    ["caf\u00c3\u00a9", "paris"],
    ["{tag}", "2008", "canon", "eos"],
    ["\u72ac", "{tag}"],
]


@dataclass(frozen=True)
class SampleSpec:
    per_class: int = 30
    size: tuple[int, int] = (160, 120)
    oddities: bool = True
    seed: int = 0


def _class_names() -> dict[str, str]:
    return dict(class_index())


def _image(rng: np.random.Generator, class_i: int, size: tuple[int, int]) -> Image.Image:
    w, h = size
    hue = np.array(
        [(class_i * 97) % 256, (class_i * 53 + 80) % 256, (class_i * 151 + 30) % 256], dtype=np.float32
    )
    background = np.clip(hue * 0.35 + rng.normal(0, 18, (h, w, 3)), 0, 255).astype(np.uint8)
    im = Image.fromarray(background, "RGB")
    draw = ImageDraw.Draw(im)
    cx, cy = int(rng.integers(w // 4, 3 * w // 4)), int(rng.integers(h // 4, 3 * h // 4))
    r = int(rng.integers(min(w, h) // 6, min(w, h) // 3))
    colour = tuple(int(c) for c in np.clip(hue + 60, 0, 255))
    shape = _SHAPES[class_i % len(_SHAPES)]
    box = (cx - r, cy - r, cx + r, cy + r)
    if shape == "ellipse":
        draw.ellipse(box, fill=colour)
    elif shape == "rectangle":
        draw.rectangle(box, fill=colour)
    elif shape == "triangle":
        draw.polygon([(cx, cy - r), (cx - r, cy + r), (cx + r, cy + r)], fill=colour)
    elif shape == "cross":
        draw.rectangle((cx - r, cy - r // 3, cx + r, cy + r // 3), fill=colour)
        draw.rectangle((cx - r // 3, cy - r, cx + r // 3, cy + r), fill=colour)
    else:
        draw.ellipse(box, outline=colour, width=max(2, r // 3))
    return im


def _encode(im: Image.Image, fmt: str = "JPEG", mode: str | None = None) -> bytes:
    if mode:
        im = im.convert(mode)
    buf = io.BytesIO()
    im.save(buf, fmt, quality=90)
    return buf.getvalue()


def real_records() -> list[dict[str, Any]]:
    """The three real ImageNet-Captions records (see data/SOURCES.md)."""
    text = (
        resources.files("imagenet_captions.data")
        .joinpath("imagenet_captions_sample_records.json")
        .read_text()
    )
    return json.loads(text)


def _fill(template: str, name: str, n: int) -> str:
    return template.format(name=name, n=n, tag=name.split(",")[0].lower())


def write_sample(root: str | Path, spec: SampleSpec = SampleSpec()) -> dict[str, Any]:
    """Write ``root/train/<wnid>/*.JPEG`` and ``root/imagenet_captions.json``; return what to expect.

    The returned dict names the keys that must be written, the keys that must be accounted for under
    a reason, and the record and image counts.
    """
    root = Path(root)
    rng = np.random.default_rng(spec.seed)
    prng = random.Random(spec.seed)
    names = _class_names()
    reals = {Path(r["filename"]).stem: r for r in real_records()}
    real_keys = sorted(reals)
    records: list[dict[str, Any]] = []
    written, accounted = [], {}
    for class_i, wnid in enumerate(SAMPLE_WNIDS):
        folder = root / "train" / wnid
        folder.mkdir(parents=True, exist_ok=True)
        name = names[wnid].replace("_", " ")
        for i in range(spec.per_class):
            key = f"{wnid}_{10000 + i * 7}"
            if wnid == "n03146219" and i < len(real_keys):
                key = real_keys[i]
            im = _image(rng, class_i, spec.size)
            data, kind = _encode(im), "ok"
            if spec.oddities and class_i == 0 and i < 5:
                kind = ["cmyk", "png", "grey", "truncated", "empty"][i]
                data = {
                    "cmyk": _encode(im, "JPEG", "CMYK"),
                    "png": _encode(im, "PNG"),
                    "grey": _encode(im, "JPEG", "L"),
                    "truncated": data[: len(data) // 3],
                    "empty": b"",
                }[kind]
            (folder / f"{key}.JPEG").write_bytes(data)
            if key in reals:
                records.append(dict(reals[key]))
            else:
                records.append(
                    {
                        "filename": f"{key}.JPEG",
                        "title": _fill(prng.choice(_TITLES), name, i),
                        "tags": [_fill(t, name, i) for t in prng.choice(_TAGS)],
                        "description": _fill(prng.choice(_DESCRIPTIONS), name, i),
                        "wnid": wnid,
                    }
                )
            if kind in ("truncated", "empty"):
                accounted[key] = "corrupt_image"
            else:
                written.append(key)
    extra_image = None
    if spec.oddities:
        missing = f"{SAMPLE_WNIDS[0]}_999999"
        records.append(
            {
                "filename": f"{missing}.JPEG",
                "title": "no image for me",
                "tags": [],
                "description": "",
                "wnid": SAMPLE_WNIDS[0],
            }
        )
        accounted[missing] = "no_image"
        records.append(dict(records[7]))  # the same record twice, as the wild release has
        accounted[Path(records[7]["filename"]).stem + " (second copy)"] = "duplicate"
        extra_image = f"{SAMPLE_WNIDS[1]}_77777"
        (root / "train" / SAMPLE_WNIDS[1] / f"{extra_image}.JPEG").write_bytes(
            _encode(_image(rng, 1, spec.size))
        )
    prng.shuffle(records)
    (root / "imagenet_captions.json").write_text(
        json.dumps(records, indent=1, ensure_ascii=False), encoding="utf-8"
    )
    expect = {
        "written": sorted(written),
        "accounted": accounted,
        "records": len(records),
        "images": len(SAMPLE_WNIDS) * spec.per_class + (1 if extra_image else 0),
        "image_without_record": extra_image,
    }
    (root / "expect.json").write_text(json.dumps(expect, indent=1), encoding="utf-8")
    return expect


def write_ilsvrc_tar(train_dir: str | Path, tar_path: str | Path) -> None:
    """Pack a train folder as ILSVRC2012_img_train.tar is packed: a tar of one tar per class."""
    train_dir = Path(train_dir)
    with tarfile.open(tar_path, "w") as outer:
        for class_dir in sorted(p for p in train_dir.iterdir() if p.is_dir()):
            buf = io.BytesIO()
            with tarfile.open(fileobj=buf, mode="w") as inner:
                for f in sorted(class_dir.iterdir()):
                    inner.add(f, arcname=f.name)
            info = tarfile.TarInfo(f"{class_dir.name}.tar")
            info.size = buf.tell()
            buf.seek(0)
            outer.addfile(info, buf)


def sample_paths(root: str | Path) -> tuple[str, str]:
    root = Path(root)
    return os.fspath(root / "imagenet_captions.json"), os.fspath(root / "train")
