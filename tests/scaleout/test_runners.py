"""How pipelines are made from the pass-through Beam options, on tiny pipelines and a real Dask cluster."""

from __future__ import annotations

import collections
import os
import shutil
import subprocess
import sys
from pathlib import Path

import apache_beam as beam
import dask
import pytest
from apache_beam.options.pipeline_options import PipelineOptions
from apache_beam.runners.direct.direct_runner import DirectRunner
from apache_beam.runners.portability.fn_api_runner import FnApiRunner
from dask_cluster import DaskCluster, pythonpath
from scaleout_helpers import NoteGroup, NotePart

import imagenet_captions
from imagenet_captions import beam_args, dask_runner, runners, trace
from imagenet_captions.errors import UsageError

PARTS = 1000
GROUPS = 40


def test_our_options_become_beams():
    args = runners.beam_options(["--runner", "DaskRunner", "--dask-address", "10.0.0.1:8786", "--dry_run"])
    assert args == ["--dry_run=True", "--dask_client_address=10.0.0.1:8786", "--dask_partition_size=1"]
    assert runners.beam_options(["--runner=dask", "--dask_npartitions", "7"]) == ["--dask_npartitions", "7"]
    assert runners.beam_options(["--dask-address=h:1"]) == [
        "--dask_client_address=h:1",
        "--dask_partition_size=1",
    ]
    # Other runners' options pass through untouched.
    flink = ["--runner", "FlinkRunner", "--parallelism", "8", "--flink_version", "1.19"]
    assert runners.beam_options(flink) == flink
    with pytest.raises(UsageError, match="--dask-address needs --runner dask"):
        runners.beam_options(["--runner", "FlinkRunner", "--dask-address", "h:1"])
    with pytest.raises(UsageError, match="--dask-address needs HOST:PORT"):
        runners.beam_options(["--dask-address", "--runner", "dask"])


def test_dry_run_is_a_boolean():
    assert runners.is_dry_run(["--dry_run"]) and runners.is_dry_run(["--dry_run", "--runner", "dask"])
    assert runners.is_dry_run(["--dry_run=TRUE"]) and not runners.is_dry_run(["--dry_run", "false"])
    assert not runners.is_dry_run(["--runner", "dask"])
    with pytest.raises(UsageError, match="--dry_run takes true or false"):
        runners.is_dry_run(["--dry_run=maybe"])
    # Beam would read "False" as true; the translated options say what the user meant.
    assert "--dry_run=True" not in runners.beam_options(["--dry_run=False"])


def test_which_runner():
    assert isinstance(runners.make_pipeline([]).runner, FnApiRunner)
    assert isinstance(runners.make_pipeline(["--runner", "DirectRunner"]).runner, DirectRunner)
    dask = runners.make_pipeline(["--runner", "Dask", "--dask-address", "127.0.0.1:1"])
    from apache_beam.runners.dask.dask_runner import DaskRunner

    assert isinstance(dask.runner, DaskRunner)
    assert isinstance(
        runners.make_pipeline(["--runner", "dask", "--dry_run"]).runner, runners.TranslateOnlyRunner
    )


def test_parallelism_without_a_cluster():
    assert runners.parallelism([]) == 1
    assert (
        runners.parallelism(["--direct_num_workers", "3", "--direct_running_mode", "multi_processing"]) == 3
    )
    assert runners.parallelism(["--direct_num_workers=0"]) == runners.local_cores()
    assert runners.parallelism(["--runner", "dask"]) == runners.local_cores()
    assert runners.parallelism(["--runner", "FlinkRunner", "--parallelism", "12"]) == 12
    dataflow = [
        "--runner",
        "DataflowRunner",
        "--max_num_workers",
        "4",
        "--worker_machine_type",
        "n2-standard-8",
    ]
    assert runners.parallelism(dataflow) == 32
    assert runners.parallelism(["--runner", "PortableRunner"]) == runners.DEFAULT_REMOTE_PARALLELISM
    with pytest.raises(UsageError, match="whole number"):
        runners.parallelism(["--direct_num_workers", "two"])
    with pytest.raises(beam_args.ClusterError, match="cannot reach the Dask scheduler at 127.0.0.1:9"):
        runners.parallelism(
            ["--runner", "dask", "--dask-address", "127.0.0.1:9", "--dask_connection_timeout", "1"]
        )


def test_every_documented_kind_of_beam_option_is_accepted():
    """Options of every runner the docs name, in both spellings, pass the check untouched."""
    for args in (
        [],
        ["--dry_run"],
        ["--dry_run", "false", "--direct_num_workers=0", "--direct_running_mode", "multi_processing"],
        ["--runner", "dask", "--dask-address", "h:1", "--dask_connection_timeout=1", "--dask_npartitions=7"],
        ["--runner=DaskRunner", "--dask_scheduler_file", "s.json", "--dask_partition_size", "2"],
        ["--runner", "FlinkRunner", "--parallelism", "8", "--flink_version", "1.19"],
        ["--runner", "PortableRunner", "--job_endpoint", "localhost:8099", "--environment_type=LOOPBACK"],
        ["--environment_type", "EXTERNAL", "--environment_config", "localhost:50000"],
        ["--runner", "DataflowRunner", "--project", "p", "--region", "r", "--temp_location", "gs://b/t"],
        ["--sdk_location=container", "--sdk_container_image", "img", "--experiments", "use_runner_v2"],
        ["--max_num_workers", "4", "--worker_machine_type", "n2-standard-8", "--experiments=a"],
    ):
        runners.check_beam_args(args, ours=["--out"])


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--resise", "256"], "unknown option --resise .*; did you mean --resize\\?"),
        (["--resize256"], "did you mean --resize 256\\?"),
        (["--num-shardz=4"], "did you mean --num-shards\\?"),
        (["--direct_num_worker", "2"], "did you mean --direct_num_workers\\?"),
        (["--runer", "dask"], "did you mean --runner\\?"),
        (["--runner", "dask", "--dask_partition_sise", "2"], "did you mean --dask_partition_size\\?"),
        (["--direct_num"], "did you mean --direct_num_workers\\?"),  # Beam drops abbreviations
        (["--zzzzzzzz"], "unknown option --zzzzzzzz .*see --help"),
        (["stray"], "unrecognized argument: stray"),
        (["--direct_num_workers", "two"], "--direct_num_workers: invalid int value: 'two'"),
        (["--dry_run=maybe"], "--dry_run takes true or false"),
    ],
)
def test_what_is_not_an_option_is_refused(args: list[str], message: str):
    with pytest.raises(UsageError, match=message):
        runners.check_beam_args(args, ours=["--out", "--resize", "--num-shards"])


def test_an_in_process_command_takes_no_dask_address():
    runners.check_beam_args(["--direct_num_workers", "1"], choose_runner=False)
    with pytest.raises(UsageError, match="--dask-address: this command runs in this process"):
        runners.check_beam_args(["--dask-address", "h:1"], choose_runner=False)


class _Inner(beam.PTransform):
    def expand(self, pcoll):
        return pcoll | "Pair" >> beam.Map(lambda x: (x % 2, x)) | "Group" >> beam.GroupByKey()


def test_dry_run_lists_stages_and_runs_nothing(tmp_path: Path):
    marker = tmp_path / "ran"

    def touch(x):
        marker.write_text("ran")
        return x

    p = runners.make_pipeline(["--dry_run"])
    with p:
        _ = p | "Parts" >> beam.Create([1, 2, 3]) | "Touch" >> beam.Map(touch) | "Inner" >> _Inner()
    assert runners.stage_names(p) == ["Parts", "Touch", "Inner", "Inner/Pair", "Inner/Group"]
    assert not marker.exists()


def _parts_pipeline(args: list[str]) -> beam.Pipeline:
    p = runners.make_pipeline(args)
    _ = (
        p
        | "Parts" >> beam.Create(list(range(PARTS)))
        | "Part" >> beam.ParDo(NotePart(GROUPS))
        | "ByGroup" >> beam.GroupByKey()
        | "Group" >> beam.ParDo(NoteGroup())
    )
    return p


def test_create_elements_become_tasks_and_the_group_keeps_partitions():
    """What the graph relies on, read off the Dask graph our runner makes (nothing runs)."""
    from apache_beam.runners.dask.dask_runner import DaskOptions, DaskRunner
    from apache_beam.runners.dask.overrides import dask_overrides
    from distributed import Client

    args = runners.beam_options(["--runner", "dask", "--dask-address", "127.0.0.1:1"])
    opts = PipelineOptions(args).view_as(DaskOptions).get_all_options(drop_default=True, current_only=True)
    assert DaskOptions._extract_bag_kwargs(opts) == {"partition_size": 1}
    # A client with no workers, current while the graph is made, as the runner does (task shuffle).
    with Client(processes=False, n_workers=0, dashboard_address=None) as client, client.as_current():
        last = dask_runner._dask_runner_class().translate(_parts_pipeline(args), PipelineOptions(args), threads=2)
        layers = {name: len(layer) for name, layer in last.__dask_graph__().layers.items()}
        (optimized,) = dask.optimize(last)  # what the runner submits: chains of tasks fused
        tasks = len(optimized.__dask_graph__())
    # Each of the 1,000 parts is a task of its own; the grouping is cut into 4 partitions a thread.
    assert PARTS in [n for name, n in layers.items() if name.startswith("from_sequence")], layers
    assert last.npartitions == dask_runner.group_partitions(2) == 8
    assert tasks < 3 * PARTS, tasks  # Beam's translation as it is: ~66,000 tasks, mostly the shuffle
    # Beam's own default would have put 128 parts in a partition: 8 tasks for 1,000 class folders.
    default = DaskRunner.to_dask_bag_visitor({})
    p = _parts_pipeline(["--runner", "dask"])
    p.replace_all(dask_overrides())
    p.visit(default)
    assert max(b.npartitions for b in default.bags.values() if b is not None) < 10


@pytest.mark.slow
def test_a_dask_pipeline_spreads_over_both_workers(dask_cluster: DaskCluster):
    dask_cluster.reset_trace()
    with _parts_pipeline(["--runner", "dask", "--dask-address", dask_cluster.address]):
        pass
    lines = dask_cluster.trace()
    parts = collections.Counter(unit for stage, unit, _ in lines if stage == "part")
    assert sorted(int(u) for u in parts) == list(range(PARTS)) and set(parts.values()) == {1}
    groups = [unit for stage, unit, _ in lines if stage == "group"]
    assert len(groups) == GROUPS and sum(int(g.split("=")[1]) for g in groups) == PARTS
    workers = {stage: {w for s, _, w in lines if s == stage} for stage in ("part", "group")}
    assert len(workers["part"]) == 2 and len(workers["group"]) == 2, workers
    assert runners.parallelism(["--runner", "dask", "--dask-address", dask_cluster.address]) == 2


LOCAL_RUN = """
import sys
import apache_beam as beam
from distributed import LocalCluster
from imagenet_captions import runners, trace
from scaleout_helpers import NoteGroup, NotePart

started = []
real = LocalCluster.__init__
def spy(self, *args, **kwargs):
    real(self, *args, **kwargs)
    started.append((self, len(self.workers), sorted({s["options"]["nthreads"] for s in self.worker_spec.values()})))
LocalCluster.__init__ = spy
with runners.make_pipeline(["--runner", "dask"]) as p:
    _ = (p | beam.Create(list(range(int(sys.argv[1])))) | beam.ParDo(NotePart(7)) | beam.GroupByKey()
         | beam.ParDo(NoteGroup()))
((cluster, workers, threads),) = started
print(workers, threads, cluster.status.name)
"""


@pytest.mark.slow
def test_a_local_dask_cluster_is_started_and_closed(tmp_path: Path, frozen_code: Path):
    """No address: a LocalCluster of one single-threaded process per core, closed after the run.

    Run in a child on the frozen code: LocalCluster's workers take their module path from their
    parent, and this process imports the tree others are editing."""
    env = {**os.environ, "PYTHONPATH": pythonpath(frozen_code), trace.ENV: str(tmp_path / "trace.tsv")}
    done = subprocess.run(
        [sys.executable, "-c", LOCAL_RUN, "100"], env=env, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.split()[-3:] == [str(runners.local_cores()), "[1]", "closed"]
    lines = trace.read(str(tmp_path / "trace.tsv"))
    assert sorted(int(u) for s, u, _ in lines if s == "part") == list(range(100))
    assert sum(int(u.split("=")[1]) for s, u, _ in lines if s == "group") == 100


@pytest.mark.slow
def test_a_worker_with_other_code_is_refused(fresh_dask_cluster: DaskCluster, tmp_path: Path):
    copy = tmp_path / "stale"
    package = Path(imagenet_captions.__file__).parent
    shutil.copytree(package, copy / "imagenet_captions", ignore=shutil.ignore_patterns("__pycache__"))
    init = copy / "imagenet_captions" / "__init__.py"
    init.write_text(init.read_text().replace(f'"{imagenet_captions.__version__}"', '"0.0.1-stale"'))
    fresh_dask_cluster.start_worker("stale", code=copy)
    fresh_dask_cluster.wait_for_workers(3)
    fresh_dask_cluster.reset_trace()
    p = _parts_pipeline(["--runner", "dask", "--dask-address", fresh_dask_cluster.address])
    with pytest.raises(beam_args.ClusterError) as e:
        p.run()
    message = str(e.value)
    assert "\n" not in message
    with fresh_dask_cluster.client() as client:
        stale = [addr for addr, info in client.scheduler_info()["workers"].items() if info["name"] == "stale"]
    assert stale and f"worker {stale[0]} runs imagenet_captions version 0.0.1-stale (client " in message
    assert "fingerprint" in message and message.count("worker ") == 1, message
    assert fresh_dask_cluster.trace() == []  # refused before anything ran


def test_the_fingerprint_sees_an_edit(tmp_path: Path):
    copy = tmp_path / "imagenet_captions"
    shutil.copytree(
        Path(imagenet_captions.__file__).parent, copy, ignore=shutil.ignore_patterns("__pycache__")
    )
    before = dask_runner.fingerprint_of(copy)
    (copy / "__pycache__").mkdir(exist_ok=True)
    (copy / "__pycache__" / "x.cpython-311.pyc").write_bytes(b"compiled")
    assert dask_runner.fingerprint_of(copy) == before
    (copy / "fsio.py").write_text((copy / "fsio.py").read_text() + "\n# edited\n")
    assert dask_runner.fingerprint_of(copy) != before
