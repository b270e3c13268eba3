"""The join happens in each shard's writer: every combination of record, image and drop gets its outcome."""

from __future__ import annotations

import io
import json
import tarfile

from PIL import Image

from imagenet_captions.build import IMAGES, RECORDS, BuildConfig, join_shard, run_build


def _jpeg(colour: tuple[int, int, int] = (10, 120, 200)) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (40, 30), colour).save(buf, "JPEG")
    return buf.getvalue()


def _add(tf: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    tf.addfile(info, io.BytesIO(data))


def test_join_shard_names_every_case():
    rec = {"key": "k1", "title": "a"}
    items = [
        ("r", "k1", rec),
        ("i", "k1", {"path": "/b/k1.JPEG"}),
        ("i", "k1", {"path": "/a/k1.JPEG"}),  # two images for one key: the first path wins
        ("r", "k2", {"key": "k2", "title": "z"}),
        ("r", "k2", {"key": "k2", "title": "b"}),  # two records: chosen by content, not arrival
        ("i", "k2", {"path": "/a/k2.JPEG"}),
        ("r", "k3", {"key": "k3", "title": "no image"}),
        ("i", "k4", {"path": "/a/k4.JPEG"}),  # image, no record
        ("i", "k5", {"path": "/a/k5.JPEG"}),
        ("d", "k5", None),  # its record was dropped upstream
    ]
    samples, outcomes = join_shard(items, with_images=True)
    assert sorted((s.key, s.record["title"], s.image["path"]) for s in samples) == [
        ("k1", "a", "/a/k1.JPEG"),
        ("k2", "b", "/a/k2.JPEG"),
    ]
    assert sorted(outcomes) == sorted(
        [
            (IMAGES, "duplicate_image", "k1", "/b/k1.JPEG"),
            (RECORDS, "duplicate", "k2", ""),
            (RECORDS, "no_image", "k3", ""),
            (IMAGES, "no_record", "k4", ""),
            (IMAGES, "record_dropped", "k5", ""),
        ]
    )
    # Text-only: every record is a sample, duplicates still settled.
    samples, outcomes = join_shard([i for i in items if i[0] == "r"], with_images=False)
    assert sorted(s.key for s in samples) == ["k1", "k2", "k3"] and all(s.image is None for s in samples)
    assert outcomes == [(RECORDS, "duplicate", "k2", "")]


def test_images_stored_directly_in_the_outer_tar_are_listed_and_counted(tmp_path):
    """Entries at the top of ILSVRC2012_img_train.tar (an image, an unsafe path) go through the
    same listing step as the class tars: the image is written, the rest named, all counted."""
    inner = io.BytesIO()
    with tarfile.open(fileobj=inner, mode="w") as tf:
        _add(tf, "n01440764_1.JPEG", _jpeg())
    outer = tmp_path / "train.tar"
    with tarfile.open(outer, "w") as tf:
        _add(tf, "n01440764.tar", inner.getvalue())
        _add(tf, "n01440764_2.JPEG", _jpeg((200, 0, 0)))  # an image directly in the outer tar
        _add(tf, "../escape.JPEG", b"x")
    records = [
        {
            "filename": f"n01440764_{i}.JPEG",
            "title": f"t{i}",
            "tags": [],
            "description": "",
            "wnid": "n01440764",
        }
        for i in (1, 2, 3)
    ]
    meta = tmp_path / "r.json"
    meta.write_text(json.dumps(records))
    rep = run_build(BuildConfig(metadata=f"release:{meta}", imagenet=str(outer), out=str(tmp_path / "o")))
    assert rep["accounting_problems"] == []
    assert rep["images"]["input"] == 3
    assert rep["images"]["outcomes"] == {"matched": 2, "unsafe_path": 1}
    assert rep["records"]["outcomes"] == {"written": 2, "no_image": 1}
    assert not (tmp_path / "escape.JPEG").exists()
