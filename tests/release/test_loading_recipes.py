"""The loading recipes of README.md, run exactly as written over a downloaded release of the sample build.

The releases are served by a loopback static host and fetched with ``imagenet-captions download``, as
a user gets them. Each recipe ends with ``keys`` and ``captions``; they must be the build's own,
whichever way the release is read (pyarrow, 🤗 datasets from the files or through the card's
configs, webdataset).
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pyarrow.parquet as pq
import pytest

DOC = Path(__file__).resolve().parents[2] / "README.md"
RECIPE_RE = re.compile(r"<!-- recipe: ([\w-]+) -->\n```python\n(.*?)```", re.S)


def _recipes() -> dict[str, str]:
    return dict(RECIPE_RE.findall(DOC.read_text()))


def _build_captions(build: Path) -> dict[str, str]:
    folder = build / ("shards" if (build / "shards").is_dir() else "captions")
    table = pq.ParquetDataset(sorted(str(p) for p in folder.glob("*.parquet"))).read()
    return dict(zip(table.column("key").to_pylist(), table.column("caption").to_pylist(), strict=True))


def _run(recipe: str, release: Path) -> dict[str, str]:
    scope: dict = {}
    exec(
        compile(_recipes()[recipe].replace("<release>", str(release)), f"README.md:{recipe}", "exec"),
        scope,
    )
    keys, captions = list(scope["keys"]), list(scope["captions"])
    assert len(set(keys)) == len(keys)
    return dict(zip(keys, captions, strict=True))


def _download(release: Path, out: Path) -> Path:
    from imagenet_captions.cli import main
    from imagenet_captions.testing.static_host import StaticHost

    with StaticHost(release) as host:
        assert main(["download", host.url.rstrip("/") + "/manifest.json", "--out", str(out)]) == 0
    assert (out / "manifest.json").read_bytes() == (release / "manifest.json").read_bytes()
    return out


@pytest.fixture(scope="module")
def text_download(text_release, tmp_path_factory) -> Path:
    return _download(text_release, tmp_path_factory.mktemp("downloaded") / "text")


@pytest.fixture(scope="module")
def image_download(image_release, tmp_path_factory) -> Path:
    return _download(image_release, tmp_path_factory.mktemp("downloaded") / "images")


@pytest.fixture
def hf_cache(tmp_path, monkeypatch):
    """datasets caches what it prepares: keep that in the test's folder, and never reach the network."""
    datasets = pytest.importorskip("datasets")
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", tmp_path / "hf-cache")
    monkeypatch.setattr(datasets.config, "HF_HUB_OFFLINE", True, raising=False)
    return datasets


def test_the_doc_has_every_recipe():
    assert set(_recipes()) == {
        "pyarrow",
        "datasets-parquet",
        "datasets-card",
        "webdataset",
        "datasets-webdataset",
    }


def test_pyarrow_recipe(text_download, text_build):
    assert _run("pyarrow", text_download) == _build_captions(text_build)


def test_datasets_recipes(image_download, image_build, hf_cache):
    expected = _build_captions(image_build)
    assert _run("datasets-parquet", image_download) == expected
    # The card's config reads the Parquet files, with the tars beside them.
    assert _run("datasets-card", image_download) == expected


def test_datasets_webdataset_recipe(image_download, image_build, hf_cache):
    assert _run("datasets-webdataset", image_download) == _build_captions(image_build)


def test_a_config_of_tars_beside_the_parquet_one_would_not_load(image_release, tmp_path, hf_cache):
    """Why the card has no ``images`` config: datasets picks one builder, from the first config's files."""
    import shutil

    import yaml

    copy = tmp_path / "release"
    shutil.copytree(image_release, copy)
    text = (copy / "README.md").read_text()
    header = yaml.safe_load(text.split("---\n", 2)[1])
    header["configs"].append(
        {"config_name": "images", "data_files": [{"split": "train", "path": "shards/*.tar"}]}
    )
    (copy / "README.md").write_text(
        "---\n" + yaml.safe_dump(header, sort_keys=False) + "---\n" + text.split("---\n", 2)[2]
    )
    with pytest.raises(Exception, match="Parquet magic bytes not found"):
        hf_cache.load_dataset(str(copy), "images", split="train")


def test_webdataset_recipe(image_download, image_build):
    assert _run("webdataset", image_download) == _build_captions(image_build)


def test_the_cards_own_snippets_run(image_release, hf_cache):
    """The card's "How to load it" code (written by card.py, not copied from the docs) runs as shown."""
    text = (image_release / "README.md").read_text()
    section = text.split("## How to load it", 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"```python\n(.*?)```", section, re.S)
    assert len(blocks) == 3  # pyarrow, datasets, and the tars of a --with-images release
    records = sum(
        s["samples"] for s in json.loads((image_release / "manifest.json").read_text())["shards"].values()
    )
    seen = set()
    for block in blocks:
        scope: dict = {}
        exec(compile(block.replace("<release>", str(image_release)), "README.md", "exec"), scope)
        for name in ("table", "ds", "samples"):
            if name in scope:
                seen.add(name)
                assert len(list(scope[name]) if name == "samples" else scope[name]) == records, name
    assert seen == {"table", "ds", "samples"}
