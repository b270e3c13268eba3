"""One file over HTTP into ``<name>.part``: ranged resume, bounded retries, and every check of the answer.

The rules, in the order a request meets them:

- a partial that belongs to the file (see ``release.state``) is resumed with ``Range: bytes=N-`` and
  ``If-Range``; it is re-hashed first, since a hash state cannot be saved;
- 408/425/429/5xx, timeouts and dropped connections are retried after full-jitter exponential
  backoff (a ``Retry-After`` is a floor); the bound is on attempts that bring less than a block;
- a ``200`` to a ranged request, a ``416``, a ``206`` starting beyond what is held, or a resumed
  whole that does not verify start the file again from byte 0 (a bounded number of times);
- an answer that cannot be the file (another status, an HTML page, a ``Content-Length`` or a
  ``Content-Range`` total other than the manifest's, more bytes than the file has) fails it at once;
- the bytes are renamed to the final name only when their size and digest match.

It must never write anything but the ``.part`` of the file it was given, and never retry without
bound. What to fetch, and whether a file on disk is already right, is ``release.download``'s job.
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
from typing import TYPE_CHECKING, Any

from imagenet_captions import __version__
from imagenet_captions.fsio import sha256_file
from imagenet_captions.release import official
from imagenet_captions.release.progress import Progress
from imagenet_captions.release.sink import BlockSink
from imagenet_captions.release.state import Partial, remove

if TYPE_CHECKING:
    from imagenet_captions.release.download import DownloadOptions

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


class FetchFailed(Exception):
    """The file cannot be fetched in this run; the message is the one line the summary prints."""


class _Retry(Exception):
    """Worth another attempt after a backoff (5xx, 429, a timeout, a dropped connection)."""

    def __init__(self, reason: str, retry_after: float | None = None) -> None:
        super().__init__(reason)
        self.retry_after = retry_after


class _Restart(Exception):
    """The partial is useless (416, a file changed, a mismatch after a resume): start it from byte 0."""


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


def open_session(options: DownloadOptions, connections: int) -> Any:
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


def backoff(options: DownloadOptions, failures: int, hint: float | None) -> float:
    """Full-jitter exponential backoff; a server's Retry-After is a floor, never shortened."""
    wait = random.uniform(0, min(options.backoff_max, options.backoff * 2 ** (failures - 1)))
    if hint is not None:
        if hint > options.max_retry_after:
            raise FetchFailed(f"server asks to retry after {hint:.0f} s (more than --max-retry-after)")
        wait = max(wait, hint)
    return wait


async def fetch_manifest(session: Any, url: str, options: DownloadOptions) -> bytes:
    """The manifest's bytes, with the files' retry rules; FetchFailed when they cannot be had."""
    import aiohttp

    last = ""
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
                    if (resp.content_length or 0) > MAX_MANIFEST_BYTES:
                        raise FetchFailed(
                            f"manifest is {resp.content_length} bytes (over {MAX_MANIFEST_BYTES})"
                        )
                    data = await resp.content.read(MAX_MANIFEST_BYTES + 1)
                    if len(data) > MAX_MANIFEST_BYTES:
                        raise FetchFailed(f"manifest is more than {MAX_MANIFEST_BYTES} bytes")
                    if resp.content_length is not None and len(data) != resp.content_length:
                        raise aiohttp.ClientPayloadError("manifest cut short")
                    if looks_like_html(data[:64]):
                        raise FetchFailed(f"{url} answered with an HTML page, not a manifest")
                    return data
        except (aiohttp.ClientPayloadError, aiohttp.ClientConnectionError, asyncio.TimeoutError) as e:
            last = f"{type(e).__name__}: {e}"
        if attempt < options.attempts:
            await asyncio.sleep(
                max(backoff(options, attempt, None), min(hint or 0.0, options.max_retry_after))
            )
    raise FetchFailed(f"{last} (gave up after {options.attempts} attempts)")


class Fetcher:
    """Brings files to their final names, each verified; one per run, shared by its concurrent files."""

    def __init__(self, options: DownloadOptions, session: Any, pool: Executor, progress: Progress) -> None:
        self.options = options
        self._session = session
        self._pool = pool
        self._progress = progress
        self._sized: set[str] = set()

    async def fetch(self, spec: FileSpec, final: str) -> int:
        """Bring ``spec`` to ``final``; the bytes taken from the network (or copied); FetchFailed."""
        loop = asyncio.get_running_loop()
        os.makedirs(os.path.dirname(final) or ".", exist_ok=True)
        if not is_url(spec.source):
            return await loop.run_in_executor(self._pool, self._copy_local, spec, final)
        partial = Partial(final, spec.identity)
        held = await loop.run_in_executor(self._pool, partial.open)
        self._progress.advance(held)
        failures = restarts = 0
        resumed_badly = False
        received = [0]  # network bytes of this file, over all attempts
        while True:
            have = partial.held()
            if have != held:
                self._progress.advance(have - held)
            held = have
            before = received[0]
            try:
                digest, size = await self._attempt(spec, partial, have, received)
                held = size
                if (spec.size is None or size == spec.size) and digest == spec.digest:
                    partial.commit()
                    return received[0]
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
                restarts += 1
                if restarts > MAX_RESTARTS:
                    partial.restart()
                    raise FetchFailed(f"{e} (restarted {MAX_RESTARTS} times)") from None
                partial.restart()
            except _Retry as e:
                if received[0] - before >= self.options.block_size:
                    failures = 0  # progress was made: the bound is on attempts that get nowhere
                failures += 1
                if failures >= self.options.attempts:
                    raise FetchFailed(f"{e} (gave up after {failures} attempts)") from None
                await asyncio.sleep(backoff(self.options, failures, e.retry_after))

    async def _attempt(
        self, spec: FileSpec, partial: Partial, have: int, received: list[int]
    ) -> tuple[str, int]:
        """One request: (digest, size on disk); raises _Retry/_Restart/FetchFailed; counts ``received``."""
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
                offset, total = self._check_answer(spec, resp, have)
                validator = resp.headers.get("ETag", "")
                if not validator or validator.startswith("W/"):
                    validator = resp.headers.get("Last-Modified", "")
                if spec.size is None and total is not None and spec.path not in self._sized:
                    self._sized.add(spec.path)
                    self._progress.adjust_total(total)
                return await self._stream(spec, partial, resp, have, offset, total, validator, received)
        except (_Retry, _Restart, FetchFailed):
            raise
        except asyncio.TimeoutError:
            raise _Retry(f"no data for {self.options.timeout:g} s") from None
        except aiohttp.ClientResponseError as e:
            raise FetchFailed(f"bad HTTP answer: {e.message}") from None
        except (aiohttp.ClientPayloadError, aiohttp.ClientConnectionError, ConnectionError) as e:
            raise _Retry(f"connection lost: {type(e).__name__}: {e}".rstrip(": ")) from None

    @staticmethod
    def _check_answer(spec: FileSpec, resp: Any, have: int) -> tuple[int, int | None]:
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
        received: list[int],
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
                    received[0] += len(data)
                    await sink.add(data)
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
                    received[0] += len(tail)
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
        fd = os.open(partial.part, os.O_WRONLY | os.O_CREAT, 0o644)
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
        part = final + ".part"
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
