"""A build's manifest.json nested thousands deep is one line for release and validate, and a rebuild."""

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

DEEP = b"[" * 100_000 + b"]" * 100_000


def _run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "imagenet_captions.cli", *args], capture_output=True, text=True, timeout=300
    )


@pytest.fixture
def deep_build(text_build, tmp_path) -> Path:
    build = tmp_path / "build"
    shutil.copytree(text_build, build)
    for manifest in build.rglob("manifest.json"):
        manifest.write_bytes(DEEP)
    return build


@pytest.mark.parametrize("command", ["release", "validate"])
def test_a_deeply_nested_build_manifest_is_one_line(deep_build, tmp_path, command):
    args = [command, str(deep_build)] + (["--out", str(tmp_path / "rel")] if command == "release" else [])
    done = _run(*args)
    assert "Traceback" not in done.stderr and "RecursionError" not in done.stderr, done.stderr
    assert done.returncode in (1, 2), done
    assert "nested more than 64 levels" in (done.stdout + done.stderr)
