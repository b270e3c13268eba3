"""Fixtures of the scale-out tests: a real two-worker Dask cluster (see dask_cluster.py)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from dask_cluster import DaskCluster, freeze_package, start_cluster


@pytest.fixture(scope="session")
def frozen_code(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The folder holding the session's frozen copy of the package (put it first on PYTHONPATH)."""
    return freeze_package(tmp_path_factory.mktemp("frozen"))


@pytest.fixture(scope="module")
def dask_cluster(tmp_path_factory: pytest.TempPathFactory, frozen_code: Path) -> Iterator[DaskCluster]:
    """A two-worker cluster shared by a module's tests (each test resets the trace it reads)."""
    cluster = start_cluster(tmp_path_factory.mktemp("dask"), frozen_code)
    try:
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture
def fresh_dask_cluster(tmp_path: Path, frozen_code: Path) -> Iterator[DaskCluster]:
    """A two-worker cluster of one test's own, for tests that kill workers or start odd ones."""
    cluster = start_cluster(tmp_path / "dask", frozen_code)
    try:
        yield cluster
    finally:
        cluster.stop()
