"""The SQLite store: one checkpoint database beside JSON-lines files, for one process.

One row per task ``(op, key)`` makes SQLite's unique index the dedupe set, so memory does not
grow with the number of IDs seen. Each commit applies a group in one transaction: new tasks,
finished tasks, failures, counts, and the committed byte length of every JSONL file (whose
bytes were fsynced first). A crash at any instant therefore leaves a state where every task is
either committed with its output lines, or pending and redone on the next run.

Leases are the process's: the checkpoint lock (``store.lock``) makes this process the only
one, and a lease is "this process read the task": per op, tasks are handed out in sequence
order, so the leased ones are exactly the pending tasks up to a cursor.

The dedupe set has two levels, like a small LSM tree. A unique index over random IDs costs a
page write per new key (each commit dirties pages all over the index, and WAL writes each
one twice), which made it most of the checkpoint's cost. So new tasks are appended to
``task`` with no such index, and remembered in memory (``recent``: at most ``MERGE_EVERY``
keys); once that many have gathered, one sorted insert merges them into ``seen``, the
durable index, touching each of its pages once. A key is known if it is in ``recent`` or in
``seen``; after a crash, ``recent`` is rebuilt from the tasks past the last merge.
"""

from __future__ import annotations

import asyncio
import contextlib
import operator
import os
import sqlite3
import tempfile
import threading
import time
from collections import Counter, defaultdict
from collections.abc import AsyncIterator, Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import aiosqlite
import msgspec
import orjson

from crawler.core.errors import CheckpointError, CrawlerError, cannot_write
from crawler.core.kinds import EDGE_STREAMS, STREAMS, Op, State, stream_file
from crawler.core.tasks import Task
from crawler.core.timeseries import Run, Sample
from crawler.store.base import CommitGroup, StoreCost
from crawler.store.lock import CheckpointLock
from crawler.store.outputs import Committed, Outputs
from crawler.store.plan import changed_keys, within_budget

SCHEMA_VERSION = 3
WAL_CHECKPOINT_BYTES = 64 * 2**20
MERGE_EVERY = 200_000  # new keys kept in memory before they are merged into ``seen``
# The time series stays bounded for week-long crawls: samples older than a day are thinned to
# one a minute, older than a week to one every ten (each run's first and last are kept).
# Samples hold counters, so the rates between the rows that remain stay exact.
THIN_AFTER = ((86_400.0, 60.0), (7 * 86_400.0, 600.0))
THIN_EVERY = 200  # samples written between two thinnings
_OPS = {int(op): op for op in Op}
_by_seq = operator.itemgetter(0)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta(key TEXT PRIMARY KEY, value BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS task(
    seq INTEGER PRIMARY KEY,
    op INTEGER NOT NULL,
    key TEXT NOT NULL,
    state INTEGER NOT NULL DEFAULT 0,
    at INTEGER,  -- when it was committed finished (epoch ms): the records' fetched_at
    features INTEGER  -- a track's audio-features task: its state, NULL if it has none
);
-- The merged level of the dedupe set: every task up to meta "merged" (see above). Audio
-- features are 1:1 with tracks, so their task lives in the track's row, not here.
CREATE TABLE IF NOT EXISTS seen(
    op INTEGER NOT NULL,
    key TEXT NOT NULL,
    seq INTEGER NOT NULL,
    PRIMARY KEY(op, key)
) WITHOUT ROWID;
-- Pending work of the ops with few tasks. Tracks and their features, half the rows of a
-- crawl, are claimed by scanning forward from a cursor instead: they are claimed rarely (new
-- ones arrive leased) and an index would cost two updates per task.
CREATE INDEX IF NOT EXISTS task_pending ON task(op, seq) WHERE state = 0 AND op != 3;
CREATE TABLE IF NOT EXISTS failure(
    op INTEGER NOT NULL,
    key TEXT NOT NULL,
    reason TEXT NOT NULL,
    at REAL NOT NULL,
    PRIMARY KEY(op, key)
);
CREATE TABLE IF NOT EXISTS output(
    name TEXT PRIMARY KEY,
    length INTEGER NOT NULL,
    lines INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS counts(
    op INTEGER NOT NULL,
    state INTEGER NOT NULL,
    n INTEGER NOT NULL,
    PRIMARY KEY(op, state)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS run(
    id INTEGER PRIMARY KEY,
    started REAL NOT NULL,
    ended REAL,
    exit_code INTEGER,
    message TEXT
);
-- The crawl's time series (core/timeseries.py): one JSON row every few seconds of a run.
CREATE TABLE IF NOT EXISTS sample(
    id INTEGER PRIMARY KEY,
    at REAL NOT NULL,
    run INTEGER NOT NULL,
    data BLOB NOT NULL
);
"""


# Schema 2 kept audio-features tasks in rows of their own (op 4): fold them into the track
# rows, through a temporary index (without it the fold would be quadratic).
_MIGRATE_2 = (
    "ALTER TABLE task ADD COLUMN at INTEGER",
    "ALTER TABLE task ADD COLUMN features INTEGER",
    "ALTER TABLE output ADD COLUMN lines INTEGER NOT NULL DEFAULT 0",
    "CREATE INDEX migrate_features ON task(key) WHERE op = 4",
    "UPDATE task SET features = "
    "(SELECT f.state FROM task AS f WHERE f.op = 4 AND f.key = task.key) WHERE op = 3",
    "DROP INDEX migrate_features",
    "DELETE FROM task WHERE op = 4",
    "DROP INDEX task_pending",
    "CREATE INDEX task_pending ON task(op, seq) WHERE state = 0 AND op != 3",
    "INSERT INTO seen(op, key, seq) SELECT op, key, seq FROM task ORDER BY op, key",
    "DROP INDEX task_key",
    "INSERT INTO meta(key, value) SELECT 'merged', CAST(coalesce(max(seq), 0) AS TEXT) FROM task",
)


# Claims name their plan: without statistics SQLite would pick the dedupe index (op, key) and
# sort, reading every task of the op. Track rows are read forward from the cursor by rowid
# (``+op`` keeps the dedupe index out); other ops through their partial pending index.
_CLAIM = (
    "SELECT seq, key FROM task INDEXED BY task_pending "
    "WHERE op = ? AND op != 3 AND state = 0 AND seq > ? ORDER BY seq LIMIT ?"
)
_CLAIM_TRACK_ROWS = (
    "SELECT seq, key FROM task WHERE +op = ? AND {} = 0 AND seq > ? ORDER BY seq LIMIT ?"
)


# Keep, of the samples older than an age, the first in each bucket of a width, and each
# run's first and last.
_THIN = """
DELETE FROM sample WHERE at < ?1 AND id NOT IN (
    SELECT min(id) FROM sample WHERE at < ?3 GROUP BY run, CAST(at / ?2 AS INTEGER)
    UNION SELECT min(id) FROM sample GROUP BY run
    UNION SELECT max(id) FROM sample GROUP BY run
)
"""

_decode_sample = msgspec.json.Decoder(Sample).decode


def _row(op: Op) -> tuple[Op, str]:
    """Where a task's state lives: its own row, or (audio features) its track's row."""
    return (Op.TRACK, "features") if op is Op.FEATURES else (op, "state")


def checkpoint_files(path: Path) -> tuple[Path, ...]:
    """The database and SQLite's companions (write-ahead log, shared memory)."""
    return path, Path(f"{path}-wal"), Path(f"{path}-shm")


class SqliteStore:
    """The checkpoint database and the output files; see ``store.base.Store``."""

    shared = False  # the checkpoint lock admits one process

    def __init__(self, db: aiosqlite.Connection, path: Path, out_dir: Path) -> None:
        self._db = db
        self.path = path
        self.out_dir = out_dir
        self._outputs: Outputs | None = None
        self._lock: CheckpointLock | None = None
        self._meta: dict[str, Any] = {}
        self._counts: Counter[tuple[Op, State]] = Counter()
        self._committed: dict[str, Committed] = {}
        self._written: Counter[str] = Counter()
        self._merged = 0  # tasks up to this seq are in ``seen``
        self._recent: dict[Op, dict[str, int]] = {}  # key → seq of the tasks past it
        # Leases: per op, pending tasks up to the cursor are this process's; past it, the op
        # is "spilled" when more pending tasks may exist than were handed out.
        self._cursor: dict[Op, int] = {}
        self._spilled: dict[Op, bool] = {}
        self._run_id: int | None = None
        self._samples: list[Sample] = []  # durable with the next commit, or the run's end
        self._samples_written = 0
        self._commits = 0
        self._commit_seconds = 0.0
        # CPU the checkpoint really costs: SQLite's thread, file flushes, Python bookkeeping.
        self._db_clock: int | None = None
        self._db_cpu_start = 0.0
        self._apply_cpu = 0.0

    # ---------------------------------------------------------------- opening

    @classmethod
    async def open(
        cls,
        path: Path,
        out_dir: Path,
        fingerprint: Mapping[str, Any],
        streams: Sequence[str],
        *,
        fresh: bool = False,
    ) -> SqliteStore:
        """Lock, then open or create; refuse a checkpoint of another crawl or a damaged one.

        ``fresh`` deletes the checkpoint and the stream files first, under the lock, so a
        crawl still running is never wiped.
        """
        _check_path(path)
        for directory in dict.fromkeys((out_dir, path.parent)):
            ensure_writable(directory)
        lock = CheckpointLock(path)
        lock.acquire()
        try:
            if fresh:
                for stale in (*checkpoint_files(path), *_stream_paths(out_dir)):
                    stale.unlink(missing_ok=True)
            existed = path.exists() and path.stat().st_size > 0
            self = await cls._connect(path, out_dir, readonly=False)
            self._lock = lock
            try:
                await self._prepare(existed, dict(fingerprint), streams)
            except BaseException:
                await self.close()
                raise
        except BaseException:
            lock.release()
            raise
        return self

    @classmethod
    async def open_readonly(cls, path: Path, out_dir: Path) -> SqliteStore:
        """For ``status`` and ``export``: reads a running crawl's checkpoint, changes nothing."""
        _check_path(path)
        self = await cls._connect(path, out_dir, readonly=True)
        try:
            await self._load()
        except sqlite3.DatabaseError as exc:
            await self.close()
            raise _unreadable(path, exc) from None
        return self

    @classmethod
    async def _connect(cls, path: Path, out_dir: Path, *, readonly: bool) -> SqliteStore:
        try:
            if readonly:
                db = await aiosqlite.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)
            else:
                db = await aiosqlite.connect(path, isolation_level=None)
        except sqlite3.Error as exc:
            raise CheckpointError(f"{path}: cannot open checkpoint: {exc}") from None
        return cls(db, path, out_dir)

    async def _prepare(self, existed: bool, fingerprint: dict[str, Any], streams: Sequence[str]):
        db = self._db
        try:
            await db.execute("PRAGMA journal_mode=WAL")
            await db.execute("PRAGMA synchronous=NORMAL")
            await db.execute("PRAGMA cache_size=-65536")
            await db.execute("PRAGMA temp_store=MEMORY")
            # Fold the WAL into the database every 64 MiB rather than every 16 MiB: a page
            # that several commits changed is then copied once (measured: commits cost 40 %
            # less).
            (page_size,) = await (await db.execute("PRAGMA page_size")).fetchone()  # type: ignore[misc]
            await db.execute(f"PRAGMA wal_autocheckpoint={WAL_CHECKPOINT_BYTES // page_size}")
            if existed:
                await self._check_existing(fingerprint)
            await db.executescript(_SCHEMA)  # tables a checkpoint of this schema may lack
            if not existed:
                await self._write_meta({"schema": SCHEMA_VERSION, "fingerprint": fingerprint})
            await self._start_cpu_clock()
            await self._load()
        except sqlite3.DatabaseError as exc:
            if "disk is full" in str(exc):
                raise cannot_write(self.path.parent, exc, "free some space and rerun") from None
            raise _unreadable(self.path, exc) from None
        self._outputs = Outputs(self.out_dir, streams, self._committed)

    async def _check_existing(self, fingerprint: dict[str, Any]) -> None:
        async with self._db.execute(
            "SELECT value FROM meta WHERE key IN ('schema', 'fingerprint') ORDER BY key"
        ) as cursor:
            rows = [orjson.loads(value) for (value,) in await cursor.fetchall()]
        if len(rows) != 2:
            raise sqlite3.DatabaseError("not a spotify-crawler checkpoint")
        stored, schema = rows
        if schema == 2:
            stored = await self._migrate_from_2(stored)
        elif schema != SCHEMA_VERSION:
            raise CheckpointError(
                f"{self.path}: checkpoint schema {schema} is not {SCHEMA_VERSION}; "
                "rerun with --fresh to start afresh"
            )
        changed = changed_keys(stored, fingerprint)
        if changed:
            raise CheckpointError(
                f"{self.path}: this checkpoint was made with different settings "
                f"({', '.join(changed)}); restore them to continue that crawl, "
                "or rerun with --fresh to start afresh"
            )

    async def _migrate_from_2(self, stored: dict[str, Any]) -> dict[str, Any]:
        """Schema 2 → 3 in place: counts get a table, files their line counts, tasks a time.

        Schema 2 wrote no edge streams, so the migrated crawl is recorded with them off: a
        config that turns them on is refused by name rather than silently incomplete.
        """
        db = self._db
        await db.executescript(_SCHEMA)  # the new tables (it commits: run it before BEGIN)
        await db.execute("BEGIN")
        for statement in _MIGRATE_2:
            await db.execute(statement)
        async with db.execute("SELECT name, length FROM output") as cursor:
            for name, length in await cursor.fetchall():
                lines = await asyncio.to_thread(_count_lines, self.out_dir / name, length)
                await db.execute("UPDATE output SET lines = ? WHERE name = ?", (lines, name))
        async with db.execute("SELECT value FROM meta WHERE key = 'counts'") as cursor:
            row = await cursor.fetchone()
        counts = orjson.loads(row[0]) if row else []
        await db.executemany("INSERT INTO counts(op, state, n) VALUES (?, ?, ?)", counts)
        await db.execute("DELETE FROM meta WHERE key = 'counts'")
        stored = {**stored, "output": dict.fromkeys(EDGE_STREAMS, False)}
        await self._write_meta({"schema": SCHEMA_VERSION, "fingerprint": stored})
        await db.execute("COMMIT")
        return stored

    async def _start_cpu_clock(self) -> None:
        """Find aiosqlite's worker thread (a SQL function runs in it) to read its CPU clock."""
        await self._db.create_function("writer_thread", 0, threading.get_ident)
        async with self._db.execute("SELECT writer_thread()") as cursor:
            (ident,) = await cursor.fetchone()  # type: ignore[misc]
        with contextlib.suppress(AttributeError, OSError):  # not every platform has the clock
            self._db_clock = time.pthread_getcpuclockid(ident)
            self._db_cpu_start = time.clock_gettime(self._db_clock)

    async def _load(self) -> None:
        db = self._db
        async with db.execute("SELECT key, value FROM meta") as cursor:
            self._meta = {key: orjson.loads(value) async for key, value in cursor}
        async with db.execute("SELECT op, state, n FROM counts") as cursor:
            self._counts = Counter({(Op(op), State(s)): n async for op, s, n in cursor})
        async with db.execute("SELECT name, length, lines FROM output") as cursor:
            self._committed = {
                name.removesuffix(".jsonl"): Committed(length, lines)
                async for name, length, lines in cursor
            }
        self._written = Counter({stream: c.lines for stream, c in self._committed.items()})
        self._merged = self._meta.get("merged", 0)
        self._recent = {}
        async with db.execute(
            "SELECT seq, op, key FROM task WHERE seq > ?", (self._merged,)
        ) as cursor:
            async for seq, op, key in cursor:
                self._recent.setdefault(_OPS[op], {})[key] = seq
        # Nothing is leased yet: every pending task is claimable.
        self._cursor = dict.fromkeys(Op, 0)
        self._spilled = {op: self._counts[(op, State.PENDING)] > 0 for op in Op}

    async def close(self) -> None:
        if self._outputs is not None:
            self._outputs.close()
            self._outputs = None
        await self._db.close()
        if self._lock is not None:
            self._lock.release()
            self._lock = None

    # ---------------------------------------------------------------- reading

    @property
    def meta(self) -> Mapping[str, Any]:
        return self._meta

    def counts(self) -> Counter[tuple[Op, State]]:
        return self._counts

    def written(self) -> Counter[str]:
        return self._written

    def claimable(self, op: Op) -> bool:
        return self._spilled[op]

    def busy_elsewhere(self) -> bool:
        return False  # the checkpoint lock: no other process has this crawl

    def watch(self, on_change: Callable[[CrawlerError | None], None]) -> None:
        """Nothing changes behind this process's back."""

    async def claim(self, op: Op, limit: int) -> list[Task]:
        if not self._spilled[op] or limit <= 0:
            return []
        row_op, column = _row(op)
        sql = _CLAIM_TRACK_ROWS.format(column) if row_op is Op.TRACK else _CLAIM
        async with self._db.execute(sql, (int(row_op), self._cursor[op], limit)) as cursor:
            tasks = [Task(seq, op, key) for seq, key in await cursor.fetchall()]
        if len(tasks) < limit:
            self._spilled[op] = False
        if tasks:
            self._cursor[op] = tasks[-1].seq
        return tasks

    async def states(self, keys: Iterable[tuple[Op, str]]) -> dict[tuple[Op, str], State]:
        found: dict[tuple[Op, str], State] = {}
        wanted: defaultdict[Op, list[str]] = defaultdict(list)
        for op, key in keys:
            wanted[op].append(key)
        for op, op_keys in wanted.items():
            row_op, column = _row(op)
            seqs = await self._stored(row_op, op_keys)
            async with self._db.execute(
                f"SELECT key, {column} FROM task WHERE {column} IS NOT NULL "
                "AND seq IN (SELECT value FROM json_each(?))",
                (orjson.dumps(list(seqs.values())),),
            ) as cursor:
                found.update(((op, key), State(state)) for key, state in await cursor.fetchall())
        return found

    async def _stored(self, op: Op, keys: Sequence[str]) -> dict[str, int]:
        """key → seq of the tasks of ``op`` among ``keys`` that exist (in either level)."""
        recent = self._recent.get(op, {})
        stored = {key: recent[key] for key in keys if key in recent}
        rest = [key for key in keys if key not in recent]
        if rest:
            async with self._db.execute(  # the IN form probes ``seen`` once per key
                "SELECT key, seq FROM seen "
                "WHERE op = ? AND key IN (SELECT value FROM json_each(?))",
                (int(op), orjson.dumps(rest)),
            ) as cursor:
                stored.update(await cursor.fetchall())  # type: ignore[arg-type]
        return stored

    async def failures(self, limit: int = 20) -> list[tuple[Op, str, str]]:
        async with self._db.execute(
            "SELECT op, key, reason FROM failure ORDER BY at LIMIT ?", (limit,)
        ) as cursor:
            rows = await cursor.fetchall()
        return [(Op(op), key, reason) for op, key, reason in rows]

    async def stream_files(self, scratch: Path) -> dict[str, tuple[Path, int]]:
        return {
            stream: (self.out_dir / stream_file(stream), committed.length)
            for stream, committed in self._committed.items()
        }

    async def fetched_at(self, op: Op) -> AsyncIterator[list[tuple[str, float]]]:
        async with self._db.execute(
            "SELECT key, at / 1000.0 FROM task WHERE op = ? AND state = ? AND at IS NOT NULL",
            (int(op), int(State.DONE)),
        ) as cursor:
            while rows := await cursor.fetchmany(50_000):
                yield list(rows)  # type: ignore[arg-type]

    def cost(self) -> StoreCost:
        db_cpu = 0.0
        if self._db_clock is not None:
            db_cpu = time.clock_gettime(self._db_clock) - self._db_cpu_start
        files = self._outputs.cpu_seconds if self._outputs is not None else 0.0
        parts = {"sqlite": db_cpu, "files": files, "bookkeeping": self._apply_cpu}
        return StoreCost(self._commits, self._commit_seconds, sum(parts.values()), parts)

    # ---------------------------------------------------------------- runs

    async def begin_run(self) -> int:
        async with self._db.execute(
            "INSERT INTO run(started) VALUES (?) RETURNING id", (time.time(),)
        ) as cursor:
            (run_id,) = await cursor.fetchone()  # type: ignore[misc]
        self._run_id = run_id
        return run_id

    async def end_run(self, exit_code: int, message: str) -> None:
        last = {"exit_code": exit_code, "message": message, "ended": time.time()}
        await self._db.execute("BEGIN")
        await self._write_samples()
        if self._run_id is not None:
            await self._db.execute(
                "UPDATE run SET ended = ?, exit_code = ?, message = ? WHERE id = ?",
                (last["ended"], exit_code, message, self._run_id),
            )
        await self._write_meta({"last_run": last})
        await self._db.execute("COMMIT")

    def record_sample(self, sample: Sample) -> None:
        self._samples.append(sample)

    async def samples(self) -> list[Sample]:
        async with self._db.execute("SELECT data FROM sample ORDER BY at, id") as cursor:
            return [_decode_sample(data) for (data,) in await cursor.fetchall()]

    async def runs(self) -> list[Run]:
        async with self._db.execute(
            "SELECT id, started, ended, exit_code FROM run ORDER BY id"
        ) as cursor:
            return [Run(*row) for row in await cursor.fetchall()]

    async def _write_samples(self) -> None:
        """Inside the open transaction: the buffered samples, then a thinning now and then."""
        if not self._samples:
            return
        samples, self._samples = self._samples, []
        await self._db.executemany(
            "INSERT INTO sample(at, run, data) VALUES (?, ?, ?)",
            [(s.at, s.run, msgspec.json.encode(s)) for s in samples],
        )
        before = self._samples_written // THIN_EVERY
        self._samples_written += len(samples)
        if self._samples_written // THIN_EVERY != before:
            now = samples[-1].at
            for age, every in THIN_AFTER:
                await self._db.execute(_THIN, (now - age, every, now - age))

    # ---------------------------------------------------------------- writing

    async def reset_failed(self) -> int:
        failed = sum(self._move(op, State.FAILED, State.PENDING) for op in Op)
        if failed:
            await self._db.execute("BEGIN")
            await self._db.execute("UPDATE task SET state = 0, at = NULL WHERE state = 3")
            await self._db.execute("UPDATE task SET features = 0 WHERE features = 3")
            await self._db.execute("DELETE FROM failure")
            await self._write_counts()
            await self._db.execute("COMMIT")
            self._spilled = dict.fromkeys(Op, True)  # they may sit behind the cursors
        return failed

    async def commit(
        self, group: CommitGroup, on_new: Callable[[list[Task]], None] | None = None
    ) -> list[Task]:
        assert self._outputs is not None, "a read-only store cannot commit"
        started = time.perf_counter()
        db = self._db
        now_ms = int(time.time() * 1000)
        counts_before = self._counts.copy()
        await db.execute("BEGIN")
        try:
            new = await self._insert(group, now_ms)
            leased = self._lease(new, group.lease)
            if on_new is not None:
                on_new(leased)
            await self._settle(group, now_ms)
            committed = await asyncio.to_thread(self._outputs.flush)
            await db.executemany(
                "INSERT INTO output(name, length, lines) VALUES (?, ?, ?) "
                "ON CONFLICT(name) DO UPDATE SET length = excluded.length, lines = excluded.lines",
                [(stream_file(s), c.length, c.lines) for s, c in committed.items()],
            )
            await self._write_counts(counts_before)
            if group.meta:
                await self._write_meta(group.meta)
            await self._write_samples()
            await db.execute("COMMIT")
        except BaseException:
            await self._rollback()
            raise
        self._committed = committed
        self._written = Counter({stream: c.lines for stream, c in committed.items()})
        self._commit_seconds += time.perf_counter() - started
        self._commits += 1
        return leased

    async def _insert(self, group: CommitGroup, now_ms: int) -> list[tuple[int, Op, str]]:
        """Insert what is not known yet; the store's answer says which rows are new."""
        fresh = dict(group.fresh)
        artists = fresh.get(Op.ARTIST)
        if artists and group.artist_budget is not None:
            fresh[Op.ARTIST] = await self._within_budget(artists, group.artist_budget)
        features = State.PENDING if group.features_from_tracks else None
        new: list[tuple[int, Op, str]] = []
        for op, keys in fresh.items():
            if keys:
                rows = await self._insert_keys(op, keys, State.PENDING, None, features)
                new.extend((seq, op, key) for seq, key in rows)
                if op is Op.TRACK and features is not None:
                    new.extend((seq, Op.FEATURES, key) for seq, key in rows)
        for op, born in group.born_done.items():
            rows = await self._insert_keys(op, list(born), State.DONE, now_ms, features)
            started = time.thread_time()
            add = self._outputs.add  # type: ignore[union-attr]
            for _, key in rows:
                add(*born[key])
            self._counts[(op, State.DONE)] += len(rows)
            if op is Op.TRACK and features is not None:
                new.extend((seq, Op.FEATURES, key) for seq, key in rows)
            self._apply_cpu += time.thread_time() - started
        started = time.thread_time()
        self._counts.update((op, State.PENDING) for _, op, _ in new)
        self._apply_cpu += time.thread_time() - started
        if sum(map(len, self._recent.values())) >= MERGE_EVERY:
            await self._merge()
        return new

    async def _insert_keys(
        self, op: Op, keys: list[str], state: State, at: int | None, features: State | None
    ) -> list[tuple[int, str]]:
        """Insert the tasks of ``op`` among ``keys`` (distinct) that are not known yet; a new
        track gets its audio-features task if ``features``. Keys go in as one JSON array read
        by json_each, in C, instead of a parameter set bound per key."""
        stored = await self._stored(op, keys)
        new = [key for key in keys if key not in stored]
        if not new:
            return []
        async with self._db.execute(
            "INSERT INTO task(op, key, state, at, features) SELECT ?, value, ?, ?, ? "
            "FROM json_each(?) RETURNING seq, key",
            (int(op), int(state), at, features if op is Op.TRACK else None, orjson.dumps(new)),
        ) as cursor:
            rows: list[tuple[int, str]] = list(await cursor.fetchall())  # type: ignore[arg-type]
        started = time.thread_time()
        self._recent.setdefault(op, {}).update((key, seq) for seq, key in rows)
        self._apply_cpu += time.thread_time() - started
        return rows

    async def _merge(self) -> None:
        """Move the recent keys into ``seen`` in one sorted insert (inside the commit)."""
        merged = max(max(keys.values()) for keys in self._recent.values() if keys)
        await self._db.execute(
            "INSERT INTO seen(op, key, seq) SELECT op, key, seq FROM task "
            "WHERE seq > ? ORDER BY op, key",
            (self._merged,),
        )
        await self._write_meta({"merged": merged})
        self._merged, self._recent = merged, {}

    def _lease(self, new: list[tuple[int, Op, str]], lease: Mapping[Op, int]) -> list[Task]:
        """Take the new tasks the caller has room for, in sequence order per op.

        Once an op has more pending tasks than were handed out, its later tasks wait behind
        the cursor for ``claim``: leases stay a prefix in sequence order.
        """
        started = time.thread_time()
        by_op: defaultdict[Op, list[tuple[int, Op, str]]] = defaultdict(list)
        for row in new:
            by_op[row[1]].append(row)
        leased: list[Task] = []
        for op, rows in by_op.items():
            if self._spilled[op]:
                continue
            rows.sort(key=_by_seq)
            room = lease.get(op, 0)
            if len(rows) > room:
                self._spilled[op] = True
                del rows[room:]
            if rows:
                leased.extend(Task(seq, op, key) for seq, op, key in rows)
                self._cursor[op] = rows[-1][0]
        self._apply_cpu += time.thread_time() - started
        return leased

    async def _settle(self, group: CommitGroup, now_ms: int) -> None:
        started = time.thread_time()
        outputs = self._outputs
        assert outputs is not None
        for stream, line in group.records:
            outputs.add(stream, line)
        moved: Counter[tuple[Op, State]] = Counter()
        for state, tasks in group.settled.items():
            for task in tasks:
                moved[(task.op, state)] += 1
        for (op, state), n in moved.items():
            self._move(op, State.PENDING, state, n)
        failures = [(int(t.op), t.key, reason, now_ms / 1000) for t, reason in group.failures]
        self._apply_cpu += time.thread_time() - started
        for state, tasks in group.settled.items():
            features = [t.seq for t in tasks if t.op is Op.FEATURES]
            others = [t.seq for t in tasks if t.op is not Op.FEATURES]
            if others:
                await self._db.execute(
                    "UPDATE task SET state = ?, at = ? "
                    "WHERE seq IN (SELECT value FROM json_each(?))",
                    (int(state), now_ms, orjson.dumps(others)),
                )
            if features:
                await self._db.execute(
                    "UPDATE task SET features = ? WHERE seq IN (SELECT value FROM json_each(?))",
                    (int(state), orjson.dumps(features)),
                )
        if failures:
            await self._db.executemany(
                "INSERT OR REPLACE INTO failure(op, key, reason, at) VALUES (?, ?, ?, ?)", failures
            )

    async def _within_budget(self, keys: list[str], budget: int) -> list[str]:
        stored = await self._stored(Op.ARTIST, keys)
        return within_budget(keys, set(stored), budget)

    async def _rollback(self) -> None:
        if self._outputs is not None:
            self._outputs.discard()
        with contextlib.suppress(sqlite3.Error):  # already gone if e.g. the disk filled up
            await self._db.execute("ROLLBACK")
        # What memory holds went ahead of the database: reload it (the cursors too, since
        # tasks the failed transaction leased are not in the database).
        await self._load()

    def _move(self, op: Op, src: State, dst: State, n: int | None = None) -> int:
        moved = self._counts[(op, src)] if n is None else n
        self._counts[(op, src)] -= moved
        self._counts[(op, dst)] += moved
        return moved

    async def _write_counts(self, before: Counter[tuple[Op, State]] | None = None) -> None:
        """Persist the counts that changed (all of them without ``before``)."""
        rows = [
            (int(op), int(state), n)
            for (op, state), n in self._counts.items()
            if before is None or before.get((op, state)) != n
        ]
        await self._db.executemany(
            "INSERT INTO counts(op, state, n) VALUES (?, ?, ?) "
            "ON CONFLICT(op, state) DO UPDATE SET n = excluded.n",
            rows,
        )

    async def _write_meta(self, values: Mapping[str, Any]) -> None:
        self._meta.update(values)
        await self._db.executemany(
            "INSERT INTO meta(key, value) VALUES (?, ?) "
            "ON CONFLICT(key) DO UPDATE SET value = excluded.value",
            [(key, orjson.dumps(value)) for key, value in values.items()],
        )


# -- watching a crawl from another process (tests, benchmarks): read-only, never blocking it


def _peek(checkpoint: Path, sql: str) -> tuple[int, ...]:
    try:
        with contextlib.closing(
            sqlite3.connect(f"{checkpoint.resolve().as_uri()}?mode=ro", uri=True, timeout=5)
        ) as db:
            return tuple(int(v or 0) for v in db.execute(sql).fetchone())
    except sqlite3.OperationalError:  # not created yet: the schema comes with the first run
        return (0, 0)


def committed_records(checkpoint: Path) -> int:
    """Records a crawl has committed so far (0 before its checkpoint exists)."""
    return _peek(checkpoint, "SELECT sum(lines), 0 FROM output")[0]


def task_totals(checkpoint: Path) -> tuple[int, int]:
    """(tasks, pending tasks) of a crawl, audio-features tasks included (a full scan)."""
    tasks, pending = _peek(
        checkpoint,
        "SELECT count(*) + count(features), sum(state = 0) + sum(features = 0) FROM task",
    )
    return tasks, pending


def _stream_paths(out_dir: Path) -> list[Path]:
    return [out_dir / stream_file(s) for s in STREAMS]


def _count_lines(path: Path, length: int) -> int:
    lines = 0
    with contextlib.suppress(FileNotFoundError), path.open("rb") as f:
        while length > 0:
            chunk = f.read(min(length, 1 << 20))
            if not chunk:
                break
            lines += chunk.count(b"\n")
            length -= len(chunk)
    return lines


def _check_path(path: Path) -> None:
    if sqlite3.sqlite_version_info < (3, 35):
        raise CrawlerError(
            f"SQLite {sqlite3.sqlite_version} is too old: the checkpoint needs 3.35 or newer"
        )
    if path.is_dir():
        raise CheckpointError(f"{path}: the checkpoint path is a directory; name a file")


def _unreadable(path: Path, exc: sqlite3.DatabaseError) -> CheckpointError:
    return CheckpointError(
        f"{path}: checkpoint is unreadable ({exc}); it was left untouched — move it "
        "away or rerun with --fresh to start afresh"
    )


def ensure_writable(directory: Path) -> None:
    """Fail before anything starts, naming the directory and the system's reason. The probe
    file's name is unique: processes of one PostgreSQL crawl share ``out_dir`` and start
    together, and a shared name let one unlink the probe of another."""
    try:
        directory.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(prefix=".spotify-crawler-probe-", dir=directory)
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        raise CrawlerError(f"cannot write to {directory}: {exc.strerror or exc}") from None
