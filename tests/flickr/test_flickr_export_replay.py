"""Export in the release format, the diff against a release file, the demo's replay, the CLI."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from flickr_helpers import answer_for

from imagenet_captions.cli import main
from imagenet_captions.errors import UsageError
from imagenet_captions.flickr import export, replay, store
from imagenet_captions.flickr.store import JournalWriter, StoredAnswer
from imagenet_captions.flickr.urls import parse_line

T0 = 1_700_000_000.0


def fill(directory: Path, answers: list[StoredAnswer]) -> None:
    j = JournalWriter(str(directory), "r")
    for f in [j.append(a) for a in answers]:
        f.result(timeout=5)
    j.close()


def ok(
    pid: int, image_id: str, template: dict, title: str, tags: list[str], description: str = ""
) -> StoredAnswer:
    a = answer_for(template, pid, title=title)
    a["photo"]["description"] = {"_content": description}
    a["photo"]["tags"] = {"tag": [{"raw": t, "_content": export.normalise_tag(t)} for t in tags]}
    return StoredAnswer(pid, [image_id], "ok", None, None, T0, 1, "r", json.dumps(a))


@pytest.fixture()
def harvested(tmp_path: Path, real_answers) -> Path:
    t = real_answers[3743398102]
    out = tmp_path / "h"
    fill(
        out / "responses",
        [
            ok(1, "n01440764_1", t, "Same title", ["Fish", "lake"], "A <b>fine</b> day"),
            ok(2, "n01440764_2", t, "New title", ["fish"]),
            ok(3, "n01440764_3", t, "Tags", ["fish", "Pike", "Northern Pike"]),
            StoredAnswer(4, ["n01440764_4"], "not_found", 1, None, T0, 1, "r", '{"stat":"fail","code":1}'),
            StoredAnswer(5, ["n01440764_5"], "failed", 2, "Flickr code 2", T0, 1, "r", "{}"),
            ok(6, "n01440764_6", t, "Only here", []),
        ],
    )
    return out


def release_file(tmp_path: Path) -> Path:
    recs = [
        {
            "filename": "n01440764_1.JPEG",
            "title": "Same  title",
            "tags": ["fish", "lake"],
            "description": "A <b>fine</b>\nday",
            "wnid": "n01440764",
        },
        {
            "filename": "n01440764_2.JPEG",
            "title": "Old title",
            "tags": ["fish"],
            "description": "",
            "wnid": "n01440764",
        },
        {
            "filename": "n01440764_3.JPEG",
            "title": "Tags",
            "tags": ["fish", "carp"],
            "description": "",
            "wnid": "n01440764",
        },
        {"filename": "n01440764_4.JPEG", "title": "Gone", "tags": [], "description": "", "wnid": "n01440764"},
        {"filename": "n01440764_5.JPEG", "title": "x", "tags": [], "description": "", "wnid": "n01440764"},
        {
            "filename": "n01440764_9.JPEG",
            "title": "never asked",
            "tags": [],
            "description": "",
            "wnid": "n01440764",
        },
        {"title": "no filename"},
    ]
    path = tmp_path / "release.json"
    path.write_text(json.dumps(recs))
    return path


def test_export_is_the_release_format(harvested: Path, tmp_path: Path) -> None:
    path = tmp_path / "export.json"
    assert export.export_release(str(harvested / "responses"), str(path)) == 4
    records = json.loads(path.read_text())
    assert [list(r) for r in records] == [list(export.RELEASE_FIELDS)] * 4
    assert records[0] == {
        "filename": "n01440764_1.JPEG",
        "title": "Same title",
        "tags": ["Fish", "lake"],
        "description": "A <b>fine</b> day",
        "wnid": "n01440764",
    }


def test_diff_counts_every_release_record_once(harvested: Path, tmp_path: Path) -> None:
    report = export.diff_release(str(harvested), str(release_file(tmp_path)))
    c = report["counts"]
    assert c["release_records"] == 7
    assert (c["ok"], c["gone"], c["failed"], c["not_harvested"], c["malformed"]) == (3, 1, 1, 1, 1)
    assert c["ok"] + c["gone"] + c["failed"] + c["not_harvested"] + c["malformed"] == c["release_records"]
    assert (c["unchanged"], c["changed"], c["title_changed"], c["description_changed"]) == (1, 2, 1, 0)
    assert (c["tags_changed"], c["with_new_tags"], c["new_tags_total"], c["removed_tags_total"]) == (
        1,
        1,
        2,
        1,
    )
    assert c["only_in_store"] == 1
    assert report["examples"]["title_changed"] == [
        {"image_id": "n01440764_2", "release": "Old title", "now": "New title"}
    ]
    assert report["examples"]["tags_changed"] == [
        {"image_id": "n01440764_3", "added": ["northernpike", "pike"], "removed": ["carp"]}
    ]
    assert report["examples"]["gone"][0]["image_id"] == "n01440764_4"


def test_diff_reads_a_release_as_the_build_does(harvested: Path, tmp_path: Path) -> None:
    """A BOM is dropped (ijson refused it: a usage error), and a nesting bomb is one clear line."""
    path = release_file(tmp_path)
    plain = export.diff_release(str(harvested), str(path))["counts"]
    path.write_bytes(b"\xef\xbb\xbf" + path.read_bytes())
    assert export.diff_release(str(harvested), str(path))["counts"] == plain
    path.write_bytes(b"[" * 2_000 + b"]" * 2_000)  # deep enough to refuse, small enough for the old code
    with pytest.raises(UsageError, match="nested deeper than 64"):
        export.diff_release(str(harvested), str(path))


def test_a_broken_release_file_is_a_usage_error(harvested: Path, tmp_path: Path) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text('[{"filename": "n01440764_1.JPEG", ')
    with pytest.raises(UsageError, match="not a JSON list"):
        export.diff_release(str(harvested), str(bad))


def test_fixtures_are_deterministic_and_use_every_url_form() -> None:
    recs = json.loads(
        (Path(replay.__file__).parents[1] / "data" / "imagenet_captions_sample_records.json").read_text()
    )
    recs = recs + [
        {
            "filename": f"n01440764_{i}.JPEG",
            "title": f"t{i}",
            "tags": ["A b"],
            "description": "",
            "wnid": "n01440764",
        }
        for i in range(10)
    ]
    lines, responses = replay.flickr_fixtures_for(recs, seed=3)
    assert (lines, responses) == replay.flickr_fixtures_for(list(reversed(recs)), seed=3)
    assert lines != replay.flickr_fixtures_for(recs, seed=4)[0]
    parsed = [parse_line(x) for x in lines]
    assert all(p.outcome == "matched" for p in parsed)
    assert {p.photo_id for p in parsed} == set(responses)
    hosts = {x.split("\t")[1].split("/")[2].split(".", 1)[-1] for x in lines}
    assert {"static.flickr.com", "staticflickr.com", "flickr.com", "kr"} <= hosts
    statuses = [r["stat"] for r in responses.values()]
    assert "fail" in statuses and "ok" in statuses
    ok_answer = next(r for r in responses.values() if r["stat"] == "ok")
    assert ok_answer["photo"]["tags"]["tag"][0]["_content"] == "ab" and isinstance(
        ok_answer["photo"]["id"], str
    )


def test_demo_harvest_then_the_store_feeds_a_build(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.delenv("FLICKR_API_KEY", raising=False)
    recs = [
        {
            "filename": f"n01440764_{i}.JPEG",
            "title": f"t{i}",
            "tags": ["x"],
            "description": "d",
            "wnid": "n01440764",
        }
        for i in range(6)
    ]
    lines, responses = replay.flickr_fixtures_for(recs)
    urls = tmp_path / "urls.txt"
    urls.write_text("\n".join(lines) + "\n")
    rdir = replay.demo_harvest(str(urls), responses, str(tmp_path / "harvest"))
    assert "FLICKR_API_KEY" not in __import__("os").environ  # set for the call only
    summary = store.store_summary(rdir)
    n_gone = sum(1 for r in responses.values() if r["stat"] == "fail")
    assert summary["images"]["not_found"] == n_gone >= 1 and summary["images"]["ok"] == 6 - n_gone
    got = {r["filename"]: r["title"] for r in store.iter_release_records(rdir)}
    assert all(got[r["filename"]] == r["title"] for r in recs if r["filename"] in got)


def test_cli_harvest_export_and_diff(harvested: Path, tmp_path: Path, capsys) -> None:
    assert (
        main(
            [
                "harvest",
                "--out",
                str(harvested),
                "--export",
                str(tmp_path / "e.json"),
                "--diff",
                str(release_file(tmp_path)),
            ]
        )
        == 0
    )
    printed = capsys.readouterr().out
    assert "export: 4 records" in printed and '"gone": 1' in printed
    assert json.loads((harvested / "diff_report.json").read_text())["counts"]["ok"] == 3
    assert main(["harvest", "--out", str(harvested)]) == 2
    assert main(["harvest", "--out", str(harvested), "--export", "x.json", "--as-of", "yesterday"]) == 2
    assert main(["harvest", "--out", str(tmp_path / "none"), "--export", str(tmp_path / "x.json")]) == 2
    err = capsys.readouterr().err
    assert "nothing to do" in err and "--as-of" in err and "no response store" in err
