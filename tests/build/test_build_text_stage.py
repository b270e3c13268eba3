"""The build's text stage (per metadata part, owner buckets for --owner-duplicates) gives what the text
stage's own Beam transform (CleanText) gives for the same records: the same rows, drops and statistics."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from imagenet_captions.build import BuildConfig, run_build
from imagenet_captions.text import TextOptions

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "text"))
from test_text_beam import _raws, _run  # noqa: E402  (the text stage's own fixtures and runner)


@pytest.mark.parametrize("owner_duplicates", ["keep", "drop", "once"])
def test_build_text_stage_equals_clean_text(tmp_path, owner_duplicates):
    options = TextOptions(
        lang_backend="fasttext",
        lang_fields=("title", "description", "caption"),
        drop_empty=True,
        camera_titles="strip",
        machine_tags="drop",
        owner_duplicates=owner_duplicates,
    )
    release = [
        {"filename": f"{r['key']}.JPEG", **{k: v for k, v in r.items() if k != "key"}} for r in _raws()
    ]
    path = tmp_path / "release.json"
    path.write_text(json.dumps(release))
    rep = run_build(BuildConfig(metadata=f"release:{path}", out=str(tmp_path / "o"), text=options))
    records, dropped, (stats,) = _run(options)
    built = {
        r["key"]: r
        for p in sorted((tmp_path / "o" / "captions").glob("*.parquet"))
        for r in pq.read_table(p).to_pylist()
    }
    assert sorted(built) == sorted(r["key"] for r in records)
    for r in records:
        assert {k: built[r["key"]][k] for k in r} == r
    expected = dict(stats, options=options.to_report())
    assert rep["text"] == json.loads(json.dumps(expected))
    reasons = {}
    for _, reason in dropped:
        reasons[reason] = reasons.get(reason, 0) + 1
    assert {k: v for k, v in rep["records"]["outcomes"].items() if k != "written"} == reasons
