"""Every exit code of `spotify-crawler crawl`, through the real command line."""

from __future__ import annotations

import asyncio
import signal
from pathlib import Path

import orjson
import pytest

from crawler.cli import main
from crawler.core.config import load_config
from crawler.sim.catalog import Catalog
from crawler.sim.config import SimClient, SimConfig
from crawler.sim.server import start_sim
from tests.crawlkit import assert_ground_truth, expected, start_crawl, write_config

CATALOG = Catalog(30, seed=7)
SEED = CATALOG.first_artist_ids()[0]


async def crawl(path: Path, *args: str, interrupt_after: float | None = None) -> tuple[int, str]:
    proc = await start_crawl(path, *args)
    if interrupt_after is not None:
        await asyncio.sleep(interrupt_after)
        proc.send_signal(signal.SIGINT)
    out, err = await asyncio.wait_for(proc.communicate(), timeout=120)
    assert proc.returncode is not None
    return proc.returncode, (out + err).decode()


def test_config_error_exits_2_with_one_line_and_writes_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write_config(tmp_path, "http://127.0.0.1:9", seeds={"artists": ["bogus"]})
    assert main(["crawl", "-c", str(path)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0
    assert err.startswith(f"error: {path}: seeds.artists: 'bogus' is not a Spotify artist ID")
    assert not (tmp_path / "out").exists()


async def test_complete_crawl_exits_0_and_writes_stats(tmp_path: Path) -> None:
    async with await start_sim(SimConfig(), CATALOG) as sim:
        path = write_config(tmp_path, sim.url, seeds={"artists": [SEED]})
        code, output = await crawl(path)
    assert code == 0, output
    stats = orjson.loads((tmp_path / "out" / "stats.json").read_bytes())
    assert stats["complete"] is True
    assert stats["failures"] == 0
    assert stats["written"]["artists"] == len(expected(CATALOG, load_config(path)).artists)
    assert stats["requests"]["artists.batch"]["200"] >= 1


async def test_sigint_exits_130_and_the_rerun_completes(tmp_path: Path) -> None:
    # ~4 s of work (latency, 4 workers): the interrupt lands mid-crawl, after start-up.
    async with await start_sim(SimConfig(latency_ms=50), CATALOG) as sim:
        path = write_config(tmp_path, sim.url, seeds={"artists": [SEED]}, crawl={"concurrency": 4})
        code, output = await crawl(path, interrupt_after=1.5)
        assert code == 130, output
        assert "rerun the same command to resume" in output
        stats = orjson.loads((tmp_path / "out" / "stats.json").read_bytes())
        assert stats["complete"] is False
        code, output = await crawl(path)
        assert code == 0, output
    assert_ground_truth(tmp_path / "out", expected(CATALOG, load_config(path)))


async def test_every_account_rate_limited_for_long_exits_3_and_says_when(tmp_path: Path) -> None:
    clients = (SimClient("a", "sa", "acct-a"), SimClient("b", "sb", "acct-b"))
    async with await start_sim(SimConfig(clients=clients, rate=5, window_s=600), CATALOG) as sim:
        path = write_config(
            tmp_path,
            sim.url,
            seeds={"artists": [SEED]},
            credentials=[
                {"client_id": "a", "client_secret": "sa", "account": "acct-a", "rate": 0},
                {"client_id": "b", "client_secret": "sb", "account": "acct-b", "rate": 0},
            ],
            api={"max_retry_after_s": 60},
        )
        code, output = await crawl(path)
        assert code == 3, output
        assert "rate-limited until" in output and "rerun" in output
        assert (await sim.stats())["by_account"].keys() == {"acct-a", "acct-b"}
    stats = orjson.loads((tmp_path / "out" / "stats.json").read_bytes())
    assert stats["complete"] is False and stats["pending"] > 0


async def test_refused_credentials_exit_1_naming_the_client_not_the_secret(
    tmp_path: Path,
) -> None:
    async with await start_sim(SimConfig(), CATALOG) as sim:
        path = write_config(
            tmp_path,
            sim.url,
            seeds={"artists": [SEED]},
            credentials=[{"client_id": "sim-client", "client_secret": "wrong-s3cret"}],
        )
        code, output = await crawl(path)
    assert code == 1, output
    assert "sim-clie" in output and "wrong-s3cret" not in output


async def test_checkpoint_of_other_settings_exits_2_and_fresh_starts_over(tmp_path: Path) -> None:
    other = CATALOG.artist_id(CATALOG.artists - 1)
    async with await start_sim(SimConfig(), CATALOG) as sim:
        path = write_config(
            tmp_path, sim.url, seeds={"artists": [SEED]}, expand={"artist_albums": []}
        )
        assert (await crawl(path))[0] == 0
        path = write_config(
            tmp_path, sim.url, seeds={"artists": [other]}, expand={"artist_albums": []}
        )
        code, output = await crawl(path)
        assert code == 2 and "--fresh" in output
        code, output = await crawl(path, "--fresh")
        assert code == 0, output
    assert_ground_truth(tmp_path / "out", expected(CATALOG, load_config(path)))


async def test_a_resumed_crawl_does_not_probe_what_it_learned(tmp_path: Path) -> None:
    """Development mode: batch endpoints, related artists and audio features are refused once;
    the checkpoint keeps what was learned, so the rerun sends none of those probes."""
    probes = ("artists.batch", "albums.batch", "tracks.batch", "audio_features.batch")
    async with await start_sim(SimConfig(mode="development", latency_ms=50), CATALOG) as sim:
        path = write_config(tmp_path, sim.url, seeds={"artists": [SEED]}, crawl={"concurrency": 4})
        code, output = await crawl(path, interrupt_after=2.0)
        assert code == 130, output
        first = (await sim.stats())["by_endpoint"]
        assert all(first.get(p, 0) >= 1 for p in probes), first
        sim.reset_stats()
        code, output = await crawl(path)
        assert code == 0, output
        second = (await sim.stats())["by_endpoint"]
    assert not any(second.get(p) for p in (*probes, "related_artists")), second
    assert_ground_truth(tmp_path / "out", expected(CATALOG, load_config(path), "development"))
