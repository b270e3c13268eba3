"""Pass-through images reach the tar byte for byte: loose files, tar members, odd endings, long headers."""

import io
import tarfile

import numpy as np
import pytest
from PIL import Image
from shardsamples import record

from imagenet_captions.records import Sample
from imagenet_captions.shards.writer import write_shard


def _jpeg(**save):
    rng = np.random.default_rng(0)
    buf = io.BytesIO()
    Image.fromarray(rng.integers(0, 255, (60, 80, 3), dtype=np.uint8), "RGB").save(buf, "JPEG", **save)
    return buf.getvalue()


CASES = {
    "plain": _jpeg(),
    "zero-padded": _jpeg() + b"\0" * 100,  # the end marker is followed by zeros: still kept
    "long-header": _jpeg(icc_profile=b"\1" * 60_000),  # a header far longer than usual
}


def _members(path):
    with tarfile.open(path) as tf:
        return {m.name: tf.extractfile(m).read() for m in tf.getmembers()}


@pytest.mark.parametrize("name", sorted(CASES))
def test_loose_files_are_stored_as_they_are(tmp_path, name):
    key = "n01440764_1"
    path = tmp_path / f"{key}.JPEG"
    path.write_bytes(CASES[name])
    ref = {"key": key, "wnid": "n01440764", "path": str(path), "offset": None, "size": len(CASES[name])}
    result = write_shard(0, [Sample(record(key), ref)], str(tmp_path / "out"))
    assert result.written == 1 and not result.dropped
    assert _members(tmp_path / "out" / "00000.tar")[f"{key}.jpg"] == CASES[name]


def test_tar_members_are_copied_from_their_offsets(tmp_path):
    """Images inside a tar (ILSVRC2012_img_train.tar's layout) are copied from their offsets."""
    source = tmp_path / "n01440764.tar"
    with tarfile.open(source, "w") as tf:
        for i, data in enumerate(CASES.values()):
            info = tarfile.TarInfo(f"n01440764_{i}.JPEG")
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
    with tarfile.open(source) as tf:
        refs = [
            {
                "key": m.name[:-5],
                "wnid": "n01440764",
                "path": str(source),
                "offset": m.offset_data,
                "size": m.size,
            }
            for m in tf.getmembers()
        ]
    result = write_shard(0, [Sample(record(r["key"]), r) for r in refs], str(tmp_path / "out"))
    assert result.written == 3
    stored = _members(tmp_path / "out" / "00000.tar")
    for i, data in enumerate(CASES.values()):
        assert stored[f"n01440764_{i}.jpg"] == data


def test_a_truncated_file_is_corrupt(tmp_path):
    data = CASES["plain"]
    path = tmp_path / "n01440764_1.JPEG"
    path.write_bytes(data[: len(data) - 50])
    ref = {"key": "n01440764_1", "wnid": "n01440764", "path": str(path), "offset": None, "size": None}
    result = write_shard(0, [Sample(record("n01440764_1"), ref)], str(tmp_path / "out"))
    assert result.written == 0 and [d[1] for d in result.dropped] == ["corrupt_image"]
