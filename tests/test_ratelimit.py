"""Pacing, learned budgets, account choice and parking; checked against the simulator's window."""

from __future__ import annotations

import asyncio
import logging
import math
import time

import pytest

from crawler.api.ratelimit import (
    INITIAL_BUDGET,
    RAMP_STEP,
    SAFETY,
    AccountPool,
    Budget,
    Ticket,
    _Bucket,
    _pace,
)
from crawler.api.retry import Backoff
from crawler.core.errors import AllAccountsParked
from crawler.core.stats import Stats
from tests.test_client_fakes import existing_artists, sim_client


def pool(*accounts: tuple[str, int, float], max_retry_after_s: float = 60.0) -> AccountPool:
    return AccountPool(
        {name: (rate, window) for name, rate, window in accounts},
        max_retry_after_s=max_retry_after_s,
        backoff=Backoff(base_s=0.05, cap_s=1.0),
    )


def busiest_window(times: list[float], window_s: float) -> int:
    """The most send times inside any half-open interval of length window_s."""
    best, start = 0, 0
    for end, t in enumerate(times):
        while times[start] <= t - window_s:
            start += 1
        best = max(best, end - start + 1)
    return best


# ---------------------------------------------------------------- pacing


@pytest.mark.parametrize("budget", [2, 10, 30, 300, 5000])
def test_burst_plus_drain_over_the_window_is_exactly_the_budget(budget: int) -> None:
    burst, drain = _pace(budget, 30.0)
    assert burst >= 1
    assert burst <= max(1, 0.03 * budget)  # a small burst, not the whole budget
    assert math.isclose(burst + drain * 30.0, budget)


async def test_account_never_sends_more_than_its_rate_in_any_window() -> None:
    rate, window = 20, 0.5
    accounts = pool(("a", rate, window))
    sent: list[float] = []
    deadline = time.monotonic() + 1.6

    async def worker() -> None:
        while time.monotonic() < deadline:
            ticket = await accounts.acquire()
            sent.append(ticket.sent_at)
            accounts.accepted(ticket)

    await asyncio.gather(*(worker() for _ in range(10)))
    assert busiest_window(sent, window) <= rate
    assert len(sent) >= 0.85 * rate * 1.6 / window  # and it is not slow either


async def test_retune_applies_to_requests_already_waiting() -> None:
    bucket = _Bucket(2, 10.0)  # burst 1, then one request per 10 s
    await bucket.acquire()
    waiter = asyncio.ensure_future(bucket.acquire())
    await asyncio.sleep(0.05)
    assert not waiter.done()
    bucket.retune(1000, 1.0)
    await asyncio.wait_for(waiter, 0.5)


# ---------------------------------------------------------------- learned budgets


def measured(accepted: int) -> Budget:
    """A learned budget right after its ramp overshot and met its first 429."""
    budget = Budget(0)
    budget.value = 3.0 * accepted
    budget.cut(accepted)
    return budget


def test_unknown_budget_ramps_then_measures_the_limit_on_the_first_429() -> None:
    budget = Budget(0)
    start = budget.value
    for _ in range(100):
        budget.grow()
    assert budget.value > 3 * start and budget.ramping
    budget.cut(accepted=100)
    assert budget.estimate == 100
    assert budget.value == pytest.approx(100 * SAFETY)


def test_probing_adds_one_request_per_window_then_doubles_its_step() -> None:
    budget = measured(300)
    gains = []
    for _ in range(4):
        before = budget.value
        while budget.value - before < 0.99 * 2 ** len(gains):  # one window's worth
            budget.grow()
        gains.append(round(budget.value - before))
    assert gains == [1, 2, 4, 8]
    budget.cut(accepted=300)  # the next 429 starts over at one request per window
    before = budget.value
    for _ in range(10):
        budget.grow()
    assert budget.value - before == pytest.approx(10 / 291, rel=0.01)


def test_429_while_the_account_was_lightly_used_halves_instead_of_measuring() -> None:
    budget = measured(200)
    budget.cut(accepted=10)  # someone else used the account: 10 says nothing about the limit
    assert budget.estimate == 200
    assert budget.value == pytest.approx(100 * SAFETY)
    budget.grow()
    assert budget.value == pytest.approx(100 * SAFETY + RAMP_STEP)  # regrows fast to 97 % of 200


def test_early_429_of_a_window_someone_else_filled_keeps_the_ramp_going() -> None:
    budget = Budget(0)
    budget.cut(accepted=3)
    assert budget.ramping
    assert budget.value == pytest.approx(INITIAL_BUDGET / 2)


def test_known_budget_starts_at_the_rate_and_never_exceeds_it() -> None:
    budget = Budget(300)
    assert budget.value == 300 and not budget.learning
    for _ in range(1000):
        budget.grow()
    assert budget.value == 300
    budget.cut(accepted=250)
    assert budget.value == pytest.approx(250 * SAFETY)


async def test_a_limit_measured_in_the_first_window_is_measured_again_after_it() -> None:
    # Early in a run the server's window may still hold an earlier run's requests, which
    # makes the first measurement too low: the account ramps once more after its first window.
    accounts = pool(("a", 0, 1.0))
    tickets = [await accounts.acquire() for _ in range(20)]
    for ticket in tickets[:-1]:
        accounts.accepted(ticket)
    accounts.rate_limited(tickets[-1], 0.0, quota_exceeded=False)
    budget = tickets[0].account.budget
    assert budget.estimate == 19 and not budget.ramping
    await asyncio.sleep(tickets[0].sent_at + 1.0 - time.monotonic())
    accounts.accepted(await accounts.acquire())
    assert budget.ramping


# ---------------------------------------------------------------- the pool


async def test_requests_go_to_the_account_with_most_headroom() -> None:
    accounts = pool(("a", 10_000, 30.0), ("b", 10_000, 30.0))
    names = [(await accounts.acquire()).account.name for _ in range(10)]
    assert names.count("a") == names.count("b") == 5


async def test_429_parks_only_its_account_and_others_keep_working(caplog) -> None:
    accounts = pool(("a", 10_000, 30.0), ("b", 10_000, 30.0))
    ticket = await accounts.acquire()
    with caplog.at_level(logging.INFO, "crawler.api.ratelimit"):
        accounts.rate_limited(ticket, 30.0, quota_exceeded=False)
    resumes = time.time() + 30
    parked = ticket.account.name
    assert parked in caplog.text and "30.0 s" in caplog.text
    others = {(await accounts.acquire()).account.name for _ in range(20)}
    assert others == {"b" if parked == "a" else "a"}
    status = {s.account: s for s in accounts.status().accounts}
    assert status[parked].parked_until == pytest.approx(resumes, abs=0.5)
    assert accounts.status().all_parked_until is None


async def test_echoed_429s_of_one_burst_do_not_escalate_the_backoff() -> None:
    accounts = pool(("a", 10_000, 30.0))
    tickets = [await accounts.acquire() for _ in range(5)]  # in flight together
    for ticket in tickets:
        accounts.rate_limited(ticket, None, quota_exceeded=False)
    account = tickets[0].account
    assert account.bare_429s == 1
    assert account.parked_until - time.monotonic() == pytest.approx(0.05, abs=0.02)


async def test_bare_429s_back_off_exponentially_until_a_success() -> None:
    accounts = pool(("a", 10_000, 30.0))
    waits = []
    for _ in range(3):
        ticket = await accounts.acquire()
        accounts.rate_limited(ticket, None, quota_exceeded=False)
        waits.append(ticket.account.parked_until - time.monotonic())
    assert waits == pytest.approx([0.05, 0.1, 0.2], abs=0.02)
    accounts.accepted(await accounts.acquire())
    assert accounts.accounts[0].bare_429s == 0


async def test_all_accounts_parked_beyond_the_limit_raises_with_the_resume_time() -> None:
    accounts = pool(("a", 10_000, 30.0), ("b", 10_000, 30.0), max_retry_after_s=60)
    first, second = await accounts.acquire(), await accounts.acquire()
    accounts.rate_limited(first, 3600, quota_exceeded=False)
    accounts.rate_limited(second, 7200, quota_exceeded=False)
    with pytest.raises(AllAccountsParked) as caught:
        await accounts.acquire()
    assert caught.value.resume_at == pytest.approx(time.time() + 3600, abs=2)
    assert str(caught.value).startswith("all 2 accounts are rate-limited until ")
    assert str(caught.value).endswith(" UTC; rerun then to resume")


async def test_when_every_account_is_parked_briefly_requests_wait_for_the_first() -> None:
    accounts = pool(("a", 10_000, 30.0), ("b", 10_000, 30.0), max_retry_after_s=60)
    first, second = await accounts.acquire(), await accounts.acquire()
    accounts.rate_limited(first, 3600, quota_exceeded=False)  # parked for the run
    accounts.rate_limited(second, 0.3, quota_exceeded=False)
    waiting = asyncio.ensure_future(accounts.acquire())
    await asyncio.sleep(0.05)
    resume = accounts.status().all_parked_until
    assert resume == pytest.approx(time.time() + 0.25, abs=0.05)  # for "resuming in X s"
    ticket: Ticket = await asyncio.wait_for(waiting, 1.0)
    assert ticket.account is second.account


async def test_quota_exceeded_is_warned_once_per_account_and_shown_in_status(caplog) -> None:
    accounts = pool(("a", 10_000, 30.0))
    with caplog.at_level(logging.WARNING, "crawler.api.ratelimit"):
        for _ in range(3):
            ticket = await accounts.acquire()
            accounts.rate_limited(ticket, 0.0, quota_exceeded=True)
    assert caplog.text.count("QUOTA_EXCEEDED") == 1
    assert accounts.status().accounts[0].quota_exceeded


# ---------------------------------------------------------------- against the simulator


async def test_known_rate_never_exceeds_the_simulators_window(sim_server) -> None:
    sim = await sim_server(rate=100, window_s=1.0)
    artists = existing_artists(sim.catalog, 50)
    calls = 300
    started = time.monotonic()
    async with sim_client(sim, rate=100, window_s=1.0) as client:
        await asyncio.gather(*(client.artists([artists[i % 50]]) for i in range(calls)))
    elapsed = time.monotonic() - started
    stats = await sim.stats()
    assert stats["throttled"] == 0
    assert stats["by_endpoint"]["artists.batch"] == calls
    assert calls / elapsed >= 0.85 * 100  # close to the budget, not just under it by luck


async def test_unknown_rate_is_discovered_with_few_429s(sim_server) -> None:
    sim = await sim_server(rate=100, window_s=1.0)
    artists = existing_artists(sim.catalog, 50)
    calls = 400
    stats = Stats()
    # At the first 429 every request in flight is refused too: at most `concurrency` of them.
    async with sim_client(sim, rate=0, window_s=1.0, stats=stats, concurrency=8) as client:
        await asyncio.gather(*(client.artists([artists[i % 50]]) for i in range(calls)))
        (account,) = client.status().accounts
    assert account.learning
    # Its pace is over a window padded for latency jitter (1.06 s here): a bit above 60.
    assert 0.85 * 100 <= account.rate <= 1.1 * 100
    assert stats.rate_limited <= 0.05 * calls
    assert stats.requests[("artists.batch", 200)] == calls
