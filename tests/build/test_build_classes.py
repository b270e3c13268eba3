"""``--classes``: ILSVRC-2012 by default, ImageNet-21k's wnids with ``all`` or a file, on a tree of a few
thousand classes in the folder and the tar layout of the fall11/winter21 releases."""

from __future__ import annotations

import io
import json
import tarfile
from pathlib import Path

import pytest
from PIL import Image

from imagenet_captions.build import BuildConfig, run_build
from imagenet_captions.cli import main
from imagenet_captions.sample import write_ilsvrc_tar

N_CLASSES = 2500


def _jpeg() -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (16, 12), (40, 90, 200)).save(buf, "JPEG")
    return buf.getvalue()


@pytest.fixture(scope="module")
def tree21k(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """2,500 classes of ImageNet-21k's shape (wnids outside ILSVRC-2012), one image and one record each."""
    root = tmp_path_factory.mktemp("in21k")
    data = _jpeg()
    records = []
    for i in range(N_CLASSES):
        wnid = f"n{90000000 + i * 7:08d}"
        (root / "train" / wnid).mkdir(parents=True)
        (root / "train" / wnid / f"{wnid}_1.JPEG").write_bytes(data)
        records.append({"filename": f"{wnid}_1.JPEG", "title": f"t{i}", "tags": [], "description": "", "wnid": wnid})
    (root / "captions.json").write_text(json.dumps(records))
    write_ilsvrc_tar(root / "train", root / "winter21_whole.tar")
    return root


def _labels(out: Path) -> dict[str, int]:
    labels = {}
    for tar in sorted((out / "shards").glob("*.tar")):
        with tarfile.open(tar) as tf:
            for m in tf.getmembers():
                if m.name.endswith(".cls"):
                    labels[m.name[: -len(".cls")]] = int(tf.extractfile(m).read())
    return labels


@pytest.mark.slow
@pytest.mark.parametrize("layout", ["train", "winter21_whole.tar"])
def test_all_classes_label_by_the_sorted_list_recorded_in_manifest_and_report(tree21k, layout, tmp_path):
    out = tmp_path / "o"
    rep = run_build(
        BuildConfig(
            metadata=f"release:{tree21k / 'captions.json'}", imagenet=str(tree21k / layout), out=str(out), classes="all"
        )
    )
    assert rep["accounting_problems"] == [] and rep["written"] == N_CLASSES
    wnids = sorted(p.name for p in (tree21k / "train").iterdir())
    manifest = json.loads((out / "shards" / "manifest.json").read_text())
    assert manifest["options"]["classes"] == {"source": "all", "count": N_CLASSES, "wnids": wnids}
    assert rep["options"]["classes"]["wnids"] == wnids
    assert _labels(out) == {f"{w}_1": i for i, w in enumerate(wnids)}


def test_default_refuses_non_ilsvrc_classes_and_a_file_selects_them(tree21k, tmp_path):
    rep = run_build(BuildConfig(metadata=f"release:{tree21k / 'captions.json'}", out=str(tmp_path / "a")))
    assert rep["records"]["outcomes"] == {"written": 0, "unknown_class": N_CLASSES}
    chosen = sorted(p.name for p in (tree21k / "train").iterdir())[:40]
    classes = tmp_path / "classes.txt"
    classes.write_text("# a subset\n" + "\n".join(f"{w}\tsome name" for w in reversed(chosen)) + "\n")
    rep = run_build(
        BuildConfig(metadata=f"release:{tree21k / 'captions.json'}", out=str(tmp_path / "b"), classes=str(classes))
    )
    assert rep["records"]["outcomes"] == {"written": 40, "unknown_class": N_CLASSES - 40}
    assert rep["options"]["classes"]["wnids"] == chosen


def test_bad_class_options_are_one_line(tree21k, tmp_path, capsys):
    meta = f"release:{tree21k / 'captions.json'}"
    bad = tmp_path / "bad.txt"
    bad.write_text("n0123\n")
    for extra in (["--classes", "all"], ["--classes", str(tmp_path / "missing.txt")], ["--classes", str(bad)]):
        assert main(["build", "--metadata", meta, "--out", str(tmp_path / "x"), *extra]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 3 and all("--classes" in line for line in err)


@pytest.mark.slow
def test_a_text_release_of_a_21k_build_rebuilds_with_the_publishers_labels(tree21k, tmp_path):
    from imagenet_captions.release.publish import ReleaseOptions, make_release

    meta, train = f"release:{tree21k / 'captions.json'}", str(tree21k / "train")
    run_build(BuildConfig(metadata=meta, imagenet=train, out=str(tmp_path / "pub"), classes="all"))
    make_release(ReleaseOptions(build=str(tmp_path / "pub"), out=str(tmp_path / "rel"), date="2026-01-01"))
    rep = run_build(BuildConfig(metadata=f"text-release:{tmp_path / 'rel'}", imagenet=train, out=str(tmp_path / "re")))
    assert rep["written"] == N_CLASSES and rep["accounting_problems"] == []
    assert _labels(tmp_path / "re") == _labels(tmp_path / "pub")
    for name in ("00000.tar", "sizes.json"):
        assert (tmp_path / "re" / "shards" / name).read_bytes() == (tmp_path / "pub" / "shards" / name).read_bytes()
