"""The manifest on its way in: any size a release can have, over any host, and any bad one refused in one line.

The downloader reads a manifest before it writes anything; these are the manifests that used to
break it (a large one over HTTP, a redirect loop, a nesting that exhausts the stack, a JSON list),
each answered now by the whole manifest or by one line and exit 2.
"""

from __future__ import annotations

import hashlib
import http.server
import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from functools import partial
from pathlib import Path

import pytest
from download_helpers import manifest_for, run_download, write_release

from imagenet_captions import cli
from imagenet_captions.errors import UsageError
from imagenet_captions.manifest import MAX_NESTING, read_manifest
from imagenet_captions.testing.static_host import Fault, StaticHost

FAST = ("--backoff", "0.01", "--backoff-max", "0.05")
SHARDS = 100_000


def _big_release(root: Path) -> tuple[bytes, bytes]:
    """A release whose manifest lists ``SHARDS`` shard Parquet files (~12 MB of JSON), of which only
    the first exists: the test fetches the manifest whole and that one file (``--include``)."""
    first = b"PAR1" + bytes(range(256)) * 40
    manifest = manifest_for({})
    manifest["files"] = [
        {
            "path": f"captions/{i:06d}.parquet",
            "size": len(first),
            "sha256": hashlib.sha256(first if i == 0 else i.to_bytes(4, "big")).hexdigest(),
        }
        for i in range(SHARDS)
    ]
    root.mkdir()
    (root / "captions").mkdir()
    (root / "captions/000000.parquet").write_bytes(first)
    data = json.dumps(manifest, indent=1).encode()
    (root / "manifest.json").write_bytes(data)
    return data, first


@contextmanager
def _python_http_server(root: Path) -> Iterator[str]:
    """``python -m http.server`` on loopback: no Range, no chunking, a connection closed per answer."""

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), partial(Quiet, directory=str(root)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(10)


@pytest.mark.slow
@pytest.mark.parametrize("host_kind", ["static", "static-chunked", "http.server"])
def test_a_manifest_of_100000_shards_downloads_whole(capsys, tmp_path, host_kind):
    data, first = _big_release(tmp_path / "release")
    out = tmp_path / "out"
    args = ("--out", str(out), "--include", "captions/000000.parquet", *FAST)
    if host_kind == "http.server":
        with _python_http_server(tmp_path / "release") as url:
            rc, stdout, stderr = run_download(capsys, url + "manifest.json", *args)
    else:
        with StaticHost(tmp_path / "release") as h:
            if host_kind == "static-chunked":
                h.add_fault(Fault("manifest.json", "chunked"))
            rc, stdout, stderr = run_download(capsys, h.url + "manifest.json", *args)
            (req,) = h.requests("manifest.json")
            chunked = host_kind == "static-chunked"
            assert req.sent == len(data) and req.fault == ("chunked" if chunked else None)
    assert rc == 0, stdout + stderr
    assert (out / "manifest.json").read_bytes() == data
    assert (out / "captions/000000.parquet").read_bytes() == first
    assert stdout.startswith("OK: 1 files verified"), stdout


def test_a_manifest_cut_short_is_retried_and_never_half_read(capsys, tmp_path):
    root = tmp_path / "release"
    files = {"README.md": b"hello\n"}
    write_release(root, files)
    manifest = manifest_for(files)
    manifest["build"] = {"padding": "x" * 300_000}  # more than one read of aiohttp's buffer
    data = json.dumps(manifest).encode()
    (root / "manifest.json").write_bytes(data)
    out = tmp_path / "out"
    with StaticHost(root) as h:
        h.add_fault(Fault("manifest.json", "cut", after=200_000))
        rc, stdout, _ = run_download(capsys, h.url + "manifest.json", "--out", str(out), *FAST)
        assert [r.sent for r in h.requests("manifest.json")] == [200_000, len(data)]
    assert rc == 0, stdout
    assert (out / "manifest.json").read_bytes() == data


def test_a_manifest_url_redirecting_in_a_loop_is_one_line(capsys, tmp_path):
    root = tmp_path / "release"
    write_release(root, {"README.md": b"hello\n"})
    out = tmp_path / "out"
    with StaticHost(root) as h:
        h.add_fault(Fault("manifest.json", "redirect_loop", times=-1))
        rc, stdout, stderr = run_download(capsys, h.url + "manifest.json", "--out", str(out), *FAST)
        redirects = len(h.requests("manifest.json"))
    assert rc == 2, stdout + stderr
    assert stdout == ""
    (line,) = stderr.strip().splitlines()
    assert line.startswith("imagenet-captions download: error: ") and "redirect" in line, line
    assert h.url + "manifest.json" in line
    assert 1 < redirects <= 11  # aiohttp's own bound (10 redirects), asked once: a loop is not retried
    assert not out.exists()


def _nested(depth: int) -> bytes:
    return b"[" * depth + b"]" * depth


@pytest.mark.parametrize("depth", [MAX_NESTING + 1, 100_000])
def test_a_deeply_nested_manifest_is_refused_in_one_line(capsys, tmp_path, depth):
    root = tmp_path / "release"
    root.mkdir()
    (root / "manifest.json").write_bytes(_nested(depth))
    out = tmp_path / "out"
    rc, stdout, stderr = run_download(capsys, str(root / "manifest.json"), "--out", str(out))
    assert rc == 2
    (line,) = stderr.strip().splitlines()
    assert f"nested more than {MAX_NESTING} levels deep" in line, line
    assert not out.exists()
    with StaticHost(root) as h:
        rc, stdout, stderr = run_download(capsys, h.url + "manifest.json", "--out", str(out))
    assert rc == 2 and f"nested more than {MAX_NESTING} levels deep" in stderr
    assert not out.exists()
    with pytest.raises(UsageError, match="nested more than"):
        read_manifest(str(root))


def test_nesting_up_to_the_limit_is_only_judged_by_the_format(tmp_path):
    """Brackets inside strings do not count; a value nested exactly MAX_NESTING deep is parsed (and
    then refused by the format's rules, not by the depth check)."""
    manifest = manifest_for({"README.md": b"hello\n"})
    manifest["build"] = {"note": "[[[[{{{{" * 100}
    (tmp_path / "manifest.json").write_text(json.dumps(manifest))
    assert read_manifest(str(tmp_path))["build"]["note"].startswith("[[[[")
    (tmp_path / "manifest.json").write_bytes(_nested(MAX_NESTING))
    with pytest.raises(UsageError, match="not a JSON object"):
        read_manifest(str(tmp_path))


@pytest.mark.parametrize("value", [[], [1, 2], "text", 3, None])
def test_a_manifest_that_is_not_an_object_is_refused_in_one_line(capsys, tmp_path, value):
    root = tmp_path / "release"
    root.mkdir()
    (root / "manifest.json").write_text(json.dumps(value))
    out = tmp_path / "out"
    rc, _, stderr = run_download(capsys, str(root), "--out", str(out))
    assert rc == 2 and stderr.strip().endswith("not a JSON object"), stderr
    with StaticHost(root) as h:
        rc, _, stderr = run_download(capsys, h.url + "manifest.json", "--out", str(out))
    assert rc == 2 and stderr.strip().endswith("not a JSON object"), stderr
    assert not out.exists()
    with pytest.raises(UsageError, match="not a JSON object"):
        read_manifest(str(root))


def test_validate_against_a_manifest_that_is_a_list_is_one_line(capsys, tmp_path, text_build):
    (tmp_path / "manifest.json").write_text("[]")
    capsys.readouterr()
    rc = cli.main(["validate", str(text_build), "--against", str(tmp_path / "manifest.json")])
    _, err = capsys.readouterr()
    assert rc == 2
    (line,) = err.strip().splitlines()
    assert line.startswith("imagenet-captions validate: error: ") and "not a JSON object" in line


def test_release_into_a_folder_whose_manifest_is_a_list_is_one_line(capsys, tmp_path, text_build):
    out = tmp_path / "release"
    out.mkdir()
    (out / "manifest.json").write_text("[]")
    capsys.readouterr()
    rc = cli.main(["release", str(text_build), "--out", str(out), "--version", "1.0.0"])
    _, err = capsys.readouterr()
    assert rc == 2
    (line,) = err.strip().splitlines()
    assert line.startswith("imagenet-captions release: error: "), line
