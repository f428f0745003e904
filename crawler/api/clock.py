"""The one source of time for rate limiting, token lifetimes and backoff.

Everything in the api package that reads a clock or waits goes through a ``Clock``, so tests
can substitute virtual time and assert exact waits instead of timing the machine.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from typing import Protocol


class Clock(Protocol):
    def monotonic(self) -> float:
        """Seconds on a clock that never jumps: all intervals and deadlines use it."""
        ...

    def time(self) -> float:
        """Epoch seconds, for what users are told ("parked until 12:03 UTC")."""
        ...

    async def sleep(self, seconds: float) -> None: ...

    async def wait(self, event: asyncio.Event, seconds: float | None) -> bool:
        """Wait until ``event`` is set (True) or ``seconds`` have passed (False; None: never)."""
        ...


class SystemClock:
    """The real clock: time.monotonic, time.time and the event loop's timers."""

    def monotonic(self) -> float:
        return time.monotonic()

    def time(self) -> float:
        return time.time()

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds)

    async def wait(self, event: asyncio.Event, seconds: float | None) -> bool:
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(seconds):
                await event.wait()
        return event.is_set()


SYSTEM_CLOCK = SystemClock()
