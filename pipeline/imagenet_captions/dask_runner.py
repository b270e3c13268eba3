"""Beam's DaskRunner as the build uses it: the cluster's client, the same-code check, and the
translation's partitioning.

Why apart from ``runners``: everything here exists because of Dask (how a client is made or a
local cluster started and closed, how the scheduler and workers are checked to run the client's
code, how Beam's translation is made to spread a Create over tasks and to merge partitions before
a shuffle), and it imports ``distributed`` only when a Dask build runs. ``runners`` decides which
runner; this module is the Dask one. It must never change what a stage computes.
"""

from __future__ import annotations

import functools
import hashlib
import logging
from pathlib import Path
from typing import Any

import apache_beam as beam
from apache_beam.options.pipeline_options import PipelineOptions
from apache_beam.runners.runner import PipelineResult, PipelineRunner, PipelineState

import imagenet_captions
from imagenet_captions.beam_args import (
    DASK_CONNECT_TIMEOUT_S,
    DASK_SAME_PACKAGES,
    ClusterError,
    last_value,
    local_cores,
    whole_number,
)

log = logging.getLogger(__name__)



def connect(args: list[str], default: bool = False) -> Any:
    """A Dask client for the translated options' scheduler, or one clear line if there is none.

    The build's client is the process's default (``default``): Beam's result waits on its futures
    through it."""
    from distributed import Client

    timeout = whole_number(args, "--dask_connection_timeout") or DASK_CONNECT_TIMEOUT_S
    address = last_value(args, "--dask_client_address")
    scheduler_file = last_value(args, "--dask_scheduler_file")
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
    """Install :class:`_OneLineDaskLogs` on the root logger's handlers and on the handler Dask's
    own logging configuration gives the ``distributed`` logger (which does not propagate), once."""
    handlers = [*logging.getLogger().handlers, *logging.getLogger("distributed").handlers]
    for handler in handlers:
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

    # Keyed by ``type`` as Beam's table is: a dict is invariant in its key type.
    ours: dict[type, type[transform_evaluator.DaskBagOp]] = {
        _GroupByKeyOnly: FewPartitionGroupByKey,
        _Flatten: FewPartitionFlatten,
    }

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
            bags = visitor.bags  # type: ignore[attr-defined]  # Beam types its DaskBagVisitor as its base
            return list(bags.values())[-1]

        def run_pipeline(self, pipeline: beam.Pipeline, options: PipelineOptions) -> PipelineResult:
            _one_line_dask_logs()
            args = self._args
            cluster = None
            if (
                last_value(args, "--dask_client_address") is None
                and last_value(args, "--dask_scheduler_file") is None
            ):
                from distributed import LocalCluster

                # One single-threaded process per core: DoFns hold the GIL (text cleaning, JPEG
                # checks), so threads in one process would not run them in parallel.
                cluster = LocalCluster(
                    n_workers=local_cores(), threads_per_worker=1, processes=True, dashboard_address=None
                )
                args = [*args, f"--dask_client_address={cluster.scheduler_address}"]
            try:
                client = connect(args, default=True)
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
