"""How a Beam pipeline is made from the pass-through Beam options of ``build`` and ``harvest``.

The commands hand every option they do not know to this module. It decides which runner runs the
graph: Beam's in-process FnApiRunner by default (the DirectRunner would download the Prism binary),
Beam's DaskRunner for ``--runner dask`` (with our ``--dask-address HOST:PORT``, or a local cluster
we start and close), and any other runner exactly as Beam would make it. It also says how many
workers the runner has (so the graph splits its reads to match), and makes ``--dry_run`` translate
the graph without running it on every runner.

Before a Dask build starts, the scheduler and every worker must be running the client's project
code: a stale worker would otherwise fail much later with an unpickling error, or worse, compute
with other code. This module must never change what a stage computes; it only chooses where.
"""

from __future__ import annotations

import functools
import hashlib
import logging
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import apache_beam as beam
from apache_beam.options.pipeline_options import PipelineOptions
from apache_beam.runners.runner import PipelineResult, PipelineRunner, PipelineState

import imagenet_captions
from imagenet_captions.errors import UsageError

log = logging.getLogger(__name__)

#: The names ``--runner`` accepts for Beam's DaskRunner (compared case-insensitively).
DASK_RUNNER_NAMES = frozenset({"dask", "daskrunner"})
#: Our option: the Dask scheduler's address, mapped to Beam's ``--dask_client_address``.
DASK_ADDRESS = "--dask-address"
#: Workers assumed for a remote runner (Portable, Flink, Dataflow) that states no count: reads are
#: split into about twice this many parts, so a cluster of up to this size has no idle worker while
#: a small one pays only a few extra tasks.
DEFAULT_REMOTE_PARALLELISM = 16
#: Seconds to wait for a Dask scheduler unless ``--dask_connection_timeout`` says otherwise.
DASK_CONNECT_TIMEOUT_S = 10
#: Packages whose versions must agree across the Dask client, scheduler and workers: the task
#: graph is pickled by the client and unpickled by the scheduler and the workers.
DASK_SAME_PACKAGES = ("python", "apache_beam", "dask", "distributed", "cloudpickle", "msgpack", "toolz")
#: Runners that implement ``--dry_run`` themselves (they translate the job and stop).
_NATIVE_DRY_RUN = frozenset({"dataflowrunner", "dataflow"})


class ClusterError(UsageError):
    """The cluster, not the data, stopped the build; the command prints it as one line (exit 2)."""


# ---------------------------------------------------------------------------------------------------
# Reading the pass-through options
# ---------------------------------------------------------------------------------------------------


def _option_values(args: list[str], name: str) -> Iterator[tuple[int, int, str | None]]:
    """``(index, width, value)`` of each ``name VALUE`` / ``name=VALUE`` in ``args``.

    Width is how many list items the option took, so callers can drop it; a bare flag has value
    None and width 1."""
    i = 0
    while i < len(args):
        arg = args[i]
        if arg == name:
            has_value = i + 1 < len(args) and not args[i + 1].startswith("--")
            yield i, 2 if has_value else 1, args[i + 1] if has_value else None
            i += 2 if has_value else 1
            continue
        if arg.startswith(name + "="):
            yield i, 1, arg[len(name) + 1 :]
        i += 1


def _last_value(args: list[str], name: str) -> str | None:
    """The value of the last ``name`` in ``args`` (argparse's rule: the last one wins)."""
    found = [value for _, _, value in _option_values(args, name)]
    return found[-1] if found else None


def _given(args: list[str], name: str) -> bool:
    return any(True for _ in _option_values(args, name))


def _without(args: list[str], name: str) -> list[str]:
    drop = {i + k for i, width, _ in _option_values(args, name) for k in range(width)}
    return [a for i, a in enumerate(args) if i not in drop]


def _runner_name(beam_args: list[str]) -> str | None:
    """The ``--runner`` given, lower-cased, or None; ``--dask-address`` alone means Dask."""
    runner = _last_value(beam_args, "--runner")
    if runner is None:
        return "dask" if _given(beam_args, DASK_ADDRESS) else None
    return runner.lower()


def is_dask(beam_args: list[str]) -> bool:
    """Whether these options choose Beam's DaskRunner."""
    return _runner_name(beam_args) in DASK_RUNNER_NAMES


def is_dry_run(beam_args: list[str]) -> bool:
    """Whether ``--dry_run`` asks to translate the graph without running it.

    Beam declares ``--dry_run`` as taking a value and treats any non-empty string as true, so
    ``--dry_run False`` would silently submit nothing on Dataflow; here a bare flag means true and
    the value must be a boolean word."""
    found = [value for _, _, value in _option_values(beam_args, "--dry_run")]
    if not found:
        return False
    value = found[-1]
    if value is None or value.lower() in ("true", "1", "yes"):
        return True
    if value.lower() in ("false", "0", "no"):
        return False
    raise UsageError(f"--dry_run takes true or false, not {value!r}")


def _positive_int(beam_args: list[str], name: str) -> int | None:
    value = _last_value(beam_args, name)
    if value is None:
        return None
    try:
        number = int(value)
    except ValueError:
        raise UsageError(f"{name} must be a whole number, not {value!r}") from None
    return number


def local_cores() -> int:
    """The cores this process may use (a SLURM or container limit, not the machine's total)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def beam_options(beam_args: list[str]) -> list[str]:
    """The options as Beam must see them: ours translated, ``--dry_run`` normalised.

    ``--runner dask`` becomes Beam's DaskRunner, ``--dask-address`` its ``--dask_client_address``,
    and Create's elements become one Dask partition each (``--dask_partition_size 1``) unless the
    user chose the partitioning: the graph creates one element per metadata part and per class
    folder precisely so that each is its own task; Beam's default (at least 128 elements a
    partition) would put a whole listing on one worker."""
    dry = is_dry_run(beam_args)
    args = _without(beam_args, "--dry_run")
    if dry:
        args.append("--dry_run=True")
    if not is_dask(beam_args):
        if _given(beam_args, DASK_ADDRESS):
            raise UsageError(
                f"{DASK_ADDRESS} needs --runner dask, not --runner {_last_value(args, '--runner')}"
            )
        return args
    address = _last_value(args, DASK_ADDRESS)
    if _given(args, DASK_ADDRESS) and not address:
        raise UsageError(f"{DASK_ADDRESS} needs HOST:PORT")
    args = _without(_without(args, DASK_ADDRESS), "--runner")
    if address is not None:
        args.append(f"--dask_client_address={address}")
    if _last_value(args, "--dask_partition_size") is None and _last_value(args, "--dask_npartitions") is None:
        args.append("--dask_partition_size=1")
    return args


# ---------------------------------------------------------------------------------------------------
# Making the pipeline
# ---------------------------------------------------------------------------------------------------


def make_pipeline(beam_args: list[str]) -> beam.Pipeline:
    """The pipeline the command's pass-through options ask for (see the module docstring)."""
    args = beam_options(beam_args)
    options = PipelineOptions(args)
    runner = _runner_name(beam_args)
    if is_dry_run(beam_args) and runner not in _NATIVE_DRY_RUN:
        return beam.Pipeline(runner=TranslateOnlyRunner(), options=options)
    if runner in DASK_RUNNER_NAMES:
        return beam.Pipeline(runner=dask_runner(args), options=options)
    if runner is not None:
        return beam.Pipeline(options=options)
    from apache_beam.runners.portability.fn_api_runner import FnApiRunner

    return beam.Pipeline(runner=FnApiRunner(), options=options)


class TranslateOnlyRunner(PipelineRunner):
    """``--dry_run`` for runners that would otherwise run the graph (all but Dataflow).

    It translates the pipeline to its portable form, which catches what a remote runner would
    reject at submission (unpicklable DoFns, missing coders), and runs nothing."""

    def run_pipeline(self, pipeline: beam.Pipeline, options: PipelineOptions) -> PipelineResult:
        pipeline.to_runner_api()
        result = PipelineResult(PipelineState.DONE)
        result.wait_until_finish = lambda duration=None: PipelineState.DONE  # type: ignore[method-assign]
        return result


def stage_names(pipeline: beam.Pipeline) -> list[str]:
    """The labels of a constructed pipeline's top-level transforms and of the steps inside our own
    composites, in order.

    What ``build --dry_run`` prints: the stages a user recognises. Beam's own composites (Create,
    Reshuffle, combiners) are not opened: their insides are Beam's, and differ between releases."""
    names: list[str] = []

    def ours(node: beam.pipeline.AppliedPTransform) -> bool:
        return not type(node.transform).__module__.startswith("apache_beam.")

    class Visitor(beam.pipeline.PipelineVisitor):
        def _note(self, node: beam.pipeline.AppliedPTransform) -> None:
            parent = node.parent
            if parent is None or not node.full_label:
                return
            chain = []
            while parent is not None and parent.parent is not None:
                chain.append(parent)
                parent = parent.parent
            if all(ours(outer) for outer in chain):
                names.append(node.full_label)

        def enter_composite_transform(self, node: beam.pipeline.AppliedPTransform) -> None:
            self._note(node)

        def visit_transform(self, node: beam.pipeline.AppliedPTransform) -> None:
            self._note(node)

    pipeline.visit(Visitor())
    return names


# ---------------------------------------------------------------------------------------------------
# How many workers
# ---------------------------------------------------------------------------------------------------


def parallelism(beam_args: list[str]) -> int:
    """How many workers (threads that run DoFns at once) the chosen runner has.

    The graph splits its reads into about twice this many parts, so every worker has work right
    after the read and a slow part does not hold the whole stage back."""
    runner = _runner_name(beam_args)
    if runner is None or runner in ("directrunner", "direct", "fnapirunner", "bundlebaseddirectrunner"):
        workers = _positive_int(beam_args, "--direct_num_workers")
        if workers is None:
            return 1
        if workers < 0:
            raise UsageError(f"--direct_num_workers must be 0 (all cores) or more, not {workers}")
        return workers or local_cores()
    if runner in DASK_RUNNER_NAMES:
        args = beam_options(beam_args)
        address = _last_value(args, "--dask_client_address")
        scheduler_file = _last_value(args, "--dask_scheduler_file")
        if address is None and scheduler_file is None:
            return local_cores()
        with _connect(args) as client:
            return max(1, sum(client.nthreads().values()))
    for name in ("--parallelism", "--max_num_workers", "--num_workers"):
        stated = _positive_int(beam_args, name)
        if stated is not None and stated > 0:
            return stated * _machine_cores(beam_args) if name != "--parallelism" else stated
    return DEFAULT_REMOTE_PARALLELISM


def _machine_cores(beam_args: list[str]) -> int:
    """vCPUs of a Dataflow ``--worker_machine_type`` like ``n2-standard-8`` (one SDK thread each)."""
    machine = _last_value(beam_args, "--worker_machine_type") or _last_value(beam_args, "--machine_type")
    if machine:
        tail = machine.rsplit("-", 1)[-1]
        if tail.isdigit():
            return int(tail)
    return 1


# ---------------------------------------------------------------------------------------------------
# Dask
# ---------------------------------------------------------------------------------------------------


def _connect(args: list[str], default: bool = False) -> Any:
    """A Dask client for the translated options' scheduler, or one clear line if there is none.

    The build's client is the process's default (``default``): Beam's result waits on its futures
    through it."""
    from distributed import Client

    timeout = _positive_int(args, "--dask_connection_timeout") or DASK_CONNECT_TIMEOUT_S
    address = _last_value(args, "--dask_client_address")
    scheduler_file = _last_value(args, "--dask_scheduler_file")
    try:
        return Client(address, scheduler_file=scheduler_file, timeout=timeout, set_as_default=default)
    except (OSError, TimeoutError, ValueError) as e:
        where = address or f"the scheduler file {scheduler_file}"
        raise ClusterError(f"cannot reach the Dask scheduler at {where}: {e}") from None


@functools.lru_cache(maxsize=1)
def source_fingerprint() -> str:
    """The fingerprint of the package this process imported, computed once: a worker is compared
    by the code it loaded at its first check, not by files edited since."""
    return fingerprint_of(Path(imagenet_captions.__file__).resolve().parent)


def fingerprint_of(root: Path) -> str:
    """A digest of every file of a package tree (code and bundled data).

    The version string alone misses an edited checkout or a worker image built from another
    commit; the files are what the workers will actually execute."""
    digest = hashlib.sha256()
    for path in sorted(root.rglob("*")):
        if not path.is_file() or "__pycache__" in path.parts or path.suffix in (".pyc", ".pyo"):
            continue
        digest.update(path.relative_to(root).as_posix().encode() + b"\0")
        digest.update(hashlib.sha256(path.read_bytes()).digest())
    return digest.hexdigest()[:16]


def code_identity() -> dict[str, str]:
    """What this process runs: the project's version and source fingerprint (run on each worker)."""
    return {"version": imagenet_captions.__version__, "fingerprint": source_fingerprint()}


def _describe(ident: Any) -> dict[str, str]:
    if isinstance(ident, dict):
        return ident
    return {"error": f"{type(ident).__name__}: {ident}"}


def check_same_code(client: Any) -> None:
    """Refuse a cluster whose scheduler or workers run other code or other core packages.

    One line names every process that differs and how, so the user knows which to restart."""
    mine = code_identity()
    theirs: dict[str, dict[str, str]] = {}
    try:
        theirs["scheduler"] = _describe(client.run_on_scheduler(code_identity))
    except Exception as e:  # noqa: BLE001 -- whatever the scheduler raised, it cannot run our code
        theirs["scheduler"] = _describe(e)
    for worker, ident in client.run(code_identity, on_error="return").items():
        theirs[f"worker {worker}"] = _describe(ident)
    if not [name for name in theirs if name.startswith("worker ")]:
        raise ClusterError("the Dask cluster has no workers")
    differences = []
    for name, ident in theirs.items():
        if "error" in ident:
            differences.append(f"{name} cannot run imagenet_captions ({ident['error']})")
            continue
        what = [
            f"{key} {ident.get(key)} (client {mine[key]})"
            for key in ("version", "fingerprint")
            if ident.get(key) != mine[key]
        ]
        if what:
            differences.append(f"{name} runs imagenet_captions {', '.join(what)}")
    versions = client.get_versions(packages=["apache_beam"])
    here = versions["client"]["packages"]
    for name, info in [
        ("scheduler", versions["scheduler"]),
        *((f"worker {w}", v) for w, v in versions["workers"].items()),
    ]:
        if not isinstance(info, dict) or "packages" not in info:
            continue
        pkgs = info["packages"]
        what = [
            f"{p} {pkgs.get(p)} (client {here.get(p)})"
            for p in DASK_SAME_PACKAGES
            if pkgs.get(p) != here.get(p)
        ]
        if what:
            differences.append(f"{name} has {', '.join(what)}")
    if differences:
        raise ClusterError(
            "the Dask cluster does not run this client's code; restart these with the same installation: "
            + "; ".join(differences)
        )


class _OneLineDaskLogs(logging.Filter):
    """Dask's client logs each failed reconnection with a traceback; the build reports the loss in
    one line of its own, so Dask's records keep their message and lose the traceback."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.name.startswith("distributed") and record.exc_info:
            record.msg = (
                f"{record.getMessage()} ({record.exc_info[0].__name__ if record.exc_info[0] else 'error'})"
            )
            record.args = ()
            record.exc_info = None
            record.exc_text = None
        return True


def _one_line_dask_logs() -> None:
    """Install :class:`_OneLineDaskLogs` on the root logger's handlers (once)."""
    for handler in logging.getLogger().handlers:
        if not any(isinstance(f, _OneLineDaskLogs) for f in handler.filters):
            handler.addFilter(_OneLineDaskLogs())


class _ClosingResult(PipelineResult):
    """Beam's Dask result, closing our client (and local cluster) once the build has ended.

    Beam's DaskRunner leaves its client open; and a lost worker surfaces as a Dask exception with
    a long traceback, which is turned into one line that says what to do."""

    def __init__(self, inner: Any, cluster: Any):
        super().__init__(PipelineState.RUNNING)
        self._inner = inner
        self._cluster = cluster

    def wait_until_finish(self, duration: int | None = None) -> str:
        from concurrent.futures import CancelledError

        from distributed import KilledWorker

        try:
            try:
                self._state = self._inner.wait_until_finish(duration)
            except KilledWorker as e:
                raise ClusterError(
                    f"Dask workers died while running {e.args[0] if e.args else 'a task'}: rerun the same "
                    "command; shards already written are kept"
                ) from None
            except (OSError, CancelledError) as e:
                raise ClusterError(
                    f"lost the Dask scheduler ({type(e).__name__}: {e}): rerun the same command; shards "
                    "already written are kept"
                ) from None
            # Beam's result reports success when the scheduler went away and cancelled the build's
            # futures without raising: a build is done only if its last step's futures finished.
            unfinished = sorted({f.status for f in self._inner.futures if f.status != "finished"})
            if unfinished:
                raise ClusterError(
                    f"the Dask scheduler ended the build before it finished (its results are {', '.join(unfinished)}): "
                    "rerun the same command; shards already written are kept"
                )
        except ClusterError:
            self._state = PipelineState.FAILED
            raise
        finally:
            self._close()
        return self._state

    def cancel(self) -> str:
        try:
            return self._inner.cancel()
        finally:
            self._close()

    def _close(self) -> None:
        self._inner.client.close()
        if self._cluster is not None:
            self._cluster.close()
            self._cluster = None


def dask_runner(args: list[str]) -> PipelineRunner:
    """Our DaskRunner for the translated options (Dask is imported only when it is chosen)."""
    return _dask_runner_class()(args)


def group_partitions(threads: int) -> int:
    """Dask partitions a Flatten's or a GroupByKey's output is cut into, for ``threads`` worker threads.

    Beam's translation keeps the input's partition count: the graph lists one class folder a
    partition (so listing spreads), and every step after the Flatten of all units would then be
    ~1,000 tasks, and Dask's task shuffle over ~1,000 partitions two rounds of ~32,000 tasks: more
    scheduler time than the build's work. Concatenating into a few partitions per thread there
    keeps each later step to a few tasks per thread (the shuffle to one round), and still gives
    every thread several shard groups to write."""
    return max(2, 4 * threads)


@functools.lru_cache(maxsize=1)
def _dask_runner_class() -> type:
    import dask
    from apache_beam.runners.dask import transform_evaluator
    from apache_beam.runners.dask.dask_runner import DaskOptions, DaskRunner, DaskRunnerResult
    from apache_beam.runners.dask.overrides import _Flatten, _GroupByKeyOnly, dask_overrides

    def few(bag: Any, wanted: int | None) -> Any:
        return bag.repartition(npartitions=wanted) if wanted and bag.npartitions > wanted else bag

    class FewPartitionGroupByKey(transform_evaluator.GroupByKey):
        """Beam's GroupByKey translation, on its input concatenated into ``bag_kwargs["groups"]``
        partitions (see :func:`group_partitions`)."""

        def apply(self, input_bag: Any, side_inputs: Any = None) -> Any:
            return super().apply(few(input_bag, self.bag_kwargs.get("groups")), side_inputs)

    class FewPartitionFlatten(transform_evaluator.Flatten):
        """Beam's Flatten translation, its output concatenated into ``bag_kwargs["groups"]`` partitions."""

        def apply(self, input_bag: Any, side_inputs: Any = None) -> Any:
            return few(super().apply(input_bag, side_inputs), self.bag_kwargs.get("groups"))

    ours = {_GroupByKeyOnly: FewPartitionGroupByKey, _Flatten: FewPartitionFlatten}

    class _ProjectDaskRunner(DaskRunner):
        """Beam's DaskRunner, on a cluster checked to run our code (a local one if none is named)."""

        def __init__(self, args: list[str]):
            super().__init__()
            self._args = list(args)

        @staticmethod
        def translate(pipeline: beam.Pipeline, options: PipelineOptions, threads: int) -> Any:
            """The Dask bag whose computation runs the whole pipeline (Beam computes only the last)."""
            bag_kwargs = DaskOptions._extract_bag_kwargs(
                options.view_as(DaskOptions).get_all_options(drop_default=True, current_only=True)
            )
            bag_kwargs["groups"] = group_partitions(threads)
            pipeline.replace_all(dask_overrides())
            visitor = DaskRunner.to_dask_bag_visitor(bag_kwargs)
            # Beam's visitor looks translations up in its module's table; ours replace the
            # GroupByKey and Flatten entries for this one visit only.
            table = transform_evaluator.TRANSLATIONS
            originals = {kind: table[kind] for kind in ours}
            table.update(ours)
            try:
                pipeline.visit(visitor)
            finally:
                table.update(originals)
            return list(visitor.bags.values())[-1]

        def run_pipeline(self, pipeline: beam.Pipeline, options: PipelineOptions) -> PipelineResult:
            _one_line_dask_logs()
            args = self._args
            cluster = None
            if (
                _last_value(args, "--dask_client_address") is None
                and _last_value(args, "--dask_scheduler_file") is None
            ):
                from distributed import LocalCluster

                # One single-threaded process per core: DoFns hold the GIL (text cleaning, JPEG
                # checks), so threads in one process would not run them in parallel.
                cluster = LocalCluster(
                    n_workers=local_cores(), threads_per_worker=1, processes=True, dashboard_address=None
                )
                args = [*args, f"--dask_client_address={cluster.scheduler_address}"]
            try:
                client = _connect(args, default=True)
                try:
                    check_same_code(client)
                    threads = sum(client.nthreads().values())
                    # The client is the default while the graph is made: Dask then picks the task
                    # shuffle, which works across machines (its disk shuffle needs one shared disk).
                    with client.as_current():
                        futures = client.compute(dask.optimize(self.translate(pipeline, options, threads)))
                except BaseException:
                    client.close()
                    raise
            except BaseException:
                if cluster is not None:
                    cluster.close()
                raise
            return _ClosingResult(DaskRunnerResult(client, futures), cluster)

    return _ProjectDaskRunner
