"""The README's first command: the demo builds both paths, its shards load, and it says what to do next."""

from __future__ import annotations

import json
import os
import re
import shlex
from pathlib import Path

from imagenet_captions.cli import command_parser, main
from imagenet_captions.shards.validate import validate_build


def _paths_are_whole(text: str, root: Path, to_make: set[str]) -> None:
    """Every path under ``root`` the demo prints is on one line: a path cut by a line break is a token
    naming nothing on disk (brace and glob patterns aside, and ``to_make``: the next commands' outputs)."""
    for token in re.findall(rf"{re.escape(str(root))}[^\s\"'(),]*", text):
        token = token.rstrip(".:;")
        if not any(c in token for c in "{*") and token not in to_make:
            assert os.path.exists(token), f"{token!r} is cut:\n{text}"


def _summary_rows_are_whole(text: str, report: dict) -> None:
    """Each outcome of the report is one table row: its name whole, its count on the same line."""
    for category in ("records", "images"):
        for reason, n in report[category]["outcomes"].items():
            assert re.search(rf"(^|[\s│|]){reason}[\s│|]+{n}\b", text, re.MULTILINE), (reason, n, text)
    assert re.search(r"^shards: \d+ written, .* s in all$", text, re.MULTILINE), text


def test_demo_builds_release_and_harvested_paths(tmp_path, capsys):
    # A deep output folder: its path is longer than the summary table is wide.
    out_dir = tmp_path / "a-rather-long-folder-name-for-the-demo" / "and-one-more-level-below-it"
    assert main(["demo", "--out", str(out_dir), "--per-class", "6"]) == 0
    captured = capsys.readouterr()  # not a terminal, as when the output is piped
    out = captured.out
    assert "Load the shards" in out and str(out_dir / "build" / "shards") in out
    for build in ("build", "build-harvested"):
        summary, problems = validate_build(str(out_dir / build), decode=True)
        assert problems == [] and summary["samples"] > 0
    rep = json.loads((out_dir / "build-harvested" / "report.json").read_text())
    outcomes = rep["records"]["outcomes"]
    assert outcomes["flickr_not_found"] > 0 and rep["records"]["input"] == 62
    assert rep["images"]["outcomes"]["record_dropped"] == outcomes["flickr_not_found"]
    harvested_rows = rep["written"]
    release_rows = json.loads((out_dir / "build" / "report.json").read_text())["written"]
    assert harvested_rows < release_rows  # photos gone from Flickr since the release

    # It ends with the next commands, with its own paths.
    after = out[out.index("Next:") :]
    commands = {
        line.split()[1]: shlex.split(line)[1:]
        for line in after.splitlines()
        if line.startswith("  imagenet-captions ")
    }
    assert set(commands) == {"validate", "release", "train"}, after
    assert commands["validate"] == ["validate", str(out_dir / "build")]
    to_make = {args[i + 1] for args in commands.values() for i, a in enumerate(args) if a == "--out"}
    assert to_make == {str(out_dir / "release"), str(out_dir / "train")}

    # Piped, the summary is not cut mid-word: paths and rows stay whole on their lines.
    _paths_are_whole(captured.out + captured.err, tmp_path, to_make)
    release_report = json.loads((out_dir / "build" / "report.json").read_text())
    _summary_rows_are_whole(captured.err, release_report)
    _summary_rows_are_whole(captured.err, rep)

    # Each next command works as printed.
    assert main(commands["validate"]) == 0
    assert main(commands["release"]) == 0
    assert (out_dir / "release" / "manifest.json").is_file()
    _, train_parser = command_parser("train")  # the train line parses (running it needs the train extra)
    train_args = train_parser.parse_args(commands["train"][1:])
    assert train_args.shards == str(out_dir / "build" / "shards") and train_args.device == "cpu"
