"""Chooses the PostgreSQL driver for the store by running the store's own workload with each.

The crawler shares a 2-core machine with PostgreSQL, so what matters is the client CPU a
driver spends per million tasks as much as the wall time. Four phases, in a fresh database
per run, for asyncpg and for psycopg 3 (async, binary C extension), with each bulk path they
offer (array parameters through ``unnest`` or COPY):

- discover: 2 × N keys offered in groups (half new, half already known) with
  ``INSERT … ON CONFLICT DO NOTHING RETURNING``, so the discoverer learns which are new;
- lease: 4 connections claim batches with ``FOR UPDATE SKIP LOCKED`` until none is left;
- commit: each owner marks its tasks done and inserts one ~1 KB raw JSON record per task in the
  same transaction, fenced by an owner check (a short update count rolls it all back);
- export: one stream's records read back in commit order (a server-side cursor, or keyset
  pages) 5,000 at a time, framed as JSON lines (counted, not stored).

Client CPU is this process's; server CPU is that of this database's backends and the server's
own processes, read from /proc (so only for a server on this machine; an autovacuum worker
that ends within a phase is missed). Wall time is only meaningful on an otherwise idle machine.

Then it checks the semantics the design relies on: that fence, and session advisory locks
(held by a worker, seen by others in ``pg_locks``, released when the holder is SIGKILLed).

    python scripts/bench_pg_driver.py                  # N = 1M, both drivers, both paths
    python scripts/bench_pg_driver.py --paths unnest --claim cursor --lease 500

Without ``--dsn`` (or SPOTIFY_CRAWLER_TEST_DSN) it starts ``scripts/postgres.sh``'s server.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import functools
import os
import random
import signal
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Protocol

import asyncpg
import psycopg

ROOT = Path(__file__).resolve().parents[1]
WORKERS = 4
CRAWL = 1
OP = 3  # Op.TRACK
STREAM = 3
DONE = 1
LOCK_CLASS = 7_201  # advisory lock namespace of the bench's workers

SCHEMA = """
CREATE TABLE task(
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    crawl integer NOT NULL,
    op smallint NOT NULL,
    key text NOT NULL,
    state smallint NOT NULL DEFAULT 0,
    owner integer,
    UNIQUE (crawl, op, key)
);
CREATE INDEX task_free ON task(crawl, op, id) WHERE state = 0 AND owner IS NULL;
CREATE SEQUENCE commit_seq;
CREATE TABLE record(
    crawl integer NOT NULL,
    stream smallint NOT NULL,
    seq bigint NOT NULL,
    pos integer NOT NULL,
    body bytea NOT NULL,
    PRIMARY KEY (crawl, stream, seq, pos)
);
"""
INCOMING = "CREATE TEMP TABLE incoming(key text NOT NULL) ON COMMIT DELETE ROWS"
DISCOVER_UNNEST = (
    "INSERT INTO task(crawl, op, key) SELECT {0}, {1}, k FROM unnest({2}::text[]) AS k "
    "ON CONFLICT DO NOTHING RETURNING id"
)
DISCOVER_COPIED = (
    "INSERT INTO task(crawl, op, key) SELECT {0}, {1}, key FROM incoming "
    "ON CONFLICT DO NOTHING RETURNING id"
)
# ``id > after``: a worker may resume its scan past what it claimed last, rather than step over
# the index entries of every task claimed so far (dead until vacuum removes them).
CLAIM = (
    "UPDATE task SET owner = {0} WHERE id IN (SELECT id FROM task WHERE crawl = {1} AND op = {2}"
    " AND state = 0 AND owner IS NULL AND id > {3} ORDER BY id LIMIT {4} FOR UPDATE SKIP LOCKED)"
    " RETURNING id"
)
FINISH = "UPDATE task SET state = {0}, owner = NULL WHERE id = ANY({1}::bigint[]) AND owner = {2}"
RECORDS_UNNEST = (
    "INSERT INTO record(crawl, stream, seq, pos, body) SELECT {0}, {1}, {2}, p, b "
    "FROM unnest({3}::bytea[]) WITH ORDINALITY AS u(b, p)"
)
RECORD_COLUMNS = ("crawl", "stream", "seq", "pos", "body")
EXPORT = "SELECT body FROM record WHERE crawl = {0} AND stream = {1} ORDER BY seq, pos"
# Keyset pages: no long transaction or cursor, and an export could resume where it stopped.
EXPORT_PAGE = (
    "SELECT seq, pos, body FROM record WHERE crawl = {0} AND stream = {1}"
    " AND (seq, pos) > ({2}, {3}) ORDER BY seq, pos LIMIT {4}"
)
EXPORT_BATCH = 5000


class Fenced(Exception):
    """The owner check matched fewer tasks than the group holds: another worker has them."""


class Rendered:
    """The workload's statements in a driver's own placeholder style."""

    placeholders: ClassVar[Sequence[str]]

    def sql(self, template: str) -> str:
        return _render(template, tuple(self.placeholders))


@functools.cache
def _render(template: str, placeholders: tuple[str, ...]) -> str:
    return template.format(*placeholders)


class Driver(Protocol):
    """The handful of calls the store makes, written the fastest way each driver allows."""

    name: str

    async def connect(self, dsn: str) -> Any: ...
    async def close(self, conn: Any) -> None: ...
    async def run(self, conn: Any, sql: str) -> None: ...
    async def discover(self, conn: Any, keys: list[str], path: str) -> int: ...
    async def claim(self, conn: Any, owner: int, limit: int, after: int = 0) -> list[int]: ...
    async def commit(
        self, conn: Any, owner: int, ids: list[int], bodies: list[bytes], path: str
    ) -> None: ...
    async def rows(self, conn: Any, sql: str, *args: Any) -> list[Any]: ...
    async def export(self, conn: Any, write: Callable[[bytes], None]) -> int:
        """One stream through a server-side cursor; returns the number of lines."""

    async def value(self, conn: Any, sql: str, *args: Any) -> Any:
        """The first column of the first row; ``sql`` has ``{0}``-style placeholders."""


class Asyncpg(Rendered):
    name = "asyncpg"
    placeholders = tuple(f"${i}" for i in range(1, 10))

    async def connect(self, dsn: str) -> asyncpg.Connection:
        return await asyncpg.connect(dsn)

    async def close(self, conn: asyncpg.Connection) -> None:
        await conn.close()

    async def run(self, conn: asyncpg.Connection, sql: str) -> None:
        await conn.execute(sql)

    async def rows(self, conn: asyncpg.Connection, sql: str, *args: Any) -> list[Any]:
        return list(await conn.fetch(self.sql(sql), *args))

    async def export(self, conn: asyncpg.Connection, write: Callable[[bytes], None]) -> int:
        lines = 0
        async with conn.transaction():
            cursor = conn.cursor(self.sql(EXPORT), CRAWL, STREAM, prefetch=EXPORT_BATCH)
            async for (body,) in cursor:
                write(body)
                write(b"\n")
                lines += 1
        return lines

    async def value(self, conn: asyncpg.Connection, sql: str, *args: Any) -> Any:
        return await conn.fetchval(self.sql(sql), *args)

    async def discover(self, conn: asyncpg.Connection, keys: list[str], path: str) -> int:
        if path == "unnest":
            return len(await conn.fetch(self.sql(DISCOVER_UNNEST), CRAWL, OP, keys))
        async with conn.transaction():
            await conn.copy_records_to_table("incoming", records=[(k,) for k in keys])
            return len(await conn.fetch(self.sql(DISCOVER_COPIED), CRAWL, OP))

    async def claim(
        self, conn: asyncpg.Connection, owner: int, limit: int, after: int = 0
    ) -> list[int]:
        return [row[0] for row in await conn.fetch(self.sql(CLAIM), owner, CRAWL, OP, after, limit)]

    async def commit(
        self, conn: asyncpg.Connection, owner: int, ids: list[int], bodies: list[bytes], path: str
    ) -> None:
        async with conn.transaction():
            status = await conn.execute(self.sql(FINISH), DONE, ids, owner)
            if int(status.rpartition(" ")[2]) != len(ids):
                raise Fenced
            seq = await conn.fetchval("SELECT nextval('commit_seq')")
            if path == "unnest":
                await conn.execute(self.sql(RECORDS_UNNEST), CRAWL, STREAM, seq, bodies)
            else:
                rows = [(CRAWL, STREAM, seq, i, b) for i, b in enumerate(bodies, 1)]
                await conn.copy_records_to_table("record", records=rows, columns=RECORD_COLUMNS)


class Psycopg(Rendered):
    name = "psycopg"
    placeholders = ("%b",) * 9

    async def connect(self, dsn: str) -> psycopg.AsyncConnection[Any]:
        return await psycopg.AsyncConnection.connect(dsn, autocommit=True)

    async def close(self, conn: psycopg.AsyncConnection[Any]) -> None:
        await conn.close()

    async def run(self, conn: psycopg.AsyncConnection[Any], sql: str) -> None:
        await conn.execute(sql)

    async def rows(self, conn: psycopg.AsyncConnection[Any], sql: str, *args: Any) -> list[Any]:
        return await self._rows(conn, self.sql(sql), args)

    async def export(
        self, conn: psycopg.AsyncConnection[Any], write: Callable[[bytes], None]
    ) -> int:
        lines = 0
        async with conn.transaction(), conn.cursor("export", binary=True) as cursor:
            cursor.itersize = EXPORT_BATCH
            await cursor.execute(self.sql(EXPORT), (CRAWL, STREAM))
            async for (body,) in cursor:
                write(body)
                write(b"\n")
                lines += 1
        return lines

    async def value(self, conn: psycopg.AsyncConnection[Any], sql: str, *args: Any) -> Any:
        row = await (await conn.execute(self.sql(sql), args)).fetchone()
        return row[0] if row else None

    async def _rows(
        self, conn: psycopg.AsyncConnection[Any], sql: str, args: Sequence[Any]
    ) -> list[Any]:
        cur = await conn.execute(sql, args, prepare=True, binary=True)
        return await cur.fetchall()

    async def discover(self, conn: psycopg.AsyncConnection[Any], keys: list[str], path: str) -> int:
        if path == "unnest":
            return len(await self._rows(conn, self.sql(DISCOVER_UNNEST), (CRAWL, OP, keys)))
        async with conn.transaction():
            cur = conn.cursor(binary=True)
            async with cur.copy("COPY incoming(key) FROM STDIN (FORMAT BINARY)") as copy:
                copy.set_types(["text"])
                for key in keys:
                    await copy.write_row((key,))
            return len(await self._rows(conn, self.sql(DISCOVER_COPIED), (CRAWL, OP)))

    async def claim(
        self, conn: psycopg.AsyncConnection[Any], owner: int, limit: int, after: int = 0
    ) -> list[int]:
        args = (owner, CRAWL, OP, after, limit)
        return [row[0] for row in await self._rows(conn, self.sql(CLAIM), args)]

    async def commit(
        self,
        conn: psycopg.AsyncConnection[Any],
        owner: int,
        ids: list[int],
        bodies: list[bytes],
        path: str,
    ) -> None:
        async with conn.transaction():
            cur = await conn.execute(self.sql(FINISH), (DONE, ids, owner), prepare=True)
            if cur.rowcount != len(ids):
                raise Fenced
            seq = await self.value(conn, "SELECT nextval('commit_seq')")
            if path == "unnest":
                await conn.execute(
                    self.sql(RECORDS_UNNEST), (CRAWL, STREAM, seq, bodies), prepare=True
                )
                return
            copy_sql = f"COPY record({', '.join(RECORD_COLUMNS)}) FROM STDIN (FORMAT BINARY)"
            async with conn.cursor(binary=True).copy(copy_sql) as copy:
                copy.set_types(["int4", "int2", "int8", "int4", "bytea"])
                for i, body in enumerate(bodies, 1):
                    await copy.write_row((CRAWL, STREAM, seq, i, body))


DRIVERS: dict[str, Driver] = {"asyncpg": Asyncpg(), "psycopg": Psycopg()}


async def export_pages(driver: Driver, conn: Any, write: Callable[[bytes], None]) -> int:
    """One stream in keyset pages; returns the number of lines."""
    lines, seq, pos = 0, 0, 0
    while page := await driver.rows(conn, EXPORT_PAGE, CRAWL, STREAM, seq, pos, EXPORT_BATCH):
        for _, _, body in page:
            write(body)
            write(b"\n")
        lines += len(page)
        seq, pos = page[-1][0], page[-1][1]
    return lines


# ---------------------------------------------------------------- measuring


def _proc_cpu(pid: int) -> float:
    """CPU seconds of one process (utime + stime from /proc), 0 once it has gone."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@dataclass
class Figures:
    wall: float
    client_cpu: float
    server_cpu: float
    units: int

    def render(self, name: str, per: int) -> str:
        wall, client, server = (
            x * per / self.units for x in (self.wall, self.client_cpu, self.server_cpu)
        )
        return (
            f"{name:<9} wall {wall:6.2f} s  client CPU {client:6.2f} s  server CPU {server:6.2f} s"
            f"  per {per:,} ({self.units:,} done)"
        )


async def measure(
    server_pids: Callable[[], Awaitable[list[int]]], work: Callable[[], Awaitable[int]]
) -> Figures:
    """Wall, this process's CPU and the server processes' CPU around one phase."""
    before = {pid: _proc_cpu(pid) for pid in await server_pids()}
    wall0, cpu0 = time.perf_counter(), time.process_time()
    units = await work()
    wall, cpu = time.perf_counter() - wall0, time.process_time() - cpu0
    # A process that ended meanwhile (an autovacuum worker) is left out: it reads as 0.
    after = {pid: _proc_cpu(pid) for pid in set(before) | set(await server_pids())}
    server = sum(used - before.get(pid, 0.0) for pid, used in after.items() if used)
    return Figures(wall, cpu, server, units)


def make_keys(count: int, rng: random.Random) -> list[str]:
    """Random 22-character IDs, shaped like Spotify's, so index inserts land all over the tree."""
    raw = base64.urlsafe_b64encode(rng.randbytes(18 * count)).decode()  # 24 characters each
    return [raw[i : i + 22] for i in range(0, len(raw), 24)]


def offered_groups(keys: list[str], group: int, rng: random.Random) -> list[list[str]]:
    """Groups of ``group`` keys: half never seen, half drawn from the keys offered so far."""
    half = group // 2
    groups = []
    for start in range(0, len(keys), half):
        fresh = keys[start : start + half]
        seen = keys[: start + len(fresh)]
        groups.append(fresh + [seen[rng.randrange(len(seen))] for _ in fresh])
        rng.shuffle(groups[-1])
    return groups


def bodies(count: int, rng: random.Random) -> list[bytes]:
    """~1 KB track objects as the API sends them (compact JSON, keys in the API's order)."""
    out = []
    for i in range(count):
        tid = make_keys(1, rng)[0]
        artists = ",".join(
            f'{{"external_urls":{{"spotify":"https://open.spotify.com/artist/{a}"}},'
            f'"href":"https://api.spotify.com/v1/artists/{a}","id":"{a}","name":"Artist {a[:6]}",'
            f'"type":"artist","uri":"spotify:artist:{a}"}}'
            for a in make_keys(2, rng)
        )
        out.append(
            (
                f'{{"artists":[{artists}],"disc_number":1,"duration_ms":{200000 + i},'
                f'"explicit":false,"external_ids":{{"isrc":"US{i:010d}"}},'
                f'"external_urls":{{"spotify":"https://open.spotify.com/track/{tid}"}},'
                f'"href":"https://api.spotify.com/v1/tracks/{tid}","id":"{tid}",'
                f'"is_local":false,"name":"Track \\"{i}\\" – ünïcode","popularity":{i % 100},'
                f'"preview_url":null,"track_number":{i % 20 + 1},"type":"track",'
                f'"uri":"spotify:track:{tid}"}}'
            ).encode()
        )
    return out


async def fresh_database(admin_dsn: str, name: str) -> str:
    conn = await asyncpg.connect(admin_dsn)
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}"')
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()
    return with_database(admin_dsn, name)


def with_database(dsn: str, name: str) -> str:
    base, _, _ = dsn.rpartition("/")
    return f"{base}/{name}"


async def drop_database(admin_dsn: str, name: str) -> None:
    conn = await asyncpg.connect(admin_dsn)
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}"')
    finally:
        await conn.close()


async def bench_one(
    driver: Driver, path: str, admin_dsn: str, args: argparse.Namespace
) -> dict[str, Figures]:
    rng = random.Random(args.seed)
    keys = make_keys(args.tasks, rng)
    groups = offered_groups(keys, args.group, rng)
    payloads = bodies(1000, rng)
    name = f"bench_{os.getpid()}_{driver.name}_{path}"
    dsn = await fresh_database(admin_dsn, name)
    conns = [await driver.connect(dsn) for _ in range(WORKERS)]
    try:
        await driver.run(conns[0], SCHEMA)
        for conn in conns:
            await driver.run(conn, INCOMING)

        async def server_pids() -> list[int]:
            # This database's sessions and the server's own processes, not other clients'.
            sql = (
                "SELECT array_agg(pid) FROM pg_stat_activity"
                " WHERE datname = current_database() OR backend_type <> 'client backend'"
            )
            return list(await driver.value(conns[0], sql) or [])

        async def discover() -> int:
            new = 0
            for group in groups:
                new += await driver.discover(conns[0], group, path)
            if new != len(keys):
                raise AssertionError(f"discover: {new} new keys reported, {len(keys)} offered")
            return new

        claimed: list[list[int]] = [[] for _ in conns]

        async def lease(worker: int) -> None:
            after = 0
            while True:
                batch = await driver.claim(conns[worker], worker + 1, args.lease, after)
                if batch:
                    claimed[worker].extend(batch)
                    after = max(batch) if args.claim == "cursor" else 0
                elif after:
                    after = 0  # once more from the start, for tasks skipped while locked
                else:
                    return

        async def leases() -> int:
            await asyncio.gather(*(lease(w) for w in range(WORKERS)))
            ids = [i for c in claimed for i in c]
            if len(ids) != len(keys) or len(set(ids)) != len(ids):
                raise AssertionError(f"lease: {len(ids)} claims, {len(set(ids))} distinct")
            return len(ids)

        async def commit(worker: int) -> None:
            mine = claimed[worker]
            for start in range(0, len(mine), args.commit_group):
                ids = mine[start : start + args.commit_group]
                recs = [payloads[i % len(payloads)] for i in ids]
                await driver.commit(conns[worker], worker + 1, ids, recs, path)

        async def commits() -> int:
            await asyncio.gather(*(commit(w) for w in range(WORKERS)))
            done = await driver.value(conns[0], "SELECT count(*) FROM record")
            if done != len(keys):
                raise AssertionError(f"commit: {done} records for {len(keys)} tasks")
            return done

        async def export() -> int:
            size = 0

            def write(data: bytes) -> None:
                nonlocal size
                size += len(data)

            if args.export == "cursor":
                lines = await driver.export(conns[0], write)
            else:
                lines = await export_pages(driver, conns[0], write)
            expected = sum(len(payloads[i % len(payloads)]) + 1 for c in claimed for i in c)
            if (lines, size) != (len(keys), expected):
                raise AssertionError(f"export: {lines} lines of {size} bytes, not {expected}")
            return lines

        return {
            "discover": await measure(server_pids, discover),
            "lease": await measure(server_pids, leases),
            "commit": await measure(server_pids, commits),
            "export": await measure(server_pids, export),
        }
    finally:
        for conn in conns:
            await driver.close(conn)
        await drop_database(admin_dsn, name)


# ---------------------------------------------------------------- semantics


async def check_fence(driver: Driver, dsn: str) -> str:
    """A commit whose owner check matches fewer rows than it holds leaves nothing behind."""
    a, b = await driver.connect(dsn), await driver.connect(dsn)
    try:
        await driver.run(a, SCHEMA)
        await driver.discover(a, ["k1", "k2", "k3"], "unnest")
        ids = await driver.claim(a, 1, 10)
        # Worker 1 is presumed dead, its leases freed and one taken by worker 2.
        await driver.run(b, "UPDATE task SET owner = NULL")
        taken = await driver.claim(b, 2, 1)
        try:
            await driver.commit(a, 1, ids, [b"{}"] * len(ids), "unnest")
        except Fenced:
            pass
        else:
            raise AssertionError("a fenced commit went through")
        done = await driver.value(a, "SELECT count(*) FROM task WHERE state = 1")
        records = await driver.value(a, "SELECT count(*) FROM record")
        if (len(ids), len(taken), done, records) != (3, 1, 0, 0):
            raise AssertionError(f"fence: {len(ids)=} {len(taken)=} {done=} {records=}")
        await driver.commit(b, 2, taken, [b"{}"], "unnest")
        return "fence: a short owner-checked update rolled back the group (0 done, 0 records)"
    finally:
        await driver.close(a)
        await driver.close(b)


HOLDER = """
import asyncio, sys, asyncpg
async def main():
    conn = await asyncpg.connect(sys.argv[1])
    await conn.fetchval("SELECT pg_try_advisory_lock($1, $2)", int(sys.argv[2]), int(sys.argv[3]))
    print(await conn.fetchval("SELECT pg_backend_pid()"), flush=True)
    await asyncio.sleep(3600)
asyncio.run(main())
"""


async def check_advisory(driver: Driver, dsn: str) -> str:
    """A worker's session lock is visible to the others and goes with its process."""
    watcher = await driver.connect(dsn)
    holder = await asyncio.create_subprocess_exec(
        sys.executable, "-c", HOLDER, dsn, str(LOCK_CLASS), "42", stdout=subprocess.PIPE
    )
    try:
        assert holder.stdout is not None
        backend = int(await holder.stdout.readline())
        held = (
            "SELECT pid FROM pg_locks WHERE locktype = 'advisory' AND granted AND classid = {0}"
            " AND objid = 42 AND objsubid = 2"
            " AND database = (SELECT oid FROM pg_database WHERE datname = current_database())"
        )
        seen = await driver.value(watcher, held, LOCK_CLASS)
        got = await driver.value(watcher, f"SELECT pg_try_advisory_lock({LOCK_CLASS}, 42)")
        if (seen, got) != (backend, False):
            raise AssertionError(f"advisory: holder {backend}, pg_locks says {seen}, got {got}")
        holder.send_signal(signal.SIGKILL)
        await holder.wait()
        killed = time.perf_counter()
        # Blocks until the server has noticed the holder's end and released its lock.
        await asyncio.wait_for(
            driver.value(watcher, f"SELECT pg_advisory_lock({LOCK_CLASS}, 42)"), timeout=30
        )
        freed = time.perf_counter() - killed
        return (
            f"advisory: held lock seen in pg_locks (pid {backend}); after SIGKILL of its holder"
            f" another session took it {freed * 1000:.1f} ms later"
        )
    finally:
        if holder.returncode is None:
            holder.kill()
            await holder.wait()
        await driver.close(watcher)


# ---------------------------------------------------------------- main


def default_dsn() -> str:
    if dsn := os.environ.get("SPOTIFY_CRAWLER_TEST_DSN"):
        return dsn
    script = ROOT / "scripts" / "postgres.sh"
    subprocess.run(["bash", script, "start"], check=True)
    return subprocess.run(
        ["bash", script, "dsn"], check=True, capture_output=True, text=True
    ).stdout.strip()


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--dsn", help="a role that may create databases (default: scripts/postgres.sh)")
    p.add_argument("--tasks", type=int, default=1_000_000, help="distinct tasks (N)")
    p.add_argument("--group", type=int, default=2000, help="keys offered per discover statement")
    p.add_argument("--lease", type=int, default=50, help="tasks per claim")
    p.add_argument(
        "--claim",
        choices=("scan", "cursor"),
        default="scan",
        help="each claim scans the pending index from its start, or from the worker's last claim",
    )
    p.add_argument("--commit-group", type=int, default=1000, help="tasks per commit transaction")
    p.add_argument("--drivers", nargs="+", choices=sorted(DRIVERS), default=sorted(DRIVERS))
    p.add_argument("--paths", nargs="+", choices=("unnest", "copy"), default=("unnest", "copy"))
    p.add_argument(
        "--export",
        choices=("cursor", "keyset"),
        default="cursor",
        help="read records back through a server-side cursor, or in keyset pages",
    )
    p.add_argument("--runs", type=int, default=1)
    p.add_argument("--seed", type=int, default=1)
    return p.parse_args(argv)


async def main(argv: Sequence[str] | None = None) -> None:
    args = parse_args(argv)
    dsn = args.dsn or default_dsn()
    print(f"asyncpg {asyncpg.__version__}, psycopg {psycopg.__version__} ({psycopg.pq.__impl__})")
    print(
        f"N = {args.tasks:,} tasks, {WORKERS} connections, discover groups of {args.group},"
        f" claims of {args.lease} ({args.claim}), commit groups of {args.commit_group},"
        f" export by {args.export};"
        " figures per 1,000,000"
    )
    for run in range(1, args.runs + 1):
        for name in args.drivers:
            for path in args.paths:
                figures = await bench_one(DRIVERS[name], path, dsn, args)
                print(f"-- run {run}: {name}, {path}")
                for phase, fig in figures.items():
                    print("   " + fig.render(phase, 1_000_000))
    for name in args.drivers:
        check_db = f"bench_{os.getpid()}_check_{name}"
        check_dsn = await fresh_database(dsn, check_db)
        try:
            print(f"{name}: {await check_fence(DRIVERS[name], check_dsn)}")
            print(f"{name}: {await check_advisory(DRIVERS[name], check_dsn)}")
        finally:
            await drop_database(dsn, check_db)


if __name__ == "__main__":
    asyncio.run(main())
