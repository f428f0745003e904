"""Stand-ins for the client tests: a scriptable API, virtual time, simulator clients.

The simulator covers realistic behaviour; ``FakeApi`` covers what must be forced precisely:
which token is refused, a 429 with no header and no body, a redirect to a foreign origin.
Every token it issues is remembered, so tests can look for them in logs and errors.
``FakeClock`` replaces the api package's clock, so waits are asserted exactly instead of
timed on a machine whose speed no test knows.
"""

from __future__ import annotations

import asyncio
import base64
import heapq
import itertools
import socket
import ssl
from collections import deque
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
from aiohttp import web
from msgspec import Raw

from crawler.api.client import SpotifyClient
from crawler.api.retry import Backoff
from crawler.api.schema import Playlist, decode_entity
from crawler.core.config import ApiConfig, Credential
from crawler.core.stats import Stats
from crawler.sim.catalog import Catalog
from crawler.sim.server import SimServer

CLIENT_ID = "fakeclientid0123456789"
SECRET = "s3cr3t-do-not-log-0123456789abcdef"
CREDENTIAL = Credential(CLIENT_ID, SECRET, "acct", rate=10_000, window_s=1.0)

# A reply to script: a status and optional headers and JSON body (raw bytes pass through).
# Status DROP closes the connection without answering; SLOW answers 200 after a second.
Scripted = tuple[int, dict[str, str], object]
DROP, SLOW = 0, -1
# The fake's answer when nothing is scripted: a playlist with 7 items, none on this page.
PLAYLIST = {"id": "p", "items": {"items": [], "total": 7, "limit": 50}}


def is_playlist(result: object) -> bool:
    """Whether ``result`` is the client's reading of PLAYLIST: its bytes and its view."""
    if not isinstance(result, tuple):
        return False
    raw, view = result
    return (
        isinstance(view, Playlist)
        and view.page.total == 7
        and orjson.loads(bytes(raw))["id"] == "p"
    )


def json_reply(status: int, body: object = None, headers: dict[str, str] | None = None) -> Scripted:
    return status, headers or {}, body


@dataclass
class Recorder:
    """An HTTP server that answers 200 {} to anything and records each request's headers."""

    requests: list[dict[str, str]] = field(default_factory=list)
    url: str = ""

    async def handle(self, request: web.Request) -> web.Response:
        self.requests.append(dict(request.headers))
        return web.json_response({})


@dataclass
class FakeApi:
    """Token endpoint plus ``GET /v1/...``; API replies come from ``script``, else PLAYLIST."""

    expires_in: int = 3600
    tokens: list[str] = field(default_factory=list)
    token_requests: int = 0
    refused: set[str] = field(default_factory=set)  # tokens answered with 401
    script: deque[Scripted] = field(default_factory=deque)
    api_requests: list[str] = field(default_factory=list)
    url: str = ""
    _counter: itertools.count[int] = field(default_factory=itertools.count)

    def api(self, **changes: Any) -> ApiConfig:
        return ApiConfig(base_url=self.url, token_url=f"{self.url}/api/token", **changes)

    async def token(self, request: web.Request) -> web.Response:
        self.token_requests += 1
        scheme, _, encoded = request.headers.get("Authorization", "").partition(" ")
        client_id, _, secret = base64.b64decode(encoded).decode().partition(":")
        if scheme != "Basic" or (client_id, secret) != (CLIENT_ID, SECRET):
            return web.json_response(
                {"error": "invalid_client", "error_description": "Invalid client"}, status=400
            )
        token = f"BQfake-token-{next(self._counter)}-{'x' * 20}"
        self.tokens.append(token)
        return web.json_response(
            {"access_token": token, "token_type": "Bearer", "expires_in": self.expires_in}
        )

    async def handle(self, request: web.Request) -> web.StreamResponse:
        self.api_requests.append(request.path_qs)
        token = request.headers.get("Authorization", "").removeprefix("Bearer ")
        if token not in self.tokens or token in self.refused:
            return web.json_response(
                {"error": {"status": 401, "message": "The access token expired"}}, status=401
            )
        status, headers, body = self.script.popleft() if self.script else (200, {}, PLAYLIST)
        if status == DROP:
            assert request.transport is not None
            request.transport.close()
            return web.Response()
        if status == SLOW:
            await asyncio.sleep(1.0)
            status = 200
        if isinstance(body, bytes) or body is None:
            return web.Response(status=status, headers=headers, body=body)
        return web.Response(
            status=status,
            headers={**headers, "Content-Type": "application/json"},
            body=orjson.dumps(body),
        )


@asynccontextmanager
async def _serving(app: web.Application) -> AsyncIterator[str]:
    runner = web.AppRunner(app, access_log=None, handle_signals=False)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    try:
        yield f"http://127.0.0.1:{runner.addresses[0][1]}"
    finally:
        await runner.cleanup()


@asynccontextmanager
async def running_fake_api(**options: Any) -> AsyncIterator[FakeApi]:
    fake = FakeApi(**options)
    app = web.Application()
    app.router.add_post("/api/token", fake.token)
    app.router.add_get("/v1/{tail:.*}", fake.handle)
    async with _serving(app) as fake.url:
        yield fake


@asynccontextmanager
async def running_recorder() -> AsyncIterator[Recorder]:
    recorder = Recorder()
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", recorder.handle)
    async with _serving(app) as recorder.url:
        yield recorder


FAST = Backoff(base_s=0.005, cap_s=0.05)

# A self-signed certificate for 127.0.0.1 (valid until 2125), for a TLS server nobody trusts.
SELF_SIGNED = Path(__file__).parent / "data" / "selfsigned.pem"
SELF_SIGNED_KEY = SELF_SIGNED.with_suffix(".key")


@contextmanager
def refusing_port() -> Iterator[int]:
    """A loopback port that refuses connections: bound, so nothing else takes it, not listening."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        yield sock.getsockname()[1]


@dataclass
class SilentServer:
    """Accepts connections (TLS ones with SELF_SIGNED if ``tls``) and never answers."""

    port: int = 0
    connections: int = 0


@asynccontextmanager
async def silent_server(*, tls: bool = False) -> AsyncIterator[SilentServer]:
    silent = SilentServer()
    closing = asyncio.Event()  # each connection waits for it: the server's end

    async def accept(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        silent.connections += 1
        try:
            await closing.wait()
        finally:
            writer.close()

    context = None
    if tls:
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(SELF_SIGNED, SELF_SIGNED_KEY)
    server = await asyncio.start_server(accept, "127.0.0.1", 0, ssl=context)
    silent.port = server.sockets[0].getsockname()[1]
    try:
        yield silent
    finally:
        closing.set()
        server.close()
        await server.wait_closed()


class FakeClock:
    """Virtual time: it moves only when a test moves it (``advance``), or with ``auto`` when
    something waits.

    ``auto`` jumps to each wait's deadline as soon as the wait begins, which is exact while
    one task at a time waits (a request and its retries, a token refresh). Where several
    tasks wait, a test lets them all block (``blocked``) and then moves time itself. There is
    no I/O in such tests, so "every task blocks" is certain to happen, whatever the machine.
    ``waits`` lists every timed wait asked for, in order.
    """

    def __init__(self, *, auto: bool = False, start: float = 1000.0) -> None:
        self.now = start
        self.auto = auto
        self.epoch_offset = 1_800_000_000.0 - start  # time() - monotonic()
        self.waits: list[float] = []
        self._timers: list[tuple[float, int, asyncio.Future[None]]] = []
        self._order = itertools.count()
        self._pending: list[tuple[asyncio.Future[None], asyncio.Event | None]] = []
        self._entered = asyncio.Event()  # a task began to wait

    def monotonic(self) -> float:
        return self.now

    def time(self) -> float:
        return self.now + self.epoch_offset

    async def sleep(self, seconds: float) -> None:
        await self._wait(None, seconds)

    async def wait(self, event: asyncio.Event, seconds: float | None) -> bool:
        return await self._wait(event, seconds)

    @property
    def waiting(self) -> int:
        """Tasks waiting on this clock that nothing has woken yet."""
        return sum(
            1
            for timer, event in self._pending
            if not timer.done() and (event is None or not event.is_set())
        )

    async def blocked(self, tasks: int) -> None:
        """Let the other tasks run until ``tasks`` of them wait on this clock."""
        while self.waiting < tasks:
            self._entered = entered = asyncio.Event()
            await entered.wait()

    def advance(self, seconds: float) -> None:
        """Move time on and wake every wait whose deadline has come, earliest first."""
        self._advance_to(self.now + seconds)

    def advance_to_next(self) -> None:
        """Move time to the earliest deadline anything waits for."""
        self._advance_to(min(at for at, _, timer in self._timers if not timer.done()))

    def _advance_to(self, at: float) -> None:
        self.now = max(self.now, at)
        while self._timers and self._timers[0][0] <= self.now:
            _, _, timer = heapq.heappop(self._timers)
            if not timer.done():
                timer.set_result(None)

    async def _wait(self, event: asyncio.Event | None, seconds: float | None) -> bool:
        if event is not None and event.is_set():
            return True
        timer: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        if seconds is not None:
            self.waits.append(seconds)
            heapq.heappush(self._timers, (self.now + seconds, next(self._order), timer))
            if seconds <= 0:
                timer.set_result(None)
        waits: set[asyncio.Future[Any]] = {timer}
        if event is not None:
            waits.add(asyncio.ensure_future(event.wait()))
        entry = (timer, event)
        self._pending.append(entry)
        self._entered.set()
        try:
            if self.auto and seconds is not None:
                self.advance(max(0.0, seconds))
            await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
        finally:
            self._pending.remove(entry)
            for waited in waits:
                waited.cancel()
        return event is not None and event.is_set()


def id_of(obj: Raw | None) -> str | None:
    """The id of an object the client returned as raw bytes (None stays None)."""
    return None if obj is None else decode_entity(obj).id


def existing_artists(catalog: Catalog, count: int) -> list[str]:
    """IDs of the first ``count`` artists the API returns (the catalog also has deleted ones)."""
    found = (catalog.artist_id(i) for i in range(catalog.artists) if catalog.model.artist(i).exists)
    return list(itertools.islice(found, count))


def sim_api(sim: SimServer, **changes: Any) -> ApiConfig:
    return ApiConfig(base_url=sim.url, token_url=sim.token_url, **changes)


def sim_credentials(
    sim: SimServer, *, rate: int = 10_000, window_s: float = 1.0, secret: str | None = None
) -> list[Credential]:
    """Credentials for every client of ``sim``; the default rate never holds a test back."""
    return [
        Credential(c.client_id, secret or c.client_secret, c.account, rate, window_s)
        for c in sim.config.clients
    ]


def sim_client(
    sim: SimServer, *, concurrency: int = 16, stats: Stats | None = None, **kwargs: Any
) -> SpotifyClient:
    """A client of ``sim``; ``kwargs`` go to sim_credentials, ApiConfig or SpotifyClient."""
    cred_keys = {"rate", "window_s", "secret"}
    client_keys = {"capabilities", "backoff", "clock"}
    return SpotifyClient(
        sim_api(sim, **{k: v for k, v in kwargs.items() if k not in cred_keys | client_keys}),
        sim_credentials(sim, **{k: v for k, v in kwargs.items() if k in cred_keys}),
        concurrency=concurrency,
        stats=stats or Stats(),
        **{"backoff": FAST, **{k: v for k, v in kwargs.items() if k in client_keys}},
    )
