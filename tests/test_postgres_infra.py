"""The PostgreSQL test fixtures themselves: a real server, a database per test, clear refusals.

The store's own tests rely on these: a database that works, that no other test can see into,
and the driver's wording for a refused login, which the crawler's one-line errors will carry.
"""

from __future__ import annotations

from collections.abc import Callable
from urllib.parse import urlsplit

import asyncpg
import pytest

from tests.pg import redacted, with_password


async def test_fixture_gives_an_empty_working_database(pg_database: str) -> None:
    conn = await asyncpg.connect(pg_database)
    try:
        assert await conn.fetchval("SELECT current_database()") == urlsplit(pg_database).path[1:]
        tables = "SELECT count(*) FROM pg_tables WHERE schemaname <> ALL($1::text[])"
        assert await conn.fetchval(tables, ["pg_catalog", "information_schema"]) == 0
        await conn.execute("CREATE TABLE t(k text PRIMARY KEY)")
        inserted = await conn.fetch(
            "INSERT INTO t SELECT unnest($1::text[]) ON CONFLICT DO NOTHING RETURNING k",
            ["a", "b", "a"],
        )
        assert sorted(r["k"] for r in inserted) == ["a", "b"]
    finally:
        await conn.close()


async def test_two_databases_see_nothing_of_each_other(
    make_pg_database: Callable[[], str],
) -> None:
    first, second = make_pg_database(), make_pg_database()
    assert first != second
    a, b = await asyncpg.connect(first), await asyncpg.connect(second)
    try:
        await a.execute("CREATE TABLE task(k text)")
        assert await b.fetchval("SELECT to_regclass('task')") is None
        await b.execute("CREATE TABLE task(k text)")
        await a.execute("INSERT INTO task VALUES ('only in the first')")
        assert await b.fetchval("SELECT count(*) FROM task") == 0
        # Workers find each other by advisory locks: a lock in one database is none in another.
        assert await a.fetchval("SELECT pg_try_advisory_lock(1, 1)") is True
        assert await b.fetchval("SELECT pg_try_advisory_lock(1, 1)") is True
    finally:
        await a.close()
        await b.close()


async def test_wrong_password_is_refused_with_a_clear_message(pg_database: str) -> None:
    wrong = with_password(pg_database, "not-the-password")
    user = urlsplit(pg_database).username
    with pytest.raises(asyncpg.InvalidPasswordError) as refused:
        await asyncpg.connect(wrong)
    assert str(refused.value) == f'password authentication failed for user "{user}"'
    assert "not-the-password" not in redacted(wrong)
    assert redacted(wrong) == with_password(pg_database, "***")
