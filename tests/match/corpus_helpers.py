"""Generated corpora for the ``match`` pipeline's tests: Parquet with odd captions, JSON Lines, and
WebDataset tars in img2dataset's layout (with broken members on request); images made with Pillow."""

from __future__ import annotations

import io
import json
import tarfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
from PIL import Image

REAL_SAMPLE = Path(__file__).resolve().parent / "data" / "laion_captions_sample_1000.parquet"

#: Captions that name one ILSVRC-2012 class each under the default rule (WordNet, insensitive,
#: longest, drop), with the wnid they name.
ONE_CLASS = [
    ("A tabby cat asleep on a sofa", "n02123045"),  # tabby
    ("the <b>Golden Retriever</b> &amp; the ball", "n02099601"),  # html, entity
    ("sunset over a volcano 🌋🔥", "n09472597"),  # emoji
    ("مرحبا goldfish في الحوض", "n01443537"),  # RTL text around the term
    ("an old steam locomotive at the station", "n04310018"),
    ("Jack-o'-lantern on the porch", "n03590841"),  # punctuation inside the term
]
#: Captions that name no class, several, or have no usable text.
NO_CLASS = ["a quiet afternoon", "x" * 20_000, "   ", ""]
SEVERAL = "a goldfish and a tabby"


def jpeg(colour: tuple[int, int, int] = (200, 30, 40), size: tuple[int, int] = (32, 24)) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", size, colour).save(buf, "JPEG", quality=90)
    return buf.getvalue()


def odd_captions() -> list[str | None]:
    """One of each: classes named, HTML, emoji, RTL, a 20,000-character caption, blank, null."""
    return [c for c, _ in ONE_CLASS] + NO_CLASS + [SEVERAL, None]


def write_parquet(path: Path, columns: dict[str, Sequence[Any]], row_group_size: int | None = None) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.table(columns), path, row_group_size=row_group_size)
    return path


def write_jsonl(path: Path, lines: Sequence[str | bytes | dict]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    out = bytearray()
    for line in lines:
        if isinstance(line, dict):
            out += json.dumps(line, ensure_ascii=False).encode() + b"\n"
        elif isinstance(line, str):
            out += line.encode() + b"\n"
        else:
            out += line
    path.write_bytes(bytes(out))
    return path


def write_webdataset(path: Path, samples: Sequence[dict[str, Any]], end: bool = True) -> Path:
    """A tar in img2dataset's layout. Each sample: ``key`` and any of ``jpg``/``png`` (bytes),
    ``txt`` (str or bytes), ``json`` (dict, or bytes as they are); members in that order."""
    path.parent.mkdir(parents=True, exist_ok=True)
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.USTAR_FORMAT) as tf:
        for s in samples:
            for ext in ("jpg", "png", "webp", "txt", "json"):
                if ext not in s:
                    continue
                data = s[ext]
                if isinstance(data, dict):
                    data = json.dumps(data).encode()
                elif isinstance(data, str):
                    data = data.encode()
                info = tarfile.TarInfo(f"{s['key']}.{ext}")
                info.size = len(data)
                tf.addfile(info, io.BytesIO(data))
    data = buf.getvalue()
    if not end:  # cut inside the last member's data
        data = data[: len(data) - 10240 - 300]
    path.write_bytes(data)
    return path


def img2dataset_samples(captions: Sequence[str], start: int = 0, shard: int = 0) -> list[dict[str, Any]]:
    """Samples as img2dataset writes them: key ``SSSSSIIII``, jpg, txt and json (url, caption, key)."""
    out = []
    for i, caption in enumerate(captions):
        key = f"{shard:05d}{start + i:04d}"
        out.append(
            {
                "key": key,
                "jpg": jpeg(((37 * i) % 256, (91 * i) % 256, 128)),
                "txt": caption,
                "json": {
                    "url": f"https://img.example/{key}.jpg",
                    "caption": caption,
                    "key": key,
                    "status": "success",
                },
            }
        )
    return out
