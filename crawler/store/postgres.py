"""The PostgreSQL store: one crawl shared by any number of processes, every record once.

The design and the measurements behind it are in docs/postgres-store.md; in short:

* **Leases.** A worker (one process) registers a ``worker`` row and holds a session advisory
  lock on its id for as long as its connection lives. Claiming sets ``task.owner`` with
  ``FOR UPDATE SKIP LOCKED``, so two workers never lease one task; a worker's leases are
  freed by any other worker once its lock has been gone for ``GRACE_S`` (SIGKILL closes the
  socket, the server drops the lock within milliseconds).
* **The fence.** A commit moves its finished tasks from "leased by me" to their final state
  and inserts their records in one transaction; if any of those tasks is no longer leased to
  this worker (its leases were recovered while it was presumed dead), the update count comes
  up short and the whole transaction rolls back: a record is written only by the holder of
  its task's lease, once.
* **Dedupe.** ``(crawl, op, key)`` is unique; discovered keys go in with ``ON CONFLICT DO
  NOTHING RETURNING``, so the inserting transaction knows which are new, whichever process
  found them first. Lines that ride on another task (tracks from album pages) are written
  only if their task is new, in the same transaction.
* **Records** are the API's own bytes (``bytea``: ``jsonb`` would reorder keys): one
  ``chunk`` row per commit and stream holds that commit's lines of the stream, newline-ended,
  exactly as they go into the JSON-lines file; ``stream_files`` writes the chunks out in commit
  order (``seq``). A row per line cost the server as much as a task (an index entry, a tuple
  header, a row of WAL each, for two million lines).
* **Counts** are per-worker ``tally`` rows updated in the commit transaction (no row that
  every process updates), summed when read.

A lost connection is not papered over: the process stops with a one-line error and the
crawl resumes where it stands (its leases return to the others; what it committed stays).
Reconnecting in place would need the in-memory frontier to forget every lease it holds.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import os
import socket
import time
from collections import Counter, defaultdict
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, NamedTuple, TypeVar

import msgspec
import orjson
from aiolimiter import AsyncLimiter

from crawler.core.errors import CheckpointError, CrawlerError
from crawler.core.kinds import STREAMS, Op, State, stream_file
from crawler.core.tasks import Task
from crawler.core.timeseries import Run, Sample
from crawler.store.base import CommitGroup, StoreCost
from crawler.store.plan import changed_keys, within_budget
from crawler.store.sqlite import THIN_AFTER, THIN_EVERY

# 4: a track's audio-features task in the track's row; 3: the claimable tasks in a queue
# table, so claims and settles are HOT updates; 2: records in one chunk per commit and
# stream; 1: a row per line.
SCHEMA_VERSION = 4
# Advisory-lock namespaces (the two-int form: classid, objid). "SCRW" in ASCII.
LOCK_NAMESPACE = 0x53435257
SCHEMA_LOCK = 0
POLL_S = 1.0  # how often a worker looks at the shared frontier when nobody notifies it
POLLS_PER_S = 2  # at most this often, however many notifications arrive
DEADLOCK_RETRIES = 5
CHANNEL = "spotify_crawler_work"  # NOTIFY: a commit freed work or settled some
GRACE_S = 2.0  # how long an owner's lock must be gone before its leases are freed
CONNECT_TIMEOUT_S = 10.0
_STREAM_IDS = {stream: i for i, stream in enumerate(STREAMS)}
_decode_sample = msgspec.json.Decoder(Sample).decode
T = TypeVar("T")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS store_meta(key text PRIMARY KEY, value text NOT NULL);
CREATE TABLE IF NOT EXISTS crawl(
    id integer GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    name text NOT NULL UNIQUE,
    fingerprint text NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
);
-- No foreign key to crawl: its check is a query per inserted task (a million of them in a
-- large crawl); --fresh deletes a crawl's tasks itself.
CREATE TABLE IF NOT EXISTS task(
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    crawl integer NOT NULL,
    op smallint NOT NULL,
    -- Byte order: the unique index compares keys with memcmp, not the database's locale,
    -- and it is the order (Python's, for UTF-8) in which commits insert them.
    key text COLLATE "C" NOT NULL,
    state smallint NOT NULL DEFAULT 0,
    owner integer,
    at double precision,  -- when it was committed finished (epoch s): the records' fetched_at
    -- A track's audio-features task (1:1 with it, as in the SQLite store): its state, NULL if
    -- it has none, and its lease. A row of its own cost an insert and two index entries per
    -- track, half the tasks of a crawl.
    features smallint,
    fowner integer
) WITH (
    -- Every task is updated two to four times: vacuum and analyze with the crawl's growth, not
    -- only after a fifth of the table has changed.
    autovacuum_vacuum_scale_factor = 0.05,
    autovacuum_analyze_scale_factor = 0.05,
    -- Room on each page for a task's next version: with no indexed column changed (state,
    -- owner and at are in no index), a claim and a settle are HOT updates, which write no
    -- index entry; on a full page they would write one in each index.
    fillfactor = 50
);
CREATE UNIQUE INDEX IF NOT EXISTS task_key ON task(crawl, op, key);
-- The claimable tasks (pending, leased to nobody), in claim order: a row here exactly while
-- its task is both, kept in the same transactions. Claims and "is anything free?" read only
-- this; an index of them on task would put state and owner in an index, and make every
-- claim and settle write index entries.
CREATE TABLE IF NOT EXISTS queue(
    crawl integer NOT NULL,
    op smallint NOT NULL,
    id bigint NOT NULL,
    PRIMARY KEY (crawl, op, id)
) WITH (autovacuum_vacuum_scale_factor = 0.05);
CREATE TABLE IF NOT EXISTS chunk(
    crawl integer NOT NULL REFERENCES crawl ON DELETE CASCADE,
    stream smallint NOT NULL,
    seq bigint NOT NULL,  -- commit order
    lines integer NOT NULL,
    body bytea COMPRESSION lz4 NOT NULL,  -- lz4: cheaper to compress than pglz, the default
    PRIMARY KEY (crawl, stream, seq)
);
CREATE SEQUENCE IF NOT EXISTS commit_seq;
CREATE TABLE IF NOT EXISTS failure(
    crawl integer NOT NULL REFERENCES crawl ON DELETE CASCADE,
    op smallint NOT NULL, key text NOT NULL, reason text NOT NULL,
    at double precision NOT NULL,
    PRIMARY KEY (crawl, op, key)
);
CREATE TABLE IF NOT EXISTS meta(
    crawl integer NOT NULL REFERENCES crawl ON DELETE CASCADE,
    key text NOT NULL, value text NOT NULL,
    PRIMARY KEY (crawl, key)
);
CREATE TABLE IF NOT EXISTS worker(
    id integer GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    crawl integer NOT NULL REFERENCES crawl ON DELETE CASCADE,
    host text NOT NULL, pid integer NOT NULL,
    started_at double precision NOT NULL,
    units_done bigint NOT NULL DEFAULT 0,
    leases bigint NOT NULL DEFAULT 0,  -- tasks it holds: "busy elsewhere" without a scan
    ended_at double precision
);
CREATE TABLE IF NOT EXISTS tally(
    worker integer NOT NULL REFERENCES worker ON DELETE CASCADE,
    op smallint NOT NULL, state smallint NOT NULL, n bigint NOT NULL,
    PRIMARY KEY (worker, op, state)
);
CREATE TABLE IF NOT EXISTS written(
    worker integer NOT NULL REFERENCES worker ON DELETE CASCADE,
    stream smallint NOT NULL, n bigint NOT NULL,
    PRIMARY KEY (worker, stream)
);
CREATE TABLE IF NOT EXISTS run(
    id integer GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    crawl integer NOT NULL REFERENCES crawl ON DELETE CASCADE,
    worker integer NOT NULL,
    started double precision NOT NULL,
    ended double precision, exit_code integer, message text
);
CREATE TABLE IF NOT EXISTS sample(
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    crawl integer NOT NULL REFERENCES crawl ON DELETE CASCADE,
    run integer NOT NULL,
    at double precision NOT NULL,
    data bytea NOT NULL
);
"""

# Schema 1 kept a row per line (crawl, stream, seq, pos, body): each commit's lines of a stream
# become one chunk, in the same order, so a crawl started by an older version carries on.
_MIGRATE_1 = """
INSERT INTO chunk(crawl, stream, seq, lines, body)
SELECT crawl, stream, seq, count(*), string_agg(body || '\\x0a'::bytea, ''::bytea ORDER BY pos)
  FROM record GROUP BY crawl, stream, seq;
DROP TABLE record;
ALTER TABLE task DROP CONSTRAINT IF EXISTS task_crawl_fkey;
SELECT setval('commit_seq', greatest(last_value, (SELECT coalesce(max(seq), 1) FROM chunk)))
  FROM commit_seq;
"""
# Schema 2 marked claimable tasks by an index on task: their queue rows are made from it.
_MIGRATE_2 = """
INSERT INTO queue(crawl, op, id) SELECT crawl, op, id FROM task WHERE state = 0 AND owner IS NULL;
DROP INDEX IF EXISTS task_free;
ALTER TABLE task SET (fillfactor = 50);
"""
# Schema 3 kept audio-features tasks in rows of their own (op 4): they move into their
# tracks' rows, leases and all, and their queue rows point at those rows.
_MIGRATE_3 = """
ALTER TABLE task ADD COLUMN IF NOT EXISTS features smallint,
                 ADD COLUMN IF NOT EXISTS fowner integer;
UPDATE task t SET features = f.state, fowner = f.owner FROM task f
 WHERE f.op = 4 AND t.crawl = f.crawl AND t.op = 3 AND t.key = f.key;
UPDATE queue q SET id = t.id FROM task f JOIN task t ON t.crawl = f.crawl AND t.op = 3
   AND t.key = f.key
 WHERE q.op = 4 AND f.crawl = q.crawl AND f.op = 4 AND f.id = q.id;
DELETE FROM task WHERE op = 4;
"""
# What `crawl` runs, under the schema lock, on a database of an older schema.
_MIGRATIONS = {
    "1": _MIGRATE_1 + _MIGRATE_2 + _MIGRATE_3,
    "2": _MIGRATE_2 + _MIGRATE_3,
    "3": _MIGRATE_3,
}


class _Lease(NamedTuple):
    """Where a task's state and lease live on its row: its own columns, or (audio features)
    the track row's second pair."""

    state: str
    owner: str
    queue_op: str  # the op its queue rows carry: the row's own, or 4
    reset: str  # what a reset to pending clears besides: the row's own fetched_at, or nothing


_TASK = _Lease("state", "owner", "op", ", at = NULL")
_FEATURES = _Lease("features", "fowner", str(int(Op.FEATURES)), "")
_LEASES = (_TASK, _FEATURES)


def _lease(op: Op) -> _Lease:
    return _FEATURES if op is Op.FEATURES else _TASK


def _live(worker: str) -> str:
    """SQL: the worker whose id is in the column ``worker`` is alive, i.e. its session holds
    its advisory lock (SIGKILL ends both at once)."""
    return f"""EXISTS (SELECT FROM pg_locks l
    WHERE l.locktype = 'advisory' AND l.granted
      AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())
      AND l.classid = {LOCK_NAMESPACE} AND l.objid = {worker} AND l.objsubid = 2)"""


_LIVE = _live("w.id")
# Whose leases may be freed: workers of the crawl that have not ended and whose lock nobody
# holds (a few rows: the worker table, not the tasks).
_LOCKLESS_OWNERS = f"""
SELECT w.id AS owner FROM worker w
 WHERE w.crawl = $1 AND w.ended_at IS NULL AND NOT {_LIVE}
"""


# As in the SQLite store: older samples thinned to one per bucket, each run's first and last kept.
_THIN = """
DELETE FROM sample WHERE crawl = $1 AND at < $2 AND id NOT IN (
    SELECT min(id) FROM sample WHERE crawl = $1 AND at < $2 GROUP BY run, floor(at / $3)
    UNION SELECT min(id) FROM sample WHERE crawl = $1 GROUP BY run
    UNION SELECT max(id) FROM sample WHERE crawl = $1 GROUP BY run
)
"""


class LeaseLost(CrawlerError):
    """This worker's leases were taken over (it was presumed dead): its commit rolled back."""


def _connection_errors() -> tuple[type[BaseException], ...]:
    import asyncpg

    return (
        OSError,
        asyncpg.PostgresConnectionError,
        asyncpg.InterfaceError,
        asyncpg.InternalClientError,  # "unexpected connection_lost()": the server died mid-query
        asyncpg.exceptions.AdminShutdownError,
        asyncpg.exceptions.CannotConnectNowError,
    )


async def connect(dsn: str, redacted: str) -> Any:
    """One connection, or one line naming the server (never the password) and the cause."""
    import asyncpg

    try:
        return await asyncpg.connect(
            dsn,
            timeout=CONNECT_TIMEOUT_S,
            server_settings={
                # A vanished machine's session (and with it its lock) is dropped in ~10 s.
                "tcp_keepalives_idle": "5",
                "tcp_keepalives_interval": "2",
                "tcp_keepalives_count": "3",
                "application_name": "spotify-crawler",
            },
        )
    except (*_connection_errors(), TimeoutError, asyncpg.PostgresError) as exc:
        reason = _reason(exc)
        raise CheckpointError(f"store.dsn {redacted}: cannot open the store: {reason}") from None


def _first_pending(keys: Sequence[str], states: Mapping[str, State], space: int) -> list[bool]:
    """Which of ``keys`` to insert leased: the first ``space`` pending ones (a key that turns
    out to be known already is simply not inserted, so fewer may be leased)."""
    marks = []
    for key in keys:
        take = space > 0 and states[key] is State.PENDING
        space -= take
        marks.append(take)
    return marks


def _requeue(where: str, assignments: str, op: str = "op") -> str:
    """An update of tasks that leaves them claimable, with their queue rows (of op ``op``, a
    column or a number) in the same statement (its status, ``INSERT 0 n``, counts them)."""
    return (
        f"WITH f AS (UPDATE task SET {assignments} WHERE {where} RETURNING crawl, {op} AS op, id) "
        "INSERT INTO queue(crawl, op, id) SELECT crawl, op, id FROM f"
    )


async def _again_on_deadlock(attempt: Callable[[], Awaitable[T]]) -> T:
    """A transaction the server aborted to break a deadlock, or a serialization failure, run
    again as it was: the lock order (rows by id, keys in one order) makes them unexpected,
    not impossible."""
    import asyncpg

    retries = DEADLOCK_RETRIES
    while True:
        try:
            return await attempt()
        except (asyncpg.DeadlockDetectedError, asyncpg.SerializationError):
            if not retries:
                raise
            retries -= 1


def _lost(redacted: str, exc: BaseException, doing: str = "") -> CrawlerError:
    return CrawlerError(
        f"store.dsn {redacted}: lost the database{doing} ({_reason(exc)}); rerun to resume: "
        "nothing committed is lost"
    )


def _reason(exc: BaseException) -> str:
    """The driver's message, first line only (its DETAIL and HINT lines follow)."""
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


class PostgresStore:
    """One worker's view of a shared crawl; see ``store.base.Store`` and the module note."""

    shared = True

    def __init__(self, conn: Any, watch_conn: Any, redacted: str, crawl: int, name: str) -> None:
        self._conn = conn  # commits and claims; holds this worker's advisory lock
        self._watch_conn = watch_conn  # the poller's: recovery and the shared counts
        self._redacted = redacted
        self._crawl = crawl
        self.name = name
        self._lock = asyncio.Lock()
        self.worker: int | None = None
        self._meta: dict[str, Any] = {}
        self._counts: Counter[tuple[Op, State]] = Counter()
        self._written: Counter[str] = Counter()
        self._free: dict[Op, bool] = dict.fromkeys(Op, False)  # claimable tasks may exist
        self._after: dict[Op, int] = dict.fromkeys(Op, 0)
        self._others_pending = True
        self._others_ended: float | None = -1.0  # the last ended_at a poll saw (-1: none yet)
        # Commits made / seen by a poll since: a poll older than the last commit may have
        # missed work that commit found already there (keys another worker holds).
        self._commit_gen = 0
        self._polled_gen = -1
        self._run_id: int | None = None
        self._samples: list[Sample] = []
        self._samples_written = 0
        self._commits = 0
        self._commit_seconds = 0.0
        self._cpu = 0.0
        self._poller: asyncio.Task[None] | None = None
        self._on_change: Callable[[CrawlerError | None], None] | None = None
        self._lockless_since: dict[int, float] = {}

    # ---------------------------------------------------------------- opening

    @classmethod
    async def open(
        cls,
        dsn: str,
        redacted: str,
        name: str,
        fingerprint: Mapping[str, Any] | None,
        *,
        fresh: bool = False,
        readonly: bool = False,
    ) -> PostgresStore:
        conn = await connect(dsn, redacted)
        watch_conn = None
        try:
            crawl = await _prepare(conn, redacted, name, fingerprint, fresh, readonly)
            if not readonly:
                watch_conn = await connect(dsn, redacted)
            self = cls(conn, watch_conn, redacted, crawl, name)
            if not readonly:
                await self._register()
            await self._load()
        except BaseException as exc:
            for c in (conn, watch_conn):
                if c is not None:
                    c.terminate()
            if isinstance(exc, _connection_errors()):  # a server restarting as we start
                raise _lost(redacted, exc, " while opening the crawl") from None
            raise
        return self

    async def _register(self) -> None:
        """A worker row and its session lock, taken in one transaction: nobody sees the row
        before its lock is held, so recovery never frees the leases of a live worker."""
        async with self._conn.transaction():
            self.worker = await self._conn.fetchval(
                "INSERT INTO worker(crawl, host, pid, started_at) VALUES ($1, $2, $3, $4) "
                "RETURNING id",
                self._crawl,
                socket.gethostname(),
                os.getpid(),
                time.time(),
            )
            await self._conn.execute("SELECT pg_advisory_lock($1, $2)", LOCK_NAMESPACE, self.worker)

    async def _load(self) -> None:
        conn, id_ = self._watch_conn or self._conn, self._crawl
        rows = await conn.fetch("SELECT key, value FROM meta WHERE crawl = $1", id_)
        self._meta = {r["key"]: orjson.loads(r["value"]) for r in rows}
        fingerprint = await conn.fetchval(
            "SELECT fingerprint FROM crawl WHERE id = $1", self._crawl
        )
        self._meta["fingerprint"] = orjson.loads(fingerprint)
        if self.worker is not None:
            # Owners without a lock at our start are gone (a live worker holds its lock from
            # before its row is visible): their leases are free now, not after a grace.
            await self._free_leases(
                conn, [r["owner"] for r in await conn.fetch(_LOCKLESS_OWNERS, self._crawl)]
            )
        await self._refresh(conn)

    async def _refresh(self, conn: Any) -> None:
        """The crawl's counts, whether any task is claimable or leased elsewhere, and the
        capabilities the workers learned."""
        rows = await conn.fetch(
            "SELECT t.op, t.state, sum(t.n)::bigint AS n FROM tally t JOIN worker w "
            "ON w.id = t.worker WHERE w.crawl = $1 GROUP BY t.op, t.state",
            self._crawl,
        )
        written = await conn.fetch(
            "SELECT s.stream, sum(s.n)::bigint AS n FROM written s JOIN worker w "
            "ON w.id = s.worker WHERE w.crawl = $1 GROUP BY s.stream",
            self._crawl,
        )
        others = await conn.fetchrow(
            "SELECT count(*) FILTER (WHERE ended_at IS NULL) AS live, "
            "count(*) FILTER (WHERE ended_at IS NULL AND leases > 0) AS busy, "
            "max(ended_at) AS ended FROM worker WHERE crawl = $1 AND id <> $2",
            self._crawl,
            self.worker,
        )
        # Alone on the crawl, and nobody ended (handing leases back) since the last look,
        # this worker's own bookkeeping of what is claimable is exact: nothing to read.
        if others["live"] or others["ended"] != self._others_ended:
            self._others_ended = others["ended"]
            # Whether, not how many. ORDER BY + LIMIT rather than EXISTS: the plan is then
            # the queue's first live index entry whatever the statistics say (EXISTS took
            # sequential scans).
            free = await conn.fetch(
                "SELECT o, (SELECT id FROM queue WHERE crawl = $1 AND op = o ORDER BY id "
                "LIMIT 1) IS NOT NULL FROM unnest($2::smallint[]) AS o",
                self._crawl,
                [int(op) for op in Op],
            )
            for op, claimable in free:
                self._free[Op(op)] = self._free[Op(op)] or claimable
        # A worker not ended (alive, or dead and not yet recovered) may hold leases.
        self._others_pending = others["busy"] > 0
        self._counts = Counter({(Op(r["op"]), State(r["state"])): r["n"] for r in rows})
        self._written = Counter({STREAMS[r["stream"]]: r["n"] for r in written})
        # What the other workers learned of the API, for the engine's next commit to take.
        learned = await conn.fetchval(
            "SELECT value FROM meta WHERE crawl = $1 AND key = 'capabilities'", self._crawl
        )
        if learned is not None:
            self._meta["capabilities"] = orjson.loads(learned)

    def watch(self, on_change: Callable[[CrawlerError | None], None]) -> None:
        """Poll the shared frontier (and free dead workers' leases) until closed; tell
        ``on_change`` when work may have appeared or others finished, or the error that
        ended the polling."""
        self._on_change = on_change
        if self._poller is None and self._watch_conn is not None:
            self._poller = asyncio.create_task(self._poll())

    async def _poll(self) -> None:
        pace = AsyncLimiter(POLLS_PER_S, 1.0)
        nudged = asyncio.Event()
        crawl = str(self._crawl)

        def notified(_conn: Any, _pid: int, _channel: str, payload: str) -> None:
            if payload == crawl:
                nudged.set()

        try:
            await self._watch_conn.add_listener(CHANNEL, notified)
            while True:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(nudged.wait(), POLL_S)
                nudged.clear()
                async with pace:
                    before = (dict(self._free), self.busy_elsewhere())
                    generation = self._commit_gen
                    await self._recover()
                    await self._refresh(self._watch_conn)
                    self._polled_gen = generation
                    if (dict(self._free), self.busy_elsewhere()) != before:
                        self._changed(None)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            self._changed(_lost(self._redacted, exc))

    @contextlib.asynccontextmanager
    async def _using(self, doing: str = "") -> AsyncIterator[None]:
        """The worker's connection, for one caller at a time; a server lost under any of its
        statements (a claim as much as a commit) stops the process with one line."""
        async with self._lock:
            try:
                yield
            except _connection_errors() as exc:
                raise _lost(self._redacted, exc, doing) from None

    def _changed(self, error: CrawlerError | None) -> None:
        if self._on_change is not None:
            self._on_change(error)

    async def _recover(self) -> None:
        """Free the leases of owners whose lock has been gone for GRACE_S."""
        conn = self._watch_conn
        now = time.monotonic()
        owners = {r["owner"] for r in await conn.fetch(_LOCKLESS_OWNERS, self._crawl)}
        owners.discard(self.worker)
        self._lockless_since = {o: self._lockless_since.get(o, now) for o in owners}
        dead = [o for o, since in self._lockless_since.items() if now - since >= GRACE_S]
        await self._free_leases(conn, dead)
        for owner in dead:
            self._lockless_since.pop(owner, None)

    async def _free_leases(self, conn: Any, owners: list[int]) -> None:
        """The leases of dead owners go back to the pool (re-checking that their locks are
        still free, in the same statement)."""
        if not owners:
            return
        freed = [
            await conn.execute(
                _requeue(
                    f"crawl = $1 AND {lease.state} = 0 AND {lease.owner} = ANY($2) "
                    f"AND NOT {_live(f'task.{lease.owner}')}",
                    f"{lease.owner} = NULL",
                    lease.queue_op,
                ),
                self._crawl,
                owners,
            )
            for lease in _LEASES
        ]
        await conn.execute(
            "UPDATE worker SET ended_at = $2 WHERE id = ANY($1) AND ended_at IS NULL",
            owners,
            time.time(),
        )
        if any(status != "INSERT 0 0" for status in freed):
            self._free = dict.fromkeys(Op, True)

    async def close(self) -> None:
        if self._poller is not None:
            self._poller.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._poller
            self._poller = None
        if self.worker is not None:
            # A clean exit hands its leases back at once (a killed one: after GRACE_S).
            # If this fails the worker stays "not ended", and recovery frees its leases.
            with contextlib.suppress(Exception):
                async with self._using(), self._conn.transaction():
                    for lease in _LEASES:
                        await self._conn.execute(
                            _requeue(
                                f"crawl = $1 AND {lease.owner} = $2 AND {lease.state} = 0",
                                f"{lease.owner} = NULL",
                                lease.queue_op,
                            ),
                            self._crawl,
                            self.worker,
                        )
                    await self._conn.execute(
                        "UPDATE worker SET ended_at = $2, leases = 0 WHERE id = $1",
                        self.worker,
                        time.time(),
                    )
        for conn in (self._watch_conn, self._conn):
            if conn is None:
                continue
            try:
                await asyncio.wait_for(conn.close(), 5)
            except Exception:  # a dead server: the session ends with the socket anyway
                conn.terminate()

    # ---------------------------------------------------------------- reading

    @property
    def meta(self) -> Mapping[str, Any]:
        return self._meta

    def counts(self) -> Counter[tuple[Op, State]]:
        return self._counts

    def written(self) -> Counter[str]:
        return self._written

    def claimable(self, op: Op) -> bool:
        return self._free[op]

    def busy_elsewhere(self) -> bool:
        """Other workers hold leases (their outcomes may still add work), or no poll has
        looked since this worker's last commit."""
        return self._others_pending or self._polled_gen < self._commit_gen

    async def claim(self, op: Op, limit: int) -> list[Task]:
        if not self._free[op] or limit <= 0:
            return []
        async with self._using():
            rows = await _again_on_deadlock(lambda: self._claim(op, limit, self._after[op]))
            if len(rows) < limit and self._after[op]:
                # Tasks freed by a recovery, or skipped while locked, lie behind the cursor.
                rows += await _again_on_deadlock(lambda: self._claim(op, limit - len(rows), 0))
        if len(rows) < limit:
            self._free[op] = False
        if rows:
            self._after[op] = max(self._after[op], max(r["id"] for r in rows))
        return sorted((Task(r["id"], op, r["key"]) for r in rows), key=lambda t: t.seq)

    async def _claim(self, op: Op, limit: int, after: int) -> list[Any]:
        """Ids picked first, as arrays (``= ANY(ARRAY(…))`` is run once, before the rest):
        written as joins, the planner, with the statistics of an emptier queue, ran the
        locking subquery once per queue row, 7 s for one claim of 6,500 tasks."""
        return list(
            await self._conn.fetch(
                "WITH q AS (DELETE FROM queue WHERE crawl = $2 AND op = $3 AND id = ANY(ARRAY("
                "SELECT id FROM queue WHERE crawl = $2 AND op = $3 AND id > $4 ORDER BY id "
                "LIMIT $5 FOR UPDATE SKIP LOCKED)) RETURNING id), "
                f"c AS (UPDATE task SET {_lease(op).owner} = $1 "
                "WHERE id = ANY(ARRAY(SELECT id FROM q)) RETURNING id, key), "
                "w AS (UPDATE worker SET leases = leases + (SELECT count(*) FROM c) "
                "WHERE id = $1) SELECT id, key FROM c",
                self.worker,
                self._crawl,
                int(op),
                after,
                limit,
            )
        )

    async def states(self, keys: Iterable[tuple[Op, str]]) -> dict[tuple[Op, str], State]:
        wanted: defaultdict[Op, list[str]] = defaultdict(list)
        for op, key in keys:
            wanted[op].append(key)
        found: dict[tuple[Op, str], State] = {}
        for op, op_keys in wanted.items():
            state = _lease(op).state
            rows = await self._fetch(
                f"SELECT key, {state} AS state FROM task WHERE crawl = $1 AND op = $2 "
                f"AND key = ANY($3) AND {state} IS NOT NULL",
                self._crawl,
                int(Op.TRACK if op is Op.FEATURES else op),
                op_keys,
            )
            found.update(((op, r["key"]), State(r["state"])) for r in rows)
        return found

    async def failures(self, limit: int = 20) -> list[tuple[Op, str, str]]:
        rows = await self._fetch(
            "SELECT op, key, reason FROM failure WHERE crawl = $1 ORDER BY at LIMIT $2",
            self._crawl,
            limit,
        )
        return [(Op(r["op"]), r["key"], r["reason"]) for r in rows]

    async def workers(self) -> list[dict[str, Any]]:
        """Every worker of the crawl, newest first, and whether its lock says it is alive."""
        rows = await self._fetch(
            f"SELECT w.id, w.host, w.pid, w.started_at, w.units_done, {_LIVE} AS live "
            "FROM worker w WHERE w.crawl = $1 ORDER BY w.id DESC",
            self._crawl,
        )
        return [dict(r) for r in rows]

    async def _fetch(self, sql: str, *args: Any) -> list[Any]:
        async with self._using():
            return list(await self._conn.fetch(sql, *args))

    async def stream_files(self, scratch: Path) -> dict[str, tuple[Path, int]]:
        """The records, in commit order, written out as the JSON-lines files."""
        scratch.mkdir(parents=True, exist_ok=True)
        files: dict[str, tuple[Path, int]] = {}
        async with self._using(), self._conn.transaction(isolation="repeatable_read"):
            for stream, sid in _STREAM_IDS.items():
                path = scratch / stream_file(stream)
                length = 0
                with path.open("wb") as f:
                    async for row in self._conn.cursor(
                        "SELECT body FROM chunk WHERE crawl = $1 AND stream = $2 ORDER BY seq",
                        self._crawl,
                        sid,
                        prefetch=50,
                    ):
                        body = row["body"]
                        f.write(body)
                        length += len(body)
                if length:
                    files[stream] = (path, length)
                else:
                    path.unlink()
        return files

    async def fetched_at(self, op: Op) -> AsyncIterator[list[tuple[str, float]]]:
        async with self._using(), self._conn.transaction():
            chunk: list[tuple[str, float]] = []
            async for row in self._conn.cursor(
                "SELECT key, at FROM task WHERE crawl = $1 AND op = $2 AND state = $3 "
                "AND at IS NOT NULL",
                self._crawl,
                int(op),
                int(State.DONE),
                prefetch=10_000,
            ):
                chunk.append((row["key"], row["at"]))
                if len(chunk) >= 50_000:
                    yield chunk
                    chunk = []
            if chunk:
                yield chunk

    def cost(self) -> StoreCost:
        return StoreCost(
            self._commits, self._commit_seconds, self._cpu, {"postgres_client": self._cpu}
        )

    # ---------------------------------------------------------------- runs

    async def begin_run(self) -> int:
        async with self._using():
            self._run_id = await self._conn.fetchval(
                "INSERT INTO run(crawl, worker, started) VALUES ($1, $2, $3) RETURNING id",
                self._crawl,
                self.worker,
                time.time(),
            )
        return self._run_id

    async def end_run(self, exit_code: int, message: str) -> None:
        last = {"exit_code": exit_code, "message": message, "ended": time.time()}
        async with self._using(), self._conn.transaction():
            await self._write_samples()
            if self._run_id is not None:
                await self._conn.execute(
                    "UPDATE run SET ended = $1, exit_code = $2, message = $3 WHERE id = $4",
                    last["ended"],
                    exit_code,
                    message,
                    self._run_id,
                )
            await self._write_meta({"last_run": last})

    def record_sample(self, sample: Sample) -> None:
        self._samples.append(dataclasses.replace(sample, worker=str(self.worker)))

    async def samples(self) -> list[Sample]:
        rows = await self._fetch(
            "SELECT data FROM sample WHERE crawl = $1 ORDER BY at, id", self._crawl
        )
        return [_decode_sample(r["data"]) for r in rows]

    async def runs(self) -> list[Run]:
        rows = await self._fetch(
            "SELECT id, started, ended, exit_code, worker FROM run WHERE crawl = $1 ORDER BY id",
            self._crawl,
        )
        return [
            Run(r["id"], r["started"], r["ended"], r["exit_code"], str(r["worker"])) for r in rows
        ]

    async def _write_samples(self) -> None:
        if not self._samples:
            return
        samples, self._samples = self._samples, []
        await self._conn.executemany(
            "INSERT INTO sample(crawl, run, at, data) VALUES ($1, $2, $3, $4)",
            [(self._crawl, s.run, s.at, msgspec.json.encode(s)) for s in samples],
        )
        before = self._samples_written // THIN_EVERY
        self._samples_written += len(samples)
        if self._samples_written // THIN_EVERY != before:
            now = samples[-1].at
            for age, every in THIN_AFTER:
                await self._conn.execute(_THIN, self._crawl, now - age, every)

    # ---------------------------------------------------------------- writing

    async def reset_failed(self) -> int:
        async with self._using(), self._conn.transaction():
            rows = [
                row
                for lease in _LEASES
                for row in await self._conn.fetch(
                    _requeue(
                        f"crawl = $1 AND {lease.state} = $2",
                        f"{lease.state} = 0, {lease.owner} = NULL{lease.reset}",
                        lease.queue_op,
                    )
                    + " RETURNING op",
                    self._crawl,
                    int(State.FAILED),
                )
            ]
            moved = Counter(Op(r["op"]) for r in rows)
            delta: Counter[tuple[Op, State]] = Counter()
            for op, n in moved.items():
                delta[(op, State.FAILED)] -= n
                delta[(op, State.PENDING)] += n
            await self._conn.execute("DELETE FROM failure WHERE crawl = $1", self._crawl)
            await self._write_tally(delta)
        self._counts.update(delta)
        if rows:
            self._free = dict.fromkeys(Op, True)
        return len(rows)

    async def commit(
        self, group: CommitGroup, on_new: Callable[[list[Task]], None] | None = None
    ) -> list[Task]:
        started, cpu = time.perf_counter(), time.thread_time()

        async def attempt() -> tuple[list[Task], Counter, Counter]:
            delta: Counter[tuple[Op, State]] = Counter()
            written: Counter[str] = Counter()
            async with self._conn.transaction():
                leased = await self._apply(group, time.time(), delta, written)
            return leased, delta, written

        async with self._using(" while committing"):
            leased, delta, written = await _again_on_deadlock(attempt)
        self._commit_gen += 1
        if on_new is not None:
            on_new(leased)
        self._counts.update(delta)
        self._written.update(written)
        self._commits += 1
        self._commit_seconds += time.perf_counter() - started
        self._cpu += time.thread_time() - cpu
        return leased

    async def _apply(
        self, group: CommitGroup, now: float, delta: Counter, written: Counter
    ) -> list[Task]:
        """The commit's statements, inside its transaction; ``delta`` and ``written`` get
        what memory learns once it has committed."""
        # Inserts first: a unique-index check waits for a transaction updating a row of the
        # same key, so settling first (updating our rows) and then inserting keys another
        # worker is settling would let two commits wait for each other. Inserts come in one
        # global (op, key) order, and the settle touches only this worker's rows.
        leased, records = await self._insert(group, now, delta)
        await self._settle(group, now, delta)
        records.extend(group.records)
        await self._write_records(records, written)
        await self._write_failures(group, now)
        await self._write_tally(delta)
        units = sum(len(tasks) for tasks in group.settled.values())
        await self._conn.execute(
            "UPDATE worker SET units_done = units_done + $2, leases = leases + $3 - $2 "
            "WHERE id = $1",
            self.worker,
            units,
            len(leased),
        )
        if group.meta:
            await self._write_meta(group.meta)
        await self._write_samples()
        # Delivered at COMMIT: the other workers look now for the work freed or settled.
        await self._conn.execute("SELECT pg_notify($1, $2)", CHANNEL, str(self._crawl))
        return leased

    async def _settle(self, group: CommitGroup, now: float, delta: Counter) -> None:
        """The fence: every finished task must still be leased to this worker.

        Only pending tasks are ever leased (claims and new leases take state 0; settling and
        recovery clear the owner), so ``owner = worker`` alone is the fence, and the join's
        only path is the primary key, one probe per id. (With ``state = 0`` and an index of
        pending tasks, the planner, misled by the statistics of a young table, drove the
        join from that index: every pending task against every id, seconds per commit.)

        A track and its features task share a row, so each row is updated once, for either
        or both (NULL: the other is not settled here), and rows go in id order: commits and
        claims of different workers on one row then lock rows in one order."""
        rows: dict[int, list[int | None]] = {}
        for state, tasks in group.settled.items():
            for task in tasks:
                rows.setdefault(task.seq, [None, None])[task.op is Op.FEATURES] = int(state)
                delta[(task.op, State.PENDING)] -= 1
                delta[(task.op, state)] += 1
        if not rows:
            return
        ids = sorted(rows)
        done = int(State.DONE)
        result = await self._conn.execute(
            "UPDATE task SET state = coalesce(u.state, task.state), "
            "owner = CASE WHEN u.state IS NULL THEN task.owner END, "
            "at = CASE WHEN u.state IS NULL THEN task.at "
            "WHEN u.state = $4 THEN $3::double precision END, "
            "features = coalesce(u.f, task.features), "
            "fowner = CASE WHEN u.f IS NULL THEN task.fowner END "
            "FROM unnest($1::bigint[], $2::smallint[], $6::smallint[]) AS u(id, state, f) "
            "WHERE task.id = u.id AND (u.state IS NULL OR task.owner = $5) "
            "AND (u.f IS NULL OR task.fowner = $5)",
            ids,
            [rows[i][0] for i in ids],
            now,
            done,
            self.worker,
            [rows[i][1] for i in ids],
        )
        if int(result.split()[-1]) != len(ids):
            raise LeaseLost(
                f"crawl {self.name!r}: this process's leases were taken over (it was presumed "
                "dead); rerun to resume: nothing committed is lost"
            )

    async def _insert(
        self, group: CommitGroup, now: float, delta: Counter
    ) -> tuple[list[Task], list[tuple[str, Any]]]:
        """New tasks, one statement per op in op order and keys sorted within it, so that
        concurrent commits take the unique index's locks in one global order and cannot
        deadlock; tasks born finished (their lines written only where new) go in with the
        candidates of their op, which win where both name a key, as in the SQLite store.
        Returns the new tasks leased to this worker, and the born-finished tasks' lines."""
        fresh = dict(group.fresh)
        artists = fresh.get(Op.ARTIST)
        if artists and group.artist_budget is not None:
            fresh[Op.ARTIST] = await self._within_budget(artists, group.artist_budget)
        room = {op: max(0, n) for op, n in group.lease.items()}
        leased: list[Task] = []
        records: list[tuple[str, Any]] = []
        for op in sorted(fresh.keys() | group.born_done.keys()):
            states = dict.fromkeys(fresh.get(op, ()), State.PENDING)
            born = group.born_done.get(op, {})
            states.update((k, State.DONE) for k in born if k not in states)
            features = op is Op.TRACK and group.features_from_tracks
            rows = await self._insert_keys(op, states, now, room, leased, features)
            records.extend(
                line for k, line in born.items() if k in rows and states[k] is State.DONE
            )
            for key in rows:
                delta[(op, states[key])] += 1
            if features:
                delta[(Op.FEATURES, State.PENDING)] += len(rows)
        return sorted(leased, key=lambda t: t.seq), records

    async def _insert_keys(
        self,
        op: Op,
        states: Mapping[str, State],
        now: float,
        room: dict[Op, int],
        leased: list[Task],
        features: bool,
    ) -> set[str]:
        """Insert the keys not known yet (a task born done gets ``now`` as its time), each
        new track with a pending features task if ``features``; return them. The first
        pending ones, as many as ``room`` has space for (per op), go in leased to this worker
        (added to ``leased``): one row version each, not an insert and then an update, which
        would leave a dead version and three dead index entries per task. They are leased
        even while older tasks of their op wait to be claimed: unlike SQLite's cursor, leases
        here need no order, and queueing new tasks behind a backlog made nearly every task a
        claim (285,000 claimed of 335,000 in a 1,000-artist crawl)."""
        if not states:
            return set()
        keys = sorted(states)
        space, features_space = room.get(op, 0), room.get(Op.FEATURES, 0) if features else 0
        rows = await self._conn.fetch(
            "WITH t AS (INSERT INTO task(crawl, op, key, state, at, owner, features, fowner) "
            "SELECT $1, $2, k, s, CASE WHEN s = 0 THEN NULL ELSE $3::double precision END, "
            "CASE WHEN m THEN $7::integer END, CASE WHEN $8::boolean THEN 0 END, "
            "CASE WHEN n <= $9 THEN $7::integer END "
            "FROM unnest($4::text[], $5::smallint[], $6::boolean[]) WITH ORDINALITY "
            "AS u(k, s, m, n) ORDER BY n "
            "ON CONFLICT (crawl, op, key) DO NOTHING "
            "RETURNING id, key, state, owner, features, fowner), "
            "q AS (INSERT INTO queue(crawl, op, id) "
            "SELECT $1, $2, id FROM t WHERE state = 0 AND owner IS NULL UNION ALL "
            f"SELECT $1, {_FEATURES.queue_op}, id FROM t WHERE features = 0 AND fowner IS NULL) "
            "SELECT id, key, owner IS NOT NULL, fowner IS NOT NULL FROM t",
            self._crawl,
            int(op),
            now,
            keys,
            [int(states[k]) for k in keys],
            _first_pending(keys, states, space),
            self.worker,
            features,
            features_space,
        )
        mine = [Task(r[0], op, r[1]) for r in rows if r[2]]
        leased.extend(mine)
        room[op] = space - len(mine)
        if len(mine) < sum(1 for r in rows if states[r[1]] is State.PENDING):
            self._free[op] = True  # some new tasks are left for anyone to claim
        if features:
            theirs = [Task(r[0], Op.FEATURES, r[1]) for r in rows if r[3]]
            leased.extend(theirs)
            room[Op.FEATURES] = features_space - len(theirs)
            if len(theirs) < len(rows):
                self._free[Op.FEATURES] = True
        return {r[1] for r in rows}

    async def _within_budget(self, keys: list[str], budget: int) -> list[str]:
        """The artist budget, exact across workers: the crawl row serializes the commits that
        admit artists, and the budget is corrected by the artists other workers admitted
        since this worker last read the counts."""
        conn = self._conn
        await conn.execute("SELECT 1 FROM crawl WHERE id = $1 FOR UPDATE", self._crawl)
        total = await conn.fetchval(
            "SELECT count(*) FROM task WHERE crawl = $1 AND op = $2", self._crawl, int(Op.ARTIST)
        )
        known = sum(self._counts[(Op.ARTIST, s)] for s in State)
        stored = {
            r["key"]
            for r in await conn.fetch(
                "SELECT key FROM task WHERE crawl = $1 AND op = $2 AND key = ANY($3)",
                self._crawl,
                int(Op.ARTIST),
                keys,
            )
        }
        return within_budget(keys, stored, budget - (total - known))

    async def _write_records(self, records: list[tuple[str, Any]], written: Counter) -> None:
        if not records:
            return
        # Lines as they came (bytes, msgspec.Raw, memoryview): the join copies each once.
        by_stream: defaultdict[str, list[Any]] = defaultdict(list)
        for stream, line in records:
            by_stream[stream].append(line)
        streams = [_STREAM_IDS[s] for s in by_stream]
        counts = [len(lines) for lines in by_stream.values()]
        await self._conn.execute(
            "INSERT INTO chunk(crawl, stream, seq, lines, body) "
            "SELECT $1, s, nextval('commit_seq'), n, b "
            "FROM unnest($2::smallint[], $3::integer[], $4::bytea[]) AS u(s, n, b)",
            self._crawl,
            streams,
            counts,
            [b"\n".join(lines) + b"\n" for lines in by_stream.values()],
        )
        await self._conn.execute(
            "INSERT INTO written(worker, stream, n) "
            "SELECT $1, s, n FROM unnest($2::smallint[], $3::bigint[]) AS u(s, n) "
            "ON CONFLICT (worker, stream) DO UPDATE SET n = written.n + excluded.n",
            self.worker,
            streams,
            counts,
        )
        written.update({s: len(lines) for s, lines in by_stream.items()})

    async def _write_failures(self, group: CommitGroup, now: float) -> None:
        if group.failures:
            await self._conn.executemany(
                "INSERT INTO failure(crawl, op, key, reason, at) VALUES ($1, $2, $3, $4, $5) "
                "ON CONFLICT (crawl, op, key) DO UPDATE SET reason = excluded.reason, "
                "at = excluded.at",
                [(self._crawl, int(t.op), t.key, r, now) for t, r in group.failures],
            )

    async def _write_tally(self, delta: Counter[tuple[Op, State]]) -> None:
        rows = [(self.worker, int(op), int(s), n) for (op, s), n in delta.items() if n]
        if rows:
            await self._conn.executemany(
                "INSERT INTO tally(worker, op, state, n) VALUES ($1, $2, $3, $4) "
                "ON CONFLICT (worker, op, state) DO UPDATE SET n = tally.n + excluded.n",
                rows,
            )

    async def _write_meta(self, values: Mapping[str, Any]) -> None:
        self._meta.update(values)
        await self._conn.executemany(
            "INSERT INTO meta(crawl, key, value) VALUES ($1, $2, $3) "
            "ON CONFLICT (crawl, key) DO UPDATE SET value = excluded.value",
            [(self._crawl, k, orjson.dumps(v).decode()) for k, v in values.items()],
        )


async def _prepare(
    conn: Any,
    redacted: str,
    name: str,
    fingerprint: Mapping[str, Any] | None,
    fresh: bool,
    readonly: bool,
) -> int:
    """The schema (created once, under a lock, by whichever process comes first) and the
    crawl's row; a crawl of other settings is refused by the keys that differ."""
    import asyncpg

    try:
        if not readonly:
            async with conn.transaction():
                await conn.execute(
                    "SELECT pg_advisory_xact_lock($1, $2)", LOCK_NAMESPACE, SCHEMA_LOCK
                )
                await conn.execute(_SCHEMA)
                version = await conn.fetchval(
                    "INSERT INTO store_meta(key, value) VALUES ('schema_version', $1) "
                    "ON CONFLICT (key) DO UPDATE SET value = store_meta.value RETURNING value",
                    str(SCHEMA_VERSION),
                )
                if version in _MIGRATIONS:
                    await conn.execute(_MIGRATIONS[version])
                    await conn.execute(
                        "UPDATE store_meta SET value = $1 WHERE key = 'schema_version'",
                        str(SCHEMA_VERSION),
                    )
                elif version != str(SCHEMA_VERSION):
                    raise _other_schema(redacted, version)
                if fresh:
                    await _wipe(conn, name)
                await conn.execute(
                    "INSERT INTO crawl(name, fingerprint) VALUES ($1, $2) "
                    "ON CONFLICT (name) DO NOTHING",
                    name,
                    orjson.dumps(fingerprint).decode(),
                )
        else:
            version = await conn.fetchval(
                "SELECT value FROM store_meta WHERE key = 'schema_version'"
            )
            if version != str(SCHEMA_VERSION):
                raise _other_schema(redacted, version)
        row = await conn.fetchrow("SELECT id, fingerprint FROM crawl WHERE name = $1", name)
    except asyncpg.UndefinedTableError:
        row = None
    except asyncpg.PostgresError as exc:  # a role without rights, a read-only server, …
        raise CheckpointError(
            f"store.dsn {redacted}: cannot set up the crawl's tables: {_reason(exc)}"
        ) from None
    if row is None:
        raise CheckpointError(f"store.dsn {redacted}: no crawl named {name!r} in this database")
    if fingerprint is not None:
        changed = changed_keys(orjson.loads(row["fingerprint"]), fingerprint)
        if changed:
            raise CheckpointError(
                f"crawl {name!r} in {redacted} was made with different settings "
                f"({', '.join(changed)}); restore them to continue that crawl, or rerun with "
                "--fresh to start afresh"
            )
    return row["id"]


def _other_schema(redacted: str, version: str) -> CheckpointError:
    """One wording for a database this version cannot use as it is, read-only or not."""
    advice = (
        "run `spotify-crawler crawl` on it once to upgrade it"
        if version in _MIGRATIONS
        else "use a newer spotify-crawler"
    )
    return CheckpointError(
        f"store.dsn {redacted}: the database holds store schema {version}, not "
        f"{SCHEMA_VERSION}: {advice}"
    )


async def _wipe(conn: Any, name: str) -> None:
    """``--fresh``: the crawl's rows go, unless a live worker still crawls it."""
    live = await conn.fetchval(
        f"SELECT count(*) FROM worker w JOIN crawl c ON c.id = w.crawl WHERE c.name = $1 "
        f"AND {_LIVE}",
        name,
    )
    if live:
        raise CheckpointError(
            f"crawl {name!r} is being crawled by {live} running process(es): stop them before "
            "--fresh"
        )
    for table in ("task", "queue"):
        await conn.execute(
            f"DELETE FROM {table} WHERE crawl = (SELECT id FROM crawl WHERE name = $1)", name
        )
    await conn.execute("DELETE FROM crawl WHERE name = $1", name)
