"""``imagenet-captions download``: fetch a release (or the official 2022 zip), verified and resumable.

A release is a folder on any static host with ``manifest.json`` at its root, listing every other
file's relative path, size and sha256. The command reads in the order of its modules:

1. here: the options, the manifest fetched (``release.fetch``) and checked whole
   (``release.manifest``, and what is already in ``--out``) before anything is written, ``--out``
   locked, the files it selects, and for each file whether what is on disk is already right
   (``release.state``'s record of verified files);
2. ``release.fetch``: each missing file over HTTP into ``<name>.part``, resumed, retried, and
   renamed into place only once its size and hash match; ``release.sink`` writes and hashes the
   bytes off the event loop; ``release.state`` keeps the partials' sidecars;
3. here again: one line per failed file, a summary, and the exit status.

It must never write outside ``--out``, nor anything before the manifest has been checked, nor
through a link it did not make. Exit status: 0 when every requested file is present and verified;
1 otherwise, one line per file that failed and why; 2 for a bad command line, an unsafe or
malformed manifest, an ``--out`` that cannot be written or is held by another download, or a full
disk (one line naming the file). About 120 of its lines are the command line's arguments, which
belong with the options they fill.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import errno
import fnmatch
import os
import re
import stat
import sys
import time
import urllib.parse
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from imagenet_captions.errors import UsageError
from imagenet_captions.fsio import atomic_write
from imagenet_captions.locks import folder_lock
from imagenet_captions.manifest import (
    MANIFEST_FILE,
    PART_SUFFIX,
    SIDECAR_SUFFIX,
    check_manifest,
    parse_json_object,
)
from imagenet_captions.release import official as official_release
from imagenet_captions.release.fetch import (
    Fetcher,
    FetchFailed,
    FileSpec,
    digest_of,
    fetch_manifest,
    is_url,
    open_session,
)
from imagenet_captions.release.progress import Progress
from imagenet_captions.release.state import VerifiedState


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
    min_rate: float = 1000.0
    deadline: float = 3600.0
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
        if not (0 <= self.backoff <= self.backoff_max and self.max_retry_after >= 0):
            raise UsageError("--backoff must be >= 0 and <= --backoff-max; --max-retry-after >= 0")
        if not self.timeout > 0:  # written so that NaN is refused too
            raise UsageError(f"--timeout must be positive, not {self.timeout}")
        if not self.min_rate >= 0:
            raise UsageError(f"--min-rate must be >= 0, not {self.min_rate}")
        if not self.deadline > 0:
            raise UsageError(f"--deadline must be positive, not {self.deadline}")
        if not 4096 <= self.block_size <= 1 << 30:
            raise UsageError(f"--block-size must be 4096..1 GiB, not {self.block_size}")
        if not re.fullmatch(r"[0-9a-f]{40}", self.official_blob_id):
            raise UsageError(
                f"--official-blob-id must be 40 lowercase hex digits, not {self.official_blob_id!r}"
            )


@dataclass
class Outcome:
    path: str
    ok: bool
    how: str  # "fetched", "cached", "verified", "refetched", or the reason it failed
    fetched_bytes: int = 0


@dataclass
class Result:
    outcomes: list[Outcome]
    seconds: float
    failed_manifest: str | None = None

    @property
    def ok(self) -> bool:
        return self.failed_manifest is None and all(o.ok for o in self.outcomes)


# -- the manifest --------------------------------------------------------------------------------


def _local_path(source: str) -> str:
    """A manifest path, a release folder, or a file:// URL, as a local manifest path."""
    if source.lower().startswith("file://"):
        source = urllib.parse.unquote(urllib.parse.urlsplit(source).path)
    return os.path.join(source, MANIFEST_FILE) if os.path.isdir(source) else source


def parse_manifest(data: bytes, out: str) -> dict[str, Any]:
    """The manifest, checked whole before anything is written; UsageError (one line) otherwise.

    Beyond the format's own rules (``check_manifest``), nothing already in ``--out`` may send a
    file elsewhere: only the folder on this disk can say that (``unsafe_in_out``).
    """
    manifest = parse_json_object(data, MANIFEST_FILE)
    problems = check_manifest(manifest)
    if not problems:
        problems = unsafe_in_out(manifest["files"], out)
    if problems:
        more = f" (and {len(problems) - 1} more problems)" if len(problems) > 1 else ""
        raise UsageError(f"{MANIFEST_FILE} refused, nothing written: {problems[0]}{more}")
    return manifest


def unsafe_in_out(files: list[dict[str, Any]], out: str) -> list[str]:
    """What in ``--out`` would take a file's bytes outside it, or onto another file.

    A file's path must not resolve outside ``--out`` through a symlink already there; its
    ``.part`` and sidecar, which the downloader writes and resumes from, must be regular files if
    they exist (it never makes anything else there: a symlink would be written through). One
    ``realpath`` per folder and an ``lstat`` per name, so a 100,000-file manifest costs little.
    """
    if not os.path.isdir(out):
        return []
    root = os.path.realpath(out)
    real_folders: dict[str, str] = {}
    problems = []
    for entry in files:
        folder, _, name = entry["path"].rpartition("/")
        if folder not in real_folders:
            real_folders[folder] = os.path.realpath(os.path.join(root, *folder.split("/")))
        real = real_folders[folder]
        final = os.path.join(real, name)
        if not (real == root or real.startswith(root + os.sep)) or (
            os.path.islink(final) and not os.path.realpath(final).startswith(root + os.sep)
        ):
            problems.append(f"file path {entry['path']!r} resolves outside --out (through a symlink)")
            continue
        for suffix in (PART_SUFFIX, SIDECAR_SUFFIX):
            try:
                mode = os.lstat(final + suffix).st_mode
            except OSError:
                continue
            if not stat.S_ISREG(mode):
                what = "a symlink" if stat.S_ISLNK(mode) else "not a regular file"
                problems.append(
                    f"{entry['path']}{suffix} in --out is {what}: the downloader writes only regular files "
                    f"there (remove it)"
                )
    return problems


def select_files(manifest: dict[str, Any], base: str, include: tuple[str, ...]) -> list[FileSpec]:
    """The manifest's files matched by ``--include`` (all without it), with their source locations.

    Each is resolved against the manifest's location as given, never as redirected: a Hugging Face
    ``resolve/`` URL answers with a CDN URL against which relative paths mean nothing.
    """
    specs = []
    for entry in manifest["files"]:
        path = entry["path"]
        if include and not any(fnmatch.fnmatchcase(path, g) for g in include):
            continue
        if is_url(base):
            src = urllib.parse.urljoin(base, urllib.parse.quote(path, safe="/"))
        else:
            src = os.path.join(os.path.dirname(base), *path.split("/"))
        specs.append(FileSpec(path, src, entry["size"], "sha256", entry["sha256"]))
    if include and not specs:
        raise UsageError(f"--include {' '.join(include)} matched no file of the manifest")
    return specs


# -- the files -----------------------------------------------------------------------------------


class DiskFull(Exception):
    """The disk under ``--out`` is full: the run stops (every other file would fail the same way)."""

    def __init__(self, path: str, error: OSError) -> None:
        super().__init__(path, error)
        self.path = path
        self.error = error


class Downloader:
    """Decides, per file, whether what is on disk is right, and has the rest fetched: one per run."""

    def __init__(self, options: DownloadOptions, out: str, progress: Progress) -> None:
        self.options = options
        self.out = out
        self.state = VerifiedState(out)
        self._progress = progress

    async def run(self, specs: list[FileSpec], session: Any) -> list[Outcome]:
        """Every file's outcome, in the order of ``specs``; DiskFull stops the run (the other files
        are cancelled, what they hold kept), since every file after it would fail alike."""
        jobs = self.options.jobs
        # Two workers a file (one writes a block while the other hashes it), and one to spare.
        self._pool = ThreadPoolExecutor(max_workers=2 * jobs + 1, thread_name_prefix="download-io")
        self._fetcher = Fetcher(self.options, session, self._pool, self._progress)
        sem = asyncio.Semaphore(jobs)

        async def one(spec: FileSpec) -> Outcome:
            async with sem:
                return await self._one(spec)

        # Largest first: the long transfers start early and the small ones fill the gaps.
        order = sorted(specs, key=lambda s: -(s.size or 0))
        tasks = [asyncio.ensure_future(one(s)) for s in order]
        try:
            if tasks:
                await asyncio.wait(tasks, return_when=asyncio.FIRST_EXCEPTION)
        finally:
            for t in tasks:
                t.cancel()
            if tasks:
                await asyncio.wait(tasks)
            self._pool.shutdown(wait=True)
            self.state.save()
        errors = [e for e in (t.exception() for t in tasks if not t.cancelled()) if e is not None]
        errors.sort(key=lambda e: not isinstance(e, DiskFull))
        if errors:
            raise errors[0]
        by_path = {oc.path: oc for oc in (t.result() for t in tasks)}
        return [by_path[s.path] for s in specs]

    async def _one(self, spec: FileSpec) -> Outcome:
        final = os.path.join(self.out, *spec.path.split("/"))
        how = "fetched"
        try:
            if os.path.lexists(final):
                if not os.path.isfile(final):
                    raise FetchFailed(f"{final} exists and is not a regular file")
                st = os.stat(final)
                if not self.options.verify and self.state.matches(spec.path, spec.label, st):
                    self._skip(spec)
                    return Outcome(spec.path, True, "cached")
                if spec.size is None or st.st_size == spec.size:
                    loop = asyncio.get_running_loop()
                    digest, _ = await loop.run_in_executor(self._pool, digest_of, spec, final)
                    if digest == spec.digest:
                        self.state.add(spec.path, spec.label, os.stat(final))
                        self._skip(spec)
                        return Outcome(spec.path, True, "verified")
                # Wrong on disk: it must not stay under its final name while the right bytes come.
                self.state.forget(spec.path)
                os.remove(final)
                how = "refetched"
            fetched = await self._fetcher.fetch(spec, final)
            self.state.add(spec.path, spec.label, os.stat(final))
        except FetchFailed as e:
            self._progress.file_done()
            return Outcome(spec.path, False, str(e), self._fetcher.received.get(spec.path, 0))
        except OSError as e:
            self._progress.file_done()
            if e.errno in (errno.ENOSPC, errno.EDQUOT):
                raise DiskFull(spec.path, e) from None
            why = f"{type(e).__name__}: {e}"
            return Outcome(spec.path, False, why, self._fetcher.received.get(spec.path, 0))
        self._progress.file_done()
        return Outcome(spec.path, True, how, fetched)

    def _skip(self, spec: FileSpec) -> None:
        self._progress.adjust_total(-(spec.size or 0))
        self._progress.file_done()


async def _fetch_all(
    options: DownloadOptions, out: str, url: str | None, plan: Any
) -> tuple[bytes | None, list[Outcome]] | str:
    """The manifest (when ``url``) and then the files, in one event loop and one session."""
    async with open_session(options, options.jobs) as session:
        manifest_bytes = None
        if url is not None:
            try:
                manifest_bytes = await fetch_manifest(session, url, options)
            except FetchFailed as e:
                return str(e)
        specs = plan(manifest_bytes)
        total = sum(s.size or 0 for s in specs)
        with Progress(options.progress, len(specs), total) as progress:
            downloader = Downloader(options, out, progress)
            try:
                outcomes = await downloader.run(specs, session)
            except DiskFull as e:
                raise UsageError(
                    f"no space left on the device of --out {out} while writing {e.path}: free some space "
                    f"and run the same command again (it keeps the verified files and resumes the rest)"
                ) from None
        if downloader.state.unsaved is not None:
            print(
                f"imagenet-captions download: warning: could not record the verified files in "
                f"{downloader.state.path} ({downloader.state.unsaved.strerror}): the next run re-hashes them",
                file=sys.stderr,
            )
        return manifest_bytes, outcomes


def download(options: DownloadOptions) -> Result:
    """Run one download; raises UsageError for a bad manifest (before writing anything), for an
    ``--out`` that cannot be written, held by another download, or full."""
    t0 = time.monotonic()
    out = options.out
    if os.path.exists(out) and not os.path.isdir(out):
        raise UsageError(f"--out {out} exists and is not a folder")
    url: str | None = None
    base = ""
    local_bytes: bytes | None = None
    if options.official:
        source = options.official_url
        if not is_url(source) and source.lower().startswith("file://"):
            source = urllib.parse.unquote(urllib.parse.urlsplit(source).path)
        official = FileSpec(official_release.FILENAME, source, None, "git-blob", options.official_blob_id)
    elif is_url(options.source or ""):
        url = base = options.source or ""
    else:
        base = _local_path(options.source or "")
        if not os.path.isfile(base):
            raise UsageError(f"no manifest at {base}")
        if os.path.realpath(os.path.dirname(base)) == os.path.realpath(out):
            raise UsageError("--out is the release folder itself")
        with open(base, "rb") as f:
            local_bytes = f.read()

    with contextlib.ExitStack() as held:

        def plan(fetched: bytes | None) -> list[FileSpec]:
            """The files to bring, once the manifest is checked: only then is ``--out`` made and
            locked (two downloads into one folder would fetch the same files into one ``.part``), and
            the manifest saved first."""
            if options.official:
                _claim_out(out, held)
                return [official]
            data = fetched if fetched is not None else local_bytes
            assert data is not None
            specs = select_files(parse_manifest(data, out), base, options.include)
            _claim_out(out, held)
            target = os.path.join(out, MANIFEST_FILE)
            try:
                if not (os.path.isfile(target) and _same_bytes(target, data)):
                    with atomic_write(target) as f:
                        f.write(data)
            except OSError as e:
                raise UsageError(f"cannot write {target}: {e.strerror}") from None
            return specs

        done = asyncio.run(_fetch_all(options, out, url, plan))
    if isinstance(done, str):
        return Result([], time.monotonic() - t0, done)
    return Result(done[1], time.monotonic() - t0)


def _claim_out(out: str, held: contextlib.ExitStack) -> None:
    """Create ``--out`` if need be and hold its lock until ``held`` closes; one line if it cannot be."""
    try:
        held.enter_context(folder_lock(out, "download"))
    except OSError as e:
        raise UsageError(f"cannot write to --out {out}: {e.strerror}") from None


def _same_bytes(path: str, data: bytes) -> bool:
    with open(path, "rb") as f:
        return f.read() == data


def _human(n: float) -> str:
    for unit in ("B", "kB", "MB", "GB", "TB"):
        if n < 1000 or unit == "TB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    return f"{n:.1f} TB"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    d = DownloadOptions
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
        help="fetch only files whose relative path matches (fnmatch; repeatable; default: every file)",
    )
    parser.add_argument(
        "--jobs", type=int, default=d.jobs, help="files fetched at once (default: %(default)s)"
    )
    parser.add_argument(
        "--verify", action="store_true", help="re-hash every file already on disk and refetch what is wrong"
    )
    parser.add_argument(
        "--attempts",
        type=int,
        default=d.attempts,
        help="attempts in a row that bring a file no progress before it fails (default: %(default)s)",
    )
    parser.add_argument(
        "--backoff",
        type=float,
        default=d.backoff,
        metavar="SECONDS",
        help="first retry's backoff ceiling (doubles each retry, full jitter; default: %(default)s)",
    )
    parser.add_argument(
        "--backoff-max",
        type=float,
        default=d.backoff_max,
        metavar="SECONDS",
        help="largest backoff ceiling a retry waits under (default: %(default)s)",
    )
    parser.add_argument(
        "--max-retry-after",
        type=float,
        default=d.max_retry_after,
        metavar="SECONDS",
        help="longest Retry-After honoured; a longer one fails the file (default: %(default)s)",
    )
    parser.add_argument(
        "--timeout",
        type=float,
        default=d.timeout,
        metavar="SECONDS",
        help="seconds without a byte before a connection counts as dropped; also the window "
        "--min-rate is measured over (default: %(default)s)",
    )
    parser.add_argument(
        "--min-rate",
        type=float,
        default=d.min_rate,
        metavar="BYTES/S",
        help="a connection bringing fewer bytes a second than this over a --timeout window counts "
        "as dropped; 0 for none (default: %(default)s)",
    )
    parser.add_argument(
        "--deadline",
        type=float,
        default=d.deadline,
        metavar="SECONDS",
        help="longest time one file may take in one run, retries included; then it fails and a "
        "rerun resumes it (default: %(default)s)",
    )
    parser.add_argument(
        "--block-size",
        type=int,
        default=d.block_size,
        metavar="BYTES",
        help="bytes buffered per write (what an interrupted run can lose; default: %(default)s)",
    )
    parser.add_argument("--no-progress", action="store_true", help="no progress bar on stderr")
    parser.add_argument(
        "--official",
        action="store_true",
        help="fetch the official 2022 imagenet_captions.zip (verified by its git blob id)",
    )
    parser.add_argument(
        "--official-url",
        default=official_release.URL,
        metavar="URL",
        help="a mirror of the official zip, or a local path (default: %(default)s)",
    )
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
        min_rate=args.min_rate,
        deadline=args.deadline,
        block_size=args.block_size,
        progress=not args.no_progress,
        official=args.official,
        official_url=args.official_url,
        official_blob_id=args.official_blob_id,
    )
    result = download(options)
    if result.failed_manifest:
        print(f"FAILED {MANIFEST_FILE}: {result.failed_manifest}")
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
