"""The store interface: what is committed is exactly what the outputs hold, once.

The first part talks to the store only through ``store.base.Store`` and the planning step,
so every backend runs it (the ``backend`` fixture); the second part checks what only the
SQLite + JSON-lines backend has: files, their tails, the checkpoint file.
"""

from __future__ import annotations

import sqlite3
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from crawler.core.errors import CheckpointError, CrawlerError
from crawler.core.kinds import EDGE_STREAMS, STREAMS, Op, State
from crawler.core.tasks import Outcome, Task
from crawler.core.timeseries import Sample
from crawler.store.base import Store, pending
from crawler.store.lock import CheckpointLocked
from crawler.store.plan import plan_commit
from crawler.store.postgres import SCHEMA_VERSION, LeaseLost, PostgresStore
from crawler.store.sqlite import SqliteStore
from tests.pg import redacted

FP: dict[str, Any] = {"seeds": {"artists": ["a"]}, "expand": {}, "output": {}}
OpenStore = Callable[..., Awaitable[Store]]


@pytest.fixture(params=["sqlite", "postgres"])
async def open_store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[OpenStore]:
    """Factory: ``await open_store(fingerprint=FP, fresh=False)``; closed after the test."""
    opened: list[Store] = []
    dsn = request.getfixturevalue("pg_database") if request.param == "postgres" else ""

    async def make(fingerprint: dict[str, Any] = FP, fresh: bool = False) -> Store:
        store: Store
        if dsn:
            store = await PostgresStore.open(dsn, redacted(dsn), "test", fingerprint, fresh=fresh)
        else:
            store = await SqliteStore.open(
                tmp_path / "cp.db", tmp_path / "out", fingerprint, STREAMS, fresh=fresh
            )
        opened.append(store)
        return store

    yield make
    for store in opened:
        await store.close()


async def commit(
    store: Store, outcomes: list[Outcome] = (), room: int = 1000, **plan: Any
) -> list[Task]:
    return await store.commit(plan_commit(outcomes, lease=dict.fromkeys(Op, room), **plan))


async def records(store: Store, stream: str, tmp_path: Path) -> list[bytes]:
    """The committed records of ``stream``, as ``export`` reads them."""
    files = await store.stream_files(tmp_path / "scratch")
    if stream not in files:
        return []
    path, length = files[stream]
    with path.open("rb") as f:
        return f.read(length).splitlines()


def keys(tasks: list[Task]) -> list[tuple[Op, str]]:
    return [(t.op, t.key) for t in tasks]


async def test_new_tasks_are_those_the_store_did_not_know(open_store: OpenStore) -> None:
    store = await open_store()
    new = await commit(store, seeds=[(Op.ARTIST, "a"), (Op.ARTIST, "b"), (Op.ARTIST, "a")])
    assert keys(new) == [(Op.ARTIST, "a"), (Op.ARTIST, "b")]
    outcome = Outcome(discovered=[(Op.ARTIST, "b"), (Op.ARTIST, "c"), (Op.ALBUM, "b")])
    new = await commit(store, [outcome])
    assert sorted(keys(new)) == [(Op.ARTIST, "c"), (Op.ALBUM, "b")]
    assert pending(store.counts()) == 4
    assert store.counts()[(Op.ARTIST, State.PENDING)] == 3


async def test_each_new_track_gets_one_features_task(open_store: OpenStore) -> None:
    store = await open_store()
    found = Outcome(discovered=[(Op.TRACK, "t1"), (Op.TRACK, "t2"), (Op.TRACK, "t1")])
    new = await commit(store, [found], features_from_tracks=True)
    assert sorted(keys(new)) == [
        (Op.TRACK, "t1"),
        (Op.TRACK, "t2"),
        (Op.FEATURES, "t1"),
        (Op.FEATURES, "t2"),
    ]
    again = Outcome(discovered=[(Op.TRACK, "t2"), (Op.TRACK, "t3")])
    new = await commit(store, [again], features_from_tracks=True)
    assert sorted(keys(new)) == [(Op.TRACK, "t3"), (Op.FEATURES, "t3")]
    new = await commit(store, [Outcome(discovered=[(Op.TRACK, "t4")])])
    assert keys(new) == [(Op.TRACK, "t4")]
    assert pending(store.counts(), Op.FEATURES) == 3


async def test_tasks_born_done_are_written_once(open_store: OpenStore, tmp_path: Path) -> None:
    store = await open_store()
    first = Outcome(new_lines=[(Op.TRACK, "t1", b'{"id":"t1"}')])
    second = Outcome(new_lines=[(Op.TRACK, "t1", b'{"id":"t1"}'), (Op.TRACK, "t2", b"{}")])
    new = await commit(store, [first, second], features_from_tracks=True)
    assert sorted(keys(new)) == [(Op.FEATURES, "t1"), (Op.FEATURES, "t2")]
    await commit(store, [second])
    assert await records(store, "tracks", tmp_path) == [b'{"id":"t1"}', b"{}"]
    assert store.written()["tracks"] == 2
    assert store.counts()[(Op.TRACK, State.DONE)] == 2


async def test_records_go_to_their_streams_in_order(open_store: OpenStore, tmp_path: Path) -> None:
    store = await open_store()
    (task,) = await commit(store, seeds=[(Op.RELATED, "a")])
    edges = [(b'{"artist_id":"a","related_artist_id":"%d","rank":%d}' % (i, i)) for i in range(3)]
    done = Outcome(
        states=[(task, State.DONE)],
        records=[("related_artists", line) for line in edges] + [("artists", b'{"id":"x"}')],
    )
    await commit(store, [done])
    assert await records(store, "related_artists", tmp_path) == edges
    assert await records(store, "artists", tmp_path) == [b'{"id":"x"}']
    assert store.written()["related_artists"] == 3
    assert store.counts()[(Op.RELATED, State.DONE)] == 1


async def test_new_tasks_beyond_the_lease_are_claimed_later(
    open_store: OpenStore,
) -> None:
    store = await open_store()
    new = await commit(store, room=2, seeds=[(Op.ALBUM, k) for k in "abcde"])
    assert keys(new) == [(Op.ALBUM, "a"), (Op.ALBUM, "b")]
    assert store.claimable(Op.ALBUM)
    more = await commit(store, room=10, seeds=[(Op.ALBUM, "f")])
    # SQLite's leases are a prefix in sequence order, so "f" queues behind the unclaimed ones;
    # PostgreSQL's need no order, and leasing it at once saves it a claim.
    leased_now, claimed_later = ("f", "cde") if store.shared else ("", "cdef")
    assert keys(more) == [(Op.ALBUM, k) for k in leased_now]
    assert keys(await store.claim(Op.ALBUM, 3)) == [(Op.ALBUM, k) for k in claimed_later[:3]]
    assert keys(await store.claim(Op.ALBUM, 3)) == [(Op.ALBUM, k) for k in claimed_later[3:]]
    assert not store.claimable(Op.ALBUM)
    assert await store.claim(Op.ALBUM, 3) == []
    new = await commit(store, room=10, seeds=[(Op.ALBUM, "g")])
    assert keys(new) == [(Op.ALBUM, "g")]


async def test_a_reopened_store_hands_out_pending_work_again(open_store: OpenStore) -> None:
    store = await open_store()
    a, _ = await commit(store, seeds=[(Op.ARTIST, "a"), (Op.ARTIST, "b")])
    await commit(store, [Outcome(states=[(a, State.DONE)])])
    await store.close()
    store = await open_store()
    assert keys(await store.claim(Op.ARTIST, 10)) == [(Op.ARTIST, "b")]


async def test_failed_tasks_are_retried_on_the_next_run(open_store: OpenStore) -> None:
    store = await open_store()
    (task,) = await commit(store, seeds=[(Op.ALBUM, "x")])
    await commit(store, [Outcome(states=[(task, State.FAILED)], failures=[(task, "HTTP 500")])])
    assert await store.failures() == [(Op.ALBUM, "x", "HTTP 500")]
    await store.close()
    store = await open_store()
    assert await store.reset_failed() == 1
    assert keys(await store.claim(Op.ALBUM, 10)) == [(Op.ALBUM, "x")]
    assert await store.failures() == []
    assert store.counts()[(Op.ALBUM, State.PENDING)] == 1


async def test_artist_budget_caps_admission(open_store: OpenStore) -> None:
    store = await open_store()
    new = await commit(store, seeds=[(Op.ARTIST, k) for k in "abcde"], artist_budget=3)
    assert keys(new) == [(Op.ARTIST, k) for k in "abc"]
    new = await commit(store, seeds=[(Op.ARTIST, k) for k in "abfg"], artist_budget=1)
    assert keys(new) == [(Op.ARTIST, "f")]


async def test_states_of_seeds_and_the_last_run(open_store: OpenStore) -> None:
    store = await open_store()
    a, _ = await commit(store, seeds=[(Op.ARTIST, "a"), (Op.ALBUM, "b")])
    await commit(store, [Outcome(states=[(a, State.MISSING)])])
    wanted = [(Op.ARTIST, "a"), (Op.ALBUM, "b"), (Op.TRACK, "never")]
    assert await store.states(wanted) == {
        (Op.ARTIST, "a"): State.MISSING,
        (Op.ALBUM, "b"): State.PENDING,
    }
    await store.begin_run()
    await store.end_run(3, "all accounts are rate-limited")
    await store.close()
    store = await open_store()
    assert store.meta["last_run"]["exit_code"] == 3


async def test_other_settings_are_refused_naming_the_keys(open_store: OpenStore) -> None:
    await (await open_store()).close()
    other = {**FP, "expand": {"related_artists": False}}
    with pytest.raises(CheckpointError, match=r"different settings \(expand.related_artists\)"):
        await open_store(other)
    fresh = await open_store(other, fresh=True)
    assert fresh.meta["fingerprint"] == other


async def test_a_newer_schema_is_refused_by_every_command(pg_database: str) -> None:
    """A database a newer version made: neither a crawl nor a read-only command touches it,
    and neither tells the user to upgrade it by crawling."""
    import asyncpg

    await (await PostgresStore.open(pg_database, "db", "c", FP)).close()
    conn = await asyncpg.connect(pg_database)
    try:
        await conn.execute("UPDATE store_meta SET value = '99' WHERE key = 'schema_version'")
    finally:
        await conn.close()
    for fingerprint, readonly in ((FP, False), (None, True)):
        newer = f"schema 99, not {SCHEMA_VERSION}: use a newer spotify-crawler"
        with pytest.raises(CheckpointError, match=newer):
            await PostgresStore.open(pg_database, "db", "c", fingerprint, readonly=readonly)


async def test_fresh_deletes_the_crawls_tasks(pg_database: str) -> None:
    """PostgreSQL tasks carry no foreign key (its check cost a query per task): ``--fresh``
    deletes them itself, and leaves another crawl's alone."""
    import asyncpg

    for name in ("c", "other"):
        store = await PostgresStore.open(pg_database, "db", name, FP)
        await commit(store, seeds=[(Op.ARTIST, k) for k in "ab"])
        await store.close()
    await (await PostgresStore.open(pg_database, "db", "c", FP, fresh=True)).close()
    conn = await asyncpg.connect(pg_database)
    try:
        rows = await conn.fetch(
            "SELECT c.name, t.key FROM task t LEFT JOIN crawl c ON c.id = t.crawl"
        )
    finally:
        await conn.close()
    assert sorted(tuple(r) for r in rows) == [("other", "a"), ("other", "b")]


async def test_a_second_open_joins_the_crawl_and_claims_only_free_work(
    pg_database: str, tmp_path: Path
) -> None:
    """PostgreSQL: processes share one crawl; a lease is held by exactly one of them."""
    first = await PostgresStore.open(pg_database, "db", "c", FP)
    second = await PostgresStore.open(pg_database, "db", "c", FP)
    try:
        leased = await commit(first, room=2, seeds=[(Op.ALBUM, k) for k in "abcd"])
        assert keys(leased) == [(Op.ALBUM, "a"), (Op.ALBUM, "b")]
        await second._refresh(second._conn)  # what its poller does every POLL_S
        assert second.claimable(Op.ALBUM) and second.busy_elsewhere()
        assert keys(await second.claim(Op.ALBUM, 10)) == [(Op.ALBUM, "c"), (Op.ALBUM, "d")]
        assert await first.claim(Op.ALBUM, 10) == []
        # A commit of tasks another worker holds is fenced off: nothing of it is written.
        stolen = await second.claim(Op.ALBUM, 10)
        assert stolen == []
        with pytest.raises(LeaseLost, match="taken over"):
            await commit(
                second,
                [Outcome(states=[(leased[0], State.DONE)], records=[("albums", b'{"id":"a"}')])],
            )
        assert await records(second, "albums", tmp_path) == []
        await commit(
            first, [Outcome(states=[(leased[0], State.DONE)], records=[("albums", b'{"id":"a"}')])]
        )
        assert await records(second, "albums", tmp_path) == [b'{"id":"a"}']
    finally:
        await first.close()
        await second.close()


async def test_workers_see_the_capabilities_another_one_stored(pg_database: str) -> None:
    first = await PostgresStore.open(pg_database, "db", "c", FP)
    second = await PostgresStore.open(pg_database, "db", "c", FP)
    try:
        assert "capabilities" not in second.meta
        learned = {"related_artists": False, "budgets": {"a": 300}}
        await commit(first, meta={"capabilities": learned})
        await second._refresh(second._watch_conn)  # what its poller does
        assert second.meta["capabilities"] == learned
    finally:
        await first.close()
        await second.close()


async def test_a_killed_workers_leases_return_to_the_pool(pg_database: str) -> None:
    first = await PostgresStore.open(pg_database, "db", "c", FP)
    second = await PostgresStore.open(pg_database, "db", "c", FP)
    try:
        await commit(first, room=10, seeds=[(Op.ARTIST, k) for k in "ab"])
        assert await second.claim(Op.ARTIST, 10) == []
        first._conn.terminate()  # as SIGKILL does: the session and its lock are gone
        first._watch_conn.terminate()
        first.worker = None  # nothing left to hand back at close
        third = await PostgresStore.open(pg_database, "db", "c", FP)
        try:
            assert keys(await third.claim(Op.ARTIST, 10)) == [(Op.ARTIST, "a"), (Op.ARTIST, "b")]
        finally:
            await third.close()
    finally:
        await second.close()


async def test_a_claim_on_a_lost_connection_is_one_line(pg_database: str) -> None:
    """Not only a commit: whichever statement finds the server gone (here the refill after a
    restart) stops the process with the resumable one-liner, not a traceback."""
    import asyncpg

    store = await PostgresStore.open(pg_database, "db", "c", FP)
    try:
        await commit(store, room=0, seeds=[(Op.ARTIST, "a")])
        conn = await asyncpg.connect(pg_database)
        try:
            pid = store._conn.get_server_pid()
            await conn.execute("SELECT pg_terminate_backend($1)", pid)
        finally:
            await conn.close()
        with pytest.raises(CrawlerError, match=r"lost the database \(.*\); rerun to resume"):
            await store.claim(Op.ARTIST, 10)
    finally:
        await store.close()


async def test_a_server_lost_while_opening_is_one_line(
    pg_database: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A process starting while the server restarts (the chaos soak's database restart met a
    process being started) stops with the resumable one-liner, not a traceback."""
    import asyncpg

    load = PostgresStore._load

    async def load_after_a_restart(self: PostgresStore) -> None:
        other = await asyncpg.connect(pg_database)
        try:
            await other.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE datname = current_database() AND pid <> pg_backend_pid()"
            )
        finally:
            await other.close()
        await load(self)

    monkeypatch.setattr(PostgresStore, "_load", load_after_a_restart)
    lost = r"lost the database while opening the crawl \(.*\); rerun to resume"
    with pytest.raises(CrawlerError, match=lost):
        await PostgresStore.open(pg_database, "db", "c", FP)


# A database as schema 3 left it: audio-features tasks in rows of their own (op 4), which
# their queue rows point at.
PG_SCHEMA_3 = """
INSERT INTO task(crawl, op, key, state, owner)
SELECT crawl, 4, key, features, fowner FROM task WHERE features IS NOT NULL ORDER BY id;
UPDATE queue q SET id = f.id FROM task t JOIN task f ON f.crawl = t.crawl AND f.op = 4
   AND f.key = t.key
 WHERE q.op = 4 AND q.id = t.id AND t.op = 3;
ALTER TABLE task DROP COLUMN features, DROP COLUMN fowner;
UPDATE store_meta SET value = '3' WHERE key = 'schema_version';
"""
# ... and schema 2: claimable tasks marked by an index, no queue table.
PG_SCHEMA_2 = (
    PG_SCHEMA_3
    + """
DROP TABLE queue;
CREATE INDEX task_free ON task(crawl, op, id) WHERE state = 0 AND owner IS NULL;
ALTER TABLE task RESET (fillfactor);
UPDATE store_meta SET value = '2' WHERE key = 'schema_version';
"""
)
PG_SCHEMA_1 = (
    PG_SCHEMA_2
    + """
DROP TABLE chunk;
CREATE TABLE record(
    crawl integer NOT NULL REFERENCES crawl ON DELETE CASCADE,
    stream smallint NOT NULL, seq bigint NOT NULL, pos integer NOT NULL, body bytea NOT NULL,
    PRIMARY KEY (crawl, stream, seq, pos)
);
ALTER TABLE task ADD CONSTRAINT task_crawl_fkey FOREIGN KEY (crawl) REFERENCES crawl
    ON DELETE CASCADE;
UPDATE store_meta SET value = '1' WHERE key = 'schema_version';
"""
)


async def test_a_schema_1_database_is_migrated_in_place(pg_database: str, tmp_path: Path) -> None:
    """PostgreSQL crawls of the previous version (a row per line, a foreign key per task)
    resume: their lines come out in the same order, and new commits follow them."""
    import asyncpg

    await (await PostgresStore.open(pg_database, "db", "c", FP)).close()
    conn = await asyncpg.connect(pg_database)
    try:
        await conn.execute(PG_SCHEMA_1)
        crawl = await conn.fetchval("SELECT id FROM crawl WHERE name = 'c'")
        artists, albums = STREAMS.index("artists"), STREAMS.index("albums")
        rows = [(artists, 2, 1, b'{"id":"c"}'), (artists, 1, 2, b'{"id":"b"}')]
        rows += [(albums, 1, 1, b'{"id":"x"}'), (artists, 1, 1, b'{"id":"a"}')]
        await conn.executemany(
            "INSERT INTO record VALUES ($1, $2, $3, $4, $5)", [(crawl, *r) for r in rows]
        )
    finally:
        await conn.close()
    older = f"schema 1, not {SCHEMA_VERSION}: run `spotify-crawler crawl`"
    with pytest.raises(CheckpointError, match=older):
        await PostgresStore.open(pg_database, "db", "c", None, readonly=True)
    store = await PostgresStore.open(pg_database, "db", "c", FP)
    try:
        (task,) = await commit(store, seeds=[(Op.ARTIST, "d")])
        await commit(store, [Outcome(states=[(task, State.DONE)], records=[("artists", b"{}")])])
        assert await records(store, "artists", tmp_path) == [
            b'{"id":"a"}',
            b'{"id":"b"}',
            b'{"id":"c"}',
            b"{}",
        ]
        assert await records(store, "albums", tmp_path) == [b'{"id":"x"}']
        conn = await asyncpg.connect(pg_database)
        try:
            fkeys = "SELECT count(*) FROM pg_constraint WHERE conrelid = 'task'::regclass "
            assert await conn.fetchval(fkeys + "AND contype = 'f'") == 0
        finally:
            await conn.close()
    finally:
        await store.close()


async def test_a_schema_2_database_is_migrated_in_place(pg_database: str) -> None:
    """Schema 2's claimable tasks (pending, leased to nobody) are what the queue holds after
    the migration: not the done ones, not those a live worker holds."""
    import asyncpg

    holder = await PostgresStore.open(pg_database, "db", "c", FP)
    try:
        a, b = await commit(holder, room=2, seeds=[(Op.ALBUM, k) for k in "abcde"])
        await commit(holder, [Outcome(states=[(a, State.DONE)])])
        conn = await asyncpg.connect(pg_database)
        try:
            await conn.execute(PG_SCHEMA_2)
        finally:
            await conn.close()
        store = await PostgresStore.open(pg_database, "db", "c", FP)
        try:
            claimed = await store.claim(Op.ALBUM, 10)
            assert keys(claimed) == [(Op.ALBUM, k) for k in "cde"]
            assert await store.claim(Op.ALBUM, 10) == []
        finally:
            await store.close()
        await commit(holder, [Outcome(states=[(b, State.DONE)])])  # its lease survived
    finally:
        await holder.close()


async def test_a_schema_3_database_is_migrated_in_place(pg_database: str) -> None:
    """Schema 3's features tasks (rows of their own) move into their tracks' rows: a done one
    stays done, a queued one is claimable under its track's key, a live worker's lease
    survives, and the tracks' own tasks are untouched."""
    import asyncpg

    holder = await PostgresStore.open(pg_database, "db", "c", FP)
    try:
        found = Outcome(discovered=[(Op.TRACK, k) for k in ("t1", "t2", "t3")])
        lease = {Op.TRACK: 3, Op.FEATURES: 2}
        new = await holder.commit(plan_commit([found], lease=lease, features_from_tracks=True))
        by_key = {(t.op, t.key): t for t in new}
        assert sorted(by_key) == [(Op.TRACK, k) for k in ("t1", "t2", "t3")] + [
            (Op.FEATURES, k) for k in ("t1", "t2")
        ]
        done = [(by_key[(Op.FEATURES, "t1")], State.DONE), (by_key[(Op.TRACK, "t2")], State.DONE)]
        await holder.commit(plan_commit([Outcome(states=done)]))
        conn = await asyncpg.connect(pg_database)
        try:
            await conn.execute(PG_SCHEMA_3)
            assert await conn.fetchval("SELECT count(*) FROM task WHERE op = 4") == 3
        finally:
            await conn.close()
        store = await PostgresStore.open(pg_database, "db", "c", FP)
        try:
            assert keys(await store.claim(Op.FEATURES, 10)) == [(Op.FEATURES, "t3")]
            assert await store.claim(Op.TRACK, 10) == []
            states = await store.states(
                [(Op.FEATURES, k) for k in ("t1", "t2", "t3")] + [(Op.TRACK, "t2")]
            )
            assert states == {
                (Op.FEATURES, "t1"): State.DONE,
                (Op.FEATURES, "t2"): State.PENDING,
                (Op.FEATURES, "t3"): State.PENDING,
                (Op.TRACK, "t2"): State.DONE,
            }
        finally:
            await store.close()
        # The leases survived: the holder settles what it held (a short count would raise).
        settled = [(by_key[(Op.FEATURES, "t2")], State.DONE)]
        settled += [(by_key[(Op.TRACK, k)], State.DONE) for k in ("t1", "t3")]
        await holder.commit(plan_commit([Outcome(states=settled)]))
    finally:
        await holder.close()


# ------------------------------------------------------------------ SQLite + JSON lines


async def open_sqlite(tmp_path: Path, fingerprint: dict[str, Any] = FP) -> SqliteStore:
    return await SqliteStore.open(tmp_path / "cp.db", tmp_path / "out", fingerprint, STREAMS)


async def test_a_second_open_is_refused_while_the_first_runs(tmp_path: Path) -> None:
    def open_store(fresh: bool = False) -> Any:
        return SqliteStore.open(tmp_path / "cp.db", tmp_path / "out", FP, STREAMS, fresh=fresh)

    first = await open_store()
    with pytest.raises(CheckpointLocked, match=r"another crawl is running.*pid \d+ on host"):
        await open_store()
    with pytest.raises(CheckpointLocked):
        await open_store(fresh=True)  # never wipes a running crawl
    await commit(first, seeds=[(Op.ARTIST, "a")])
    await first.close()
    second = await open_store()
    assert pending(second.counts()) == 1
    await second.close()


async def test_uncommitted_tail_is_truncated_and_state_survives(tmp_path: Path) -> None:
    store = await open_sqlite(tmp_path)
    (task,) = await commit(store, seeds=[(Op.ARTIST, "a")])
    await commit(
        store, [Outcome(states=[(task, State.DONE)], records=[("artists", b'{"id":"a"}')])]
    )
    await store.close()
    path = tmp_path / "out" / "artists.jsonl"
    with path.open("ab") as f:
        f.write(b'{"id":"torn')  # a crash between write and commit
    store = await open_sqlite(tmp_path)
    assert path.read_bytes() == b'{"id":"a"}\n'
    assert store.counts()[(Op.ARTIST, State.DONE)] == 1
    assert await store.claim(Op.ARTIST, 10) == []
    await store.close()


async def test_file_shorter_than_checkpoint_is_refused(tmp_path: Path) -> None:
    store = await open_sqlite(tmp_path)
    await commit(store, [Outcome(records=[("albums", b'{"id":"b"}')])])
    await store.close()
    (tmp_path / "out" / "albums.jsonl").write_bytes(b"{")
    with pytest.raises(CheckpointError, match=r"albums\.jsonl has 1 bytes but the checkpoint"):
        await open_sqlite(tmp_path)


async def test_checkpoint_of_an_unknown_schema_is_refused_with_the_way_out(tmp_path: Path) -> None:
    await (await open_sqlite(tmp_path)).close()
    with sqlite3.connect(tmp_path / "cp.db") as db:
        db.execute("UPDATE meta SET value = '1' WHERE key = 'schema'")
    with pytest.raises(CheckpointError, match=r"checkpoint schema 1 is not 3; rerun with --fresh"):
        await open_sqlite(tmp_path)


SCHEMA_2 = """
CREATE TABLE meta(key TEXT PRIMARY KEY, value BLOB NOT NULL);
CREATE TABLE task(seq INTEGER PRIMARY KEY, op INTEGER NOT NULL, key TEXT NOT NULL,
                  state INTEGER NOT NULL DEFAULT 0);
CREATE UNIQUE INDEX task_key ON task(op, key) WHERE op != 4;
CREATE INDEX task_pending ON task(op, seq) WHERE state = 0;
CREATE TABLE failure(op INTEGER NOT NULL, key TEXT NOT NULL, reason TEXT NOT NULL,
                     at REAL NOT NULL, PRIMARY KEY(op, key));
CREATE TABLE output(name TEXT PRIMARY KEY, length INTEGER NOT NULL);
INSERT INTO task(op, key, state) VALUES (1, 'a', 1), (1, 'b', 0), (3, 't', 1), (4, 't', 0);
INSERT INTO output VALUES ('artists.jsonl', 11);
INSERT INTO meta VALUES ('schema', '2'), ('seeded', 'true'),
    ('fingerprint', '{"seeds":{"artists":["a"]},"expand":{}}'),
    ('counts', '[[1,0,1],[1,1,1],[3,1,1],[4,0,1]]');
"""


async def test_a_schema_2_checkpoint_is_migrated_in_place(tmp_path: Path) -> None:
    """Crawls started by the previous version resume; they wrote no edge streams, so the
    migrated crawl has them off, and a config that turns them on is refused by name."""
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "artists.jsonl").write_bytes(b'{"id":"a"}\n')
    with sqlite3.connect(tmp_path / "cp.db") as db:
        db.executescript(SCHEMA_2)
    off = {**FP, "output": dict.fromkeys(EDGE_STREAMS, False)}
    with pytest.raises(CheckpointError, match=r"\(output.artist_albums, output.playlist_items"):
        await open_sqlite(tmp_path, {**FP, "output": dict.fromkeys(EDGE_STREAMS, True)})
    store = await open_sqlite(tmp_path, off)
    assert store.counts() == {
        (Op.ARTIST, State.PENDING): 1,
        (Op.ARTIST, State.DONE): 1,
        (Op.TRACK, State.DONE): 1,
        (Op.FEATURES, State.PENDING): 1,
    }
    assert store.written()["artists"] == 1
    assert keys(await store.claim(Op.ARTIST, 10)) == [(Op.ARTIST, "b")]
    (features,) = await store.claim(Op.FEATURES, 10)
    assert (features.op, features.key) == (Op.FEATURES, "t")
    await commit(store, [Outcome(states=[(features, State.DONE)])])
    assert await store.states([(Op.FEATURES, "t"), (Op.TRACK, "t")]) == {
        (Op.FEATURES, "t"): State.DONE,
        (Op.TRACK, "t"): State.DONE,
    }
    await store.close()


async def test_corrupt_checkpoint_is_refused_and_left_untouched(tmp_path: Path) -> None:
    path = tmp_path / "cp.db"
    garbage = b"this is not sqlite" * 100
    path.write_bytes(garbage)
    with pytest.raises(CheckpointError, match=r"unreadable.*left untouched"):
        await open_sqlite(tmp_path)
    assert path.read_bytes() == garbage


async def test_a_checkpoint_path_that_is_a_folder_is_one_clear_error(tmp_path: Path) -> None:
    (tmp_path / "cp.db").mkdir()
    with pytest.raises(CheckpointError, match=r"cp.db: the checkpoint path is a directory"):
        await open_sqlite(tmp_path)


async def test_readonly_open_leaves_files_alone(tmp_path: Path) -> None:
    store = await open_sqlite(tmp_path)
    await commit(store, [Outcome(records=[("artists", b"{}")])], seeds=[(Op.ALBUM, "x")])
    path = tmp_path / "out" / "artists.jsonl"
    with path.open("ab") as f:
        f.write(b"tail of a running crawl")
    reader = await SqliteStore.open_readonly(tmp_path / "cp.db", tmp_path / "out")
    assert pending(reader.counts(), Op.ALBUM) == 1
    # Only what is committed, not the running tail.
    assert await records(reader, "artists", tmp_path) == [b"{}"]
    await reader.close()
    await store.close()
    assert path.read_bytes().endswith(b"tail of a running crawl")


async def test_samples_are_durable_with_the_commits_and_old_ones_thinned(
    open_store: OpenStore,
) -> None:
    """A day-old stretch of 5 s samples is thinned to one a minute (and each run's first and
    last sample stay), so a week-long crawl's time series stays small."""
    store = await open_store()
    await store.begin_run()
    (run,) = await store.runs()
    now = 10 * 86_400.0
    old = [now - 2 * 86_400 + 5 * i for i in range(240)]  # 20 minutes, two days ago
    recent = [now - 600 + 5 * i for i in range(120)]  # the last 10 minutes
    for at in old + recent:
        store.record_sample(Sample(at=at, run=run.id, retries=int(at)))
    await commit(store, seeds=[(Op.ARTIST, "a")])
    await store.end_run(0, "crawl complete")
    await store.close()
    store = await open_store()
    kept = [s.at for s in await store.samples()]
    assert kept[-len(recent) :] == recent  # recent samples keep their resolution
    assert kept[: -len(recent)] == [at for at in old if at % 60 == 0]  # one a minute
    (run,) = await store.runs()
    assert run.exit_code == 0 and run.ended is not None


def test_writev_appends_every_buffer_in_order_across_partial_writes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The kernel may take part of a writev; the rest must follow, in order, byte for byte."""
    import os

    from crawler.store import outputs

    real = os.writev

    def stingy(fd: int, views: list[memoryview]) -> int:
        return real(fd, [views[0][: max(1, len(views[0]) // 3)]])  # a third of one buffer

    monkeypatch.setattr(outputs.os, "writev", stingy)
    buffers = [b"%d" % i * 50 for i in range(3000)]  # over the 1,024 buffers of one call
    fd = os.open(tmp_path / "f", os.O_WRONLY | os.O_CREAT)
    assert outputs._write_all(fd, buffers) == sum(map(len, buffers))
    os.close(fd)
    assert (tmp_path / "f").read_bytes() == b"".join(buffers)
