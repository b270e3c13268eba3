"""Each shard file's sha256 is computed as it is written and recorded beside its size, so ``validate``
and the release can tell a changed byte without trusting the file's size."""

from __future__ import annotations

import hashlib
import io
import json
from pathlib import Path

from PIL import Image
from shardsamples import record

from imagenet_captions.build import BuildConfig, run_build
from imagenet_captions.records import Sample
from imagenet_captions.shards.writer import ShardResult, write_shard


def _ref(tmp_path: Path, key: str, colour: tuple[int, int, int]) -> dict:
    path = tmp_path / f"{key}.JPEG"
    buf = io.BytesIO()
    Image.new("RGB", (40, 30), colour).save(buf, "JPEG")
    path.write_bytes(buf.getvalue())
    return {"key": key, "wnid": key[:9], "path": str(path), "offset": None, "size": None}


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_a_shard_records_the_sha256_of_each_of_its_files(tmp_path: Path) -> None:
    samples = [
        Sample(record(f"n01440764_{i}"), _ref(tmp_path, f"n01440764_{i}", (i * 20, 90, 10))) for i in range(12)
    ]
    out = tmp_path / "out"
    result = write_shard(2, samples, str(out))
    assert result.sha256 == {name: _sha256(out / name) for name in ("00002.tar", "00002.parquet")}
    assert result.sizes == {name: (out / name).stat().st_size for name in result.sha256}
    assert result.to_json()["sha256"] == result.sha256
    assert ShardResult.from_json(json.loads(json.dumps(result.to_json()))) == result


def test_a_text_only_shard_records_its_parquet_files_sha256(tmp_path: Path) -> None:
    result = write_shard(0, [Sample(record("n01440764_1"))], str(tmp_path))
    assert result.sha256 == {"00000.parquet": _sha256(tmp_path / "00000.parquet")}


def test_an_entry_of_an_older_build_has_no_digests() -> None:
    old = {"index": 1, "written": 0, "dropped": [], "digest": "d", "files": ["00001.parquet"], "sizes": {}}
    assert ShardResult.from_json(old).sha256 == {}


def test_the_manifest_lists_each_files_sha256_next_to_its_size(sample_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    run_build(
        BuildConfig(
            metadata=f"release:{sample_dir / 'imagenet_captions.json'}",
            imagenet=str(sample_dir / "train"),
            out=str(out),
            num_shards=3,
        )
    )
    manifest = json.loads((out / "shards" / "manifest.json").read_text())
    for stem, entry in manifest["shards"].items():
        names = [f"{stem}.tar", f"{stem}.parquet"]
        assert entry["files"] == names
        assert entry["sha256"] == {n: _sha256(out / "shards" / n) for n in names}
        assert entry["sizes"] == {n: (out / "shards" / n).stat().st_size for n in names}
