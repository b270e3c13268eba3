"""The benchmarks' own code paths still run against the package (a benchmark is only run by hand, so a
changed API would otherwise go unnoticed until someone needs the figures)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parents[2] / "benchmarks"


def _tree(tmp_path: Path) -> Path:
    """The benchmarks' data shape: class folders of JPEGs, a release record for each image."""
    import io
    import json

    from PIL import Image

    from imagenet_captions.classes import wnids

    records = []
    for wnid in wnids()[:2]:
        (tmp_path / "in" / wnid).mkdir(parents=True)
        for n in range(3):
            buf = io.BytesIO()
            Image.new("RGB", (32, 24), (n * 60, 90, 30)).save(buf, "JPEG")
            (tmp_path / "in" / wnid / f"{wnid}_{n}.JPEG").write_bytes(buf.getvalue())
            records.append({"filename": f"{wnid}_{n}.JPEG", "title": "t", "tags": ["a"], "description": "", "wnid": wnid})
    (tmp_path / "in" / "imagenet_captions.json").write_text(json.dumps(records))
    return tmp_path / "in"


def test_bench_shards_writer_alone_runs(tmp_path):
    proc = subprocess.run(
        [sys.executable, str(BENCH / "bench_shards.py"), "--_writer", str(_tree(tmp_path)), str(tmp_path / "out")],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert list((tmp_path / "out").rglob("*.tar"))


def test_bench_text_reads_records_through_the_release_reader():
    proc = subprocess.run(
        [sys.executable, "-c", f"import sys; sys.path.insert(0, {str(BENCH)!r}); import bench_text; "
         "print(len(bench_text.raw_records(200, 1)))"],
        capture_output=True,
        text=True,
        timeout=300,
    )  # fmt: skip
    assert proc.returncode == 0 and proc.stdout.strip() == "200", proc.stderr[-2000:]


def test_bench_shard_writer_runs(tmp_path):
    proc = subprocess.run(
        [sys.executable, str(BENCH / "bench_shard_writer.py"), "--data", str(_tree(tmp_path)), "--repeat", "1"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "without the sha256" in proc.stdout and "with an fsync" in proc.stdout
