"""The README's first command: the demo builds both paths and its shards load."""

from __future__ import annotations

import json

from imagenet_captions.cli import main
from imagenet_captions.shards.validate import validate_build


def test_demo_builds_release_and_harvested_paths(tmp_path, capsys):
    assert main(["demo", "--out", str(tmp_path), "--per-class", "6"]) == 0
    out = capsys.readouterr().out
    assert "Load the shards" in out and str(tmp_path / "build" / "shards") in out
    for build in ("build", "build-harvested"):
        summary, problems = validate_build(str(tmp_path / build), decode=True)
        assert problems == [] and summary["samples"] > 0
    rep = json.loads((tmp_path / "build-harvested" / "report.json").read_text())
    outcomes = rep["records"]["outcomes"]
    assert outcomes["flickr_not_found"] > 0 and rep["records"]["input"] == 62
    assert rep["images"]["outcomes"]["record_dropped"] == outcomes["flickr_not_found"]
    harvested_rows = rep["written"]
    release_rows = json.loads((tmp_path / "build" / "report.json").read_text())["written"]
    assert harvested_rows < release_rows  # photos gone from Flickr since the release
