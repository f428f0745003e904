"""Kill the crawler at random points of its progress; every rerun resumes; every stream
(entities and edges) ends exact."""

from __future__ import annotations

import asyncio
import random
import signal
from pathlib import Path

from crawler.core.config import load_config
from crawler.sim.catalog import Catalog
from crawler.sim.config import SimConfig
from crawler.sim.server import start_sim
from tests.crawlkit import (
    assert_ground_truth,
    expected,
    read_output,
    start_crawl,
    until_committed,
    write_config,
)

CATALOG = Catalog(40, seed=11)
SEED = CATALOG.first_artist_ids()[0]
KILLS = 6


async def test_sigkill_at_random_points_loses_nothing_and_writes_nothing_twice(
    tmp_path: Path,
) -> None:
    """Each kill lands once the checkpoint has passed a random mark of the crawl's records
    (sorted, between 5 % and 95 %): always mid-crawl, however fast the machine."""
    rng = random.Random(20261122)
    async with await start_sim(SimConfig(latency_ms=20), CATALOG) as sim:
        path = write_config(
            tmp_path,
            sim.url,
            seeds={"artists": [SEED], "playlists": [CATALOG.playlist_id(2)]},
            crawl={"concurrency": 4, "commit_interval_ms": 50},
        )
        truth = expected(CATALOG, load_config(path, environ={}))
        total = sum(
            len(records)
            for records in (truth.artists, truth.albums, truth.tracks, truth.audio_features)
        )
        marks = sorted(rng.sample(range(total // 20, total * 19 // 20), KILLS))
        checkpoint = tmp_path / "out" / "checkpoint.db"
        for mark in marks:
            proc = await start_crawl(path)
            await until_committed(proc, checkpoint, mark)
            proc.send_signal(signal.SIGKILL)
            await proc.wait()
            # Even the torn state right after a kill holds no line twice.
            assert read_output(tmp_path / "out").duplicates() == 0
        proc = await start_crawl(path)
        _, err = await asyncio.wait_for(proc.communicate(), timeout=120)
        assert proc.returncode == 0, err.decode()
    assert_ground_truth(tmp_path / "out", truth)
