"""Running the simulator in-process on a free loopback port, for tests and `crawl --sim`."""

from __future__ import annotations

from types import TracebackType
from typing import Any

from aiohttp import web

from crawler.sim.app import STATE, make_app
from crawler.sim.catalog import Catalog
from crawler.sim.config import DEFAULT_ARTISTS, SimConfig

# How long `close()` lets requests in flight finish before it cuts them off.  aiohttp's
# default is 60 s; a simulator's handlers only ever wait on injected latency, and a crawler
# retries what a closing server cut, so stopping promptly costs nothing.
SHUTDOWN_GRACE_S = 0.1


class SimServer:
    """A started simulator; `url` is its origin, e.g. http://127.0.0.1:54321."""

    def __init__(self, runner: web.AppRunner, url: str) -> None:
        self._runner = runner
        self.url = url
        self._state = runner.app[STATE]

    @property
    def catalog(self) -> Catalog:
        return self._state.catalog

    @property
    def config(self) -> SimConfig:
        return self._state.config

    @property
    def token_url(self) -> str:
        return f"{self.url}/api/token"

    async def stats(self) -> dict[str, Any]:
        """The live counters, as GET /__stats would return them (without faults or HTTP)."""
        return self._state.stats.snapshot()

    def reset_stats(self) -> None:
        self._state.stats.reset()

    def hang_up(self) -> None:
        """Closes every connection at once, so that no further request gets served.

        For a signal handler: `close()` has to wait for the event loop, which first runs the
        handlers of every request that has arrived, each rendering its whole body.
        """
        server = self._runner.server
        for connection in server.connections if server is not None else ():
            connection.force_close()

    async def close(self) -> None:
        await self._runner.cleanup()

    async def __aenter__(self) -> SimServer:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()


async def start_sim(
    config: SimConfig | None = None,
    catalog: Catalog | None = None,
    host: str = "127.0.0.1",
    port: int = 0,
) -> SimServer:
    """Starts serving and returns once the socket is bound (port 0 = any free port)."""
    config = config or SimConfig()
    catalog = catalog or Catalog(DEFAULT_ARTISTS)
    runner = web.AppRunner(
        make_app(config, catalog),
        access_log=None,
        handle_signals=False,
        shutdown_timeout=SHUTDOWN_GRACE_S,
    )
    await runner.setup()
    site = web.TCPSite(runner, host, port, backlog=1024)
    await site.start()
    bound = runner.addresses[0]
    return SimServer(runner, f"http://{host}:{bound[1]}")
