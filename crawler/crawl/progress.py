"""Progress of a long crawl: a redrawn status line on a terminal, periodic log lines otherwise."""

from __future__ import annotations

import asyncio
import logging
import sys
import time
from collections.abc import Callable
from typing import Any, TextIO

log = logging.getLogger("crawler.crawl.progress")

Snapshot = Callable[[], dict[str, Any]]


def render(snap: dict[str, Any], rate: float, bound: int) -> str:
    written = snap["written"]
    parts = [
        f"artists {written['artists']:,}",
        f"albums {written['albums']:,}",
        f"tracks {written['tracks']:,}",
        f"features {written['audio_features']:,}",
        f"| {snap['requests']:,} req ({rate:,.0f}/s)",
        f"429s {snap['rate_limited']:,}",
        f"| pending {snap['pending']:,}",
        f"in flight {snap['in_flight']}",
    ]
    if snap["failed"]:
        parts.append(f"failed {snap['failed']:,}")
    if snap["paused_for"] is not None:
        parts.append(f"| all accounts rate-limited, resuming in {snap['paused_for']:.0f} s")
    if bound and written["artists"]:
        elapsed = snap["elapsed"]
        eta = elapsed * (bound - written["artists"]) / written["artists"]
        parts.append(f"| ETA {max(eta, 0):.0f} s")
    return " ".join(parts)


async def report_progress(
    snapshot: Snapshot,
    mode: str,
    *,
    bound: int = 0,
    stream: TextIO | None = None,
    interval: float | None = None,
) -> None:
    """Run until cancelled. ``mode``: "bar", "log", "off" or "auto" (bar on a terminal)."""
    stream = stream or sys.stderr
    if mode == "auto":
        mode = "bar" if stream.isatty() else "log"
    if mode == "off":
        return
    interval = interval or (0.5 if mode == "bar" else 10.0)
    last_requests, last_time = 0, time.monotonic()
    try:
        while True:
            await asyncio.sleep(interval)
            snap = snapshot()
            now = time.monotonic()
            rate = (snap["requests"] - last_requests) / max(now - last_time, 1e-9)
            last_requests, last_time = snap["requests"], now
            line = render(snap, rate, bound)
            if mode == "bar":
                stream.write("\r\x1b[2K" + line)
                stream.flush()
            else:
                log.info("%s", line)
    finally:
        if mode == "bar":
            stream.write("\n")
            stream.flush()
