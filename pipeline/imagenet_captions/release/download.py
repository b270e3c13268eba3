"""``imagenet-captions download``: fetch a release (or the official 2022 zip), verified and resumable.

A release is a folder on any static host with ``manifest.json`` at its root, listing every other
file's relative path, size and sha256. This command fetches the manifest, refuses it whole if any
path could land outside ``--out``, then fetches the files in parallel, each into ``<name>.part``
beside a sidecar (``<name>.part.json``) naming the file it belongs to, and renames it into place
only once its size and hash match. So:

- an interrupted run (a dropped connection, Ctrl-C, ``kill -9``) resumes with ``Range`` from what is
  on disk, and only when the partial belongs to the same manifest entry; the partial is re-hashed
  first, since a hash state cannot be saved portably;
- a file under its final name has been verified; a file that never verifies is never there;
- a second run asks the network for nothing already verified: ``<out>/.download-state.json``
  records each verified file's size, mtime and digest, and a file whose size or mtime changed is
  re-hashed (``--verify`` re-hashes them all and refetches what is wrong).

It must never write outside ``--out``, never follow a manifest it has not checked, and never retry
without bound: an answer that cannot be the file (an HTML page, a wrong length, a 404) fails that
file at once; 5xx, 429, timeouts and dropped connections are retried with jittered backoff.
Exit status: 0 when every requested file is present and verified; 1 otherwise, one line per file
that failed and why; 2 for a bad command line or an unsafe or malformed manifest.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import email.utils
import fnmatch
import hashlib
import json
import os
import random
import re
import sys
import time
import urllib.parse
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, BinaryIO

from imagenet_captions import __version__
from imagenet_captions.errors import UsageError
from imagenet_captions.fsio import sha256_file
from imagenet_captions.release import official as official_release

MANIFEST = "manifest.json"
STATE = ".download-state.json"
FORMAT = "imagenet-captions-release"
FORMAT_VERSION = 1
MAX_MANIFEST_BYTES = 64 << 20
#: a hidden sidecar/partial name must never collide with a published file
RESERVED_SUFFIXES = (".part", ".part.json")
HTML_SUFFIXES = (".html", ".htm")
RETRY_STATUSES = frozenset({408, 425, 429, 500, 502, 503, 504})
STATE_SAVE_EVERY_S = 2.0
#: starts from byte 0 a file may need in one run (a 416, a partial that did not verify)
MAX_RESTARTS = 3
#: aiohttp's per-response buffer: large, so a fast sender is not paused (an epoll re-registration) per 128 KiB
READ_BUFFER = 4 << 20


@dataclass(frozen=True)
class DownloadOptions:
    """One download's settings; ``source`` is a manifest URL/path, or None with ``official``."""

    out: str
    source: str | None = None
    include: tuple[str, ...] = ()
    jobs: int = 8
    verify: bool = False
    attempts: int = 6
    backoff: float = 0.5
    backoff_max: float = 30.0
    max_retry_after: float = 600.0
    timeout: float = 60.0
    block_size: int = 1 << 20
    progress: bool = True
    official: bool = False
    official_url: str = official_release.URL
    official_blob_id: str = official_release.BLOB_ID

    def __post_init__(self) -> None:
        if not self.out:
            raise UsageError("--out is required")
        if self.official == (self.source is not None):
            raise UsageError("give a manifest URL or path, or --official (one of the two)")
        if self.official and self.include:
            raise UsageError("--include selects files of a release manifest; --official fetches one zip")
        if not 1 <= self.jobs <= 256:
            raise UsageError(f"--jobs must be 1..256, not {self.jobs}")
        if self.attempts < 1:
            raise UsageError(f"--attempts must be at least 1, not {self.attempts}")
        if self.backoff < 0 or self.backoff_max < self.backoff or self.max_retry_after < 0:
            raise UsageError("--backoff must be >= 0 and <= --backoff-max; --max-retry-after >= 0")
        if self.timeout <= 0:
            raise UsageError(f"--timeout must be positive, not {self.timeout}")
        if not 4096 <= self.block_size <= 1 << 30:
            raise UsageError(f"--block-size must be 4096..1 GiB, not {self.block_size}")
        if not re.fullmatch(r"[0-9a-f]{40}", self.official_blob_id):
            raise UsageError(
                f"--official-blob-id must be 40 lowercase hex digits, not {self.official_blob_id!r}"
            )


@dataclass(frozen=True)
class FileSpec:
    """One file to fetch: where it lands, where it comes from, and what proves it is right."""

    path: str
    source: str
    size: int | None
    algo: str  # "sha256" or "git-blob"
    digest: str

    @property
    def identity(self) -> dict[str, Any]:
        """What a partial must belong to; the URL is left out so a partial survives a mirror change."""
        return {"path": self.path, "size": self.size, "algo": self.algo, "digest": self.digest}

    def new_hasher(self, size: int) -> Any:
        return official_release.blob_hasher(size) if self.algo == "git-blob" else hashlib.sha256()


@dataclass
class Outcome:
    path: str
    ok: bool
    how: str  # "fetched", "cached", "verified", "refetched", or the reason it failed
    fetched_bytes: int = 0


class _Retry(Exception):
    """Worth another attempt after a backoff (5xx, 429, a timeout, a dropped connection)."""

    def __init__(self, reason: str, retry_after: float | None = None) -> None:
        super().__init__(reason)
        self.retry_after = retry_after


class _Restart(Exception):
    """The partial is useless (416, a file changed, a mismatch after a resume): start it from byte 0."""


class _Fatal(Exception):
    """The answer cannot be the file and asking again will not change that: the file fails now."""


# -- the manifest --------------------------------------------------------------------------------


def _is_url(source: str) -> bool:
    return urllib.parse.urlsplit(source).scheme.lower() in ("http", "https")


def _local_path(source: str) -> str:
    """A manifest path, a release folder, or a file:// URL, as a local manifest path."""
    if source.lower().startswith("file://"):
        source = urllib.parse.unquote(urllib.parse.urlsplit(source).path)
    return os.path.join(source, MANIFEST) if os.path.isdir(source) else source


def _path_problem(path: Any) -> str | None:
    """Why a manifest path is unsafe or unusable, or None when it is a plain relative POSIX path."""
    if not isinstance(path, str) or not path:
        return "is empty or not a string"
    if "\\" in path or "\0" in path or any(ord(c) < 32 for c in path):
        return "contains a backslash or a control character"
    if path.startswith("/") or re.match(r"^[A-Za-z]:", path):
        return "is absolute"
    parts = path.split("/")
    if ".." in parts:
        return "contains '..'"
    if any(p in ("", ".") for p in parts):
        return "has an empty or '.' component"
    if path in (MANIFEST, STATE):
        return f"names {path}, which the downloader writes itself"
    if path.endswith(RESERVED_SUFFIXES):
        return "ends in .part or .part.json (the downloader's temporary names)"
    return None


def parse_manifest(data: bytes, out: str) -> dict[str, Any]:
    """The manifest, checked whole before anything is written; UsageError (one line) otherwise."""
    try:
        manifest = json.loads(data)
    except (ValueError, UnicodeDecodeError) as e:
        raise UsageError(f"{MANIFEST} is not valid JSON: {e}") from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise UsageError(f"{MANIFEST} is not an {FORMAT} manifest (its 'format' field)")
    if manifest.get("format_version") != FORMAT_VERSION:
        raise UsageError(
            f"{MANIFEST} has format_version {manifest.get('format_version')!r}; this tool reads {FORMAT_VERSION}"
        )
    files = manifest.get("files")
    if not isinstance(files, list):
        raise UsageError(f"{MANIFEST} has no 'files' list")
    problems: list[str] = []
    seen: dict[str, str] = {}
    root = os.path.realpath(out)
    for i, entry in enumerate(files):
        if not isinstance(entry, dict):
            problems.append(f"entry {i} is not an object")
            continue
        path, size, sha = entry.get("path"), entry.get("size"), entry.get("sha256")
        bad = _path_problem(path)
        if bad:
            problems.append(f"file path {path!r} {bad}")
            continue
        folded = path.casefold()
        if folded in seen:
            problems.append(f"file path {path!r} repeats {seen[folded]!r}")
            continue
        seen[folded] = path
        if isinstance(size, bool) or not isinstance(size, int) or size < 0:
            problems.append(f"{path}: size {size!r} is not a byte count")
        if not isinstance(sha, str) or not re.fullmatch(r"[0-9a-fA-F]{64}", sha):
            problems.append(f"{path}: sha256 {sha!r} is not 64 hex digits")
        real = os.path.realpath(os.path.join(root, *path.split("/")))
        if not real.startswith(root + os.sep):
            problems.append(f"file path {path!r} resolves outside --out (through a symlink)")
    for path in seen.values():
        parent = path.rsplit("/", 1)[0] if "/" in path else None
        while parent:
            if parent.casefold() in seen:
                problems.append(f"file path {seen[parent.casefold()]!r} is also a folder of {path!r}")
                break
            parent = parent.rsplit("/", 1)[0] if "/" in parent else None
    if problems:
        more = f" (and {len(problems) - 1} more problems)" if len(problems) > 1 else ""
        raise UsageError(f"{MANIFEST} refused, nothing written: {problems[0]}{more}")
    return manifest


def select_files(manifest: dict[str, Any], base: str, include: tuple[str, ...]) -> list[FileSpec]:
    """The manifest's files matched by ``--include`` (all without it), with their source locations."""
    specs = []
    for entry in manifest["files"]:
        path = entry["path"]
        if include and not any(fnmatch.fnmatchcase(path, g) for g in include):
            continue
        if _is_url(base):
            src = urllib.parse.urljoin(base, urllib.parse.quote(path, safe="/"))
        else:
            src = os.path.join(os.path.dirname(base), *path.split("/"))
        specs.append(FileSpec(path, src, entry["size"], "sha256", entry["sha256"].lower()))
    if include and not specs:
        raise UsageError(f"--include {' '.join(include)} matched no file of the manifest")
    return specs


# -- small helpers -------------------------------------------------------------------------------


def _retry_after(value: str | None) -> float | None:
    """Seconds to wait from a Retry-After header (delta-seconds or an HTTP date)."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        return max(0.0, email.utils.parsedate_to_datetime(value).timestamp() - time.time())
    except (TypeError, ValueError):
        return None


def _content_range(value: str | None) -> tuple[int, int, int | None] | None:
    """(start, end, total or None) of ``bytes a-b/total``."""
    m = re.fullmatch(r"\s*bytes\s+(\d+)-(\d+)/(\d+|\*)\s*", value or "")
    if not m:
        return None
    return int(m[1]), int(m[2]), None if m[3] == "*" else int(m[3])


def _looks_like_html(head: bytes) -> bool:
    return head.lstrip()[:15].lower().startswith((b"<!doctype html", b"<html"))


def _hash_file(path: str, hasher: Any, limit: int | None = None, block: int = 4 << 20) -> int:
    """Feed the first ``limit`` bytes of ``path`` (all without it) to ``hasher``; returns the count."""
    n = 0
    with open(path, "rb") as f:
        while limit is None or n < limit:
            data = f.read(block if limit is None else min(block, limit - n))
            if not data:
                break
            hasher.update(data)
            n += len(data)
    return n


def _salvage(content: Any) -> bytes:
    """Bytes aiohttp received before a connection failed but no longer returns from ``readany``.

    Its public readers raise the stored exception before looking at the buffer, so without this a
    cut loses up to a read buffer; ``_read_nowait`` is private, hence the guard.
    """
    try:
        return bytes(content._read_nowait(-1))
    except Exception:
        return b""


def _write_and_hash(f: BinaryIO, hasher: Any, chunks: list[bytes]) -> None:
    """One block, off the event loop: hashlib and writes release the GIL, so this overlaps the next
    receive; the chunks go out in one writev, never joined (a copy of every byte saved)."""
    fd = f.fileno()
    views = [memoryview(c) for c in chunks]
    while views:
        n = os.writev(fd, views[:1024])  # IOV_MAX
        while n and views:
            if n >= len(views[0]):
                n -= len(views.pop(0))
            else:
                views[0] = views[0][n:]
                n = 0
    if hasher is not None:
        for c in chunks:
            hasher.update(c)


def _digest_of(spec: FileSpec, path: str) -> tuple[str, int]:
    if spec.algo == "sha256":
        return sha256_file(path)
    size = os.path.getsize(path)
    h = spec.new_hasher(size)
    _hash_file(path, h)
    return h.hexdigest(), size


def _read(path: str) -> bytes:
    with open(path, "rb") as f:
        return f.read()


def _atomic_json(path: str, obj: Any) -> None:
    tmp = f"{path}.tmp"
    with open(tmp, "w") as f:
        json.dump(obj, f, indent=1, sort_keys=True)
    os.replace(tmp, path)


def _remove(*paths: str) -> None:
    for p in paths:
        with contextlib.suppress(FileNotFoundError):
            os.remove(p)


class _State:
    """Verified files (size, mtime_ns, digest): a second run trusts these without re-hashing."""

    def __init__(self, out: str) -> None:
        self.path = os.path.join(out, STATE)
        self.files: dict[str, dict[str, Any]] = {}
        self._saved = time.monotonic()
        try:
            with open(self.path) as f:
                data = json.load(f)
            if isinstance(data, dict) and isinstance(data.get("files"), dict):
                self.files = data["files"]
        except (OSError, ValueError):
            pass

    def matches(self, spec: FileSpec, st: os.stat_result) -> bool:
        rec = self.files.get(spec.path)
        return rec == self._record(spec, st)

    def _record(self, spec: FileSpec, st: os.stat_result) -> dict[str, Any]:
        return {"size": st.st_size, "mtime_ns": st.st_mtime_ns, "digest": f"{spec.algo}:{spec.digest}"}

    def add(self, spec: FileSpec, st: os.stat_result) -> None:
        self.files[spec.path] = self._record(spec, st)
        if time.monotonic() - self._saved > STATE_SAVE_EVERY_S:
            self.save()

    def forget(self, path: str) -> None:
        self.files.pop(path, None)

    def save(self) -> None:
        self._saved = time.monotonic()
        _atomic_json(self.path, {"tool": f"imagenet-captions {__version__}", "files": self.files})


# -- the downloader ------------------------------------------------------------------------------


@dataclass
class _Progress:
    """rich's bar on stderr (bytes, rate, time left, files done), or nothing."""

    enabled: bool
    total_files: int
    total_bytes: int
    done_files: int = 0
    _bar: Any = None
    _task: Any = None

    def __enter__(self) -> _Progress:
        if self.enabled:
            from rich.console import Console
            from rich.progress import (
                BarColumn,
                DownloadColumn,
                Progress,
                TextColumn,
                TimeRemainingColumn,
                TransferSpeedColumn,
            )

            self._bar = Progress(
                TextColumn("{task.description}"),
                BarColumn(),
                DownloadColumn(),
                TransferSpeedColumn(),
                TimeRemainingColumn(),
                TextColumn("{task.fields[files]}"),
                console=Console(stderr=True),
                transient=False,
            )
            self._bar.__enter__()
            self._task = self._bar.add_task("download", total=self.total_bytes, files=self._files())
        return self

    def __exit__(self, *exc: object) -> None:
        if self._bar is not None:
            self._bar.__exit__(*exc)

    def _files(self) -> str:
        return f"{self.done_files}/{self.total_files} files"

    def advance(self, n: int) -> None:
        if self._bar is not None and n:
            self._bar.update(self._task, advance=n)

    def adjust_total(self, delta: int) -> None:
        self.total_bytes += delta
        if self._bar is not None and delta:
            self._bar.update(self._task, total=self.total_bytes)

    def file_done(self) -> None:
        self.done_files += 1
        if self._bar is not None:
            self._bar.update(self._task, files=self._files())


@dataclass
class Downloader:
    """Fetches a list of files into ``out``: one instance per run; ``run`` is the entry point."""

    options: DownloadOptions
    out: str
    state: _State = field(init=False)

    def __post_init__(self) -> None:
        self.state = _State(self.out)

    async def run(self, specs: list[FileSpec], progress: _Progress) -> list[Outcome]:
        import aiohttp

        o = self.options
        self._progress = progress
        self._sized: set[str] = set()
        self._pool = ThreadPoolExecutor(max_workers=o.jobs + 1, thread_name_prefix="download-io")
        sem = asyncio.Semaphore(o.jobs)
        timeout = aiohttp.ClientTimeout(total=None, sock_connect=o.timeout, sock_read=o.timeout)
        connector = aiohttp.TCPConnector(limit=o.jobs, limit_per_host=o.jobs)
        headers = {"User-Agent": f"imagenet-captions/{__version__}", "Accept-Encoding": "identity"}
        try:
            async with aiohttp.ClientSession(
                connector=connector,
                timeout=timeout,
                headers=headers,
                auto_decompress=False,
                read_bufsize=READ_BUFFER,
            ) as session:
                self._session = session

                async def one(spec: FileSpec) -> Outcome:
                    async with sem:
                        return await self._one(spec)

                # Largest first: the long transfers start early and the small ones fill the gaps.
                order = sorted(specs, key=lambda s: -(s.size or 0))
                outcomes = await asyncio.gather(*(one(s) for s in order))
        finally:
            self._pool.shutdown(wait=True)
            self.state.save()
        by_path = {oc.path: oc for oc in outcomes}
        return [by_path[s.path] for s in specs]

    async def _one(self, spec: FileSpec) -> Outcome:
        final = os.path.join(self.out, *spec.path.split("/"))
        how = "fetched"
        try:
            if os.path.lexists(final):
                if not os.path.isfile(final):
                    raise _Fatal(f"{final} exists and is not a regular file")
                st = os.stat(final)
                if not self.options.verify and self.state.matches(spec, st):
                    self._skip(spec)
                    return Outcome(spec.path, True, "cached")
                if spec.size is None or st.st_size == spec.size:
                    digest, _ = await asyncio.get_running_loop().run_in_executor(
                        self._pool, _digest_of, spec, final
                    )
                    if digest == spec.digest:
                        self.state.add(spec, os.stat(final))
                        self._skip(spec)
                        return Outcome(spec.path, True, "verified")
                # Wrong on disk: it must not stay under its final name while the right bytes come.
                self.state.forget(spec.path)
                os.remove(final)
                how = "refetched"
            fetched = await self._fetch(spec, final)
        except _Fatal as e:
            self._progress.file_done()
            return Outcome(spec.path, False, str(e))
        except OSError as e:
            self._progress.file_done()
            return Outcome(spec.path, False, f"{type(e).__name__}: {e}")
        self.state.add(spec, os.stat(final))
        self._progress.file_done()
        return Outcome(spec.path, True, how, fetched)

    def _skip(self, spec: FileSpec) -> None:
        self._progress.adjust_total(-(spec.size or 0))
        self._progress.file_done()

    # -- one file: attempts, resume, verification --------------------------------------------------

    async def _fetch(self, spec: FileSpec, final: str) -> int:
        """Bring ``spec`` to ``final``; returns the bytes taken from the network (or copied)."""
        os.makedirs(os.path.dirname(final) or ".", exist_ok=True)
        part, side = final + ".part", final + ".part.json"
        if not _is_url(spec.source):
            return await asyncio.get_running_loop().run_in_executor(self._pool, self._copy_local, spec, final)
        sidecar: dict[str, Any] = {}
        try:
            with open(side) as f:
                sidecar = json.load(f)
        except (OSError, ValueError):
            pass
        if sidecar.get("file") != spec.identity:
            _remove(part)  # a partial of some other file (or of nothing we know): not ours to resume
            sidecar = {"file": spec.identity}
            _atomic_json(side, sidecar)
        elif not os.path.exists(part):
            sidecar.pop("validator", None)

        failures = 0
        restarted = False
        restarts = 0
        received = [0]  # network bytes of this file, over all attempts
        held = os.path.getsize(part) if os.path.exists(part) else 0
        self._progress.advance(held)
        while True:
            have = os.path.getsize(part) if os.path.exists(part) else 0
            if have != held:
                self._progress.advance(have - held)
            held = have
            before = received[0]
            try:
                digest, size = await self._attempt(spec, part, side, sidecar, have, received)
                held = size
                if (spec.size is None or size == spec.size) and digest == spec.digest:
                    os.replace(part, final)
                    _remove(side)
                    return received[0]
                reason = (
                    f"size {size} != manifest's {spec.size}"
                    if spec.size is not None and size != spec.size
                    else f"{spec.algo} {digest} != expected {spec.digest}"
                )
                _remove(part)
                if have and not restarted:
                    restarted = True  # the partial may have been what was wrong: one clean try
                    raise _Restart(f"resumed file did not verify ({reason})")
                _remove(side)
                raise _Fatal(f"downloaded bytes do not match the manifest: {reason}; nothing kept")
            except _Restart as e:
                # A restart needs no backoff (the server answered); its own bound keeps a host that
                # rejects every resume from looping.
                restarts += 1
                if restarts > MAX_RESTARTS:
                    raise _Fatal(f"{e} (restarted {MAX_RESTARTS} times)") from None
                _remove(part)
                sidecar.pop("validator", None)
                _atomic_json(side, sidecar)
            except _Retry as e:
                held = os.path.getsize(part) if os.path.exists(part) else 0
                if received[0] - before >= self.options.block_size:
                    failures = 0  # progress was made: the bound is on attempts that get nowhere
                failures += 1
                if failures >= self.options.attempts:
                    raise _Fatal(f"{e} (gave up after {failures} attempts)") from None
                await asyncio.sleep(self._delay(failures, e.retry_after))

    def _delay(self, failures: int, retry_after: float | None) -> float:
        """Full-jitter exponential backoff; a server's Retry-After is a floor, never shortened."""
        o = self.options
        wait = random.uniform(0, min(o.backoff_max, o.backoff * 2 ** (failures - 1)))
        if retry_after is not None:
            if retry_after > o.max_retry_after:
                raise _Fatal(f"server asks to retry after {retry_after:.0f} s (more than --max-retry-after)")
            wait = max(wait, retry_after)
        return wait

    async def _attempt(
        self, spec: FileSpec, part: str, side: str, sidecar: dict[str, Any], have: int, received: list[int]
    ) -> tuple[str, int]:
        """One request: (digest, size on disk); raises _Retry/_Restart/_Fatal; counts into ``received``."""
        import aiohttp

        loop = asyncio.get_running_loop()
        if spec.size is not None and have > spec.size:
            raise _Restart("partial is longer than the file")
        if spec.size is not None and have == spec.size and have > 0:
            # Killed between the last write and the rename: nothing left to ask for.
            h = spec.new_hasher(have)
            await loop.run_in_executor(self._pool, _hash_file, part, h)
            return h.hexdigest(), have
        headers = {}
        if have:
            headers["Range"] = f"bytes={have}-"
            if sidecar.get("validator"):
                headers["If-Range"] = sidecar["validator"]
        try:
            async with self._session.get(spec.source, headers=headers) as resp:
                status = resp.status
                if status in RETRY_STATUSES:
                    raise _Retry(
                        f"HTTP {status} {resp.reason}", _retry_after(resp.headers.get("Retry-After"))
                    )
                if status == 416:
                    raise _Restart("HTTP 416: the partial does not fit the file on the server")
                if status == 206:
                    cr = _content_range(resp.headers.get("Content-Range"))
                    if cr is None:
                        raise _Fatal(
                            f"HTTP 206 without a usable Content-Range ({resp.headers.get('Content-Range')!r})"
                        )
                    offset, end, total = cr
                    if offset > have:
                        raise _Restart(f"server resumed at byte {offset}, beyond the {have} bytes held")
                    if total is not None and spec.size is not None and total != spec.size:
                        raise _Fatal(f"server's file has {total} bytes, the manifest says {spec.size}")
                elif status == 200:
                    offset, total = 0, None
                else:
                    raise _Fatal(f"HTTP {status} {resp.reason} from {spec.source}")
                ctype = resp.headers.get("Content-Type", "").split(";")[0].strip().lower()
                if ctype == "text/html" and not spec.path.lower().endswith(HTML_SUFFIXES):
                    raise _Fatal(
                        f"server sent an HTML page (Content-Type text/html, HTTP {status}), not the file"
                    )
                length = resp.content_length
                if total is None and length is not None:
                    total = offset + length
                if spec.size is not None:
                    if length is not None and length != spec.size - offset:
                        raise _Fatal(
                            f"Content-Length {length} where {spec.size - offset} bytes were expected "
                            f"(from byte {offset} of {spec.size})"
                        )
                    total = spec.size
                validator = resp.headers.get("ETag", "")
                if not validator or validator.startswith("W/"):
                    validator = resp.headers.get("Last-Modified", "")
                if validator and sidecar.get("validator") != validator:
                    sidecar["validator"] = validator
                    await loop.run_in_executor(self._pool, _atomic_json, side, sidecar)
                if spec.size is None and total is not None and spec.path not in self._sized:
                    self._sized.add(spec.path)
                    self._progress.adjust_total(total)
                return await self._stream(spec, part, resp, have, offset, total, received, aiohttp)
        except (_Retry, _Restart, _Fatal):
            raise
        except asyncio.TimeoutError:
            raise _Retry(f"no data for {self.options.timeout:g} s") from None
        except aiohttp.ClientResponseError as e:
            raise _Fatal(f"bad HTTP answer: {e.message}") from None
        except (aiohttp.ClientPayloadError, aiohttp.ClientConnectionError, ConnectionError) as e:
            raise _Retry(f"connection lost: {type(e).__name__}: {e}".rstrip(": ")) from None

    async def _stream(
        self,
        spec: FileSpec,
        part: str,
        resp: Any,
        have: int,
        offset: int,
        total: int | None,
        received_total: list[int],
        aiohttp: Any,
    ) -> tuple[str, int]:
        """Body to ``part`` from ``offset``: hashed as written, a block at a time, off the loop."""
        loop = asyncio.get_running_loop()
        block = self.options.block_size
        mode = "r+b" if os.path.exists(part) else "wb"
        with open(part, mode, buffering=0) as f:
            f.truncate(offset)
            f.seek(offset)
            self._progress.advance(offset - have)
            hasher = spec.new_hasher(total) if total is not None else None
            if hasher is not None and offset:
                await loop.run_in_executor(self._pool, _hash_file, part, hasher, offset)
            pending: asyncio.Future[None] | None = None
            buf: list[bytes] = []
            buffered = 0
            received = 0
            first = offset == 0

            async def flush() -> None:
                nonlocal pending, buf, buffered
                if pending is not None:
                    await pending
                    pending = None
                if buf:
                    chunks, buf, buffered = buf, [], 0
                    pending = loop.run_in_executor(self._pool, _write_and_hash, f, hasher, chunks)

            try:
                async for chunk in resp.content.iter_any():
                    if first:
                        first = False
                        if _looks_like_html(chunk[:64]) and not spec.path.lower().endswith(HTML_SUFFIXES):
                            raise _Fatal("server sent an HTML page where the file's bytes were expected")
                    received += len(chunk)
                    received_total[0] += len(chunk)
                    if total is not None and offset + received > total:
                        raise _Fatal(f"server sent more than the file's {total} bytes")
                    buf.append(chunk)
                    buffered += len(chunk)
                    self._progress.advance(len(chunk))
                    if buffered >= block:
                        await flush()
            except (
                aiohttp.ClientPayloadError,
                aiohttp.ClientConnectionError,
                ConnectionError,
                asyncio.TimeoutError,
            ):
                # What arrived is a valid prefix: keep it for the resume, including what aiohttp had
                # buffered but would not hand over once the connection failed.
                tail = _salvage(resp.content)
                html = first and _looks_like_html(tail[:64]) and not spec.path.lower().endswith(HTML_SUFFIXES)
                if tail and not html and (total is None or offset + received + len(tail) <= total):
                    buf.append(tail)
                    received += len(tail)
                    received_total[0] += len(tail)
                    self._progress.advance(len(tail))
                await flush()
                if pending is not None:
                    await pending
                raise
            await flush()
            if pending is not None:
                await pending
            size = offset + received
        if total is not None and size < total:
            raise _Retry(f"connection closed after {size} of {total} bytes")
        if hasher is None:  # no length known up front (a git blob's header needs it): hash it now
            hasher = spec.new_hasher(size)
            await loop.run_in_executor(self._pool, _hash_file, part, hasher)
        return hasher.hexdigest(), size

    def _copy_local(self, spec: FileSpec, final: str) -> int:
        """A local release is "downloaded" by a verified copy: the same rules, no network."""
        part = final + ".part"
        try:
            size = os.path.getsize(spec.source)
        except OSError as e:
            raise _Fatal(f"cannot read {spec.source}: {e.strerror}") from None
        if spec.size is not None and size != spec.size:
            raise _Fatal(f"source has {size} bytes, the manifest says {spec.size}")
        hasher = spec.new_hasher(size)
        n = 0
        with open(spec.source, "rb") as src, open(part, "wb") as dst:
            while data := src.read(self.options.block_size):
                hasher.update(data)
                dst.write(data)
                n += len(data)
                self._progress.advance(len(data))
        if n != size or hasher.hexdigest() != spec.digest:
            _remove(part)
            raise _Fatal(
                f"copied bytes do not match: {spec.algo} {hasher.hexdigest()} != expected {spec.digest}"
            )
        os.replace(part, final)
        return n


# -- fetching the manifest -----------------------------------------------------------------------


async def _fetch_manifest(url: str, options: DownloadOptions) -> bytes:
    """The manifest's bytes over HTTP, with the same retry rules as the files."""
    import aiohttp

    timeout = aiohttp.ClientTimeout(total=None, sock_connect=options.timeout, sock_read=options.timeout)
    headers = {"User-Agent": f"imagenet-captions/{__version__}", "Accept-Encoding": "identity"}
    last = ""
    async with aiohttp.ClientSession(timeout=timeout, headers=headers) as session:
        for attempt in range(1, options.attempts + 1):
            retry_after = None
            try:
                async with session.get(url) as resp:
                    if resp.status in RETRY_STATUSES:
                        last = f"HTTP {resp.status} {resp.reason}"
                        retry_after = _retry_after(resp.headers.get("Retry-After"))
                    elif resp.status != 200:
                        raise _Fatal(f"HTTP {resp.status} {resp.reason} from {url}")
                    else:
                        if resp.content_length and resp.content_length > MAX_MANIFEST_BYTES:
                            raise _Fatal(
                                f"manifest is {resp.content_length} bytes (more than {MAX_MANIFEST_BYTES})"
                            )
                        data = await resp.content.read(MAX_MANIFEST_BYTES + 1)
                        if len(data) > MAX_MANIFEST_BYTES:
                            raise _Fatal(f"manifest is more than {MAX_MANIFEST_BYTES} bytes")
                        if resp.content_length is not None and len(data) != resp.content_length:
                            raise aiohttp.ClientPayloadError("manifest cut short")
                        if _looks_like_html(data[:64]):
                            raise _Fatal(f"{url} answered with an HTML page, not a manifest")
                        return data
            except (aiohttp.ClientPayloadError, aiohttp.ClientConnectionError, asyncio.TimeoutError) as e:
                last = f"{type(e).__name__}: {e}"
            if attempt < options.attempts:
                wait = random.uniform(0, min(options.backoff_max, options.backoff * 2 ** (attempt - 1)))
                await asyncio.sleep(max(wait, min(retry_after or 0.0, options.max_retry_after)))
    raise _Fatal(f"{last} (gave up after {options.attempts} attempts)")


# -- the command ---------------------------------------------------------------------------------


@dataclass
class Result:
    outcomes: list[Outcome]
    seconds: float
    failed_manifest: str | None = None

    @property
    def ok(self) -> bool:
        return self.failed_manifest is None and all(o.ok for o in self.outcomes)


def download(options: DownloadOptions) -> Result:
    """Run one download; raises UsageError for a bad manifest (before writing anything)."""
    t0 = time.monotonic()
    out = options.out
    if os.path.exists(out) and not os.path.isdir(out):
        raise UsageError(f"--out {out} exists and is not a folder")
    if options.official:
        url = options.official_url
        if _is_url(url):
            source = url
        elif url.lower().startswith("file://"):
            source = urllib.parse.unquote(urllib.parse.urlsplit(url).path)
        else:
            source = url
        specs = [FileSpec(official_release.FILENAME, source, None, "git-blob", options.official_blob_id)]
        manifest_bytes = None
    elif _is_url(options.source or ""):
        base = options.source or ""
        try:
            manifest_bytes = asyncio.run(_fetch_manifest(base, options))
        except _Fatal as e:
            return Result([], time.monotonic() - t0, str(e))
        specs = select_files(parse_manifest(manifest_bytes, out), base, options.include)
    else:
        base = _local_path(options.source or "")
        if not os.path.isfile(base):
            raise UsageError(f"no manifest at {base}")
        if os.path.realpath(os.path.dirname(base)) == os.path.realpath(out):
            raise UsageError("--out is the release folder itself")
        with open(base, "rb") as f:
            manifest_bytes = f.read()
        specs = select_files(parse_manifest(manifest_bytes, out), base, options.include)
    os.makedirs(out, exist_ok=True)
    if manifest_bytes is not None:
        target = os.path.join(out, MANIFEST)
        if not (os.path.isfile(target) and _read(target) == manifest_bytes):
            with open(target + ".tmp", "wb") as f:
                f.write(manifest_bytes)
            os.replace(target + ".tmp", target)
    total = sum(s.size or 0 for s in specs)
    progress = _Progress(options.progress, len(specs), total)
    with progress:
        outcomes = asyncio.run(Downloader(options, out).run(specs, progress))
    return Result(outcomes, time.monotonic() - t0)


def _human(n: float) -> str:
    for unit in ("B", "kB", "MB", "GB", "TB"):
        if n < 1000 or unit == "TB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    return f"{n:.1f} TB"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "source",
        nargs="?",
        help="the release's manifest.json: an http(s) URL, a path, a folder "
        "or a file:// URL (files are resolved relative to it)",
    )
    parser.add_argument(
        "--out", required=True, help="folder that ends with the release's layout and manifest"
    )
    parser.add_argument(
        "--include",
        action="append",
        default=[],
        metavar="GLOB",
        help="fetch only files whose relative path matches (fnmatch; repeatable)",
    )
    parser.add_argument("--jobs", type=int, default=DownloadOptions.jobs, help="files fetched at once")
    parser.add_argument(
        "--verify", action="store_true", help="re-hash every file already on disk and refetch what is wrong"
    )
    parser.add_argument(
        "--attempts",
        type=int,
        default=DownloadOptions.attempts,
        help="tries per file that make no progress before it fails",
    )
    parser.add_argument(
        "--backoff",
        type=float,
        default=DownloadOptions.backoff,
        help="first retry's backoff ceiling in seconds (doubles, full jitter)",
    )
    parser.add_argument("--backoff-max", type=float, default=DownloadOptions.backoff_max)
    parser.add_argument(
        "--max-retry-after",
        type=float,
        default=DownloadOptions.max_retry_after,
        help="longest Retry-After honoured; a longer one fails the file",
    )
    parser.add_argument(
        "--timeout",
        type=float,
        default=DownloadOptions.timeout,
        help="seconds without a byte before a connection counts as dropped",
    )
    parser.add_argument(
        "--block-size",
        type=int,
        default=DownloadOptions.block_size,
        help="bytes buffered per write (what an interrupted run can lose)",
    )
    parser.add_argument("--no-progress", action="store_true", help="no progress bar on stderr")
    parser.add_argument(
        "--official",
        action="store_true",
        help="fetch the official 2022 imagenet_captions.zip (verified by its git blob id)",
    )
    parser.add_argument("--official-url", default=official_release.URL, help="a mirror of the official zip")
    parser.add_argument("--official-blob-id", default=official_release.BLOB_ID, help=argparse.SUPPRESS)


def run(args: argparse.Namespace, extra: list[str]) -> int:
    options = DownloadOptions(
        out=args.out,
        source=args.source,
        include=tuple(args.include),
        jobs=args.jobs,
        verify=args.verify,
        attempts=args.attempts,
        backoff=args.backoff,
        backoff_max=args.backoff_max,
        max_retry_after=args.max_retry_after,
        timeout=args.timeout,
        block_size=args.block_size,
        progress=not args.no_progress,
        official=args.official,
        official_url=args.official_url,
        official_blob_id=args.official_blob_id,
    )
    result = download(options)
    if result.failed_manifest:
        print(f"FAILED {MANIFEST}: {result.failed_manifest}")
        return 1
    failed = [o for o in result.outcomes if not o.ok]
    for o in failed:
        print(f"FAILED {o.path}: {o.how}")
    counts: dict[str, int] = {}
    for o in result.outcomes:
        if o.ok:
            counts[o.how] = counts.get(o.how, 0) + 1
    moved = sum(o.fetched_bytes for o in result.outcomes)
    rate = moved / result.seconds if result.seconds > 0 else 0.0
    parts = ", ".join(f"{n} {how}" for how, n in sorted(counts.items()))
    head = "OK" if not failed else f"INCOMPLETE: {len(failed)} of {len(result.outcomes)} files failed"
    print(
        f"{head}: {len(result.outcomes) - len(failed)} files verified in {options.out} ({parts or 'none'}); "
        f"{_human(moved)} fetched in {result.seconds:.1f} s ({_human(rate)}/s)",
        file=sys.stdout,
    )
    return 0 if not failed else 1
