"""A ``match`` killed with SIGKILL is finished by its rerun, which writes only the shards that were
not committed, into the bytes an undisturbed run writes; a second run into one ``--out`` is refused."""

from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from corpus_helpers import REAL_SAMPLE

from imagenet_captions import trace
from imagenet_captions.cli import main

pytestmark = pytest.mark.slow

SHARDS = 40
ROWS = 400_000


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The 1,000 real captions, repeated to :data:`ROWS` rows in two files."""
    captions = pq.read_table(REAL_SAMPLE).column("TEXT")
    folder = tmp_path_factory.mktemp("corpus")
    for i in range(2):
        column = pa.chunked_array([captions.combine_chunks()] * (ROWS // 2000))
        pq.write_table(pa.table({"caption": column}), folder / f"part-{i}.parquet", row_group_size=20_000)
    return folder


def _args(corpus: Path, out: Path) -> list[str]:
    return ["match", "--corpus", f"parquet:{corpus}", "--out", str(out), "--num-shards", str(SHARDS)]


def _start(corpus: Path, out: Path, trace_file: Path) -> subprocess.Popen:
    env = {**os.environ, trace.ENV: str(trace_file)}
    return subprocess.Popen(
        [sys.executable, "-m", "imagenet_captions.cli", *_args(corpus, out)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        env=env,
    )


def _outputs(out: Path) -> dict[str, str]:
    return {
        p.name: hashlib.sha256(p.read_bytes()).hexdigest()
        for p in [*sorted((out / "matches").glob("*.parquet")), out / "manifest.json"]
    }


def _writes(trace_file: Path) -> list[str]:
    return [unit for stage, unit, _ in trace.read(str(trace_file)) if stage == "write"]


def test_a_run_killed_while_writing_shards_is_finished_by_its_rerun(corpus, tmp_path, monkeypatch):
    undisturbed = tmp_path / "undisturbed"
    assert main(_args(corpus, undisturbed)) == 0
    out, first = tmp_path / "out", tmp_path / "first.tsv"
    proc = _start(corpus, out, first)
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and proc.poll() is None and len(_writes(first)) < 3:
        time.sleep(0.002)
    assert proc.poll() is None, "the run finished before it could be killed: make the corpus bigger"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    committed = len(os.listdir(out / ".commits"))
    assert not (out / "report.json").exists() and 3 <= committed < SHARDS
    for parquet in (out / "matches").glob("*.parquet"):  # a final name is always a whole file
        pq.read_table(parquet)
    second = tmp_path / "second.tsv"
    monkeypatch.setenv(trace.ENV, str(second))
    assert main(_args(corpus, out)) == 0
    rewritten = _writes(second)
    assert len(rewritten) == SHARDS - committed  # only what the killed run had not committed
    assert _outputs(out) == _outputs(undisturbed)
    assert not (out / ".commits").exists() and not (out / ".spill").exists()
    assert not [p for p in out.rglob("*") if p.name.endswith(".tmp")]


def test_a_second_run_into_one_out_is_refused_in_one_line(corpus, tmp_path, capsys):
    out, trace_file = tmp_path / "out", tmp_path / "t.tsv"
    proc = _start(corpus, out, trace_file)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and not (out / ".lock").exists():
        time.sleep(0.01)
    assert main(_args(corpus, out)) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "another match is writing to" in err[0], err
    assert proc.wait(timeout=300) == 0, proc.stderr.read().decode()[-2000:] if proc.stderr else ""
    assert len(_outputs(out)) == SHARDS + 1
