"""Every exit code of `spotify-crawler crawl`, through the real command line."""

from __future__ import annotations

import asyncio
import signal
import sys
from asyncio.subprocess import PIPE
from pathlib import Path

import orjson
import pytest

from crawler import __version__
from crawler.cli import main
from crawler.core.config import load_config
from crawler.sim.catalog import Catalog
from crawler.sim.config import SimClient, SimConfig
from crawler.sim.server import start_sim
from tests.crawlkit import (
    assert_ground_truth,
    expected,
    run_crawl_cli,
    sim_in_thread,
    start_crawl,
    until_committed,
    write_config,
)

CATALOG = Catalog(30, seed=7)
SEED = CATALOG.first_artist_ids()[0]


async def crawl(path: Path, *args: str, interrupt_at: int | None = None) -> tuple[int, str]:
    """Run a crawl to its end; with ``interrupt_at``, SIGINT once that many records are
    committed (mid-crawl on a machine of any speed)."""
    proc = await start_crawl(path, *args)
    if interrupt_at is not None:
        await until_committed(proc, path.parent / "out" / "checkpoint.db", interrupt_at)
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
    async with await start_sim(SimConfig(latency_ms=20), CATALOG) as sim:
        path = write_config(tmp_path, sim.url, seeds={"artists": [SEED]}, crawl={"concurrency": 4})
        code, output = await crawl(path, interrupt_at=200)
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
    stats = (tmp_path / "out" / "stats.json").read_bytes()  # written at this exit too
    assert orjson.loads(stats)["exit_code"] == 1 and b"wrong-s3cret" not in stats


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
        code, output = await crawl(path, interrupt_at=100)
        assert code == 130, output
        first = (await sim.stats())["by_endpoint"]
        assert all(first.get(p, 0) >= 1 for p in probes), first
        sim.reset_stats()
        code, output = await crawl(path)
        assert code == 0, output
        second = (await sim.stats())["by_endpoint"]
    assert not any(second.get(p) for p in (*probes, "related_artists")), second
    assert_ground_truth(tmp_path / "out", expected(CATALOG, load_config(path), "development"))


async def test_a_second_crawl_of_a_running_checkpoint_is_refused_and_the_first_stays_exact(
    tmp_path: Path,
) -> None:
    """Two real processes on one checkpoint: the second (or a --fresh) is refused at once
    with exit 2, naming the first; ``status`` reads the running crawl; the first ends exact."""
    async with await start_sim(SimConfig(latency_ms=20), CATALOG) as sim:
        path = write_config(tmp_path, sim.url, seeds={"artists": [SEED]}, crawl={"concurrency": 2})
        first = await start_crawl(path)
        await until_committed(first, tmp_path / "out" / "checkpoint.db", 100)
        first.send_signal(signal.SIGSTOP)  # mid-crawl and holding its lock, however fast
        for args in ((), ("--fresh",)):
            code, output = await crawl(path, *args)
            assert code == 2, output
            assert f"another crawl is running on this checkpoint (pid {first.pid} on host" in output
            assert output.count("\n") == 1
        status = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "crawler", "status", "-c", str(path), stdout=PIPE, stderr=PIPE
        )
        out, err = await status.communicate()
        assert status.returncode == 0, err.decode()
        assert f"running: pid {first.pid} on host" in out.decode()
        first.send_signal(signal.SIGCONT)
        _, err = await asyncio.wait_for(first.communicate(), timeout=120)
        assert first.returncode == 0, err.decode()
    assert_ground_truth(tmp_path / "out", expected(CATALOG, load_config(path)))


async def test_seeds_that_do_not_exist_are_named_and_none_existing_fails(tmp_path: Path) -> None:
    ghost = "0" * 22  # well formed, names nothing
    async with await start_sim(SimConfig(), CATALOG) as sim:
        path = write_config(tmp_path, sim.url, seeds={"artists": [ghost]})
        code, output = await crawl(path)
        assert code == 1, output
        assert f"seed artist {ghost} does not exist" in output
        assert "none of the 1 seeds exists" in output
        stats = orjson.loads((tmp_path / "out" / "stats.json").read_bytes())
        assert (stats["exit_code"], stats["complete"]) == (1, False)
        path = write_config(
            tmp_path, sim.url, seeds={"artists": [SEED, ghost]}, expand={"artist_albums": []}
        )
        code, output = await crawl(path, "--fresh")
    assert code == 0, output
    assert f"seed artist {ghost} does not exist" in output


def fail_albums() -> None:
    """Injected into a crawler process: every album batch fails as an unexpected error."""
    from crawler.crawl.expand import Expander

    async def broken(self: Expander, tasks: object, outcome: object) -> None:
        raise RuntimeError("injected")

    Expander._albums = broken  # type: ignore[method-assign]


def test_status_agrees_with_a_run_whose_tasks_failed(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with sim_in_thread(SimConfig(), CATALOG) as sim:
        path = write_config(tmp_path, sim.url, seeds={"artists": [SEED]})
        code, _, err = run_crawl_cli(path, patch=f"{__name__}:fail_albums")
    assert code == 1 and "tasks failed" in err, err
    assert main(["status", "-c", str(path)]) == 0
    out = capsys.readouterr().out
    assert "state: incomplete:" in out and "tasks failed" in out, out
    assert "state: complete" not in out


def test_version_and_the_exit_codes_in_help(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as version:
        main(["--version"])
    assert version.value.code == 0
    assert capsys.readouterr().out.strip() == f"spotify-crawler {__version__}"
    with pytest.raises(SystemExit):
        main(["crawl", "--help"])
    help_text = capsys.readouterr().out
    for code in ("0 ", "1 ", "2 ", "3 ", "130"):
        assert f"\n  {code}" in help_text, help_text


def test_a_checkpoint_path_that_is_a_folder_is_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "cp").mkdir()
    path = write_config(
        tmp_path, "http://127.0.0.1:9", seeds={"artists": [SEED]}, crawl={"checkpoint": "cp"}
    )
    assert main(["crawl", "-c", str(path)]) == 2
    err = capsys.readouterr().err
    assert err == f"error: {tmp_path / 'cp'}: the checkpoint path is a directory; name a file\n"
