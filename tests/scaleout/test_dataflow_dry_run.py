"""The real build graph translated by Beam's Dataflow runner with ``--dry_run``: no credentials, no network.

Dataflow cannot run here; what can be checked offline is everything before submission: the
options parse, the graph translates to a portable job with our worker container, and the job has
the stages the build is made of, each Create followed by the Reshuffle that lets Dataflow spread
its elements over workers (without it, Dataflow fuses a whole read behind one element).
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

import imagenet_captions
from imagenet_captions import runners

pytest.importorskip("apache_beam.runners.dataflow.dataflow_runner")
pytest.importorskip("google.cloud.dataflow_v1beta3")

ROOT = Path(__file__).resolve().parents[2]
PLACEHOLDERS = {"REGION": "us-central1", "PROJECT": "example-project", "REPO": "imagenet-captions"}
#: The build's stages, as the job must have them (top-level transform names), in graph order.
EXPECTED = [
    "MetadataParts",  # the read, split into parts
    "SpreadMetadataParts",
    "ReadAndClean",  # read a part and clean its text
    "ImageParts",  # the listing, one part per class folder or inner tar
    "SpreadImageParts",
    "ListImages",
    "ByShard",  # the one shuffle: records, images and drops to their shard
    "WriteShard",
    "Gather",  # every tally to one key
    "Finalize",  # sizes.json, manifest.json, report.json
]


def worker_image() -> str:
    """The worker container as deploy/dataflow/run.sh names it, its variables filled in."""
    script = (ROOT / "deploy" / "dataflow" / "run.sh").read_text()
    version = re.search(r"^VERSION=(\S+)$", script, flags=re.M).group(1)
    image = re.search(r'^WORKER="([^"]+)"$', script, flags=re.M).group(1)
    values = {**PLACEHOLDERS, "VERSION": version}
    return re.sub(r"\$(\w+)", lambda m: values[m.group(1)], image)


def dataflow_args() -> list[str]:
    return [
        "--runner",
        "DataflowRunner",
        "--dry_run",
        "--project",
        PLACEHOLDERS["PROJECT"],
        "--region",
        PLACEHOLDERS["REGION"],
        "--temp_location",
        "gs://example-bucket/tmp",
        "--sdk_location=container",
        "--sdk_container_image",
        worker_image(),
    ]


def test_the_worker_image_is_this_version():
    assert worker_image().endswith(f"/imagenet-captions-worker:{imagenet_captions.__version__}")


def test_dataflow_translates_the_build(sample_dir: Path, sample_tar: Path, tmp_path: Path):
    from apache_beam.portability import common_urns
    from apache_beam.portability.api import beam_runner_api_pb2

    from imagenet_captions.build.graph import build_graph
    from imagenet_captions.build.plan import BuildConfig, make_plan

    args = dataflow_args()
    config = BuildConfig(
        metadata=f"release:{sample_dir / 'imagenet_captions.json'}",
        imagenet=str(sample_tar),
        out=str(tmp_path / "out"),
    )
    p = runners.make_pipeline(args)
    build_graph(p, make_plan(config, runners.parallelism(args)))
    result = p.run()
    result.wait_until_finish()
    job = result.job.proto_pipeline
    (root,) = job.root_transform_ids
    top = [job.components.transforms[t].unique_name for t in job.components.transforms[root].subtransforms]
    assert [name for name in top if name in EXPECTED] == EXPECTED, top
    # Each of the job's environments is our container, with the SDK taken from it.
    images = set()
    for env in job.components.environments.values():
        assert env.urn == common_urns.environments.DOCKER.urn
        images.add(beam_runner_api_pb2.DockerPayload.FromString(env.payload).container_image)
    assert images == {worker_image()}
    options = result.job.options.get_all_options()
    assert options["sdk_location"] == "container" and options["dry_run"] == "True"
    # Nothing was written: a dry run plans, translates and stops.
    assert not (tmp_path / "out" / "shards").exists() or not list((tmp_path / "out" / "shards").glob("*.tar"))


@pytest.mark.slow
def test_the_build_command_prints_the_stages(sample_dir: Path, tmp_path: Path):
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "imagenet_captions.cli",
            "build",
            "--metadata",
            f"release:{sample_dir / 'imagenet_captions.json'}",
            "--imagenet",
            str(sample_dir / "train"),
            "--out",
            str(tmp_path / "out"),
            *dataflow_args(),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    printed = done.stdout + done.stderr
    for stage in EXPECTED:
        assert re.search(rf"\b{stage}\b", printed), (stage, printed[-2000:])
    assert not (tmp_path / "out" / "report.json").exists()
