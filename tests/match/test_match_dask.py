"""``match`` on a real Dask cluster (a scheduler and two single-threaded workers, started as
tests/scaleout starts them, from its own dask_cluster.py and conftest fixtures): the same bytes as
in-process, for a Parquet corpus with balancing and a WebDataset corpus with tars, each part
matched once."""

from __future__ import annotations

import hashlib
import importlib.util
import os
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from corpus_helpers import REAL_SAMPLE, img2dataset_samples, write_parquet, write_webdataset

from imagenet_captions import trace

SCALEOUT = Path(__file__).resolve().parents[1] / "scaleout"
sys.path.insert(0, str(SCALEOUT))
from dask_cluster import DaskCluster, pythonpath  # noqa: E402

_spec = importlib.util.spec_from_file_location("scaleout_conftest", SCALEOUT / "conftest.py")
_conftest = importlib.util.module_from_spec(_spec)  # type: ignore[arg-type]
_spec.loader.exec_module(_conftest)  # type: ignore[union-attr]
frozen_code = _conftest.frozen_code
dask_cluster = _conftest.dask_cluster

pytestmark = pytest.mark.slow
TIMEOUT_S = 300


def _match(frozen: Path, corpus: str, out: Path, *extra: str, trace_file: Path | None = None) -> None:
    env = {**os.environ, "PYTHONPATH": pythonpath(frozen)}
    if trace_file is not None:
        env[trace.ENV] = str(trace_file)
    cmd = [sys.executable, "-m", "imagenet_captions.cli", "match", "--corpus", corpus, "--out", str(out), *extra]
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=TIMEOUT_S)
    assert done.returncode == 0, done.stderr[-4000:]


def _digests(out: Path) -> dict[str, str]:
    return {
        str(p.relative_to(out)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(out.rglob("*"))
        if p.is_file() and p.name not in ("report.json", ".lock")
    }


@pytest.fixture(scope="module")
def corpora(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("corpora")
    captions = pq.read_table(REAL_SAMPLE).column("TEXT").to_pylist()
    for i in range(3):
        write_parquet(root / "parquet" / f"laion-{i}.parquet", {"caption": captions[i::3], "url": captions[i::3]}, 50)
    for i in range(3):
        write_webdataset(root / "wds" / f"{i:05d}.tar", img2dataset_samples(captions[i * 40 : (i + 1) * 40], shard=i))
    return {"parquet": root / "parquet", "webdataset": root / "wds"}


@pytest.mark.parametrize(
    ("kind", "extra"),
    [("parquet", ("--max-per-class", "2", "--num-shards", "6")), ("webdataset", ("--num-shards", "3"))],
)
def test_dask_writes_the_bytes_of_the_in_process_run(
    kind: str, extra: tuple[str, ...], corpora: dict[str, Path], dask_cluster: DaskCluster, tmp_path: Path
):
    spec = f"{kind}:{corpora[kind]}"
    local = tmp_path / "local"
    _match(dask_cluster.frozen, spec, local, *extra)
    dask_cluster.reset_trace()
    remote = tmp_path / "dask"
    _match(dask_cluster.frozen, spec, remote, *extra, "--runner", "dask", "--dask-address", dask_cluster.address)
    assert _digests(remote) == _digests(local)
    if kind == "webdataset":
        assert sum(1 for name in _digests(local) if name.endswith(".tar")) == 3
    lines = dask_cluster.trace()
    matched = Counter(unit for stage, unit, _ in lines if stage == "match")
    assert matched and set(matched.values()) == {1}  # each part matched once
    assert len({worker for stage, _, worker in lines if stage == "match"}) >= 1
