"""The schema files ship inside the wheel and the sdist, and the installed package reads them."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def dists(tmp_path_factory):
    out = tmp_path_factory.mktemp("dist")
    subprocess.run(
        [
            sys.executable,
            "-m",
            "build",
            "--no-isolation",
            "--wheel",
            "--sdist",
            "--outdir",
            str(out),
            str(ROOT),
        ],
        check=True,
        capture_output=True,
    )
    return next(out.glob("*.whl")), next(out.glob("*.tar.gz"))


def test_wheel_carries_schemas_package_data_and_entry_point(dists):
    wheel, _ = dists
    names = zipfile.ZipFile(wheel).namelist()
    assert "imagenet_captions/schemas/caption_record.json" in names
    assert "imagenet_captions/data/imagenet_class_index.json" in names
    entry_points = next(n for n in names if n.endswith("entry_points.txt"))
    assert (
        "imagenet-captions = imagenet_captions.cli:main" in zipfile.ZipFile(wheel).read(entry_points).decode()
    )


def test_sdist_carries_schemas_and_tests(dists):
    _, sdist = dists
    with tarfile.open(sdist) as tf:
        names = tf.getnames()
    assert any(n.endswith("/schemas/caption_record.json") for n in names)
    assert any(n.endswith("/pipeline/imagenet_captions/build/graph.py") for n in names)


def test_installed_wheel_loads_its_own_schema(dists, tmp_path):
    wheel, _ = dists
    target = tmp_path / "site"
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target", str(target), str(wheel)],
        check=True,
        capture_output=True,
    )
    code = (
        "import imagenet_captions, imagenet_captions.schema as s; "
        "print(imagenet_captions.__file__); print(len(s.arrow_schema()))"
    )
    env = {**os.environ, "PYTHONPATH": str(target)}
    out = subprocess.run(
        [sys.executable, "-c", code], check=True, capture_output=True, text=True, env=env, cwd=tmp_path
    ).stdout.split()
    columns = len(json.loads((ROOT / "schemas" / "caption_record.json").read_text())["fields"])
    assert out[0].startswith(str(target)) and int(out[1]) == columns == 21
