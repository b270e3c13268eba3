"""The match graph translated by Beam's Dataflow runner with ``--dry_run`` (no credentials, no
network), as tests/scaleout checks the build's: the job has match's stages, each Create followed by
its Reshuffle, and nothing is written."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from corpus_helpers import REAL_SAMPLE

from imagenet_captions import runners

pytest.importorskip("apache_beam.runners.dataflow.dataflow_runner")
pytest.importorskip("google.cloud.dataflow_v1beta3")

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "scaleout"))
from test_dataflow_dry_run import dataflow_args  # noqa: E402

EXPECTED = [
    "CorpusParts",
    "SpreadCorpusParts",
    "MatchPart",
    "CorpusFiles",
    "SpreadCorpusFiles",
    "HashFile",
    "ByClass",
    "SelectClass",
    "ByShard",
    "WriteShard",
    "Gather",
    "Finalize",
]


def test_dataflow_translates_the_match_graph(tmp_path: Path):
    from imagenet_captions.match.graph import match_graph
    from imagenet_captions.match.plan import MatchConfig, make_plan

    args = dataflow_args()
    config = MatchConfig(corpus=f"parquet:{REAL_SAMPLE}", out=str(tmp_path / "out"), max_per_class=3)
    p = runners.make_pipeline(args)
    plan = make_plan(config, runners.parallelism(args))
    assert len(plan.parts) == 1  # one row group: a part cannot be smaller
    match_graph(p, plan)
    result = p.run()
    result.wait_until_finish()
    job = result.job.proto_pipeline
    (root,) = job.root_transform_ids
    top = [job.components.transforms[t].unique_name for t in job.components.transforms[root].subtransforms]
    assert [name for name in top if name in EXPECTED] == EXPECTED, top
    assert result.job.options.get_all_options()["dry_run"] == "True"
    assert not (tmp_path / "out" / "report.json").exists() and not (tmp_path / "out" / "matches").exists()
