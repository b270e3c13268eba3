"""A build's outputs are complete and its own: every planned shard exists, one build per folder, and a
build killed halfway is finished by its rerun, byte-identical to an undisturbed one."""

from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
import signal
import subprocess
import sys
import tarfile
import time
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from PIL import Image

from imagenet_captions.build import BuildConfig, run_build
from imagenet_captions.classes import wnids
from imagenet_captions.cli import main
from imagenet_captions.images import ImageOptions
from imagenet_captions.sample import write_ilsvrc_tar
from imagenet_captions.shards.validate import validate_build


def _jpeg(i: int, size: tuple[int, int] = (64, 48)) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", size, (i * 37 % 256, i * 11 % 256, 90)).save(buf, "JPEG")
    return buf.getvalue()


def _tree(root: Path, classes: int, per_class: int, size: tuple[int, int] = (64, 48)) -> Path:
    """``root/train/<wnid>/<wnid>_<n>.JPEG`` and a release JSON with a record per image."""
    records = []
    for c, wnid in enumerate(wnids()[:classes]):
        folder = root / "train" / wnid
        folder.mkdir(parents=True)
        for n in range(per_class):
            (folder / f"{wnid}_{n}.JPEG").write_bytes(_jpeg(c * per_class + n, size))
            records.append(
                {"filename": f"{wnid}_{n}.JPEG", "title": f"photo {n}", "tags": [], "description": "", "wnid": wnid}
            )
    (root / "imagenet_captions.json").write_text(json.dumps(records))
    return root


def _digests(shard_dir: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(shard_dir.iterdir()) if p.is_file()}


@pytest.mark.parametrize("layout", ["folder", "tar"])
def test_every_planned_shard_exists_even_when_it_receives_no_image(tmp_path, layout):
    """The reproduction of the bug: 4 classes x 6 images, two class folders removed, 40 shards."""
    root = _tree(tmp_path / "in", classes=4, per_class=6)
    for wnid in wnids()[:2]:
        shutil.rmtree(root / "train" / wnid)
    source = root / "train"
    if layout == "tar":
        source = root / "ILSVRC2012_img_train.tar"
        write_ilsvrc_tar(root / "train", source)
    out = tmp_path / "out"
    rep = run_build(
        BuildConfig(metadata=f"release:{root / 'imagenet_captions.json'}", imagenet=str(source), out=str(out), num_shards=40)
    )
    shard_dir = out / "shards"
    assert sorted(p.name for p in shard_dir.glob("*.tar")) == [f"{i:05d}.tar" for i in range(40)]
    assert sorted(p.name for p in shard_dir.glob("*.parquet")) == [f"{i:05d}.parquet" for i in range(40)]
    sizes = json.loads((shard_dir / "sizes.json").read_text())
    assert list(sizes) == [f"{i:05d}.tar" for i in range(40)] and sum(sizes.values()) == 12 == rep["written"]
    assert rep["records"]["outcomes"] == {"written": 12, "no_image": 12} and rep["accounting_problems"] == []
    summary, problems = validate_build(str(out))
    assert problems == [] and summary["shards"] == 40


def test_text_only_build_has_every_planned_parquet_file(tmp_path):
    root = _tree(tmp_path / "in", classes=1, per_class=3)
    rep = run_build(BuildConfig(metadata=f"release:{root / 'imagenet_captions.json'}", out=str(tmp_path / "o"), num_shards=7))
    names = sorted(p.name for p in (tmp_path / "o" / "captions").glob("*.parquet"))
    assert names == [f"{i:05d}.parquet" for i in range(7)] and rep["written"] == 3
    assert validate_build(str(tmp_path / "o"))[1] == []


def test_a_second_build_into_the_same_folder_is_refused_naming_the_holder(tmp_path, capsys):
    root = _tree(tmp_path / "in", classes=1, per_class=2)
    out = tmp_path / "out"
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys, time\nfrom imagenet_captions.locks import folder_lock\n"
            "with folder_lock(sys.argv[1], 'build'):\n    print('held', flush=True); time.sleep(60)",
            str(out),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "held"
        code = main(["build", "--metadata", f"release:{root / 'imagenet_captions.json'}", "--out", str(out)])
        err = capsys.readouterr().err.strip().splitlines()
        assert code == 2 and len(err) == 1 and "Traceback" not in err[0]
        assert "another build is writing to" in err[0] and f"pid {holder.pid}" in err[0]
    finally:
        holder.kill()
        holder.wait()
    assert main(["build", "--metadata", f"release:{root / 'imagenet_captions.json'}", "--out", str(out)]) == 0


@pytest.mark.slow
def test_a_build_killed_while_writing_shards_is_finished_by_its_rerun(tmp_path):
    root = _tree(tmp_path / "in", classes=16, per_class=50, size=(320, 240))
    args = [
        "--metadata", f"release:{root / 'imagenet_captions.json'}", "--imagenet", str(root / "train"),
        "--num-shards", "32", "--verify", "full", "--resize", "200",
    ]  # fmt: skip
    undisturbed = tmp_path / "undisturbed"
    assert main(["build", *args, "--out", str(undisturbed)]) == 0
    out = tmp_path / "out"
    proc = subprocess.Popen(
        [sys.executable, "-m", "imagenet_captions.cli", "build", *args, "--out", str(out)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    commits = out / "shards" / ".commits"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and proc.poll() is None:
        if commits.is_dir() and len(os.listdir(commits)) >= 4:
            break
        time.sleep(0.01)
    assert proc.poll() is None, "the build finished before it could be killed: make it bigger"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    committed = len(os.listdir(commits))
    assert not (out / "report.json").exists() and 4 <= committed < 32
    # What is on disk under a shard's final name is always whole; the rest is under temporary names.
    for tar in (out / "shards").glob("*.tar"):
        with tarfile.open(tar) as tf:
            assert all(len(tf.extractfile(m).read()) == m.size for m in tf.getmembers())
    for parquet in (out / "shards").glob("*.parquet"):
        pq.read_table(parquet)
    rep = run_build(
        BuildConfig(
            metadata=f"release:{root / 'imagenet_captions.json'}",
            imagenet=str(root / "train"),
            out=str(out),
            num_shards=32,
            image=ImageOptions(resize=200, verify="full"),
        )
    )
    assert rep["shards"]["kept"] >= committed and rep["shards"]["written_now"] == 32 - rep["shards"]["kept"]
    assert not list((out / "shards").rglob("*.tmp")) and not commits.exists()
    assert _digests(out / "shards") == _digests(undisturbed / "shards")
    assert validate_build(str(out))[1] == []


def test_a_shard_file_cut_short_is_written_again(tmp_path):
    """Shard files are not fsync'd; a power cut can leave one short of its recorded size: the rerun
    sees the size differ and writes that shard again, and only that one."""
    root = _tree(tmp_path / "in", classes=2, per_class=6)
    cfg = BuildConfig(
        metadata=f"release:{root / 'imagenet_captions.json'}", imagenet=str(root / "train"), out=str(tmp_path / "o"), num_shards=4
    )
    run_build(cfg)
    before = _digests(tmp_path / "o" / "shards")
    tar = next(p for p in sorted((tmp_path / "o" / "shards").glob("*.tar")) if p.stat().st_size > 10240)
    with open(tar, "r+b") as f:
        f.truncate(tar.stat().st_size - 512)
    rep = run_build(cfg)
    assert rep["shards"]["written_now"] == 1 and rep["shards"]["kept"] == 3
    assert _digests(tmp_path / "o" / "shards") == before
