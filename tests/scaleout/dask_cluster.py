"""A real Dask cluster for the scale-out tests: a ``dask scheduler`` and ``dask worker`` processes.

The workers are started without a nanny, single-threaded, on 127.0.0.1, with
``IMAGENET_CAPTIONS_TRACE`` naming a file, so a test can count the units of work each process did
and a ``kill -9`` of a worker is a real loss (a nanny would restart it). Everything is stopped by
PID, also when a test or the start-up fails.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import imagenet_captions
from imagenet_captions import dask_runner, trace

DASK = Path(sys.executable).with_name("dask")
HERE = Path(__file__).resolve().parent
START_TIMEOUT_S = 60


def freeze_package(dest: Path, tries: int = 5) -> Path:
    """A copy of the package, identical to what this process fingerprints as its own code.

    Laid out as the source tree is (``pipeline/imagenet_captions`` beside ``schemas/``, which the
    package reads from there when it is not installed). Returns the folder to put first on
    PYTHONPATH. The copy is retried if the tree changed between this process's fingerprint and the
    copy (someone saved a file meanwhile)."""
    source = Path(imagenet_captions.__file__).resolve().parent
    mine = dask_runner.source_fingerprint()
    for _ in range(tries):
        shutil.rmtree(dest, ignore_errors=True)
        shutil.copytree(
            source, dest / "pipeline" / "imagenet_captions", ignore=shutil.ignore_patterns("__pycache__")
        )
        shutil.copytree(source.parents[1] / "schemas", dest / "schemas")
        if dask_runner.fingerprint_of(dest / "pipeline" / "imagenet_captions") == mine:
            return dest / "pipeline"
        time.sleep(1)
    raise RuntimeError(
        "the package changed after this test process loaded it; rerun the tests (the build would "
        "rightly refuse workers running the edited code)"
    )


def pythonpath(*first: Path) -> str:
    """PYTHONPATH for a child process: ``first``, this folder (the tests' DoFns), then the inherited one."""
    return os.pathsep.join([*map(str, first), str(HERE), *filter(None, [os.environ.get("PYTHONPATH")])])


@dataclass
class DaskCluster:
    """A running scheduler and its workers, and the trace file the workers append to."""

    address: str
    trace_file: Path
    frozen: Path
    scheduler: subprocess.Popen
    workers: list[subprocess.Popen] = field(default_factory=list)
    logs: Path = Path()

    def worker_pids(self) -> list[int]:
        return [w.pid for w in self.workers if w.poll() is None]

    def reset_trace(self) -> None:
        """Empty the trace file (the workers reopen it for every line)."""
        self.trace_file.write_text("")

    def trace(self) -> list[tuple[str, str, str]]:
        return trace.read(str(self.trace_file))

    def client(self):
        from distributed import Client

        return Client(self.address, timeout=10, set_as_default=False)

    def wait_for_workers(self, n: int) -> None:
        with self.client() as c:
            c.wait_for_workers(n, timeout=START_TIMEOUT_S)

    def start_worker(self, name: str, code: Path | None = None) -> subprocess.Popen:
        """A single-threaded worker without a nanny, importing the package from ``code`` (default: the
        session's frozen copy)."""
        log = open(self.logs / f"{name}.log", "ab")  # noqa: SIM115 -- the worker writes it until stopped
        proc = subprocess.Popen(
            [
                str(DASK),
                "worker",
                self.address,
                "--name",
                name,
                "--nworkers",
                "1",
                "--nthreads",
                "1",
                "--no-nanny",
                "--no-dashboard",
                "--host",
                "127.0.0.1",
                "--local-directory",
                str(self.logs / name),
            ],
            env={
                **os.environ,
                trace.ENV: str(self.trace_file),
                "PYTHONPATH": pythonpath(code or self.frozen),
            },
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        log.close()
        self.workers.append(proc)
        return proc

    def stop(self) -> None:
        for proc in [*self.workers, self.scheduler]:
            _kill(proc)


def _kill(proc: subprocess.Popen) -> None:
    """Stop one process we started, by its PID: TERM, then KILL if it lingers."""
    if proc.poll() is not None:
        return
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)


def _start_scheduler(logs: Path, frozen: Path) -> tuple[subprocess.Popen, str]:
    scheduler_file = logs / "scheduler.json"
    log = open(logs / "scheduler.log", "ab")  # noqa: SIM115
    proc = subprocess.Popen(
        [
            str(DASK),
            "scheduler",
            "--host",
            "127.0.0.1",
            "--port",
            "0",
            "--no-dashboard",
            "--scheduler-file",
            str(scheduler_file),
        ],
        # The scheduler unpickles the task graph, so it imports the tests' DoFns as the workers do.
        env={
            **os.environ,
            "PYTHONPATH": pythonpath(frozen),
        },
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    log.close()
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"dask scheduler exited: {(logs / 'scheduler.log').read_text()[-2000:]}")
        if scheduler_file.exists():
            try:
                return proc, json.loads(scheduler_file.read_text())["address"]
            except (json.JSONDecodeError, KeyError):
                pass  # being written
        time.sleep(0.1)
    _kill(proc)
    raise RuntimeError("dask scheduler did not write its scheduler file")


def start_cluster(root: Path, frozen: Path, workers: int = 2) -> DaskCluster:
    """A scheduler and ``workers`` workers on the ``frozen`` code, all registered; stopped again if
    start-up fails."""
    root.mkdir(parents=True, exist_ok=True)
    scheduler, address = _start_scheduler(root, frozen)
    cluster = DaskCluster(
        address=address, trace_file=root / "trace.tsv", frozen=frozen, scheduler=scheduler, logs=root
    )
    try:
        for i in range(workers):
            cluster.start_worker(f"w{i}")
        cluster.wait_for_workers(workers)
    except BaseException:
        cluster.stop()
        raise
    return cluster
