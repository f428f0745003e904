"""Several crawler processes on one PostgreSQL crawl: exactly once, under kills and restarts.

Every test crawls the simulator with real processes against a real server and checks what
`export --format jsonl` writes (the records as committed) against the ground truth: no
record missing, none twice.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import asyncpg
import pytest

from crawler.core.config import load_config
from crawler.sim.catalog import Catalog
from crawler.sim.config import SimConfig
from crawler.sim.server import start_sim
from tests.crawlkit import assert_ground_truth, expected, read_output, start_crawl, write_config
from tests.pg import redacted, unavailable, with_database

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "scripts"))
from benchlib import OwnPostgres, export_argv, free_port

CATALOG = Catalog(40, seed=11)
SEED = CATALOG.first_artist_ids()[0]
SEEDS = {"artists": [SEED], "playlists": [CATALOG.playlist_id(2)]}
TIMEOUT_S = 180


def pg_config(tmp_path: Path, url: str, dsn: str, **crawl: object) -> Path:
    return write_config(
        tmp_path,
        url,
        seeds=SEEDS,
        crawl={"concurrency": 2, "commit_interval_ms": 50, **crawl},
        store={"backend": "postgres", "dsn": dsn, "name": "shared"},
    )


async def committed(dsn: str) -> int:
    """Records the crawl has committed so far (0 before its schema exists)."""
    conn = await asyncpg.connect(dsn)
    try:
        return await conn.fetchval("SELECT coalesce(sum(lines), 0) FROM chunk")
    except asyncpg.UndefinedTableError:
        return 0
    finally:
        await conn.close()


async def until_committed(dsn: str, records: int, procs: list[asyncio.subprocess.Process]) -> None:
    """Wait for the event (a commit past the mark), however long it takes to come."""
    while await committed(dsn) < records:
        if all(p.returncode is not None for p in procs):
            raise AssertionError(f"every crawler ended before {records} records were committed")
        await asyncio.sleep(0.01)


def export(config: Path, to: Path) -> Path:
    done = subprocess.run(
        export_argv(config, to),
        capture_output=True,
        text=True,
        check=False,
        timeout=TIMEOUT_S,
    )
    assert done.returncode == 0, done.stderr
    return to


async def finish(procs: list[asyncio.subprocess.Process]) -> list[str]:
    """Wait for every process; each must end with exit 0 (the crawl is complete)."""
    results = await asyncio.wait_for(asyncio.gather(*(p.communicate() for p in procs)), TIMEOUT_S)
    errors = [err.decode() for _, err in results]
    assert [p.returncode for p in procs] == [0] * len(procs), errors
    return errors


def total_records(config: Path) -> int:
    truth = expected(CATALOG, load_config(config, environ={}))
    return sum(len(r) for r in (truth.artists, truth.albums, truth.tracks, truth.audio_features))


async def test_three_processes_crawl_one_crawl_exactly_once(
    pg_database: str, tmp_path: Path
) -> None:
    async with await start_sim(SimConfig(latency_ms=20), CATALOG) as sim:
        config = pg_config(tmp_path, sim.url, pg_database)
        procs = [await start_crawl(config) for _ in range(3)]
        await finish(procs)
    out = export(config, tmp_path / "export")
    assert_ground_truth(out, expected(CATALOG, load_config(config, environ={})))
    # All three did part of it: the work was shared, not done by one while two waited.
    conn = await asyncpg.connect(pg_database)
    try:
        done = [r["units_done"] for r in await conn.fetch("SELECT units_done FROM worker")]
    finally:
        await conn.close()
    assert len(done) == 3 and all(done), done


async def test_sigkill_of_random_processes_loses_nothing_and_writes_nothing_twice(
    pg_database: str, tmp_path: Path
) -> None:
    """Kills land at random marks of committed records; the killed process is restarted and
    its leases return to the others; the crawl ends exact."""
    rng = random.Random(20261202)
    async with await start_sim(SimConfig(latency_ms=20), CATALOG) as sim:
        config = pg_config(tmp_path, sim.url, pg_database)
        total = total_records(config)
        procs = [await start_crawl(config) for _ in range(3)]
        for mark in sorted(rng.sample(range(total // 20, total * 19 // 20), 5)):
            await until_committed(pg_database, mark, procs)
            victim = rng.randrange(len(procs))
            with contextlib.suppress(ProcessLookupError):
                procs[victim].send_signal(signal.SIGKILL)
            await procs[victim].wait()
            procs[victim] = await start_crawl(config)
        await finish(procs)
    out = export(config, tmp_path / "export")
    assert_ground_truth(out, expected(CATALOG, load_config(config, environ={})))


@pytest.fixture
def own_server() -> Iterator[OwnPostgres]:
    """A PostgreSQL server of this test's own (it restarts it)."""
    try:
        server = OwnPostgres()
    except RuntimeError as exc:
        unavailable(str(exc))
    with server:
        yield server


async def test_a_database_restart_mid_crawl_loses_nothing(
    own_server: OwnPostgres, tmp_path: Path
) -> None:
    """The server crashes (`restart immediate`) under two crawlers: each stops with one line
    and a nonzero exit, nothing committed is lost, and rerunning finishes the crawl exactly."""
    admin = own_server.dsn
    conn = await asyncpg.connect(admin)
    await conn.execute("CREATE DATABASE restart_test")
    await conn.close()
    dsn = with_database(admin, "restart_test")
    async with await start_sim(SimConfig(latency_ms=20), CATALOG) as sim:
        config = pg_config(tmp_path, sim.url, dsn)
        procs = [await start_crawl(config) for _ in range(2)]
        await until_committed(dsn, total_records(config) // 3, procs)
        await asyncio.to_thread(own_server.crash_and_restart)
        results = await asyncio.wait_for(
            asyncio.gather(*(p.communicate() for p in procs)), TIMEOUT_S
        )
        for proc, (_, err) in zip(procs, results, strict=True):
            if proc.returncode != 0:  # one that had finished its share may end cleanly
                assert "rerun to resume" in err.decode(), err.decode()[-2000:]
            assert dsn.split(":")[2].split("@")[0] not in err.decode()  # no password
        await finish([await start_crawl(config) for _ in range(2)])
    out = export(config, tmp_path / "export")
    assert_ground_truth(out, expected(CATALOG, load_config(config, environ={})))


async def test_export_of_a_postgres_crawl_is_the_sqlite_crawls_bytes(
    pg_database: str, tmp_path: Path
) -> None:
    """One process each, same simulator: the same records, byte for byte, per stream."""
    async with await start_sim(SimConfig(latency_ms=5), CATALOG) as sim:
        (tmp_path / "pg").mkdir()
        (tmp_path / "lite").mkdir()
        pg = pg_config(tmp_path / "pg", sim.url, pg_database)
        lite = write_config(tmp_path / "lite", sim.url, seeds=SEEDS, crawl={"concurrency": 4})
        await finish([await start_crawl(pg)])
        await finish([await start_crawl(lite)])
    out = export(pg, tmp_path / "export")
    ours, theirs = read_output(out), read_output(tmp_path / "lite" / "out")
    assert ours.records and {s: sorted(r) for s, r in ours.records.items()} == {
        s: sorted(r) for s, r in theirs.records.items()
    }
    for name in ("artists.jsonl", "tracks.jsonl", "related_artists.jsonl"):
        assert sorted((out / name).read_bytes().splitlines()) == sorted(
            (tmp_path / "lite" / "out" / name).read_bytes().splitlines()
        )


@pytest.mark.parametrize(
    ("breakage", "message"),
    [
        ("password", 'password authentication failed for user "crawler"'),
        ("port", "cannot open the store"),
        ("read-only", "cannot execute CREATE TABLE in a read-only transaction"),
    ],
)
async def test_a_bad_dsn_is_one_line_and_writes_nothing(
    pg_database: str, tmp_path: Path, breakage: str, message: str
) -> None:
    secret = "s3cret-not-the-password"
    if breakage == "password":
        head, _, host = pg_database.partition("@")
        dsn = f"{head.rsplit(':', 1)[0]}:{secret}@{host}"
    elif breakage == "port":
        dsn = pg_database.replace(
            pg_database.split("@")[1].split("/")[0], f"127.0.0.1:{free_port()}"
        )
    else:  # a server or database that may not be written (a replica, a read-only grant)
        conn = await asyncpg.connect(pg_database)
        name = pg_database.rsplit("/", 1)[1]
        await conn.execute(f'ALTER DATABASE "{name}" SET default_transaction_read_only = on')
        await conn.close()
        dsn = pg_database
    config = write_config(
        tmp_path,
        "http://127.0.0.1:9",
        seeds=SEEDS,
        store={"backend": "postgres", "dsn": dsn, "name": "bad"},
    )
    proc = await start_crawl(config)
    out, err = await asyncio.wait_for(proc.communicate(), TIMEOUT_S)
    text = out.decode() + err.decode()
    assert proc.returncode in (1, 2), text
    lines = [line for line in err.decode().splitlines() if line.strip()]
    assert len(lines) == 1 and message in lines[0], text
    assert secret not in text and dsn.split(":")[2].split("@")[0] not in text
    assert redacted(dsn) in text
    assert not list((tmp_path / "out").glob("*.jsonl"))
    conn = await asyncpg.connect(pg_database)
    try:
        assert await conn.fetchval("SELECT count(*) FROM pg_tables WHERE tablename = 'task'") == 0
    finally:
        await conn.close()
