"""A rebuild into the same ``--out`` trusts what the last build recorded only when it is whole: a
damaged manifest is one line naming it (exit 2); a damaged commit record is a shard to write again;
an older build's entries, without file digests, are shards to write again."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from imagenet_captions.build import BuildConfig, run_build
from imagenet_captions.cli import main
from imagenet_captions.shards.validate import validate_build

NUM_SHARDS = 4


def _args(sample_dir: Path, out: Path) -> list[str]:
    return [
        "build",
        "--metadata", f"release:{sample_dir / 'imagenet_captions.json'}",
        "--imagenet", str(sample_dir / "train"),
        "--num-shards", str(NUM_SHARDS),
        "--out", str(out),
    ]  # fmt: skip


def _config(sample_dir: Path, out: Path) -> BuildConfig:
    return BuildConfig(
        metadata=f"release:{sample_dir / 'imagenet_captions.json'}",
        imagenet=str(sample_dir / "train"),
        out=str(out),
        num_shards=NUM_SHARDS,
    )


def _digests(shard_dir: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(shard_dir.glob("0*"))}


@pytest.fixture
def built(sample_dir: Path, tmp_path: Path) -> Path:
    out = tmp_path / "out"
    run_build(_config(sample_dir, out))
    return out


@pytest.mark.parametrize(
    "damage",
    [
        b'{"num_shards": 4, "shards": {"00000": {"ind',
        b"",
        b"[1, 2]",
        b'{"num_shards": 4}',
        b'{"num_shards": 4, "shards": {"00000": 7}}',
    ],
    ids=["cut-short", "empty", "a-list", "no-shards", "a-bad-entry"],
)
def test_a_damaged_manifest_is_one_line_naming_it(
    built: Path, sample_dir: Path, capsys, damage: bytes
) -> None:
    manifest = built / "shards" / "manifest.json"
    manifest.write_bytes(damage)
    capsys.readouterr()
    assert main(_args(sample_dir, built)) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "Traceback" not in err[0], err
    assert str(manifest) in err[0] and "not a build manifest" in err[0]


def test_a_damaged_commit_record_is_a_shard_to_write_again(built: Path, sample_dir: Path) -> None:
    """A record cut short (a crash while writing it): neither it nor the manifest's older entry for
    that shard is trusted, so that shard, and only it, is written again."""
    before = _digests(built / "shards")
    commits = built / "shards" / ".commits"
    commits.mkdir()
    (commits / "00002.json").write_bytes(b'{"index": 2, "written": 1')
    (commits / "00003.json").write_bytes(b'["not", "a", "record"]')
    rep = run_build(_config(sample_dir, built))
    assert (rep["shards"]["written_now"], rep["shards"]["kept"]) == (2, NUM_SHARDS - 2)
    assert not commits.exists() and _digests(built / "shards") == before
    assert validate_build(str(built))[1] == []


def test_the_shards_of_an_older_build_without_digests_are_written_again(
    built: Path, sample_dir: Path
) -> None:
    """Its files were only ever checked by size: they are written again, not hashed and trusted."""
    before = _digests(built / "shards")
    path = built / "shards" / "manifest.json"
    manifest = json.loads(path.read_text())
    for entry in manifest["shards"].values():
        del entry["sha256"]
    path.write_text(json.dumps(manifest))
    rep = run_build(_config(sample_dir, built))
    assert (rep["shards"]["written_now"], rep["shards"]["kept"]) == (NUM_SHARDS, 0)
    manifest = json.loads(path.read_text())
    assert all(set(e["sha256"]) == set(e["files"]) for e in manifest["shards"].values())
    assert _digests(built / "shards") == before
    rep = run_build(_config(sample_dir, built))
    assert (rep["shards"]["written_now"], rep["shards"]["kept"]) == (0, NUM_SHARDS)
