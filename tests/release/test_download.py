"""``imagenet-captions download`` against a loopback static host: real sockets, real bytes, real faults."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import pytest
from download_helpers import manifest_for, random_files, run_download, tree, write_release

from imagenet_captions.release import official
from imagenet_captions.sources.release import iter_release_items
from imagenet_captions.testing.static_host import PIECE, Fault, StaticHost

FAST = ("--backoff", "0.01", "--backoff-max", "0.05")
BLOCK = 64 * 1024
SIZES = {
    "README.md": 1500,
    "captions/00000.parquet": 300_000,
    "captions/00001.parquet": 1_200_000,
    "shards/00000.tar": 2_000_000,
}
BIG = "shards/00000.tar"


@pytest.fixture
def release(tmp_path: Path) -> tuple[Path, dict[str, bytes]]:
    files = random_files(1, SIZES)
    root = tmp_path / "release"
    write_release(root, files)
    return root, files


@pytest.fixture
def host(release: tuple[Path, dict[str, bytes]]):
    with StaticHost(release[0]) as h:
        yield h


def _assert_complete(out: Path, release_root: Path, files: dict[str, bytes]) -> None:
    got = tree(out)
    assert got == {**files, "manifest.json": (release_root / "manifest.json").read_bytes()}


def test_clean_download_has_layout_and_manifest(capsys, tmp_path, release, host):
    root, files = release
    out = tmp_path / "out"
    rc, stdout, _ = run_download(capsys, host.url + "manifest.json", "--out", str(out), *FAST)
    assert rc == 0, stdout
    _assert_complete(out, root, files)
    assert stdout.startswith("OK: 4 files verified"), stdout
    assert host.bytes_sent() == sum(SIZES.values()) + len((root / "manifest.json").read_bytes())


def test_second_run_downloads_nothing(capsys, tmp_path, release, host):
    out = tmp_path / "out"
    assert run_download(capsys, host.url + "manifest.json", "--out", str(out), *FAST)[0] == 0
    host.clear()
    rc, stdout, _ = run_download(capsys, host.url + "manifest.json", "--out", str(out), *FAST)
    assert rc == 0
    assert [r.path for r in host.requests()] == ["manifest.json"]
    assert "4 cached" in stdout


def test_cut_connection_then_rerun_resumes(capsys, tmp_path, release, host):
    root, files = release
    out = tmp_path / "out"
    cut_at = 700_000
    host.add_fault(Fault(BIG, "cut", after=cut_at))
    args = (
        host.url + "manifest.json",
        "--out",
        str(out),
        "--attempts",
        "1",
        "--block-size",
        str(BLOCK),
        *FAST,
    )
    rc, stdout, _ = run_download(capsys, *args)
    assert rc == 1
    assert [line for line in stdout.splitlines() if line.startswith("FAILED ")] == [
        line for line in stdout.splitlines() if line.startswith(f"FAILED {BIG}: connection")
    ]
    assert not (out / BIG).exists()
    partial = (out / (BIG + ".part")).stat().st_size
    first = host.bytes_sent(BIG)
    assert first == cut_at and partial == cut_at  # what arrived before the cut was kept
    host.clear()
    rc, stdout, _ = run_download(capsys, *args)
    assert rc == 0, stdout
    second = host.bytes_sent(BIG)
    assert second < len(files[BIG])
    (req,) = host.requests(BIG)
    assert req.range == f"bytes={partial}-" and req.status == 206
    assert first + second - len(files[BIG]) <= BLOCK  # at most one block sent twice
    _assert_complete(out, root, files)
    assert not list(out.rglob("*.part*"))


def test_cut_within_one_run_is_resumed_by_the_retry(capsys, tmp_path, release, host):
    root, files = release
    out = tmp_path / "out"
    host.add_fault(Fault(BIG, "cut", after=500_000, times=2))
    rc, stdout, _ = run_download(capsys, host.url + "manifest.json", "--out", str(out), *FAST)
    assert rc == 0, stdout
    assert host.bytes_sent(BIG) == len(files[BIG])
    assert [r.range for r in host.requests(BIG)] == [None, "bytes=500000-", "bytes=1000000-"]
    _assert_complete(out, root, files)


def test_5xx_and_429_are_retried_and_retry_after_is_honoured(capsys, tmp_path, release, host):
    root, files = release
    out = tmp_path / "out"
    host.add_fault(Fault("captions/00000.parquet", "status", status=500, times=2))
    host.add_fault(Fault("captions/00001.parquet", "status", status=429, retry_after="1"))
    host.add_fault(Fault("README.md", "status", status=503))
    rc, stdout, _ = run_download(capsys, host.url + "manifest.json", "--out", str(out), *FAST)
    assert rc == 0, stdout
    _assert_complete(out, root, files)
    assert [r.status for r in host.requests("captions/00000.parquet")] == [500, 500, 200]
    first, second = host.requests("captions/00001.parquet")
    assert (first.status, second.status) == (429, 200)
    assert second.started - first.started >= 0.95


def test_retries_are_bounded(capsys, tmp_path, release, host):
    out = tmp_path / "out"
    host.add_fault(Fault("README.md", "status", status=502, times=-1))
    rc, stdout, _ = run_download(
        capsys, host.url + "manifest.json", "--out", str(out), "--attempts", "3", *FAST
    )
    assert rc == 1
    assert "FAILED README.md: HTTP 502 Bad Gateway (gave up after 3 attempts)" in stdout
    assert len(host.requests("README.md")) == 3
    assert (out / "shards/00000.tar").exists()


def test_200_to_a_ranged_request_restarts_the_file(capsys, tmp_path, release, host):
    root, files = release
    out = tmp_path / "out"
    args = (host.url + "manifest.json", "--out", str(out), "--attempts", "1", *FAST)
    host.add_fault(Fault(BIG, "cut", after=900_000))
    assert run_download(capsys, *args)[0] == 1
    host.clear()
    host.add_fault(Fault(BIG, "ignore_range"))
    rc, stdout, _ = run_download(capsys, *args)
    assert rc == 0, stdout
    (req,) = host.requests(BIG)
    assert req.range == "bytes=900000-" and req.status == 200 and req.sent == len(files[BIG])
    _assert_complete(out, root, files)


def test_416_restarts_the_file(capsys, tmp_path, release, host):
    root, files = release
    out = tmp_path / "out"
    args = (host.url + "manifest.json", "--out", str(out), "--attempts", "2", *FAST)
    host.add_fault(Fault(BIG, "cut", after=900_000, times=1))
    host.add_fault(Fault(BIG, "status", status=416, times=1))
    rc, stdout, _ = run_download(capsys, *args)
    assert rc == 0, stdout
    assert [(r.range, r.status) for r in host.requests(BIG)] == [
        (None, 200),
        ("bytes=900000-", 416),
        (None, 200),
    ]
    _assert_complete(out, root, files)


def test_partial_of_a_republished_file_is_not_resumed(capsys, tmp_path, release, host):
    root, files = release
    out = tmp_path / "out"
    args = (host.url + "manifest.json", "--out", str(out), "--attempts", "1", *FAST)
    host.add_fault(Fault(BIG, "cut", after=900_000))
    assert run_download(capsys, *args)[0] == 1
    files = {**files, BIG: random_files(9, {BIG: 2_000_000})[BIG]}
    write_release(root, files)  # a new release: same name and size, other bytes and sha256
    host.clear()
    rc, stdout, _ = run_download(capsys, *args)
    assert rc == 0, stdout
    (req,) = host.requests(BIG)
    assert req.range is None
    _assert_complete(out, root, files)


def test_bytes_that_do_not_match_are_refused(capsys, tmp_path, release, host):
    root, files = release
    manifest = manifest_for(files)
    bad = next(e for e in manifest["files"] if e["path"] == "captions/00000.parquet")
    bad["sha256"] = "0" * 64
    write_release(root, files, manifest)
    out = tmp_path / "out"
    rc, stdout, _ = run_download(capsys, host.url + "manifest.json", "--out", str(out), *FAST)
    assert rc == 1
    failed = [line for line in stdout.splitlines() if line.startswith("FAILED captions")]
    assert len(failed) == 1 and "do not match the manifest" in failed[0], stdout
    assert not (out / "captions/00000.parquet").exists()
    assert not list(out.rglob("*.part*"))
    assert (out / BIG).read_bytes() == files[BIG]
    assert len(host.requests("captions/00000.parquet")) == 1


@pytest.mark.parametrize(
    ("fault", "message"),
    [
        (Fault("captions/00001.parquet", "html", times=-1), "HTML page"),
        (Fault("captions/00001.parquet", "wrong_length", delta=17, times=-1), "Content-Length 1200017"),
    ],
)
def test_an_answer_that_cannot_be_the_file_fails_at_once(capsys, tmp_path, release, host, fault, message):
    out = tmp_path / "out"
    host.add_fault(fault)
    rc, stdout, _ = run_download(capsys, host.url + "manifest.json", "--out", str(out), *FAST)
    assert rc == 1
    (line,) = [line for line in stdout.splitlines() if line.startswith("FAILED ")]
    assert line.startswith("FAILED captions/00001.parquet: ") and message in line, line
    assert len(host.requests("captions/00001.parquet")) == 1
    assert not (out / "captions/00001.parquet").exists()


def test_html_bytes_behind_a_binary_content_type_are_refused(capsys, tmp_path):
    html = b"<!DOCTYPE html><html><body>Sign in to continue</body></html>"
    root = tmp_path / "release"
    write_release(root, {"captions/00000.parquet": html})
    # The manifest says what the real file is; the host serves an error page under its name.
    manifest = manifest_for({"captions/00000.parquet": b"PAR1" + bytes(len(html) - 4)})
    (root / "manifest.json").write_text(json.dumps(manifest))
    out = tmp_path / "out"
    with StaticHost(root) as h:
        h.throttle = 10**9  # the hand-written path, which says application/octet-stream
        rc, stdout, _ = run_download(capsys, h.url + "manifest.json", "--out", str(out), *FAST)
    assert rc == 1
    assert (
        "FAILED captions/00000.parquet: server sent an HTML page where the file's bytes were expected"
        in stdout
    )


@pytest.mark.parametrize(
    ("path", "why"),
    [
        ("../escape.txt", "contains '..'"),
        ("/etc/passwd", "is absolute"),
        ("README.md", "repeats"),
        ("captions//x", "empty or '.' component"),
        ("", "is empty"),
        ("readme.MD", "repeats 'README.md'"),
        ("README.md/inner.txt", "is also a folder of"),
        (".download-state.json", "which the downloader writes itself"),
        ("Manifest.json", "which the downloader writes itself"),
        (".lock", "which the downloader writes itself"),
        ("captions/00000.parquet.part", "ends in .part"),
        ("C:/x", "is absolute"),
    ],
)
def test_unsafe_manifest_is_refused_before_anything_is_written(capsys, tmp_path, path, why):
    files = random_files(2, {"README.md": 100})
    manifest = manifest_for(files)
    manifest["files"].append({"path": path, "size": 1, "sha256": "0" * 64})
    root = tmp_path / "release"
    write_release(root, files, manifest)
    out = tmp_path / "out"
    with StaticHost(root) as h:
        rc, stdout, stderr = run_download(capsys, h.url + "manifest.json", "--out", str(out))
        assert [r.path for r in h.requests()] == ["manifest.json"]
    assert rc == 2
    assert stdout == ""
    (line,) = stderr.strip().splitlines()
    assert (
        line.startswith("imagenet-captions download: error: manifest.json refused, nothing written")
        and why in line
    )
    assert not out.exists()
    assert not (tmp_path / "escape.txt").exists()


def test_symlink_out_of_out_is_refused(capsys, tmp_path):
    files = random_files(3, {"captions/00000.parquet": 100})
    root = tmp_path / "release"
    write_release(root, files)
    out, elsewhere = tmp_path / "out", tmp_path / "elsewhere"
    out.mkdir()
    elsewhere.mkdir()
    (out / "captions").symlink_to(elsewhere)
    rc, _, stderr = run_download(capsys, str(root / "manifest.json"), "--out", str(out))
    assert rc == 2 and "resolves outside --out" in stderr
    assert list(elsewhere.iterdir()) == [] and sorted(p.name for p in out.iterdir()) == ["captions"]


def test_bad_options_are_one_line(capsys, tmp_path):
    rc, _, stderr = run_download(
        capsys, "http://127.0.0.1:9/manifest.json", "--out", str(tmp_path), "--jobs", "0"
    )
    assert rc == 2 and stderr.strip() == "imagenet-captions download: error: --jobs must be 1..256, not 0"


def test_verify_rehashes_and_refetches_a_file_altered_on_disk(capsys, tmp_path, release, host):
    root, files = release
    out = tmp_path / "out"
    args = (host.url + "manifest.json", "--out", str(out), *FAST)
    assert run_download(capsys, *args)[0] == 0
    target = out / "captions/00001.parquet"
    st = target.stat()
    with open(target, "r+b") as f:  # bit rot: same size, same mtime
        f.seek(1000)
        f.write(b"\x00" * 8)
    os.utime(target, ns=(st.st_atime_ns, st.st_mtime_ns))
    host.clear()
    rc, stdout, _ = run_download(capsys, *args, "--verify")
    assert rc == 0, stdout
    assert [r.path for r in host.requests()] == ["manifest.json", "captions/00001.parquet"]
    assert "1 refetched" in stdout and "3 verified" in stdout
    _assert_complete(out, root, files)


def test_a_file_changed_on_disk_is_rehashed_without_verify(capsys, tmp_path, release, host):
    root, files = release
    out = tmp_path / "out"
    args = (host.url + "manifest.json", "--out", str(out), *FAST)
    assert run_download(capsys, *args)[0] == 0
    (out / "README.md").write_bytes(b"edited")
    host.clear()
    assert run_download(capsys, *args)[0] == 0
    assert [r.path for r in host.requests()] == ["manifest.json", "README.md"]
    _assert_complete(out, root, files)


def test_include_selects_files_and_keeps_the_manifest(capsys, tmp_path, release, host):
    root, files = release
    out = tmp_path / "out"
    rc, _, _ = run_download(
        capsys,
        host.url + "manifest.json",
        "--out",
        str(out),
        "--include",
        "captions/*",
        "--include",
        "README.md",
        *FAST,
    )
    assert rc == 0
    assert sorted(tree(out)) == [
        "README.md",
        "captions/00000.parquet",
        "captions/00001.parquet",
        "manifest.json",
    ]
    rc, _, stderr = run_download(capsys, host.url + "manifest.json", "--out", str(out), "--include", "nope/*")
    assert rc == 2 and "matched no file" in stderr


def test_hugging_face_resolve_redirect(capsys, tmp_path, release):
    root, files = release
    out = tmp_path / "out"
    with StaticHost(root, redirect_prefix="resolve/main") as h:
        rc, stdout, _ = run_download(capsys, h.url + "resolve/main/manifest.json", "--out", str(out), *FAST)
        served = {r.path for r in h.requests() if r.status == 200}
    assert rc == 0, stdout
    assert served == {*files, "manifest.json"}  # every file through its resolve/ URL and the CDN redirect
    _assert_complete(out, root, files)


def test_local_manifest_is_a_verified_copy(capsys, tmp_path, release):
    root, files = release
    out = tmp_path / "out"
    rc, stdout, _ = run_download(capsys, (root / "manifest.json").as_uri(), "--out", str(out))
    assert rc == 0, stdout
    _assert_complete(out, root, files)
    (root / "README.md").write_bytes(b"x" * SIZES["README.md"])  # the source went bad: refused
    rc, stdout, _ = run_download(capsys, str(root), "--out", str(tmp_path / "out2"))
    assert rc == 1 and "FAILED README.md: copied bytes do not match" in stdout
    assert not (tmp_path / "out2/README.md").exists()


def test_kill_9_mid_file_then_rerun_completes(tmp_path):
    files = random_files(4, {"README.md": 500, BIG: 6_000_000})
    root = tmp_path / "release"
    write_release(root, files)
    out = tmp_path / "out"
    part = out / (BIG + ".part")
    with StaticHost(root, throttle=3_000_000) as h:
        cmd = [
            sys.executable,
            "-m",
            "imagenet_captions.cli",
            "download",
            h.url + "manifest.json",
            "--out",
            str(out),
            "--block-size",
            str(BLOCK),
            "--no-progress",
        ]
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and not (part.exists() and part.stat().st_size > 1_500_000):
            time.sleep(0.05)
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
        assert proc.returncode == -signal.SIGKILL
        held = part.stat().st_size
        assert 1_500_000 < held < len(files[BIG])
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and not h.requests(BIG):  # the host notices the dead client
            time.sleep(0.05)
        first = h.bytes_sent(BIG)
        h.clear()
        h.throttle = None
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
        assert done.returncode == 0, done.stdout + done.stderr
        (req,) = h.requests(BIG)
        assert req.range == f"bytes={held}-" and req.sent == len(files[BIG]) - held
    assert first - held <= BLOCK + 2 * PIECE  # lost by the kill: one block, and what was on the wire
    assert tree(out) == {**files, "manifest.json": (root / "manifest.json").read_bytes()}


def _official_zip(path: Path) -> bytes:
    records = [
        {
            "filename": f"n01440764_{i}.JPEG",
            "wnid": "n01440764",
            "title": f"fish {i}",
            "description": "",
            "tags": ["tench"],
        }
        for i in range(2000)
    ]
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("imagenet_captions.json", json.dumps(records))
    return path.read_bytes()


def test_official_zip_is_verified_by_blob_id_and_resumable(capsys, tmp_path):
    mirror = tmp_path / "mirror"
    mirror.mkdir()
    data = _official_zip(mirror / "imagenet_captions.zip")
    blob = official.blob_id(data)
    out = tmp_path / "out"
    with StaticHost(mirror) as h:
        url = h.url + "imagenet_captions.zip"
        args = ("--official", "--out", str(out), "--official-url", url, "--official-blob-id", blob, *FAST)
        h.add_fault(Fault("imagenet_captions.zip", "cut", after=len(data) // 2))
        rc, stdout, _ = run_download(capsys, *args, "--attempts", "1")
        assert rc == 1 and "FAILED imagenet_captions.zip: connection" in stdout
        h.clear()
        rc, stdout, _ = run_download(capsys, *args)
        assert rc == 0, stdout
        (req,) = h.requests("imagenet_captions.zip")
        assert req.range == f"bytes={len(data) // 2}-"
        h.clear()
        assert run_download(capsys, *args)[0] == 0
        assert h.requests() == []  # verified already: nothing asked
        wrong = tmp_path / "wrong"
        rc, stdout, _ = run_download(capsys, "--official", "--out", str(wrong), "--official-url", url, *FAST)
    assert rc == 1 and f"git-blob {blob} != expected {official.BLOB_ID}" in stdout
    assert not (wrong / "imagenet_captions.zip").exists()
    zip_path = out / "imagenet_captions.zip"
    assert zip_path.read_bytes() == data
    assert sum(1 for _ in iter_release_items(zip_path)) == 2000  # what `build --metadata release:` reads


def test_official_defaults_pin_the_commit():
    assert official.URL == (
        "https://raw.githubusercontent.com/mlfoundations/imagenet-captions/"
        "5cf98361f5e67661fd5b2c6ee219567484440da9/imagenet_captions.zip"
    )
    assert official.blob_id(b"hello\n") == "ce013625030ba8dba906f756967f9e9ca394464a"  # `git hash-object`


def test_block_sink_writes_a_prefix_in_order_and_hashes_it(tmp_path):
    import asyncio
    import hashlib
    from concurrent.futures import ThreadPoolExecutor

    from imagenet_captions.release.sink import BlockSink

    data = random_files(5, {"x": 300_001})["x"]
    target = tmp_path / "x.part"
    target.write_bytes(data[:1000])  # a resumed partial: the sink continues at its end
    blocks: list[int] = []

    async def pump() -> str:
        h = hashlib.sha256(data[:1000])
        fd = os.open(target, os.O_WRONLY)
        try:
            with ThreadPoolExecutor(4) as pool:
                sink = BlockSink(pool, fd, 1000, h, 4096, blocks.append)
                for i in range(1000, len(data), 777):  # chunks that straddle blocks
                    await sink.add(data[i : i + 777])
                await sink.close()
                assert sink.pos == len(data) and sink.received == len(data) - 1000
        finally:
            os.close(fd)
        return h.hexdigest()

    assert asyncio.run(pump()) == hashlib.sha256(data).hexdigest()
    assert target.read_bytes() == data
    assert sum(blocks) == len(data) - 1000 and all(b >= 4096 for b in blocks[:-1])


@pytest.mark.parametrize(
    "bad",
    [[], {"files": 5}, {"files": ["x"]}, {"files": [{"path": 3}]}, {"shards": []}, {"shards": {"a": 1}}],
)
def test_any_json_is_refused_with_reasons_never_an_exception(bad):
    from imagenet_captions.manifest import check_manifest

    base = manifest_for({"README.md": b"x"})
    manifest = bad if isinstance(bad, list) else {**base, **bad}
    assert check_manifest(manifest)
    assert check_manifest(base) == []
