"""``validate`` checks every shard file's size and sha256 against the manifest, the end of every tar,
and with ``--decode`` every image: damage that leaves the sizes and the JPEG markers intact is found."""

from __future__ import annotations

import io
import json
import shutil
import tarfile
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from PIL import Image

from imagenet_captions.build import BuildConfig, run_build
from imagenet_captions.cli import main
from imagenet_captions.shards.validate import validate_build

#: Columns validate compares between a tar and its Parquet file: a change elsewhere only the digest sees.
COMPARED = {"key", "label", "caption", "jpg_bytes"}


@pytest.fixture(scope="module")
def built(sample_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("validate_digests")
    run_build(
        BuildConfig(
            metadata=f"release:{sample_dir / 'imagenet_captions.json'}",
            imagenet=str(sample_dir / "train"),
            out=str(out),
            num_shards=4,
        )
    )
    return out


@pytest.fixture
def copy(built: Path, tmp_path: Path) -> Path:
    dst = tmp_path / "b"
    shutil.copytree(built, dst)
    return dst


def _members(tar: Path) -> list[tuple[tarfile.TarInfo, int]]:
    """(member, offset of its data) in tar order."""
    with tarfile.open(tar) as tf:
        return [(m, m.offset_data) for m in tf.getmembers()]


def test_a_fresh_build_validates(built: Path) -> None:
    assert validate_build(str(built), decode=True)[1] == []


def test_a_flipped_byte_inside_a_jpeg_is_found(copy: Path) -> None:
    """The byte is in the entropy-coded data: the markers, the size and the member list stay as they were."""
    tar = copy / "shards" / "00001.tar"
    member, offset = next((m, o) for m, o in _members(tar) if m.name.endswith(".jpg") and m.size > 400)
    data = bytearray(tar.read_bytes())
    data[offset + member.size // 2] ^= 0x10
    tar.write_bytes(bytes(data))
    _, problems = validate_build(str(copy))
    assert problems == [
        "00001.tar: sha256 differs from manifest.json's: the file changed after it was written"
    ]
    assert main(["validate", str(copy)]) == 1


def test_a_flipped_byte_in_a_parquet_cell_is_found(copy: Path) -> None:
    """A byte whose flip leaves the file readable, with a cell of a column validate does not compare."""
    path = copy / "shards" / "00002.parquet"
    data = path.read_bytes()
    original = pq.read_table(io.BytesIO(data))
    for i in range(len(data)):
        flipped = bytearray(data)
        flipped[i] ^= 0x01
        try:
            table = pq.read_table(io.BytesIO(bytes(flipped)))
        except Exception:  # noqa: BLE001 - this byte breaks the file: try the next one
            continue
        changed = {c for c in table.column_names if not table.column(c).equals(original.column(c))}
        if changed and not changed & COMPARED:
            break
    else:
        pytest.fail("no byte of the Parquet file changes one cell alone")
    path.write_bytes(bytes(flipped))
    _, problems = validate_build(str(copy))
    assert problems == [
        "00002.parquet: sha256 differs from manifest.json's: the file changed after it was written"
    ]


def test_a_tar_without_its_end_blocks_is_found(copy: Path) -> None:
    """Cut right after the last member: every member reads whole, tarfile stops quietly at the end."""
    tar = copy / "shards" / "00000.tar"
    last, offset = _members(tar)[-1]
    end = offset + -(-last.size // tarfile.BLOCKSIZE) * tarfile.BLOCKSIZE
    tar.write_bytes(tar.read_bytes()[:end])
    _, problems = validate_build(str(copy))
    assert (
        "00000.tar: no end-of-archive blocks (two zero blocks of 512 bytes): the tar was cut short"
        in problems
    )


def test_a_tar_without_its_end_blocks_is_found_even_when_the_manifest_agrees(copy: Path) -> None:
    """A tar from elsewhere, recorded as it is: the end check does not lean on the manifest."""
    tar = copy / "shards" / "00000.tar"
    last, offset = _members(tar)[-1]
    tar.write_bytes(tar.read_bytes()[: offset + -(-last.size // tarfile.BLOCKSIZE) * tarfile.BLOCKSIZE])
    manifest_path = copy / "shards" / "manifest.json"
    manifest = json.loads(manifest_path.read_text())
    entry = manifest["shards"]["00000"]
    entry["sizes"].pop("00000.tar")
    entry["sha256"].pop("00000.tar")
    manifest_path.write_text(json.dumps(manifest))
    _, problems = validate_build(str(copy))
    assert problems == [
        "00000.tar: no end-of-archive blocks (two zero blocks of 512 bytes): the tar was cut short"
    ]


def test_a_file_of_another_size_is_named(copy: Path) -> None:
    """Zeros added after a tar's end: still a readable tar, but not the file the build wrote."""
    path = copy / "shards" / "00003.tar"
    path.write_bytes(path.read_bytes() + bytes(tarfile.RECORDSIZE))
    _, problems = validate_build(str(copy))
    size = path.stat().st_size
    assert problems == [f"00003.tar: {size} bytes, manifest.json says {size - tarfile.RECORDSIZE}"]


def test_decode_names_the_member_that_does_not_decode(copy: Path) -> None:
    """A JPEG with both markers whose frame header is damaged: the header check passes, a decode fails."""
    tar = copy / "shards" / "00001.tar"
    with tarfile.open(tar) as tf:
        members = [(m, tf.extractfile(m).read()) for m in tf.getmembers()]
    name, jpg = next((m.name, d) for m, d in members if m.name.endswith(".jpg"))
    buf = io.BytesIO()
    Image.new("RGB", (40, 30), (1, 2, 3)).save(buf, "JPEG")
    good = buf.getvalue()
    sos = good.index(b"\xff\xda")
    broken = good[: sos + 12] + b"\xff\xd9"  # the scan cut to a few bytes, the end marker kept
    assert broken.startswith(b"\xff\xd8") and broken.endswith(b"\xff\xd9")
    with tarfile.open(tar, "w") as tf:
        for m, d in members:
            d = broken if m.name == name else d
            m.size = len(d)
            tf.addfile(m, io.BytesIO(d))
    _, without = validate_build(str(copy))
    assert not any("does not decode" in p for p in without)
    _, problems = validate_build(str(copy), decode=True)
    assert any(p.startswith(f"00001.tar: {name} does not decode: ") for p in problems), problems
