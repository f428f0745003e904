"""The checkpoint database: durable frontier, dedupe set, file lengths, capabilities, stats.

One row per task ``(op, key)`` makes SQLite's unique index the dedupe set, so memory does not
grow with the number of IDs seen. Each commit applies a group of outcomes in one transaction:
new tasks, finished tasks, failures, and the committed byte length of every JSONL file (whose
bytes were fsynced first). A crash at any instant therefore leaves a state where every task is
either committed with its output lines, or pending and redone on the next run.
"""

from __future__ import annotations

import asyncio
import contextlib
import operator
import sqlite3
import threading
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

import aiosqlite
import orjson

from crawler.core.errors import CheckpointError, CrawlerError, cannot_write
from crawler.core.kinds import ENTITIES, Op, State, stream_file
from crawler.core.tasks import Line, Outcome, Task
from crawler.store.outputs import JsonlSink

SCHEMA_VERSION = 2
WAL_CHECKPOINT_BYTES = 64 * 2**20
KNOWN_ARTISTS_CAP = 100_000
_OPS = {int(op): op for op in Op}
_op_state = operator.itemgetter(1, 3)  # of a (seq, op, key, state) row

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta(key TEXT PRIMARY KEY, value BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS task(
    seq INTEGER PRIMARY KEY,
    op INTEGER NOT NULL,
    key TEXT NOT NULL,
    state INTEGER NOT NULL DEFAULT 0
);
-- The dedupe set. Audio-features tasks are made only beside a new track task (one each), so
-- they need no entry of their own in this index, which is the costliest part of an insert.
CREATE UNIQUE INDEX IF NOT EXISTS task_key ON task(op, key) WHERE op != 4;
CREATE INDEX IF NOT EXISTS task_pending ON task(op, seq) WHERE state = 0;
CREATE TABLE IF NOT EXISTS failure(
    op INTEGER NOT NULL,
    key TEXT NOT NULL,
    reason TEXT NOT NULL,
    at REAL NOT NULL,
    PRIMARY KEY(op, key)
);
CREATE TABLE IF NOT EXISTS output(name TEXT PRIMARY KEY, length INTEGER NOT NULL);
"""


class Checkpoint:
    """Owns the SQLite connection and the output files; the engine's only path to disk."""

    def __init__(self, db: aiosqlite.Connection, path: Path, out_dir: Path) -> None:
        self._db = db
        self.path = path
        self.out_dir = out_dir
        self.sinks: dict[Op, JsonlSink] = {}
        self.counts: Counter[tuple[Op, State]] = Counter()
        self.meta: dict[str, Any] = {}
        self._known_artists: set[str] = set()
        self._last_seq = 0  # tasks past it are the ones the open transaction added
        self.commit_seconds = 0.0  # wall time of commits, waits for a busy event loop included
        self.commits = 0
        # CPU the checkpoint really costs: SQLite's thread, file flushes, Python bookkeeping.
        self._db_clock: int | None = None
        self._db_cpu_start = 0.0
        self._flush_cpu = 0.0
        self._apply_cpu = 0.0

    # ---------------------------------------------------------------- opening

    @classmethod
    async def open(
        cls, path: Path, out_dir: Path, fingerprint: Mapping[str, Any] | None
    ) -> Checkpoint:
        """Open or create; refuse a checkpoint of another crawl or a damaged one, never reset it.

        With ``fingerprint=None`` the checkpoint is opened read-only and the output files are
        left alone, so ``status`` can look at a crawl that is running.
        """
        readonly = fingerprint is None
        if not readonly:
            for directory in dict.fromkeys((out_dir, path.parent)):
                _ensure_writable(directory)
        existed = path.exists() and path.stat().st_size > 0
        try:
            if readonly:
                db = await aiosqlite.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)
            else:
                db = await aiosqlite.connect(path, isolation_level=None)
        except sqlite3.Error as exc:
            raise CheckpointError(f"{path}: cannot open checkpoint: {exc}") from None
        self = cls(db, path, out_dir)
        try:
            if readonly:
                await self._load_meta()
            else:
                await self._prepare(existed, dict(fingerprint))
        except sqlite3.DatabaseError as exc:
            await db.close()
            if "disk is full" in str(exc):
                raise cannot_write(path.parent, exc, "free some space and rerun") from None
            raise CheckpointError(
                f"{path}: checkpoint is unreadable ({exc}); it was left untouched — move it "
                "away or rerun with --fresh to start afresh"
            ) from None
        except BaseException:
            await self.close()
            raise
        return self

    async def _prepare(self, existed: bool, fingerprint: dict[str, Any]) -> None:
        db = self._db
        await db.execute("PRAGMA journal_mode=WAL")
        await db.execute("PRAGMA synchronous=NORMAL")
        await db.execute("PRAGMA cache_size=-65536")
        await db.execute("PRAGMA temp_store=MEMORY")
        # Fold the WAL into the database every 64 MiB rather than every 16 MiB: a page that
        # several commits changed is then copied once (measured: commits cost 40 % less).
        (page_size,) = await (await db.execute("PRAGMA page_size")).fetchone()  # type: ignore[misc]
        await db.execute(f"PRAGMA wal_autocheckpoint={WAL_CHECKPOINT_BYTES // page_size}")
        if existed:
            await self._check_existing(fingerprint)
        await db.executescript(_SCHEMA)
        await self._start_cpu_clock()
        await self._load_meta()
        if not existed or "fingerprint" not in self.meta:
            await self._write_meta({"schema": SCHEMA_VERSION, "fingerprint": fingerprint})
        lengths = {}
        async with db.execute("SELECT name, length FROM output") as cursor:
            lengths = {name: length async for name, length in cursor}
        for op, name in ((op, stream_file(k.stream)) for op, k in ENTITIES.items()):
            self.sinks[op] = JsonlSink(self.out_dir / name, lengths.get(name, 0))

    async def _start_cpu_clock(self) -> None:
        """Find aiosqlite's worker thread (a SQL function runs in it) to read its CPU clock."""
        await self._db.create_function("writer_thread", 0, threading.get_ident)
        async with self._db.execute("SELECT writer_thread()") as cursor:
            (ident,) = await cursor.fetchone()  # type: ignore[misc]
        with contextlib.suppress(AttributeError, OSError):  # not every platform has the clock
            self._db_clock = time.pthread_getcpuclockid(ident)
            self._db_cpu_start = time.clock_gettime(self._db_clock)

    @property
    def cpu_parts(self) -> dict[str, float]:
        """Where the checkpoint's CPU goes: SQLite's thread, file writes, Python bookkeeping."""
        db_cpu = 0.0
        if self._db_clock is not None:
            db_cpu = time.clock_gettime(self._db_clock) - self._db_cpu_start
        return {"sqlite": db_cpu, "files": self._flush_cpu, "bookkeeping": self._apply_cpu}

    @property
    def cpu_seconds(self) -> float:
        return sum(self.cpu_parts.values())

    async def _load_meta(self) -> None:
        async with self._db.execute("SELECT key, value FROM meta") as cursor:
            self.meta = {key: orjson.loads(value) async for key, value in cursor}
        self.counts = _counts_from_json(self.meta.get("counts", []))
        async with self._db.execute("SELECT coalesce(max(seq), 0) FROM task") as cursor:
            (self._last_seq,) = await cursor.fetchone()  # type: ignore[misc]

    async def _check_existing(self, fingerprint: dict[str, Any]) -> None:
        async with self._db.execute(
            "SELECT value FROM meta WHERE key IN ('schema', 'fingerprint') ORDER BY key"
        ) as cursor:
            rows = [orjson.loads(value) for (value,) in await cursor.fetchall()]
        if len(rows) != 2:
            raise sqlite3.DatabaseError("not a spotify-crawler checkpoint")
        stored, schema = rows
        if schema != SCHEMA_VERSION:
            raise CheckpointError(
                f"{self.path}: checkpoint schema {schema} is not {SCHEMA_VERSION}; "
                "rerun with --fresh to start afresh"
            )
        if stored != fingerprint:
            changed = sorted(
                k for k in fingerprint.keys() | stored.keys() if fingerprint.get(k) != stored.get(k)
            )
            raise CheckpointError(
                f"{self.path}: this checkpoint was made with different settings "
                f"({', '.join(changed)}); restore them to continue that crawl, "
                "or rerun with --fresh to start afresh"
            )

    async def close(self) -> None:
        for sink in self.sinks.values():
            sink.close()
        self.sinks.clear()
        await self._db.close()

    # ---------------------------------------------------------------- reading

    async def reset_failed(self) -> int:
        """Failed work of earlier runs gets a new chance: that is what a rerun is for."""
        failed = sum(self._move_count(op, State.FAILED, State.PENDING) for op in Op)
        if failed:
            await self._db.execute("BEGIN")
            await self._db.execute("UPDATE task SET state = 0 WHERE state = 3")
            await self._db.execute("DELETE FROM failure")
            await self._write_meta({"counts": self._counts_json()})
            await self._db.execute("COMMIT")
        return failed

    async def load_pending(self, op: Op, after_seq: int, limit: int) -> list[Task]:
        async with self._db.execute(
            "SELECT seq, key FROM task WHERE op = ? AND state = 0 AND seq > ? ORDER BY seq LIMIT ?",
            (int(op), after_seq, limit),
        ) as cursor:
            return [Task(seq, op, key) for seq, key in await cursor.fetchall()]

    def pending(self, op: Op | None = None) -> int:
        ops = Op if op is None else (op,)
        return sum(self.counts[(o, State.PENDING)] for o in ops)

    async def failures(self, limit: int = 20) -> list[tuple[str, str, str]]:
        async with self._db.execute(
            "SELECT op, key, reason FROM failure ORDER BY at LIMIT ?", (limit,)
        ) as cursor:
            rows = await cursor.fetchall()
        return [(Op(op).name.lower(), key, reason) for op, key, reason in rows]

    # ---------------------------------------------------------------- writing

    async def commit(
        self,
        outcomes: Iterable[Outcome],
        seeds: Iterable[tuple[Op, str]] = (),
        meta: Mapping[str, Any] | None = None,
        artist_budget: int | None = None,
        on_new: Callable[[list[Task]], None] | None = None,
        track_features: bool = False,
    ) -> list[Task]:
        """Apply outcomes (and seed tasks) in one transaction; return the tasks that are new.

        ``artist_budget`` caps how many new artist tasks may be admitted (``max_artists``).
        ``track_features`` gives every new track task its audio-features task.
        ``on_new`` gets the new tasks as soon as they exist, before the transaction commits:
        work may start on them at once, because its outcome can only be committed by a
        later transaction, which requires this one to have committed first.
        """
        started = time.perf_counter()
        outcomes = list(outcomes)
        db = self._db
        await db.execute("BEGIN")
        try:
            new_tasks = await self._apply(
                outcomes, list(seeds), artist_budget, on_new, track_features
            )
            lengths = await asyncio.to_thread(self._flush_sinks)
            await db.executemany(
                "INSERT INTO output(name, length) VALUES (?, ?) "
                "ON CONFLICT(name) DO UPDATE SET length = excluded.length",
                [(stream_file(ENTITIES[op].stream), length) for op, length in lengths.items()],
            )
            await self._write_meta({**(meta or {}), "counts": self._counts_json()})
            await db.execute("COMMIT")
        except BaseException:
            await self._rollback()
            raise
        self.commit_seconds += time.perf_counter() - started
        self.commits += 1
        return new_tasks

    async def _apply(
        self,
        outcomes: list[Outcome],
        seeds: list[tuple[Op, str]],
        artist_budget: int | None,
        on_new: Callable[[list[Task]], None] | None,
        track_features: bool,
    ) -> list[Task]:
        started = time.thread_time()
        # Candidates grouped by (op, state), each group sent as one JSON array: SQLite reads
        # it with json_each, in C, instead of binding a parameter set per key.
        found: defaultdict[int, list[str]] = defaultdict(list)
        groups: dict[tuple[int, int], list[str]] = {}
        new_lines: dict[tuple[int, str], Line] = {}
        for op, key in seeds:
            found[op].append(key)
        for outcome in outcomes:
            for op, key in outcome.discovered:
                found[op].append(key)
            for op, key, line in outcome.new_lines:
                groups.setdefault((op, State.DONE), []).append(key)
                new_lines.setdefault((op, key), line)
        if Op.ARTIST in found:  # credited again and again: most are known, many repeat
            known = self._known_artists
            found[Op.ARTIST] = list(dict.fromkeys(k for k in found[Op.ARTIST] if k not in known))
        groups.update(((op, State.PENDING), keys) for op, keys in found.items() if keys)
        self._apply_cpu += time.thread_time() - started
        new_tasks: list[Task] = []
        if groups:
            new_tasks = await self._insert(groups, new_lines, artist_budget, track_features)
            if on_new is not None:
                on_new(new_tasks)
        started = time.thread_time()
        done: dict[int, list[int]] = {}
        moved: Counter[tuple[Op, State]] = Counter()
        failures = []
        now = time.time()
        for outcome in outcomes:
            for op, line in outcome.lines:
                self.sinks[op].add(line)
            for task, state in outcome.states:
                done.setdefault(state, []).append(task.seq)
                moved[(task.op, state)] += 1
            failures.extend((int(t.op), t.key, reason, now) for t, reason in outcome.failures)
        for (op, state), n in moved.items():
            self._move_count(op, State.PENDING, state, n)
        self._apply_cpu += time.thread_time() - started
        for state, seqs in done.items():
            await self._db.execute(
                "UPDATE task SET state = ? WHERE seq IN (SELECT value FROM json_each(?))",
                (state, orjson.dumps(seqs)),
            )
        if failures:
            await self._db.executemany(
                "INSERT OR REPLACE INTO failure(op, key, reason, at) VALUES (?, ?, ?, ?)", failures
            )
        return new_tasks

    async def _insert(
        self,
        groups: dict[tuple[int, int], list[str]],
        new_lines: dict[tuple[int, str], Line],
        artist_budget: int | None,
        track_features: bool,
    ) -> list[Task]:
        """Insert what is not known yet; the new rows are those past the last sequence number.

        Audio features are 1:1 with tracks, so their tasks are derived from the new track rows
        instead of being deduplicated on their own: half the tracks' index work.
        """
        db = self._db
        artists = groups.get((Op.ARTIST, State.PENDING))
        if artists is not None and artist_budget is not None:
            groups[(Op.ARTIST, State.PENDING)] = await self._within_budget(artists, artist_budget)
        for (op, state), keys in groups.items():
            await db.execute(
                "INSERT INTO task(op, key, state) SELECT ?, value, ? FROM json_each(?) "
                "WHERE true ON CONFLICT DO NOTHING",
                (op, state, orjson.dumps(keys)),
            )
        if track_features:
            await db.execute(
                "INSERT INTO task(op, key, state) SELECT ?, key, 0 FROM task "
                "WHERE seq > ? AND op = ?",
                (int(Op.FEATURES), self._last_seq, int(Op.TRACK)),
            )
        rows = await db.execute_fetchall(
            "SELECT seq, op, key, state FROM task WHERE seq > ?", (self._last_seq,)
        )
        started = time.thread_time()
        if rows:
            self._last_seq = rows[-1][0]
        self.counts.update(map(_op_state, rows))
        new_tasks = [Task(seq, _OPS[op], key) for seq, op, key, state in rows if state == 0]
        for _, op, key, state in rows:
            if state == State.DONE:
                self.sinks[_OPS[op]].add(new_lines[(op, key)])
        if artists:
            self._remember_artists(groups[(Op.ARTIST, State.PENDING)])
        self._apply_cpu += time.thread_time() - started
        return new_tasks

    def _remember_artists(self, keys: list[str]) -> None:
        """Artists are credited again and again; keys known to be stored skip the database.

        Bounded: when full the cache starts over, which costs only database lookups.
        """
        if len(self._known_artists) + len(keys) > KNOWN_ARTISTS_CAP:
            self._known_artists.clear()
        self._known_artists.update(keys)

    async def _within_budget(self, keys: list[str], budget: int) -> list[str]:
        """The candidates of which at most ``budget`` are new artists, first come first in."""
        async with self._db.execute(
            "SELECT value FROM json_each(?) WHERE EXISTS "
            "(SELECT 1 FROM task WHERE op = ? AND key = value)",
            (orjson.dumps(keys), int(Op.ARTIST)),
        ) as cursor:
            stored = {key for (key,) in await cursor.fetchall()}
        fresh = [key for key in dict.fromkeys(keys) if key not in stored]
        admitted = stored.union(fresh[: max(budget, 0)])
        return [key for key in keys if key in admitted]

    def _flush_sinks(self) -> dict[Op, int]:
        started = time.thread_time()  # runs in a worker thread: its own CPU clock
        try:
            return {op: sink.flush() for op, sink in self.sinks.items()}
        finally:
            self._flush_cpu += time.thread_time() - started

    async def _rollback(self) -> None:
        for sink in self.sinks.values():
            sink.discard()
        self._known_artists.clear()  # it may hold artists of the transaction being undone
        with contextlib.suppress(sqlite3.Error):  # already gone if e.g. the disk filled up
            await self._db.execute("ROLLBACK")
        await self._load_meta()  # what memory holds went ahead of the database: reload it

    def _move_count(self, op: Op, src: State, dst: State, n: int | None = None) -> int:
        moved = self.counts[(op, src)] if n is None else n
        self.counts[(op, src)] -= moved
        self.counts[(op, dst)] += moved
        return moved

    def _counts_json(self) -> list[tuple[int, int, int]]:
        return [(int(op), int(state), n) for (op, state), n in sorted(self.counts.items()) if n]

    async def _write_meta(self, values: Mapping[str, Any]) -> None:
        self.meta.update(values)
        await self._db.executemany(
            "INSERT INTO meta(key, value) VALUES (?, ?) "
            "ON CONFLICT(key) DO UPDATE SET value = excluded.value",
            [(key, orjson.dumps(value)) for key, value in values.items()],
        )


def _counts_from_json(rows: list[list[int]]) -> Counter[tuple[Op, State]]:
    return Counter({(Op(op), State(state)): n for op, state, n in rows})


def _ensure_writable(directory: Path) -> None:
    """Fail before anything starts, naming the directory and the system's reason."""
    probe = directory / ".spotify-crawler-probe"
    try:
        directory.mkdir(parents=True, exist_ok=True)
        probe.touch()
        probe.unlink()
    except OSError as exc:
        raise CrawlerError(f"cannot write to {directory}: {exc.strerror or exc}") from None
