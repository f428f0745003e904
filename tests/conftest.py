"""Fixtures shared by the test suite: in-process simulators and an authenticated API client."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import aiohttp
import orjson
import pytest

from crawler.sim.catalog import Catalog
from crawler.sim.config import DEFAULT_CLIENT, SimClient, SimConfig
from crawler.sim.server import SimServer, start_sim

pytest_plugins = ["tests.pg"]

SIM_ARTISTS = 200

StartSim = Callable[..., Awaitable[SimServer]]


@pytest.fixture
async def sim_server() -> AsyncIterator[StartSim]:
    """Factory: `await sim_server(catalog=None, **SimConfig options)`; closed after the test."""
    servers: list[SimServer] = []

    async def start(catalog: Catalog | None = None, **options: Any) -> SimServer:
        server = await start_sim(SimConfig(**options), catalog or Catalog(SIM_ARTISTS))
        servers.append(server)
        return server

    yield start
    for server in servers:
        await server.close()


@dataclass
class Reply:
    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return orjson.loads(self.body)


class SimApi:
    """A bare client of one simulator: no retries or parsing, so tests see raw replies."""

    def __init__(self, server: SimServer, session: aiohttp.ClientSession) -> None:
        self.server = server
        self.session = session
        self.token = ""

    async def authenticate(self, client: SimClient = DEFAULT_CLIENT, attempts: int = 20) -> str:
        """Fetches a token, retrying injected faults (the token endpoint is not spared)."""
        form = {
            "grant_type": "client_credentials",
            "client_id": client.client_id,
            "client_secret": client.client_secret,
        }
        for _ in range(attempts):
            try:
                reply = await self.request("POST", "/api/token", data=form, auth=False)
                self.token = orjson.loads(reply.body)["access_token"]
                return self.token
            except (aiohttp.ClientError, orjson.JSONDecodeError, KeyError):
                continue
        return self.token

    async def request(
        self,
        method: str,
        path: str,
        *,
        auth: bool = True,
        headers: dict[str, str] | None = None,
        **kwargs: Any,
    ) -> Reply:
        all_headers = {"Authorization": f"Bearer {self.token}"} if auth else {}
        all_headers.update(headers or {})
        url = path if path.startswith("http") else self.server.url + path
        async with self.session.request(method, url, headers=all_headers, **kwargs) as resp:
            return Reply(resp.status, dict(resp.headers), await resp.read())

    async def get(self, path: str, **params: Any) -> Reply:
        return await self.request("GET", path, params={k: str(v) for k, v in params.items()})


@pytest.fixture
async def sim_api(sim_server: StartSim) -> AsyncIterator[Callable[..., Awaitable[SimApi]]]:
    """Factory: `await sim_api(catalog=None, **SimConfig options)` → an authenticated SimApi."""
    sessions: list[aiohttp.ClientSession] = []

    async def make(catalog: Catalog | None = None, **options: Any) -> SimApi:
        server = await sim_server(catalog, **options)
        session = aiohttp.ClientSession()
        sessions.append(session)
        api = SimApi(server, session)
        await api.authenticate(server.config.clients[0])
        return api

    yield make
    for session in sessions:
        await session.close()
