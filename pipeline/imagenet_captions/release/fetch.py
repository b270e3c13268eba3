"""One file over HTTP into ``<name>.part``: ranged resume, bounded retries, and every check of the answer.

The rules, in the order a request meets them:

- a partial that belongs to the file (see ``release.state``) is resumed with ``Range: bytes=N-`` and
  ``If-Range``; it is re-hashed first, since a hash state cannot be saved;
- 408/425/429/5xx, timeouts, dropped connections and a body slower than ``--min-rate`` are
  retried after full-jitter exponential backoff (a ``Retry-After`` is a floor); the bound is on
  attempts in a row without progress: the prefix held passing its longest yet, and by a block
  since the count last started from zero;
- a ``200`` to a ranged request, a ``416``, a ``206`` starting beyond what is held, or a resumed
  whole that does not verify start the file again from byte 0, each counted (MAX_RESTARTS a run);
- nothing about a file goes on past its ``--deadline``: not a body, not a backoff;
- an answer that cannot be the file (another status, an HTML page, a ``Content-Length`` or a
  ``Content-Range`` total other than the manifest's, more bytes than the file has) fails it at once;
- the bytes are renamed to the final name only when their size and digest match.

It must never write anything but the ``.part`` of the file it was given, and never retry without
bound, however the host behaves. The manifest itself comes through ``fetch_manifest``: read to the
end of its body, however it is sent. What to fetch, and whether a file on disk is already right, is ``release.download``'s job.
It runs past 400 lines because the checks of an answer and the attempt loop that acts on them
read only together; the body's writing and hashing are already apart (``release.sink``).
"""

from __future__ import annotations

import asyncio
import email.utils
import hashlib
import os
import random
import re
import shutil
import time
import urllib.parse
from concurrent.futures import Executor
from dataclasses import dataclass
from typing import Any, Protocol

from imagenet_captions import __version__
from imagenet_captions.errors import UsageError
from imagenet_captions.fsio import sha256_file
from imagenet_captions.manifest import PART_SUFFIX
from imagenet_captions.release import official
from imagenet_captions.release.progress import Progress
from imagenet_captions.release.sink import BlockSink
from imagenet_captions.release.state import Partial, remove

HTML_SUFFIXES = (".html", ".htm")
RETRY_STATUSES = frozenset({408, 425, 429, 500, 502, 503, 504})
#: starts from byte 0 a file may need in one run (a 416, a partial that did not verify)
MAX_RESTARTS = 3
#: aiohttp's per-response buffer (its default is 64 KiB): large, so a fast sender is rarely paused
READ_BUFFER = 4 << 20
MAX_MANIFEST_BYTES = 64 << 20


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

    @property
    def label(self) -> str:
        return f"{self.algo}:{self.digest}"

    def new_hasher(self, size: int) -> Any:
        return official.blob_hasher(size) if self.algo == "git-blob" else hashlib.sha256()


class FetchOptions(Protocol):
    """The settings this module reads (``release.download.DownloadOptions`` has them, checked)."""

    @property
    def attempts(self) -> int: ...

    @property
    def backoff(self) -> float: ...

    @property
    def backoff_max(self) -> float: ...

    @property
    def max_retry_after(self) -> float: ...

    @property
    def timeout(self) -> float: ...

    @property
    def min_rate(self) -> float: ...

    @property
    def deadline(self) -> float: ...

    @property
    def block_size(self) -> int: ...


class FetchFailed(Exception):
    """The file cannot be fetched in this run; the message is the one line the summary prints."""


class _Retry(Exception):
    """Worth another attempt after a backoff (5xx, 429, a timeout, a dropped connection)."""

    def __init__(self, reason: str, retry_after: float | None = None) -> None:
        super().__init__(reason)
        self.retry_after = retry_after


class _Restart(Exception):
    """The partial is useless (416, a file changed, a mismatch after a resume): start it from byte 0."""


class _TooSlow(_Retry):
    """Bytes arrive, but slower than ``--min-rate``: the connection counts as dropped."""


class _OutOfTime(FetchFailed):
    """The file's ``--deadline`` passed: it fails for this run, its partial kept for the next."""


@dataclass
class _Tries:
    """One file's account in one run, against which its retries and restarts are bounded."""

    deadline: float
    #: the longest prefix held so far in this run: bytes below it are no progress, only a refetch
    best: int
    #: the prefix held when the count of attempts without progress last started from zero
    mark: int
    restarts: int = 0
    failures: int = 0
    #: bytes taken from the network for the file, over all its attempts
    received: int = 0

    def restart(self, why: str) -> None:
        """Count a start from byte 0 with bytes held; FetchFailed once there were MAX_RESTARTS."""
        self.restarts += 1
        if self.restarts > MAX_RESTARTS:
            raise FetchFailed(f"{why} (restarted {MAX_RESTARTS} times)")


def is_url(source: str) -> bool:
    return urllib.parse.urlsplit(source).scheme.lower() in ("http", "https")


def retry_after(value: str | None) -> float | None:
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


def content_range(value: str | None) -> tuple[int, int, int | None] | None:
    """(start, end, total or None) of ``bytes a-b/total``."""
    m = re.fullmatch(r"\s*bytes\s+(\d+)-(\d+)/(\d+|\*)\s*", value or "")
    if not m:
        return None
    return int(m[1]), int(m[2]), None if m[3] == "*" else int(m[3])


def looks_like_html(head: bytes) -> bool:
    return head.lstrip()[:15].lower().startswith((b"<!doctype html", b"<html"))


def hash_prefix(path: str, hasher: Any, limit: int, block: int = 4 << 20) -> None:
    """Feed the first ``limit`` bytes of ``path`` to ``hasher`` (a resumed partial, a blob's body)."""
    with open(path, "rb") as f:
        while limit > 0 and (data := f.read(min(block, limit))):
            hasher.update(data)
            limit -= len(data)


def digest_of(spec: FileSpec, path: str) -> tuple[str, int]:
    """(hex digest, size) of a whole file on disk, by the spec's algorithm."""
    if spec.algo == "sha256":
        return sha256_file(path)
    size = os.path.getsize(path)
    h = spec.new_hasher(size)
    hash_prefix(path, h, size)
    return h.hexdigest(), size


def _salvage(content: Any) -> bytes:
    """Bytes aiohttp received before a connection failed but no longer returns from its readers.

    Its public readers raise the stored exception before looking at the buffer, so without this a
    cut loses up to a read buffer; ``_read_nowait`` is private, hence the guard.
    """
    try:
        return bytes(content._read_nowait(-1))
    except Exception:
        return b""


def open_session(options: FetchOptions, connections: int) -> Any:
    """The one aiohttp session of a run: bodies as sent (no decompression), a large read buffer."""
    import aiohttp

    timeout = aiohttp.ClientTimeout(total=None, sock_connect=options.timeout, sock_read=options.timeout)
    return aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(limit=connections, limit_per_host=connections),
        timeout=timeout,
        headers={"User-Agent": f"imagenet-captions/{__version__}", "Accept-Encoding": "identity"},
        auto_decompress=False,
        read_bufsize=READ_BUFFER,
    )


def backoff(options: FetchOptions, failures: int, hint: float | None) -> float:
    """Full-jitter exponential backoff; a server's Retry-After is a floor, never shortened."""
    wait = random.uniform(0, min(options.backoff_max, options.backoff * 2 ** (failures - 1)))
    if hint is not None:
        if hint > options.max_retry_after:
            raise FetchFailed(f"server asks to retry after {hint:.0f} s (more than --max-retry-after)")
        wait = max(wait, hint)
    return wait


async def fetch_manifest(session: Any, url: str, options: FetchOptions) -> bytes:
    """The manifest's bytes, with the files' retry rules; FetchFailed when they cannot be had.

    The body is read to its end, however it comes (a ``Content-Length``, chunks, or a connection
    closed at the end): one read returns only what has arrived so far. A URL that cannot be
    fetched at all (a redirect loop, no usable URL) is a UsageError: retrying would change nothing.
    """
    import aiohttp

    last = ""
    deadline = time.monotonic() + options.deadline
    for attempt in range(1, options.attempts + 1):
        hint = None
        try:
            async with session.get(url) as resp:
                if resp.status in RETRY_STATUSES:
                    last = f"HTTP {resp.status} {resp.reason}"
                    hint = retry_after(resp.headers.get("Retry-After"))
                elif resp.status != 200:
                    raise FetchFailed(f"HTTP {resp.status} {resp.reason} from {url}")
                else:
                    return await _read_manifest_body(resp, url, options, deadline)
        except aiohttp.TooManyRedirects as e:
            raise UsageError(f"{url} redirects in a loop ({len(e.history)} redirects followed)") from None
        except aiohttp.InvalidURL as e:
            raise UsageError(f"{url} is not a URL that can be fetched ({e})") from None
        except (aiohttp.ClientPayloadError, aiohttp.ClientConnectionError, asyncio.TimeoutError) as e:
            last = f"{type(e).__name__}: {e}"
        except _Retry as e:
            last = str(e)
        except aiohttp.ClientResponseError as e:
            raise FetchFailed(f"bad HTTP answer: {e.message}") from None
        if attempt < options.attempts:
            wait = max(backoff(options, attempt, None), min(hint or 0.0, options.max_retry_after))
            if time.monotonic() + wait > deadline:
                raise FetchFailed(f"{last} (--deadline of {options.deadline:g} s reached)")
            await asyncio.sleep(wait)
    raise FetchFailed(f"{last} (gave up after {options.attempts} attempts)")


async def _read_manifest_body(resp: Any, url: str, options: FetchOptions, deadline: float) -> bytes:
    """The whole body of a ``200``: no more than MAX_MANIFEST_BYTES, in time, not an HTML page."""
    import aiohttp

    if (resp.content_length or 0) > MAX_MANIFEST_BYTES:
        raise FetchFailed(f"manifest is {resp.content_length} bytes (over {MAX_MANIFEST_BYTES})")
    body = bytearray()
    pace = Pace(options, deadline)
    while chunk := await resp.content.read(1 << 20):
        body += chunk
        if len(body) > MAX_MANIFEST_BYTES:
            raise FetchFailed(f"manifest is more than {MAX_MANIFEST_BYTES} bytes")
        pace.check(len(chunk))
    if resp.content_length is not None and len(body) != resp.content_length:
        raise aiohttp.ClientPayloadError(f"manifest cut short ({len(body)} of {resp.content_length} bytes)")
    data = bytes(body)
    if looks_like_html(data[:64]):
        raise FetchFailed(f"{url} answered with an HTML page, not a manifest")
    return data


class Pace:
    """The speed limits of one response: the run's ``--deadline`` for the file, and ``--min-rate``
    averaged over windows of ``--timeout`` seconds (``--timeout`` alone only catches a silent host;
    a host that trickles a byte a second would hold a connection, and the run, for ever).

    ``check`` is called as bytes arrive: it raises ``_TooSlow`` (a retry) or ``_OutOfTime``."""

    def __init__(self, options: FetchOptions, deadline: float) -> None:
        self._options = options
        self._deadline = deadline
        self._window_start = time.monotonic()
        self._window_bytes = 0

    def check(self, n: int) -> None:
        now = time.monotonic()
        if now > self._deadline:
            raise _OutOfTime(f"--deadline of {self._options.deadline:g} s reached")
        self._window_bytes += n
        elapsed = now - self._window_start
        if elapsed >= self._options.timeout:
            rate = self._window_bytes / elapsed
            if rate < self._options.min_rate:
                raise _TooSlow(
                    f"{rate:.0f} bytes/s over {elapsed:.0f} s, below --min-rate {self._options.min_rate:g}"
                )
            self._window_start, self._window_bytes = now, 0


class Fetcher:
    """Brings files to their final names, each verified; one per run, shared by its concurrent files."""

    def __init__(self, options: FetchOptions, session: Any, pool: Executor, progress: Progress) -> None:
        self.options = options
        self._session = session
        self._pool = pool
        self._progress = progress
        self._sized: set[str] = set()
        #: network bytes each file took in this run (whether it ended verified or not)
        self.received: dict[str, int] = {}

    async def fetch(self, spec: FileSpec, final: str) -> int:
        """Bring ``spec`` to ``final``; the bytes taken from the network (or copied); FetchFailed.

        Whatever the outcome, ``received[spec.path]`` then says how many bytes the file took."""
        loop = asyncio.get_running_loop()
        os.makedirs(os.path.dirname(final) or ".", exist_ok=True)
        if not is_url(spec.source):
            return await loop.run_in_executor(self._pool, self._copy_local, spec, final)
        partial = Partial(final, spec.identity)
        held = await loop.run_in_executor(self._pool, partial.open)
        self._progress.advance(held)
        tries = _Tries(deadline=time.monotonic() + self.options.deadline, best=held, mark=held)
        try:
            return await self._fetch(spec, partial, held, tries)
        except _OutOfTime as e:
            now = partial.held()
            if not now:
                raise FetchFailed(str(e)) from None
            kept = "kept for the next run" if os.path.exists(partial.side) else "not kept"
            raise FetchFailed(f"{e} with {now:,} of {spec.size or '?'} bytes held ({kept})") from None
        finally:
            self.received[spec.path] = tries.received

    async def _fetch(self, spec: FileSpec, partial: Partial, held: int, tries: _Tries) -> int:
        """The attempt loop: at most ``--attempts`` in a row without progress, at most MAX_RESTARTS
        starts from byte 0 (a ``200`` to a ranged request is one), nothing after ``--deadline``."""
        resumed_badly = False
        block = self.options.block_size
        while True:
            if time.monotonic() > tries.deadline:
                raise _OutOfTime(f"--deadline of {self.options.deadline:g} s reached")
            have = partial.held()
            if have != held:
                self._progress.advance(have - held)
            held = have
            try:
                digest, size = await self._attempt(spec, partial, have, tries)
                held = size
                if (spec.size is None or size == spec.size) and digest == spec.digest:
                    partial.commit()
                    return tries.received
                reason = (
                    f"size {size} != manifest's {spec.size}"
                    if spec.size is not None and size != spec.size
                    else f"{spec.algo} {digest} != expected {spec.digest}"
                )
                if have and not resumed_badly:
                    resumed_badly = True  # the partial may have been what was wrong: one clean try
                    raise _Restart(f"resumed file did not verify ({reason})")
                partial.restart()
                raise FetchFailed(f"downloaded bytes do not match the manifest: {reason}; nothing kept")
            except _Restart as e:
                # A restart needs no backoff (the server answered); its own bound keeps a host that
                # rejects every resume from looping.
                partial.restart()
                tries.restart(str(e))
            except _Retry as e:
                # Progress is the prefix held passing its longest yet, and by a block since the count
                # last started: bytes that only replace what was held (a host that ignores Range) are
                # none, and new bytes count however many attempts bring them (a cut every 40 kB too).
                now = partial.held()
                if now > tries.best and now >= tries.mark + block:
                    tries.failures = 0
                    tries.mark = now
                tries.best = max(tries.best, now)
                tries.failures += 1
                if tries.failures >= self.options.attempts:
                    raise FetchFailed(f"{e} (gave up after {tries.failures} attempts)") from None
                wait = backoff(self.options, tries.failures, e.retry_after)
                if time.monotonic() + wait > tries.deadline:
                    raise _OutOfTime(f"{e}; --deadline of {self.options.deadline:g} s reached") from None
                await asyncio.sleep(wait)

    async def _attempt(self, spec: FileSpec, partial: Partial, have: int, tries: _Tries) -> tuple[str, int]:
        """One request: (digest, size on disk); raises _Retry/_Restart/FetchFailed; counts what it received."""
        import aiohttp

        loop = asyncio.get_running_loop()
        if spec.size is not None and have > spec.size:
            raise _Restart("partial is longer than the file")
        if spec.size is not None and have == spec.size and have > 0:
            # Killed between the last write and the rename: nothing left to ask for.
            return await loop.run_in_executor(self._pool, digest_of, spec, partial.part)
        headers = {}
        if have:
            headers["Range"] = f"bytes={have}-"
            if partial.validator:
                headers["If-Range"] = partial.validator
        try:
            async with self._session.get(spec.source, headers=headers) as resp:
                offset, total = self._check_answer(spec, resp, have, tries)
                validator = resp.headers.get("ETag", "")
                if not validator or validator.startswith("W/"):
                    validator = resp.headers.get("Last-Modified", "")
                if spec.size is None and total is not None and spec.path not in self._sized:
                    self._sized.add(spec.path)
                    self._progress.adjust_total(total)
                return await self._stream(spec, partial, resp, have, offset, total, validator, tries)
        except (_Retry, _Restart, FetchFailed):
            raise
        except asyncio.TimeoutError:
            raise _Retry(f"no data for {self.options.timeout:g} s") from None
        except aiohttp.ClientResponseError as e:
            raise FetchFailed(f"bad HTTP answer: {e.message}") from None
        except (aiohttp.ClientPayloadError, aiohttp.ClientConnectionError, ConnectionError) as e:
            raise _Retry(f"connection lost: {type(e).__name__}: {e}".rstrip(": ")) from None

    @staticmethod
    def _check_answer(spec: FileSpec, resp: Any, have: int, tries: _Tries) -> tuple[int, int | None]:
        """(the offset the body starts at, the file's total size if known), or why the answer is wrong."""
        status = resp.status
        if status in RETRY_STATUSES:
            raise _Retry(f"HTTP {status} {resp.reason}", retry_after(resp.headers.get("Retry-After")))
        if status == 416:
            raise _Restart("HTTP 416: the partial does not fit the file on the server")
        if status == 206:
            cr = content_range(resp.headers.get("Content-Range"))
            if cr is None:
                raise FetchFailed(
                    f"HTTP 206 without a usable Content-Range ({resp.headers.get('Content-Range')!r})"
                )
            offset, _, total = cr
            if offset > have:
                raise _Restart(f"server resumed at byte {offset}, beyond the {have} bytes held")
            if total is not None and spec.size is not None and total != spec.size:
                raise FetchFailed(f"server's file has {total} bytes, the manifest says {spec.size}")
        elif status == 200:
            if have:  # the whole file again: a restart, counted as one (the partial is kept till then)
                tries.restart(f"server answered a request for bytes {have}- with the whole file (HTTP 200)")
            offset, total = 0, None
        else:
            raise FetchFailed(f"HTTP {status} {resp.reason} from {spec.source}")
        ctype = resp.headers.get("Content-Type", "").split(";")[0].strip().lower()
        if ctype == "text/html" and not spec.path.lower().endswith(HTML_SUFFIXES):
            raise FetchFailed(
                f"server sent an HTML page (Content-Type text/html, HTTP {status}), not the file"
            )
        length = resp.content_length
        if total is None and length is not None:
            total = offset + length
        if spec.size is not None:
            if length is not None and length != spec.size - offset:
                raise FetchFailed(
                    f"Content-Length {length} where {spec.size - offset} bytes were expected "
                    f"(from byte {offset} of {spec.size})"
                )
            total = spec.size
        return offset, total

    async def _stream(
        self,
        spec: FileSpec,
        partial: Partial,
        resp: Any,
        have: int,
        offset: int,
        total: int | None,
        validator: str,
        tries: _Tries,
    ) -> tuple[str, int]:
        """The body into the partial from ``offset``, through a BlockSink; (digest, size on disk)."""
        import aiohttp

        loop = asyncio.get_running_loop()
        block = self.options.block_size
        # A listed file of one block is written in one go: a partial of it is not worth a sidecar's
        # fsyncs (a next run fetches it whole; a retry in this run still resumes it).
        resumable = spec.size is None or spec.size > block
        fd = await loop.run_in_executor(self._pool, self._open_part, partial, offset, validator, resumable)
        sink = None
        try:
            self._progress.advance(offset - have)
            hasher = spec.new_hasher(total) if total is not None else None
            if hasher is not None and offset:
                await loop.run_in_executor(self._pool, hash_prefix, partial.part, hasher, offset)
            sink = BlockSink(self._pool, fd, offset, hasher, block, self._progress.advance)
            room = None if total is None else total - offset
            sniff = not spec.path.lower().endswith(HTML_SUFFIXES)
            pace = Pace(self.options, tries.deadline)
            try:
                readchunk = resp.content.readchunk
                while True:
                    data, end_of_http_chunk = await readchunk()
                    if not data:
                        if end_of_http_chunk:
                            continue
                        break
                    if sniff:
                        sniff = False
                        if looks_like_html(data[:64]):
                            raise FetchFailed("server sent an HTML page where the file's bytes were expected")
                    if room is not None and sink.received + len(data) > room:
                        raise FetchFailed(f"server sent more than the file's {total} bytes")
                    tries.received += len(data)
                    await sink.add(data)
                    pace.check(len(data))
            except (_TooSlow, _OutOfTime):
                await sink.close()  # the prefix so far is good: kept for the next attempt or run
                raise
            except (
                aiohttp.ClientPayloadError,
                aiohttp.ClientConnectionError,
                ConnectionError,
                asyncio.TimeoutError,
            ):
                # What arrived is a valid prefix: keep it for the resume, including what aiohttp had
                # buffered but would not hand over once the connection failed.
                tail = _salvage(resp.content)
                html = sniff and looks_like_html(tail[:64])
                if tail and not html and (room is None or sink.received + len(tail) <= room):
                    tries.received += len(tail)
                    await sink.add(tail)
                await sink.close()
                raise
            await sink.close()
            size = sink.pos
        finally:
            if sink is not None:
                sink.abandon()
            os.close(fd)
        if total is not None and size < total:
            raise _Retry(f"connection closed after {size} of {total} bytes")
        if hasher is None:  # no length known up front (a git blob's header needs it): hash it now
            return await loop.run_in_executor(self._pool, digest_of, spec, partial.part)
        return hasher.hexdigest(), size

    @staticmethod
    def _open_part(partial: Partial, offset: int, validator: str, resumable: bool) -> int:
        """The partial, cut to ``offset``, then claimed for ``validator``: in that order, so a crash
        between the two never leaves another version's bytes under this version's name."""
        # Never through a link (the manifest check refuses one; this holds if one appears since).
        fd = os.open(partial.part, os.O_WRONLY | os.O_CREAT | os.O_NOFOLLOW, 0o644)
        try:
            os.ftruncate(fd, offset)
            if resumable:
                partial.claim(validator)
        except BaseException:
            os.close(fd)
            raise
        return fd

    def _copy_local(self, spec: FileSpec, final: str) -> int:
        """A local release is "downloaded" by a verified copy: the same rules, no network."""
        part = final + PART_SUFFIX
        remove(part)  # never written through: what is there (a link, say) is replaced, not followed
        try:
            size = os.path.getsize(spec.source)
        except OSError as e:
            raise FetchFailed(f"cannot read {spec.source}: {e.strerror}") from None
        if spec.size is not None and size != spec.size:
            raise FetchFailed(f"source has {size} bytes, the manifest says {spec.size}")
        shutil.copyfile(spec.source, part)
        digest, n = digest_of(spec, part)
        self._progress.advance(n)
        if n != size or digest != spec.digest:
            remove(part)
            raise FetchFailed(f"copied bytes do not match: {spec.algo} {digest} != expected {spec.digest}")
        os.replace(part, final)
        return n
