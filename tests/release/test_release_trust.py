"""``release`` at its edges: files changed after the build, the publisher's paths, broken build files.

A release is a proof (sizes and sha256 of every file) that a user trusts without the publisher's
disk; these tests break a build's files after it finished and check that ``release`` refuses in one
line naming the file, that nothing of the publisher's local paths reaches the published files, and
that a refused release leaves no ``--out`` behind.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest

from imagenet_captions.cli import main


def _copy(build: Path, tmp_path: Path) -> Path:
    copy = tmp_path / "build"
    shutil.copytree(build, copy)
    return copy


def _manifest_path(build: Path) -> Path:
    return next(p for p in (build / "shards" / "manifest.json", build / "captions" / "manifest.json") if p.exists())


def _rewrite_manifest(build: Path, change: Callable[[dict], object]) -> None:
    path = _manifest_path(build)
    m = json.loads(path.read_text())
    change(m)
    path.write_text(json.dumps(m))


def _with_digests(build: Path) -> None:
    """Give every shard entry the per-file sha256 a current build records (whatever wrote this one)."""

    def add(m: dict) -> None:
        for entry in m["shards"].values():
            entry["sha256"] = {
                n: hashlib.sha256((_manifest_path(build).parent / n).read_bytes()).hexdigest() for n in entry["files"]
            }

    _rewrite_manifest(build, add)


def _refused(argv: list[str], capsys: pytest.CaptureFixture[str]) -> str:
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, err  # one line, no traceback
    return err


@pytest.mark.parametrize("with_images", [False, True], ids=["tars-hashed", "tars-published"])
def test_a_tar_truncated_after_the_build_is_refused(image_build, tmp_path, capsys, with_images):
    build = _copy(image_build, tmp_path)
    _with_digests(build)
    tar = build / "shards" / "00001.tar"
    tar.write_bytes(tar.read_bytes()[:-1024])
    out = tmp_path / "rel"
    err = _refused(["release", str(build), "--out", str(out), *(["--with-images"] if with_images else [])], capsys)
    assert "00001.tar" in err and "manifest" in err
    assert not out.exists()  # nothing is left of a release that was refused


@pytest.mark.parametrize("name", ["00000.parquet", "00001.tar"])
def test_a_file_changed_in_place_after_the_build_is_refused(image_build, tmp_path, capsys, name):
    """Same size, other bytes: only the digest can tell, and the release must check it."""
    build = _copy(image_build, tmp_path)
    _with_digests(build)
    path = build / "shards" / name
    data = bytearray(path.read_bytes())
    middle = len(data) // 2
    data[middle] ^= 0xFF  # inside a data page or a member: the Parquet footer and tar headers still read
    path.write_bytes(bytes(data))
    out = tmp_path / "rel"
    err = _refused(["release", str(build), "--out", str(out), "--with-images"], capsys)
    assert name in err and "sha256" in err
    assert not out.exists()


def test_a_build_without_per_file_digests_is_refused_with_the_way_out(image_build, tmp_path, capsys):
    build = _copy(image_build, tmp_path)
    _rewrite_manifest(build, lambda m: [e.pop("sha256", None) for e in m["shards"].values()])
    err = _refused(["release", str(build), "--out", str(tmp_path / "rel")], capsys)
    assert "sha256" in err and "build it again" in err


def test_a_build_without_file_sizes_is_refused(text_build, tmp_path, capsys):
    build = _copy(text_build, tmp_path)
    _with_digests(build)
    _rewrite_manifest(build, lambda m: [e.pop("sizes", None) for e in m["shards"].values()])
    err = _refused(["release", str(build), "--out", str(tmp_path / "rel")], capsys)
    assert "size" in err and "build it again" in err


def test_an_existing_release_folder_is_not_left_half_overwritten_by_a_refusal(image_build, tmp_path, capsys):
    """A refusal found while copying removes what this run wrote into a folder it created or found empty."""
    build = _copy(image_build, tmp_path)
    _with_digests(build)
    (build / "shards" / "00001.tar").write_bytes(b"\0" * (build / "shards" / "00001.tar").stat().st_size)
    empty = tmp_path / "empty"
    empty.mkdir()
    _refused(["release", str(build), "--out", str(empty), "--with-images"], capsys)
    assert empty.is_dir() and list(empty.iterdir()) == []  # the user's folder stays, empty as it was


def test_no_local_path_reaches_the_published_files(sample_dir, tmp_path):
    """The publisher's paths (the metadata file's, a blocklist's, a class list's) say nothing to a user
    and tell the world how the publisher's disk is laid out: only names go into the release."""
    from imagenet_captions.build import BuildConfig, run_build
    from imagenet_captions.release.publish import ReleaseOptions, make_release
    from imagenet_captions.text import TextOptions

    private = tmp_path / "home" / "publisher"
    private.mkdir(parents=True)
    metadata = private / "imagenet_captions.json"
    shutil.copy(sample_dir / "imagenet_captions.json", metadata)
    (private / "blocklist.txt").write_text("zzzz-never-in-a-caption\n")
    classes = private / "classes.txt"
    classes.write_text("\n".join(sorted(p.name for p in (sample_dir / "train").iterdir())) + "\n")

    build = tmp_path / "build"
    run_build(
        BuildConfig(
            metadata=f"release:{metadata}",
            imagenet=str(sample_dir / "train"),
            out=str(build),
            text=TextOptions(blocklist=("zzzz-never-in-a-caption",), blocklist_source=str(private / "blocklist.txt")),
            classes=str(classes),
        )
    )
    assert str(private) in (build / "shards" / "manifest.json").read_text() + (build / "report.json").read_text()
    release = tmp_path / "release"
    m = make_release(ReleaseOptions(build=str(build), out=str(release)))
    for path in release.rglob("*"):
        if path.is_file():
            data = path.read_bytes()
            for secret in (str(tmp_path), str(sample_dir), "/home/publisher"):
                assert secret.encode() not in data, f"{path.name} carries {secret}"
    assert m["build"]["metadata"] == "release:imagenet_captions.json"
    assert m["build"]["options"]["text"]["blocklist_source"] == "blocklist.txt"
    assert m["build"]["options"]["classes"]["source"] == "classes.txt"


@pytest.mark.parametrize(
    ("breakage", "message"),
    [
        (lambda b: _manifest_path(b).write_text("[1, 2]"), "manifest.json is not a JSON object"),
        (lambda b: _manifest_path(b).write_text('{"shards": '), "manifest.json is not JSON"),
        (lambda b: _manifest_path(b).write_bytes(b"\xff\xfe{}"), "manifest.json is not JSON"),
        (lambda b: (b / "report.json").write_text('"done"'), "report.json is not a JSON object"),
        (lambda b: _rewrite_manifest(b, lambda m: m.update(shards=[1])), "lists no shards"),
        (
            lambda b: _rewrite_manifest(b, lambda m: m["shards"].update({"00000": []})),
            "shard 00000 is not an object",
        ),
        (
            lambda b: _rewrite_manifest(b, lambda m: m["shards"]["00000"].update(written="many")),
            "shard 00000: 'written' is not a count",
        ),
        (
            lambda b: _rewrite_manifest(b, lambda m: m["shards"]["00000"].update(sizes=[])),
            "shard 00000 records no size",
        ),
        (lambda b: (b / "report.json").write_text('{"written": 1, "records": 3}'), "report.json"),
    ],
    ids=["list", "cut", "not-utf8", "report-string", "shards-list", "entry-list", "written", "sizes", "records"],
)
def test_broken_build_files_are_one_line(text_build, tmp_path, capsys, breakage, message):
    build = _copy(text_build, tmp_path)
    _with_digests(build)
    breakage(build)
    out = tmp_path / "rel"
    err = _refused(["release", str(build), "--out", str(out)], capsys)
    assert message in err
    assert not out.exists()


def test_an_out_that_is_a_file_is_one_line(text_build, tmp_path, capsys):
    build = _copy(text_build, tmp_path)
    _with_digests(build)
    out = tmp_path / "rel"
    out.write_text("mine")
    err = _refused(["release", str(build), "--out", str(out)], capsys)
    assert "is not a folder" in err and out.read_text() == "mine"


def test_an_out_under_a_file_is_one_line(text_build, tmp_path, capsys):
    build = _copy(text_build, tmp_path)
    _with_digests(build)
    blocker = tmp_path / "file"
    blocker.write_text("mine")
    err = _refused(["release", str(build), "--out", str(blocker / "rel")], capsys)
    assert "cannot be made" in err and blocker.read_text() == "mine"


def test_a_release_killed_mid_write_is_finished_by_the_next_run(text_build, tmp_path):
    """``kill -9`` during a copy leaves the atomic writer's temporary files (``<name>.<pid>-<hex>.tmp``):
    they are the release's own, not someone's files, so the rerun removes them and finishes."""
    from imagenet_captions import manifest as mf
    from imagenet_captions.release.publish import ReleaseOptions, make_release

    build = _copy(text_build, tmp_path)
    _with_digests(build)
    out = tmp_path / "rel"
    make_release(ReleaseOptions(build=str(build), out=str(out)))
    (out / "manifest.json").unlink()
    (out / mf.INCOMPLETE_MARKER).write_text("imagenet-captions\n")
    (out / "captions" / "00000.parquet.4242-0badcafe.tmp").write_bytes(b"half")
    (out / "README.md.4242-0badcafe.tmp").write_bytes(b"half")
    m = make_release(ReleaseOptions(build=str(build), out=str(out)))
    on_disk = sorted(p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file())
    assert on_disk == sorted([*(f["path"] for f in m["files"]), "manifest.json"])
