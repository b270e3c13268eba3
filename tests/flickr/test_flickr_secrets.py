"""The API key never reaches a log line, an exception, the journal, the store or a report.

A faulty run (429s with HTML, 5xx, code 105, resets, truncated bodies, HTML pages, timeouts) is
made through the CLI at DEBUG level with the key in a key file and in the environment; then every
byte it printed and every file it wrote (Parquet decoded too: its pages are compressed) is
searched for the key. Then a run with a wrong key, whose message must not echo it either.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from imagenet_captions.flickr.fake_server import FakeFlickr, Faults

KEY = "f00dcafe5ecret0123456789abcdef42"
OTHER = "0ther5ecretkey99999999999999999"


def leaks(secret: str, root: Path, *texts: bytes) -> list[str]:
    """Where ``secret`` appears: in the texts, in any file under root, in any Parquet cell."""
    found = [f"output #{i}" for i, t in enumerate(texts) if secret.encode() in t]
    for path in root.rglob("*"):
        if not path.is_file():
            continue
        if secret.encode() in path.read_bytes():
            found.append(str(path))
        if path.suffix == ".parquet":
            table = pq.read_table(path)
            if secret in str(table.to_pylist()):
                found.append(f"{path} (decoded)")
    return found


def run_cli(args: list[str], env_key: str | None) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "FLICKR_API_KEY"}
    if env_key is not None:
        env["FLICKR_API_KEY"] = env_key
    return subprocess.run(
        [sys.executable, "-m", "imagenet_captions.cli", "-v", "harvest", *args],
        env=env,
        capture_output=True,
        timeout=120,
    )


@pytest.mark.slow
def test_no_output_or_log_of_a_faulty_run_contains_the_key(make_world, tmp_path: Path) -> None:
    urls, responses = make_world(80)
    key_file = tmp_path / "keys" / "flickr_keys.txt"
    key_file.parent.mkdir()
    key_file.write_text(f"{KEY}\n{OTHER}\n")
    out = tmp_path / "out"
    faults = Faults(
        p_5xx=0.08,
        p_105=0.08,
        p_truncated=0.05,
        p_html=0.05,
        p_reset=0.05,
        p_hang=0.03,
        hang_seconds=1.5,
        latency_median=0.005,
        latency_p99=0.3,
        seed=2,
    )
    # qps above the server's quota on purpose: 429s with HTML bodies
    with FakeFlickr(responses, keys=[KEY, OTHER], qps=15, faults=faults) as server:
        done = run_cli(
            [
                "--urls",
                str(urls),
                "--out",
                str(out),
                "--endpoint",
                server.url,
                "--qps",
                "18",
                "--timeout",
                "0.7",
                "--api-key-file",
                str(key_file),
                "--progress-every",
                "0.5",
                "--export",
                str(out / "export.json"),
                "--max-attempts",
                "12",
                "--backoff-base",
                "0.05",
                "--backoff-max",
                "0.3",
            ],
            env_key=KEY,
        )
        assert done.returncode == 0, done.stderr.decode()[-3000:]
        assert server.stats.refused > 0 and server.stats.by_kind["reset"] > 0
        assert set(server.stats.accept_times) == {KEY, OTHER}  # both keys were used
        wrong = run_cli(
            ["--urls", str(urls), "--out", str(tmp_path / "out2"), "--endpoint", server.url],
            env_key="wr0ngkey-wr0ngkey-wr0ngkey",
        )
    log = done.stdout + done.stderr
    assert b"DEBUG" in log and b"retry" in log  # the faults were logged, at DEBUG
    for secret in (KEY, OTHER):
        assert leaks(secret, out, done.stdout, done.stderr) == []
    # the search itself works: it finds the keys where they are
    assert leaks(KEY, key_file.parent) == [str(key_file)]

    assert wrong.returncode == 2
    assert b"invalid (code 100)" in wrong.stderr
    assert leaks("wr0ngkey-wr0ngkey-wr0ngkey", tmp_path / "out2", wrong.stdout, wrong.stderr) == []
