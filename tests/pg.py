"""PostgreSQL for the tests: one real server per session, one fresh database per test.

Registered as a pytest plugin (``pytest_plugins = ["tests.pg"]`` in tests/conftest.py), so any
test module can ask for:

- ``pg_dsn`` (session): the DSN of a role that may create databases. It is
  ``$SPOTIFY_CRAWLER_TEST_DSN`` (what .ci/run exports) or else the throwaway server of
  ``scripts/postgres.sh``, started here when PostgreSQL is installed and stopped again at the
  end of the session unless it was already running.
- ``pg_database`` (function): the DSN of a new, empty database of its own, dropped afterwards,
  so tests see nothing of each other (advisory locks are per database too).
- ``make_pg_database`` (function): a factory of more such databases, for a test that needs two.

Where no server can be had the test skips — except under ``CI=true``, where a skip would hide
a CI that no longer tests PostgreSQL, so it fails with the reason instead. Messages name DSNs
with the password masked.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import os
import subprocess
import uuid
from collections.abc import Callable, Coroutine, Iterator
from pathlib import Path
from typing import Any, NoReturn, TypeVar
from urllib.parse import urlsplit, urlunsplit

import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "postgres.sh"
DSN_ENV = "SPOTIFY_CRAWLER_TEST_DSN"
NOT_RUNNING, NOT_INSTALLED = 3, 4  # exit codes of `postgres.sh status`

T = TypeVar("T")


def unavailable(reason: str) -> NoReturn:
    """Skip a test whose server cannot be had, or fail it under CI=true."""
    if os.environ.get("CI") == "true":
        pytest.fail(f"{reason} (a test that needs it must run under CI=true)", pytrace=False)
    pytest.skip(reason)


def installed() -> bool:
    """Whether scripts/postgres.sh finds server binaries (it would install them otherwise)."""
    return _script("status").returncode != NOT_INSTALLED


def blocking(coro: Coroutine[Any, Any, T]) -> T:
    """Run a coroutine on a loop of its own in another thread.

    The fixtures are synchronous, so that synchronous and asynchronous tests alike can use
    them, and this works whether or not the test's own event loop is running in this thread.
    """
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, coro).result()


def with_database(dsn: str, name: str) -> str:
    return urlunsplit(urlsplit(dsn)._replace(path=f"/{name}"))


def with_password(dsn: str, password: str) -> str:
    parts = urlsplit(dsn)
    user = parts.username or ""
    host = parts.netloc.rpartition("@")[2]
    return urlunsplit(parts._replace(netloc=f"{user}:{password}@{host}"))


def redacted(dsn: str) -> str:
    """The DSN as it may appear in a message: any password masked."""
    return with_password(dsn, "***") if urlsplit(dsn).password is not None else dsn


def _script(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["bash", str(SCRIPT), *args], capture_output=True, text=True, stdin=subprocess.DEVNULL
    )


async def _execute(dsn: str, *statements: str) -> None:
    import asyncpg  # here, not at the top: this plugin loads even without the postgres extra

    conn = await asyncpg.connect(dsn)
    try:
        for sql in statements:
            await conn.execute(sql)
    finally:
        await conn.close()


def _drop(admin_dsn: str, name: str) -> None:
    """Drop a test's database, first ending sessions the test left connected to it."""
    blocking(
        _execute(
            admin_dsn,
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
            f" WHERE datname = '{name}' AND usename = current_user",
            f'DROP DATABASE IF EXISTS "{name}"',
        )
    )


@contextlib.contextmanager
def _script_server() -> Iterator[str]:
    """The server of scripts/postgres.sh, started for this session if it was not running."""
    status = _script("status")
    if status.returncode == NOT_INSTALLED:
        unavailable(
            "PostgreSQL is not installed: run `bash scripts/postgres.sh start` (it installs it)"
            f" or set {DSN_ENV}"
        )
    started = status.returncode == NOT_RUNNING
    if started:
        start = _script("start")
        if start.returncode != 0:
            unavailable(f"scripts/postgres.sh start failed: {start.stderr.strip()}")
    dsn = _script("dsn").stdout.strip()
    try:
        yield dsn
    finally:
        if started:
            _script("stop")


@pytest.fixture(scope="session")
def pg_dsn() -> Iterator[str]:
    try:
        import asyncpg  # noqa: F401
    except ImportError:
        unavailable('asyncpg is not installed: pip install -e ".[test]"')
    given = os.environ.get(DSN_ENV)
    with contextlib.nullcontext(given) if given else _script_server() as dsn:
        try:
            blocking(_execute(dsn, "SELECT 1"))
        except Exception as exc:  # whatever the driver says is the reason to report
            reason = f"cannot connect to PostgreSQL at {redacted(dsn)}: {exc}"
            if given:
                pytest.fail(f"{DSN_ENV} is set but {reason}", pytrace=False)
            unavailable(reason)
        yield dsn


@pytest.fixture
def make_pg_database(pg_dsn: str) -> Iterator[Callable[[], str]]:
    """Factory: each call creates an empty database and returns its DSN; all dropped after."""
    made: list[str] = []

    def make() -> str:
        name = f"test_{uuid.uuid4().hex[:12]}"
        blocking(_execute(pg_dsn, f'CREATE DATABASE "{name}"'))
        made.append(name)
        return with_database(pg_dsn, name)

    yield make
    for name in made:
        _drop(pg_dsn, name)


@pytest.fixture
def pg_database(make_pg_database: Callable[[], str]) -> str:
    return make_pg_database()
