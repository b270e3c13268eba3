"""A loopback server that speaks ``flickr.photos.getInfo`` as Flickr does, with injected faults.

Tests, the demo and the benchmark talk to it over real sockets (127.0.0.1, port 0), so the client
is exercised exactly as against Flickr: answers are Flickr's JSON shapes (numbers sometimes
strings, ``_content`` members, tags with ``raw`` and ``_content``, ``\\/`` in URLs), errors are
HTTP 200 with ``{"stat": "fail", "code": N}``, and above the quota the answer is HTTP 429 with an
HTML body and ``Retry-After``, like a front-end proxy's. The quota is a sliding window per key: at
most ``qps`` calls accepted in any ``window`` seconds.

Faults (each drawn per accepted call from a seeded RNG): HTTP 5xx, code 105, a latency tail
(log-normal with a given median and p99), hangs longer than the client's timeout, truncated
bodies, a 200 with an HTML page (wrong content type), and connection resets. An unknown key gets
code 100. ``GET /stats`` returns what the server saw, for the benchmark. ``echo`` rewrites each
answer with the caller's key (a server that echoes the key back, for the redaction's tests).

Use ``async with FakeFlickr(...) as server:`` or ``server.start_in_thread()`` / ``server.stop()``;
``python -m imagenet_captions.flickr.fake_server`` runs it as its own process.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import json
import math
import random
import re
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

from aiohttp import web

NOT_FOUND = {"stat": "fail", "code": 1, "message": "Photo not found"}
INVALID_KEY = {"stat": "fail", "code": 100, "message": "Invalid API Key (Key has invalid format)"}
UNAVAILABLE = {"stat": "fail", "code": 105, "message": "Service currently unavailable"}
TOO_MANY_HTML = (
    "<!DOCTYPE html><html><head><title>Flickr: 429 Too Many Requests</title></head>"
    "<body><h1>Too Many Requests</h1><p>Please slow down.</p></body></html>"
)
ERROR_HTML = "<html><body><h1>Flickr is having a massage</h1></body></html>"


@dataclass
class Faults:
    """Probabilities per accepted call (they are exclusive; the rest are served normally)."""

    p_5xx: float = 0.0
    p_105: float = 0.0
    p_hang: float = 0.0
    p_truncated: float = 0.0
    p_html: float = 0.0
    p_reset: float = 0.0
    #: Latency of every answer: log-normal with this median and p99 (seconds); 0 = none.
    latency_median: float = 0.0
    latency_p99: float = 0.0
    #: How long a hang lasts (longer than the client's timeout).
    hang_seconds: float = 60.0
    seed: int = 0

    def latency(self, rng: random.Random) -> float:
        if self.latency_median <= 0:
            return 0.0
        p99 = max(self.latency_p99, self.latency_median)
        sigma = math.log(p99 / self.latency_median) / 2.3263  # z of the 99th percentile
        return rng.lognormvariate(math.log(self.latency_median), sigma)


@dataclass
class ServerStats:
    """What the server saw. ``accepted`` = calls within the quota (whatever was then answered)."""

    calls: int = 0
    accepted: int = 0
    refused: int = 0
    invalid_key: int = 0
    by_kind: collections.Counter = field(default_factory=collections.Counter)
    #: photo id -> how many times a normal answer was sent for it
    answered: collections.Counter = field(default_factory=collections.Counter)
    #: key -> accept times (monotonic seconds), for measuring the quota use
    accept_times: dict[str, list[float]] = field(default_factory=dict)
    max_in_window: dict[str, int] = field(default_factory=dict)
    #: key -> refusal times (monotonic seconds)
    refuse_times: dict[str, list[float]] = field(default_factory=dict)

    def as_json(self) -> dict[str, Any]:
        d = asdict(self)
        d["by_kind"] = dict(self.by_kind)
        d["answered"] = {str(k): v for k, v in self.answered.items()}
        return d


def _oauth_consumer_key(header: str) -> str:
    """The key of an OAuth-signed call (flickrapi sends it in the header, not as ``api_key``).
    The signature itself is not checked: this server tests quotas and faults, not OAuth."""
    m = re.search(r'oauth_consumer_key="([^"]*)"', header)
    return m.group(1) if m else ""


def flickr_json(obj: Any) -> bytes:
    """JSON as Flickr writes it: compact, and ``/`` escaped as ``\\/``."""
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False).replace("/", "\\/").encode("utf-8")


class FakeFlickr:
    """The loopback Flickr API. ``responses``: photo id -> the full JSON answer (``{"photo": ...,
    "stat": "ok"}`` or a fail answer); a photo not in it is code 1. ``keys``: the valid keys (None:
    any non-empty key). ``qps``: calls accepted per key per ``window`` seconds (None: no quota)."""

    def __init__(
        self,
        responses: Mapping[int, Mapping[str, Any]],
        keys: Iterable[str] | None = None,
        qps: float | None = None,
        window: float = 1.0,
        faults: Faults | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
        echo: Callable[[bytes, str], bytes] | None = None,
    ):
        self.responses = {int(k): v for k, v in responses.items()}
        #: Rewrites each answer's body given the caller's key: a server that echoes the key back
        #: (in any spelling), for the tests of the redaction.
        self.echo = echo
        self.keys = None if keys is None else set(keys)
        self.limit = None if qps is None else max(1, int(round(qps * window)))
        self.window = window
        self.faults = faults or Faults()
        self.rng = random.Random(self.faults.seed)
        self.stats = ServerStats()
        self.host, self.port = host, port
        self._windows: dict[str, collections.deque[float]] = {}
        self._runner: web.AppRunner | None = None
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self.url = ""

    # -- the API ---------------------------------------------------------------------------
    def _admit(self, key: str, now: float) -> bool:
        if self.limit is None:
            return True
        q = self._windows.setdefault(key, collections.deque())
        while q and q[0] <= now - self.window:
            q.popleft()
        if len(q) >= self.limit:
            return False
        q.append(now)
        self.stats.max_in_window[key] = max(self.stats.max_in_window.get(key, 0), len(q))
        return True

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        now = time.monotonic()
        params: dict[str, str] = dict(request.query)
        if request.method == "POST":
            params.update({k: str(v) for k, v in (await request.post()).items()})
        self.stats.calls += 1
        key = params.get("api_key", "") or _oauth_consumer_key(request.headers.get("Authorization", ""))
        if not key or (self.keys is not None and key not in self.keys):
            self.stats.invalid_key += 1
            return self._json(INVALID_KEY)
        if not self._admit(key, now):
            self.stats.refused += 1
            self.stats.refuse_times.setdefault(key, []).append(now)
            return web.Response(
                status=429, text=TOO_MANY_HTML, content_type="text/html", headers={"Retry-After": "1"}
            )
        self.stats.accepted += 1
        self.stats.accept_times.setdefault(key, []).append(now)
        if params.get("method") != "flickr.photos.getInfo" or params.get("format") != "json":
            return self._json({"stat": "fail", "code": 112, "message": "Method not found"})
        f = self.faults
        r = self.rng.random()
        delay = f.latency(self.rng)
        kinds = [
            ("5xx", f.p_5xx),
            ("code_105", f.p_105),
            ("hang", f.p_hang),
            ("truncated", f.p_truncated),
            ("html", f.p_html),
            ("reset", f.p_reset),
        ]
        kind = "normal"
        for name, p in kinds:
            if r < p:
                kind = name
                break
            r -= p
        self.stats.by_kind[kind] += 1
        if kind == "reset":
            assert request.transport is not None
            request.transport.abort()
            return web.Response(status=200)
        if kind == "hang":
            delay = f.hang_seconds
        if delay > 0:
            await asyncio.sleep(delay)
        if kind == "5xx":
            return web.Response(
                status=self.rng.choice([500, 502, 503]), text=ERROR_HTML, content_type="text/html"
            )
        if kind == "code_105":
            return self._json(UNAVAILABLE)
        if kind == "html":
            return web.Response(status=200, text=ERROR_HTML, content_type="text/html")
        try:
            photo_id = int(params.get("photo_id", ""))
        except ValueError:
            return self._json(NOT_FOUND)
        answer = self.responses.get(photo_id, NOT_FOUND)
        body = flickr_json(answer)
        if self.echo is not None:
            body = self.echo(body, key)
        if kind == "truncated":
            resp = web.StreamResponse(status=200, headers={"Content-Type": "application/json"})
            resp.content_length = len(body)
            await resp.prepare(request)
            await resp.write(body[: len(body) // 2])
            assert request.transport is not None
            request.transport.abort()
            return resp
        self.stats.answered[photo_id] += 1
        return web.Response(body=body, content_type="application/json")

    @staticmethod
    def _json(obj: Any) -> web.Response:
        return web.Response(body=flickr_json(obj), content_type="application/json")

    async def _stats(self, request: web.Request) -> web.Response:
        return web.json_response(self.stats.as_json())

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_route("*", "/services/rest/", self._handle)
        app.router.add_get("/stats", self._stats)
        return app

    # -- running -----------------------------------------------------------------------------
    async def start(self) -> str:
        runner = web.AppRunner(self.app(), handle_signals=False, access_log=None, shutdown_timeout=0.5)
        self._runner = runner
        await runner.setup()
        site = web.TCPSite(runner, self.host, self.port)
        await site.start()
        self.port = runner.addresses[0][1]
        self.url = f"http://{self.host}:{self.port}/services/rest/"
        return self.url

    async def close(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> FakeFlickr:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    def start_in_thread(self) -> str:
        """Serve from a background thread with its own event loop; returns the endpoint URL."""
        started = threading.Event()
        errors: list[BaseException] = []

        def serve() -> None:
            self._loop = asyncio.new_event_loop()
            try:
                self._loop.run_until_complete(self.start())
            except BaseException as e:  # reported to the starting thread
                errors.append(e)
                started.set()
                return
            started.set()
            self._loop.run_forever()
            self._loop.run_until_complete(self.close())
            self._loop.close()

        self._thread = threading.Thread(target=serve, name="fake-flickr", daemon=True)
        self._thread.start()
        started.wait()
        if errors:
            raise errors[0]
        return self.url

    def stop(self) -> None:
        if self._loop is not None and self._thread is not None:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(timeout=10)
            self._thread = None

    def __enter__(self) -> FakeFlickr:
        self.start_in_thread()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def main(argv: list[str] | None = None) -> None:
    """Serve responses from a JSON file ``{photo_id: answer}`` until killed; prints the URL."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--responses", required=True, help="JSON file: {photo_id: getInfo answer}")
    p.add_argument("--keys", default="", help="comma-separated valid keys (default: any)")
    p.add_argument("--qps", type=float, default=None)
    p.add_argument("--window", type=float, default=1.0)
    p.add_argument("--faults", default="{}", help="JSON object of Faults fields")
    p.add_argument("--port", type=int, default=0)
    a = p.parse_args(argv)
    with open(a.responses, encoding="utf-8") as f:
        responses = {int(k): v for k, v in json.load(f).items()}
    keys = [k for k in a.keys.split(",") if k] or None
    server = FakeFlickr(responses, keys, a.qps, a.window, Faults(**json.loads(a.faults)), port=a.port)

    async def run() -> None:
        url = await server.start()
        print(url, flush=True)
        await asyncio.Event().wait()

    asyncio.run(run())


if __name__ == "__main__":
    main()
