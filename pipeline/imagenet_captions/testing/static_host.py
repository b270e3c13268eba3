"""A static file host on 127.0.0.1 for the download tests and benchmark: Range, redirects, faults, counts.

It stands in for the hosts a release lives on (a plain web server, an object store's HTTPS endpoint,
Hugging Face's ``resolve/`` URLs that redirect to a CDN), so the real downloader is exercised over
real sockets. It serves one folder read-only and must never be pointed at anything but test data:
it has no authentication and answers for any file under its root.

What it does:
- ``GET``/``HEAD`` of ``/<path>``: the file, with ``ETag``, ``Last-Modified`` and ``Accept-Ranges``;
  ``Range: bytes=N-`` (and ``N-M``) gives ``206`` with ``Content-Range``, a range past the end gives
  ``416``; ``If-Range`` (an ETag or a date) that no longer matches gives the whole file (``200``).
- ``redirect_prefix="resolve/main"``: ``/resolve/main/<path>`` answers ``302`` to ``/cdn/<token>``,
  a content-addressed-looking URL against which relative paths do not resolve (as on the real CDN).
- per-request log (path, range asked, status, body bytes sent) and totals per path, also served as
  JSON at ``/__stats`` for a host running in another process;
- faults, each for ``times`` requests of one path: ``cut`` (drop the connection after ``after`` body
  bytes), ``status`` (answer ``status``, with ``Retry-After`` if given), ``ignore_range`` (the whole
  file with ``200`` to a ranged request), ``html`` (an HTML error page with status 200),
  ``wrong_length`` (a ``Content-Length`` off by ``delta``), ``cut_whole`` (the whole file with ``200``
  whatever the ``Range``, dropped after ``after`` bytes: a host without Range support that always
  fails at the same point), ``trickle`` (``after`` bytes every ``every`` seconds), ``chunked`` (no
  ``Content-Length``: chunked transfer encoding), ``redirect_loop`` (``302`` to the same URL); and a
  throttle in bytes per second.

Bodies without a fault or throttle go out through aiohttp's ``FileResponse`` (sendfile), so the host
is not what limits a throughput benchmark; their byte count is the body length once sent whole.
Run standalone (the benchmark does, so the host has its own interpreter)::

    python -m imagenet_captions.testing.static_host ROOT [--throttle BPS] [--redirect-prefix resolve/main]

It prints its base URL on the first line of stdout and serves until killed.
"""

from __future__ import annotations

import argparse
import asyncio
import email.utils
import os
import secrets
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from aiohttp import web

FaultKind = Literal[
    "cut",
    "status",
    "ignore_range",
    "html",
    "wrong_length",
    "cut_whole",
    "trickle",
    "chunked",
    "redirect_loop",
]
#: write granularity of the hand-written (faulted or throttled) bodies; what can be in flight at a kill
PIECE = 64 * 1024
HTML_PAGE = (
    b"<!DOCTYPE html>\n<html><head><title>Error</title></head><body>Something went wrong</body></html>\n"
)


@dataclass
class Fault:
    """One injected misbehaviour for ``times`` requests of ``path`` (then it is spent)."""

    path: str
    kind: FaultKind
    times: int = 1
    after: int = 0
    status: int = 500
    retry_after: str | None = None
    delta: int = 1
    every: float = 0.05


@dataclass
class RequestRecord:
    path: str
    range: str | None
    status: int
    sent: int
    started: float
    fault: str | None = None


@dataclass
class _State:
    faults: list[Fault] = field(default_factory=list)
    log: list[RequestRecord] = field(default_factory=list)
    tokens: dict[str, str] = field(default_factory=dict)


class _FileResponse(web.FileResponse):
    """aiohttp's FileResponse, prepared by the handler on a request carrying only the chosen range.

    aiohttp prepares a returned response again; FileResponse would then send the file twice.
    """

    async def prepare(self, request: web.BaseRequest) -> Any:
        if self.prepared:
            return None
        return await super().prepare(request)


def _etag(st: os.stat_result) -> str:
    """The same strong ETag aiohttp's FileResponse sends, so every answer names a file alike."""
    return f'"{st.st_mtime_ns:x}-{st.st_size:x}"'


def _parse_range(header: str, size: int) -> tuple[int, int] | None | Literal["bad"]:
    """``(start, end_inclusive)`` of a single ``bytes=`` range; None = no usable range; "bad" = 416."""
    unit, _, spec = header.partition("=")
    if unit.strip() != "bytes" or "," in spec:
        return None
    first, _, last = spec.strip().partition("-")
    try:
        if first == "":
            n = int(last)
            return (max(0, size - n), size - 1) if n > 0 and size > 0 else "bad"
        start = int(first)
        end = int(last) if last else size - 1
    except ValueError:
        return None
    if start >= size or end < start:
        return "bad"
    return start, min(end, size - 1)


class StaticHost:
    """The host, running on its own event loop in a background thread; use as a context manager."""

    def __init__(
        self,
        root: str | os.PathLike[str],
        redirect_prefix: str | None = None,
        throttle: float | None = None,
        port: int = 0,
    ) -> None:
        self.root = Path(root).resolve()
        self.redirect_prefix = redirect_prefix.strip("/") if redirect_prefix else None
        #: bytes per second per response; may be changed while the host runs
        self.throttle = throttle
        self._port = port
        self._state = _State()
        self._lock = threading.Lock()
        self._in_flight = 0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._runner: web.AppRunner | None = None
        self.url = ""

    # -- the test's side ---------------------------------------------------------------------------

    def add_fault(self, fault: Fault) -> None:
        with self._lock:
            self._state.faults.append(fault)

    def clear(self) -> None:
        """Forget the log and any unspent faults (between two runs of a test)."""
        with self._lock:
            self._state.faults.clear()
            self._state.log.clear()

    @property
    def log(self) -> list[RequestRecord]:
        """Requests answered so far; waits a moment for any still being answered to be recorded.

        A client can have read a whole body before the host's handler resumes to record it.
        """
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            with self._lock:
                if self._in_flight == 0:
                    break
            time.sleep(0.005)
        with self._lock:
            return list(self._state.log)

    def bytes_sent(self, path: str | None = None) -> int:
        """Body bytes sent, for one release path or in all."""
        return sum(r.sent for r in self.log if path is None or r.path == path)

    def requests(self, path: str | None = None) -> list[RequestRecord]:
        return [r for r in self.log if path is None or r.path == path]

    def stats(self) -> dict[str, Any]:
        log = self.log
        per: dict[str, int] = {}
        for r in log:
            per[r.path] = per.get(r.path, 0) + r.sent
        return {
            "requests": len(log),
            "bytes_sent": sum(per.values()),
            "per_path": per,
            "log": [r.__dict__ for r in log],
        }

    # -- lifecycle ---------------------------------------------------------------------------------

    def __enter__(self) -> StaticHost:
        ready = threading.Event()
        errors: list[BaseException] = []

        def serve() -> None:
            loop = asyncio.new_event_loop()
            self._loop = loop
            try:
                loop.run_until_complete(self._start())
            except BaseException as e:  # reported to the starting thread
                errors.append(e)
                ready.set()
                return
            ready.set()
            loop.run_forever()
            if self._runner is not None:  # set by _start
                loop.run_until_complete(self._runner.cleanup())
            loop.close()

        self._thread = threading.Thread(target=serve, name="static-host", daemon=True)
        self._thread.start()
        ready.wait(30)
        if errors:
            raise errors[0]
        return self

    def __exit__(self, *exc: object) -> None:
        if self._loop is not None:
            self._loop.call_soon_threadsafe(self._loop.stop)
        if self._thread is not None:
            self._thread.join(30)

    async def _start(self) -> None:
        app = web.Application()
        app.router.add_route("GET", "/__stats", self._handle_stats)
        app.router.add_route("*", "/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", self._port)
        await site.start()
        host, port = self._runner.addresses[0][:2]
        self.url = f"http://{host}:{port}/"

    # -- serving -----------------------------------------------------------------------------------

    def _take_fault(self, path: str, ranged: bool) -> Fault | None:
        with self._lock:
            for f in self._state.faults:
                if f.path == path and f.times != 0 and (f.kind != "ignore_range" or ranged):
                    f.times -= 1
                    return f
        return None

    def _record(self, rec: RequestRecord) -> None:
        with self._lock:
            self._state.log.append(rec)

    async def _handle_stats(self, request: web.Request) -> web.Response:
        return web.json_response(self.stats())

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        with self._lock:
            self._in_flight += 1
        try:
            return await self._route(request)
        finally:
            with self._lock:
                self._in_flight -= 1

    async def _route(self, request: web.Request) -> web.StreamResponse:
        tail = request.match_info["tail"]
        if self.redirect_prefix and tail.startswith(self.redirect_prefix + "/"):
            rel = tail[len(self.redirect_prefix) + 1 :]
            token = secrets.token_hex(16)
            with self._lock:
                self._state.tokens[token] = rel
            raise web.HTTPFound(f"/cdn/{token}?response-content-disposition=attachment")
        if tail.startswith("cdn/"):
            with self._lock:
                rel = self._state.tokens.get(tail[4:], "")
        else:
            rel = tail
        target = (self.root / rel).resolve()
        if not rel or not target.is_relative_to(self.root) or not target.is_file():
            self._record(RequestRecord(rel, request.headers.get("Range"), 404, 0, time.monotonic()))
            raise web.HTTPNotFound()
        return await self._serve_file(request, rel, target)

    async def _serve_file(self, request: web.Request, rel: str, target: Path) -> web.StreamResponse:
        started = time.monotonic()
        range_header = request.headers.get("Range")
        st = target.stat()
        size, etag = st.st_size, _etag(st)
        fault = self._take_fault(rel, range_header is not None)
        fault_name = fault.kind if fault else None
        if fault and fault.kind == "status":
            headers = {"Retry-After": fault.retry_after} if fault.retry_after is not None else {}
            self._record(RequestRecord(rel, range_header, fault.status, 0, started, fault_name))
            return web.Response(status=fault.status, headers=headers, text=f"injected {fault.status}\n")
        if fault and fault.kind == "redirect_loop":
            self._record(RequestRecord(rel, range_header, 302, 0, started, fault_name))
            raise web.HTTPFound(request.path_qs)
        if fault and fault.kind == "html":
            self._record(RequestRecord(rel, range_header, 200, len(HTML_PAGE), started, fault_name))
            return web.Response(status=200, body=HTML_PAGE, content_type="text/html")

        start, end = 0, size - 1
        status = 200
        rng = _parse_range(range_header, size) if range_header else None
        if_range = request.headers.get("If-Range")
        if rng is not None and if_range is not None and not self._if_range_holds(if_range, st):
            rng = None  # the file changed since the client's partial: the whole file
        if fault and fault.kind in ("ignore_range", "cut_whole"):
            rng = None
        if rng == "bad":
            self._record(RequestRecord(rel, range_header, 416, 0, started, fault_name))
            return web.Response(status=416, headers={"Content-Range": f"bytes */{size}"})
        if rng is not None:
            start, end = rng
            status = 206
        length = end - start + 1 if size else 0

        if fault is None and not self.throttle:
            # The fast path: aiohttp's FileResponse (sendfile), given only the range decided above.
            forwarded = request.headers.copy()
            forwarded.popall("If-Range", None)
            forwarded.popall("Range", None)
            if status == 206:
                forwarded["Range"] = f"bytes={start}-{end}"
            file_resp = _FileResponse(target)
            await file_resp.prepare(request.clone(headers=forwarded))
            self._record(
                RequestRecord(rel, range_header, status, length if request.method != "HEAD" else 0, started)
            )
            return file_resp

        resp = web.StreamResponse(status=status)
        resp.headers["ETag"] = etag
        resp.headers["Last-Modified"] = email.utils.formatdate(st.st_mtime, usegmt=True)
        resp.headers["Accept-Ranges"] = "bytes"
        resp.headers["Content-Type"] = "application/octet-stream"
        if status == 206:
            resp.headers["Content-Range"] = f"bytes {start}-{end}/{size}"
        declared = length + (fault.delta if fault and fault.kind == "wrong_length" else 0)
        if not (fault and fault.kind == "chunked"):
            resp.content_length = declared
        await resp.prepare(request)
        limit = length
        if fault and fault.kind in ("cut", "cut_whole"):
            limit = min(length, fault.after)
        if fault and fault.kind == "wrong_length":
            limit = min(length, declared)
        sent = 0
        t0 = time.monotonic()
        try:
            if request.method != "HEAD":
                with open(target, "rb") as f:
                    f.seek(start)
                    trickle = fault is not None and fault.kind == "trickle"
                    piece = fault.after if fault and trickle else PIECE if self.throttle else 1 << 20
                    while sent < limit:
                        data = f.read(min(piece, limit - sent))
                        if not data:
                            break
                        await resp.write(data)
                        sent += len(data)
                        if trickle and fault is not None:
                            await asyncio.sleep(fault.every)
                        elif self.throttle:
                            ahead = t0 + sent / self.throttle - time.monotonic()
                            if ahead > 0:
                                await asyncio.sleep(ahead)
        except ConnectionError:
            self._record(RequestRecord(rel, range_header, status, sent, started, "client gone"))
            return resp
        except asyncio.CancelledError:
            self._record(RequestRecord(rel, range_header, status, sent, started, "client gone"))
            raise
        self._record(RequestRecord(rel, range_header, status, sent, started, fault_name))
        if fault and fault.kind in ("cut", "cut_whole", "wrong_length") and sent < declared:
            # Drop the connection with the body unfinished, as a reset or a crashed proxy would.
            if request.transport is not None:
                request.transport.abort()
            return resp
        await resp.write_eof()
        return resp

    @staticmethod
    def _if_range_holds(value: str, st: os.stat_result) -> bool:
        value = value.strip()
        if value.startswith('"') or value.startswith("W/"):
            return value == _etag(st)  # a weak ETag never matches (RFC 9110, 13.1.5)
        try:
            when = email.utils.parsedate_to_datetime(value).timestamp()
        except (TypeError, ValueError):
            return False
        return int(st.st_mtime) <= when


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="serve a folder on 127.0.0.1 (tests and benchmarks only)")
    parser.add_argument("root")
    parser.add_argument("--throttle", type=float, default=None, help="bytes per second per response")
    parser.add_argument("--redirect-prefix", default=None)
    parser.add_argument("--port", type=int, default=0)
    args = parser.parse_args(argv)
    with StaticHost(args.root, args.redirect_prefix, args.throttle, args.port) as host:
        print(host.url, flush=True)
        try:
            while True:
                time.sleep(3600)
        except KeyboardInterrupt:
            pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
