"""The progress line says what a user watching a long crawl needs to know."""

from __future__ import annotations

import asyncio
import io

from crawler.crawl.progress import render, report_progress

SNAP = {
    "written": {"artists": 1200, "albums": 15000, "tracks": 180000, "audio_features": 170000},
    "pending": 5400,
    "in_flight": 32,
    "failed": 3,
    "requests": 9000,
    "rate_limited": 12,
    "elapsed": 100.0,
    "paused_for": None,
}


def test_line_has_entities_rate_429s_queue_and_failures() -> None:
    line = render(SNAP, rate=87.4, bound=0)
    assert "artists 1,200" in line and "tracks 180,000" in line
    assert "9,000 req (87/s)" in line and "429s 12" in line
    assert "pending 5,400" in line and "failed 3" in line
    assert "ETA" not in line and "rate-limited" not in line


def test_eta_when_bounded_and_pause_when_all_accounts_parked() -> None:
    line = render({**SNAP, "paused_for": 42.2}, rate=0, bound=2400)
    assert "ETA 100 s" in line  # half the artists in 100 s: another 100 s
    assert "all accounts rate-limited, resuming in 42 s" in line


async def test_log_mode_writes_periodic_lines_and_bar_mode_redraws() -> None:
    stream = io.StringIO()
    task = asyncio.create_task(report_progress(lambda: SNAP, "bar", stream=stream, interval=0.01))
    await asyncio.sleep(0.05)
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    text = stream.getvalue()
    assert text.count("\r\x1b[2K") >= 2 and text.endswith("\n")
