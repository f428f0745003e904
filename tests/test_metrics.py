"""Prometheus metrics scraped from a real crawl while it runs, and the time series it keeps."""

from __future__ import annotations

import asyncio
import re
import socket
from pathlib import Path

import aiohttp
import orjson

from crawler.core.config import load_config
from crawler.sim.catalog import Catalog
from crawler.sim.config import SimConfig
from crawler.sim.server import start_sim
from crawler.store import open_store_readonly
from tests.crawlkit import start_crawl, until_committed, write_config

CATALOG = Catalog(30, seed=7)
SEED = CATALOG.first_artist_ids()[0]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def value(text: str, name: str, **labels: str) -> float:
    """The value of one series in the exposition text (labels in any order)."""
    for line in text.splitlines():
        metric, _, rest = line.partition("{")
        if metric != name and not (not labels and line.startswith(f"{name} ")):
            continue
        if labels:
            found = dict(re.findall(r'(\w+)="([^"]*)"', rest.rpartition("}")[0]))
            if found != labels:
                continue
        return float(line.rsplit(" ", 1)[1])
    raise AssertionError(f"no {name}{labels} in the scrape:\n{text}")


async def test_metrics_are_scraped_during_a_crawl_and_samples_kept(tmp_path: Path) -> None:
    port = free_port()
    async with await start_sim(SimConfig(latency_ms=20), CATALOG) as sim:
        path = write_config(tmp_path, sim.url, seeds={"artists": [SEED]}, crawl={"concurrency": 2})
        proc = await start_crawl(path, "--metrics-port", str(port))
        await until_committed(proc, tmp_path / "out" / "checkpoint.db", 100)
        async with (
            aiohttp.ClientSession() as session,
            session.get(f"http://127.0.0.1:{port}/metrics") as response,
        ):
            assert response.status == 200
            assert response.headers["Content-Type"].startswith("text/plain")
            text = await response.text()
        _, err = await asyncio.wait_for(proc.communicate(), timeout=120)
        assert proc.returncode == 0, err.decode()
    assert f"metrics at http://127.0.0.1:{port}/metrics" in err.decode()
    ok = value(text, "spotify_crawler_requests_total", endpoint="artists.batch", status="200")
    assert ok >= 1
    assert value(text, "spotify_crawler_records_written_total", stream="artists") >= 1
    assert value(text, "spotify_crawler_tasks_pending", op="album") >= 0
    assert value(text, "spotify_crawler_account_requests_total", account="sim-account") >= ok
    assert (
        value(text, "spotify_crawler_account_parked_until_timestamp_seconds", account="sim-account")
        == 0
    )
    assert value(text, "spotify_crawler_commits_total") >= 1
    assert value(text, "spotify_crawler_last_progress_timestamp_seconds") > 1.7e9
    assert value(text, "spotify_crawler_process_cpu_seconds_total") > 0
    for line in text.splitlines():  # no Spotify IDs as labels, ever
        assert SEED not in line

    config = load_config(path, environ={})
    store = await open_store_readonly(config)
    try:
        samples, runs, written = await store.samples(), await store.runs(), store.written()
    finally:
        await store.close()
    stats = orjson.loads((tmp_path / "out" / "stats.json").read_bytes())
    assert [r.exit_code for r in runs] == [0]
    assert samples and {s.run for s in samples} == {runs[0].id}
    last = samples[-1]  # taken after the last commit: the run's true totals
    assert last.written == dict(written)
    assert sum(last.requests.values()) == stats["requests_total"]
