"""One budget per account across processes, kept in PostgreSQL (crawler.store.pg_budget).

Each ledger has a connection of its own, as each process would: pools on separate ledgers
stand for separate processes, and one test runs real crawler processes against the simulator.
Nothing is timed: the window guarantee holds by construction whatever the machine's speed,
and the effects of a 429 or a measurement are awaited as events (polling with a generous
timeout), never after a fixed sleep.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import random
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import asyncpg
import pytest

from crawler.api.account import Ticket
from crawler.api.budget import SAFETY
from crawler.api.pool import AccountPool
from crawler.api.retry import Backoff
from crawler.cli.crawl import BUDGET_DSN_ENV
from crawler.core.config import load_config
from crawler.core.errors import AllAccountsParked, CrawlerError
from crawler.sim.catalog import Catalog
from crawler.store.pg_budget import PgLedger, _Due, _Grant
from tests.crawlkit import assert_ground_truth, expected, start_crawl, write_config
from tests.test_ratelimit import busiest_window

TIMEOUT_S = 60.0


@contextlib.asynccontextmanager
async def ledgers(dsn: str, count: int) -> AsyncIterator[list[PgLedger]]:
    async with contextlib.AsyncExitStack() as stack:
        yield [await stack.enter_async_context(await PgLedger.connect(dsn)) for _ in range(count)]


def pool(ledger: PgLedger, rate: int, window_s: float, **options: float) -> AccountPool:
    return AccountPool(
        {"a": (rate, window_s)},
        max_retry_after_s=options.pop("max_retry_after_s", 60.0),
        backoff=Backoff(base_s=0.05, cap_s=1.0),
        ledger=ledger,
        **options,
    )


async def until(check: Callable[[], bool | Awaitable[bool]], what: str) -> None:
    """Wait for another process's effect to arrive; fail only if it never does."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + TIMEOUT_S
    while True:
        done = check()
        if done if isinstance(done, bool) else await done:
            return
        assert loop.time() < deadline, f"never happened: {what}"
        await asyncio.sleep(0.01)


async def fetchval(dsn: str, sql: str) -> object:
    conn = await asyncpg.connect(dsn)
    try:
        return await conn.fetchval(sql)
    finally:
        await conn.close()


async def at_least(dsn: str, sql: str, value: float) -> bool:
    return (await fetchval(dsn, sql) or 0) >= value  # None: no row yet


def count(dsn: str, table: str, rows: int) -> Awaitable[bool]:
    return at_least(dsn, f"SELECT count(*) FROM {table}", rows)


def test_grants_kept_as_arithmetic_spend_and_lose_the_slots_one_by_one_would() -> None:
    """A grant is its slots' formula, not a slot per item; spending and expiring it must give
    the same slot, the same count and the same losses as the slots listed one by one
    (at, lost after), at times between, on and around the slots' own."""
    rng = random.Random(7)
    for _ in range(300):
        due, listed = _Due(), deque[tuple[float, float]]()
        t = rng.uniform(0, 1000)
        for _ in range(rng.randint(1, 4)):
            first, spacing = t + rng.uniform(-0.5, 0.5), rng.choice([1e-5, 3e-5, 0.01, 0.1])
            k, grace = rng.randint(1, 3000), rng.uniform(0.05, 1.0)
            answered = t + rng.uniform(0, 0.2)
            due.add(_Grant(first, spacing, k, answered, grace))
            listed.extend(
                (first + j * spacing, max(first + j * spacing, answered) + grace) for j in range(k)
            )
            t = max(t, listed[-1][0])
        now = listed[0][0] - 0.1
        while listed:
            while listed and listed[0][1] < now:
                listed.popleft()
            due.expire(now)
            assert len(due) == len(listed)
            assert due.next_at() == (listed[0][0] if listed else None)
            if listed and listed[0][0] <= now and rng.random() < 0.7:
                listed.popleft()
                due.pop()
            now = rng.choice([now + rng.uniform(0, 0.05), listed[0][1] if listed else now])
            if rng.random() < 0.1:
                now = math.nextafter(now, math.inf)


async def test_no_window_holds_more_than_the_rate_summed_over_every_process(
    pg_database: str,
) -> None:
    # Three processes with four workers each, all wanting to send all the time: their sends
    # together, on the one clock they share here, never exceed the account's budget.
    rate, window = 20, 1.0
    async with ledgers(pg_database, 3) as three:
        pools = [pool(ledger, rate, window, max_in_flight=4) for ledger in three]
        sent: list[tuple[float, int]] = []
        enough = asyncio.Event()

        async def worker(accounts: AccountPool, process: int) -> None:
            while True:
                ticket = await accounts.acquire()
                sent.append((ticket.sent_at, process))
                accounts.accepted(ticket)
                if len(sent) >= 3 * rate:
                    enough.set()

        tasks = [asyncio.ensure_future(worker(p, i)) for i, p in enumerate(pools) for _ in range(4)]
        try:
            await asyncio.wait_for(enough.wait(), TIMEOUT_S)
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
    times = sorted(t for t, _ in sent)
    assert busiest_window(times, window) <= rate
    assert {process for _, process in sent} == {0, 1, 2}  # every process had its share


async def test_a_429_in_one_process_parks_the_account_in_every_other(pg_database: str) -> None:
    async with ledgers(pg_database, 2) as (first, second):
        here, there = pool(first, 10_000, 30.0), pool(second, 10_000, 30.0)
        here.rate_limited(await here.acquire(), 5.0, quota_exceeded=False)
        await first.settled()
        (account,) = there.accounts
        await until(lambda: account.parked_epoch is not None, "the park reached the other")
        assert account.parked(account._clock.monotonic())
        # Both name the database's end of the park.
        assert there.status().accounts[0].parked_until == here.status().accounts[0].parked_until


async def test_a_long_park_pauses_every_process_until_the_same_time(pg_database: str) -> None:
    async with ledgers(pg_database, 2) as (first, second):
        here = pool(first, 10_000, 30.0, max_retry_after_s=60)
        there = pool(second, 10_000, 30.0, max_retry_after_s=60)
        here.rate_limited(await here.acquire(), 3600.0, quota_exceeded=False)
        (account,) = there.accounts
        await until(lambda: account.parked_for_run, "the park reached the other")
        resumes = []
        for accounts in (here, there):
            with pytest.raises(AllAccountsParked) as paused:
                await accounts.acquire()
            resumes.append(paused.value.resume_at)
    assert resumes[0] == resumes[1]  # exit 3 in both, with one resume time to tell the user


async def test_quota_exceeded_is_warned_once_across_processes(
    pg_database: str, caplog: pytest.LogCaptureFixture
) -> None:
    async with ledgers(pg_database, 3) as three:
        pools = [pool(ledger, 10_000, 30.0) for ledger in three]
        with caplog.at_level(logging.WARNING, "crawler.api.pool"):
            for _ in range(2):
                for accounts in pools:
                    ticket = await accounts.acquire()
                    accounts.rate_limited(ticket, 0.0, quota_exceeded=True)
            for ledger in three:
                await ledger.settled()
    assert caplog.text.count("QUOTA_EXCEEDED") == 1
    assert all(p.status().accounts[0].quota_exceeded for p in pools)


async def accept(accounts: AccountPool, requests: int) -> Ticket:
    """``requests`` accepted one after the other; returns the next ticket, unanswered."""
    for _ in range(requests):
        accounts.accepted(await accounts.acquire())
    return await accounts.acquire()


async def test_a_limit_measured_in_one_process_counts_every_process_and_paces_all(
    pg_database: str,
) -> None:
    async with ledgers(pg_database, 2) as (first, second):
        here = pool(first, 0, 30.0, max_in_flight=32)
        there = pool(second, 0, 30.0, max_in_flight=32)
        refused = await accept(here, 12)
        spare = await accept(there, 8)
        there.released(spare)
        await until(lambda: count(pg_database, "budget_accepted", 20), "both told their successes")
        here.rate_limited(refused, 0.0, quota_exceeded=False)
        (mine,), (theirs,) = here.accounts, there.accounts
        # The window held 20 accepted requests, 12 of them this process's own.
        await until(lambda: mine.budget.estimate == 20, "the shared count measured")
        there.accepted(await there.acquire())  # the other learns it with its next sync
        await until(lambda: theirs.budget.estimate == 20, "the measurement reached the other")
        # Paced to it (its own success since may have probed a little above 97 %).
        assert 20 * SAFETY <= theirs.budget.value < 20
        assert not theirs.budget.slow_start and theirs.budget.learning


async def test_a_slow_start_shares_its_allowance_among_the_processes(pg_database: str) -> None:
    async with ledgers(pg_database, 2) as (first, second):
        here, there = pool(first, 0, 30.0), pool(second, 0, 30.0)
        (mine,), (theirs,) = here.accounts, there.accounts
        here.accepted(await here.acquire())
        there.accepted(await there.acquire())
        allowance = "SELECT in_flight FROM budget_account"
        await until(lambda: at_least(pg_database, allowance, 4), "both successes shared")
        assert await fetchval(pg_database, allowance) == 4  # 2 at first, and one per success
        await until(
            lambda: mine.budget.in_flight == theirs.budget.in_flight == 2,
            "each process allowed its half of the 4 in flight",
        )


async def busy(pools: list[AccountPool], together: int = 1) -> None:
    """``together`` more requests in each process, sent together, then all accepted."""
    for accounts in pools:
        tickets = [await accounts.acquire() for _ in range(together)]
        for ticket in tickets:
            accounts.accepted(ticket)


async def test_processes_at_one_crawls_allowance_go_on_paced_rather_than_capped(
    pg_database: str,
) -> None:
    # With no limit found, processes sharing an account are not held for ever to one crawl's
    # concurrency between them: with all of it in use, they go on as a paced ramp.
    async with ledgers(pg_database, 2) as two:
        pools = [pool(ledger, 0, 30.0, max_in_flight=4) for ledger in two]
        budgets = [accounts.accounts[0].budget for accounts in pools]

        async def paced() -> bool:
            await busy(pools)
            return not any(budget.slow_start for budget in budgets)

        await until(paced, "both processes paced past the slow start's allowance")
        for budget in budgets:
            assert budget.ramping  # nothing measured: it grows until a 429 measures
            assert budget.in_flight == math.inf and budget.value < math.inf
        row = "SELECT value < 'Infinity' AND in_flight = 'Infinity' FROM budget_account"
        assert await fetchval(pg_database, row) is True


async def test_a_lone_process_keeps_its_slow_start_at_its_concurrency(pg_database: str) -> None:
    async with ledgers(pg_database, 1) as (ledger,):
        pools = [pool(ledger, 0, 30.0, max_in_flight=4)]
        budget = pools[0].accounts[0].budget
        allowance, shared = (
            "SELECT in_flight FROM budget_account",
            "SELECT count(*) FROM budget_accepted",
        )

        async def synced_beyond(query: str, value: float) -> bool:
            await busy(pools, together=2)  # at least half of the allowance in use
            return await at_least(pg_database, query, value)

        await until(lambda: synced_beyond(allowance, 4), "the allowance grown to 4")
        more = await fetchval(pg_database, shared)
        assert isinstance(more, int)
        await until(lambda: synced_beyond(shared, more + 20), "more successes shared")
        # Its allowance is all that it could send anyway: nothing to pace past.
        assert budget.slow_start and budget.in_flight == 4
        assert await fetchval(pg_database, allowance) == 4


async def test_a_lost_database_fails_the_requests_waiting_for_slots(pg_database: str) -> None:
    # asyncpg does not reconnect: once the server has dropped the ledger's connection no slot
    # will be granted again. A request must then fail with one line, not wait for ever (a
    # crawl whose database restarted hung with its accounts' budgets known).
    async with ledgers(pg_database, 1) as (ledger,):
        accounts = pool(ledger, 10_000, 30.0)
        accounts.accepted(await accounts.acquire())  # the row adopted, slots granted
        await fetchval(pg_database, f"SELECT pg_terminate_backend({ledger._backend_pid})")
        with pytest.raises(CrawlerError, match="rate-limit ledger: lost the database"):
            await asyncio.wait_for(accept(accounts, 10_000), TIMEOUT_S)


async def test_crawler_processes_share_a_known_budget_without_a_429(
    pg_database: str, sim_server, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Two crawls, each with its own SQLite checkpoint, of the same catalog with one account:
    # together they send twice what one would, and the simulator refuses none of it.
    rate, window = 60, 3.0
    catalog = Catalog(12, seed=7)
    sim = await sim_server(catalog, rate=rate, window_s=window)
    monkeypatch.setenv(BUDGET_DSN_ENV, pg_database)
    (client,) = sim.config.clients
    credential = {
        "client_id": client.client_id,
        "client_secret": client.client_secret,
        "account": client.account,
        "rate": rate,
        "window_s": window,
    }
    paths = []
    for name in ("one", "two"):
        (tmp_path / name).mkdir()
        paths.append(
            write_config(
                tmp_path / name,
                sim.url,
                seeds={"artists": [catalog.first_artist_ids()[0]]},
                credentials=[credential],
                crawl={"concurrency": 8},
            )
        )
    procs = [await start_crawl(path) for path in paths]
    results = await asyncio.wait_for(asyncio.gather(*(p.communicate() for p in procs)), 300)
    for proc, (_, err) in zip(procs, results, strict=True):
        assert proc.returncode == 0, err.decode()[-2000:]
    stats = await sim.stats()
    assert stats["throttled"] == 0
    for path in paths:
        assert_ground_truth(path.parent / "out", expected(catalog, load_config(path)))
    calls = sum(v for k, v in stats["by_endpoint"].items() if k != "token")
    assert calls > rate  # more than one window's worth: the pace, not the burst, was tested
