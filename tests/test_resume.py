"""Kill the crawler at random instants; every rerun resumes; the end result is exact."""

from __future__ import annotations

import asyncio
import random
import signal
from pathlib import Path

from crawler.core.config import load_config
from crawler.sim.catalog import Catalog
from crawler.sim.config import SimConfig
from crawler.sim.server import start_sim
from tests.crawlkit import assert_ground_truth, expected, read_output, start_crawl, write_config

CATALOG = Catalog(40, seed=11)
SEED = CATALOG.first_artist_ids()[0]


async def test_sigkill_at_random_instants_loses_nothing_and_writes_nothing_twice(
    tmp_path: Path,
) -> None:
    rng = random.Random(20261122)
    # Latency and few workers stretch the crawl over ~5 s of work; each run gets at most
    # ~1 s of it (start-up takes ~0.6 s), so all six kills land mid-crawl.
    async with await start_sim(SimConfig(latency_ms=50), CATALOG) as sim:
        path = write_config(
            tmp_path,
            sim.url,
            seeds={"artists": [SEED]},
            crawl={"concurrency": 4, "commit_interval_ms": 50},
        )
        kills = 0
        while kills < 6:
            proc = await start_crawl(path)
            try:
                await asyncio.wait_for(proc.wait(), timeout=rng.uniform(0.8, 1.6))
            except TimeoutError:
                proc.send_signal(signal.SIGKILL)
                await proc.wait()
                kills += 1
                # Even the torn state right after a kill holds no line twice.
                assert read_output(tmp_path / "out").duplicates() == 0
            else:
                raise AssertionError("the crawl finished before it was killed 6 times")
        proc = await start_crawl(path)
        _, err = await asyncio.wait_for(proc.communicate(), timeout=120)
        assert proc.returncode == 0, err.decode()
    config = load_config(path, environ={})
    assert_ground_truth(tmp_path / "out", expected(CATALOG, config))
