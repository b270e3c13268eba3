"""The portable path: a local Beam job service with LOOPBACK workers.

This is the Job API and Fn API that the Flink and Dataflow runners speak, so a build that runs here
submits, stages and executes the same way there (without their engines, which need Java/Docker).
"""

from __future__ import annotations

import hashlib
import socket
import subprocess
import sys
import time

import pytest

from imagenet_captions.build import BuildConfig, run_build


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def job_service():
    port = _free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "apache_beam.runners.portability.local_job_service_main", f"--port={port}"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            break
        except OSError:
            time.sleep(0.2)
    else:
        proc.kill()
        pytest.fail("the local job service did not start")
    yield f"localhost:{port}"
    proc.terminate()
    proc.wait(timeout=30)


def _digests(out):
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted((out / "shards").glob("0*"))}


def test_portable_runner_with_loopback_workers_matches_the_in_process_build(
    job_service, sample_dir, tmp_path
):
    cfg = dict(
        metadata=f"release:{sample_dir / 'imagenet_captions.json'}", imagenet=str(sample_dir / "train")
    )
    local = run_build(BuildConfig(**cfg, out=str(tmp_path / "local")))
    portable = run_build(
        BuildConfig(**cfg, out=str(tmp_path / "portable")),
        ["--runner=PortableRunner", f"--job_endpoint={job_service}", "--environment_type=LOOPBACK"],
    )
    assert portable["records"] == local["records"] and portable["accounting_problems"] == []
    assert _digests(tmp_path / "portable") == _digests(tmp_path / "local")
