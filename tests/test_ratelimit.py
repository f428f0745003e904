"""Pacing, learned budgets, slow start, account choice and parking.

The arithmetic (budget.py) is tested with explicit times, the account and the pool on a
FakeClock (every wait exact, nothing timed), and the whole against the simulator's window.
"""

from __future__ import annotations

import asyncio
import logging
import math
from datetime import UTC, datetime

import pytest

from crawler.api.account import Ticket
from crawler.api.budget import INITIAL_BUDGET, RAMP_STEP, SAFETY, Budget, Pacer, pace
from crawler.api.capabilities import Capabilities
from crawler.api.pool import AccountPool
from crawler.api.retry import Backoff
from crawler.core.errors import AllAccountsParked
from crawler.core.stats import Stats
from tests.fakes import FakeClock, existing_artists, sim_client


def pool(
    *accounts: tuple[str, int, float],
    clock: FakeClock,
    max_retry_after_s: float = 60.0,
    max_in_flight: float = math.inf,
) -> AccountPool:
    return AccountPool(
        {name: (rate, window) for name, rate, window in accounts},
        max_retry_after_s=max_retry_after_s,
        backoff=Backoff(base_s=0.05, cap_s=1.0),
        clock=clock,
        max_in_flight=max_in_flight,
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
    burst, drain = pace(budget, 30.0)
    assert burst >= 1
    assert burst <= max(1, 0.03 * budget)  # a small burst, not the whole budget
    assert math.isclose(burst + drain * 30.0, budget)


def test_pacer_admits_its_burst_then_one_request_per_drain_interval() -> None:
    pacer = Pacer(300, 30.0)  # burst 6, then 294 / 30 s
    for _ in range(6):
        assert pacer.delay(0.0) == 0.0
        pacer.take(0.0)
    assert pacer.delay(0.0) == pytest.approx(30 / 294)
    assert pacer.delay(30 / 294) == 0.0


def test_a_retuned_pacer_applies_the_new_rate_to_the_wait_in_progress() -> None:
    pacer = Pacer(2, 10.0)  # burst 1, then one request per 10 s
    pacer.take(0.0)
    assert pacer.delay(0.0) == pytest.approx(10.0)
    pacer.retune(1000, 1.0, now=1.0)  # burst 20: the request waiting since 0 may go now
    assert pacer.delay(1.0) == 0.0
    pacer.retune(2, 10.0, now=1.0)  # and back: what drained by now drained at the old rate
    assert pacer.delay(1.0) == pytest.approx(9.0)


async def test_account_never_sends_more_than_its_rate_in_any_window() -> None:
    rate, window, run_s, workers = 20, 0.5, 1.6, 10
    clock = FakeClock()
    accounts = pool(("a", rate, window), clock=clock)
    end = clock.now + run_s
    sent: list[float] = []

    async def worker() -> None:
        while True:
            ticket = await accounts.acquire()
            sent.append(ticket.sent_at)
            accounts.accepted(ticket)

    tasks = [asyncio.ensure_future(worker()) for _ in range(workers)]
    while clock.now < end:
        await clock.blocked(workers)  # every worker waits for room: time may move on
        clock.advance_to_next()
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    in_run = [t for t in sent if t < end]
    assert busiest_window(in_run, window) <= rate
    assert len(in_run) >= 0.85 * rate * run_s / window  # and it is not slow either


# ---------------------------------------------------------------- learned budgets


def measured(accepted: int) -> Budget:
    """A learned budget right after its slow start met its first 429."""
    budget = Budget(0)
    budget.cut(accepted)
    return budget


def test_slow_start_doubles_the_requests_in_flight_every_round_trip() -> None:
    budget = Budget(0, max_in_flight=32)
    allowed = []
    for _ in range(6):
        full = int(budget.in_flight)
        allowed.append(full)
        for _ in range(full):  # a round trip of successes, each sent with all allowed out
            budget.grow(limited=False, in_flight=full, accepted=0)
    assert allowed == [2, 4, 8, 16, 32, 32]  # bounded by the crawl's concurrency
    assert budget.slow_start and budget.value == math.inf  # no pace while nothing binds


def test_slow_start_grows_only_while_the_allowance_is_what_holds_the_crawl_back() -> None:
    budget = Budget(0, max_in_flight=32)
    for _ in range(10):
        budget.grow(
            limited=False, in_flight=4, accepted=0
        )  # half the allowance out counts, up to 8 of 9
    assert budget.in_flight == 9
    for _ in range(10):
        budget.grow(limited=False, in_flight=4, accepted=0)  # fewer than half of 9 out: no evidence
    assert budget.in_flight == 9


def test_the_first_429_measures_the_limit_and_ends_the_slow_start() -> None:
    budget = measured(100)
    assert budget.estimate == 100 and not budget.ramping and not budget.slow_start
    assert budget.value == pytest.approx(100 * SAFETY)
    assert budget.in_flight == math.inf  # the pace bounds it from now on
    budget.accepted_late()  # an answer of the measured window that came back after the 429
    assert budget.estimate == 101 and budget.value == pytest.approx(101 * SAFETY)


def test_probing_adds_one_request_per_window_then_doubles_its_step() -> None:
    budget = measured(300)
    gains = []
    for _ in range(4):
        before = budget.value
        while budget.value - before < 0.99 * 2 ** len(gains):  # one window's worth
            budget.grow(limited=True, in_flight=1, accepted=1000)
        gains.append(round(budget.value - before))
    assert gains == [1, 2, 4, 8]
    budget.cut(accepted=300)  # the next 429 starts over at one request per window
    before = budget.value
    for _ in range(10):
        budget.grow(limited=True, in_flight=1, accepted=1000)
    assert budget.value - before == pytest.approx(10 / 291, rel=0.01)
    budget.grow(
        limited=False, in_flight=1, accepted=1000
    )  # it did not wait for the pace: no evidence
    assert budget.value - before == pytest.approx(10 / 291, rel=0.01)


def test_429_while_the_account_was_lightly_used_halves_instead_of_measuring() -> None:
    budget = measured(200)
    budget.cut(accepted=10)  # someone else used the account: 10 says nothing about the limit
    assert budget.estimate == 200
    assert budget.value == pytest.approx(100 * SAFETY)
    budget.grow(limited=True, in_flight=1, accepted=1000)
    assert budget.value == pytest.approx(100 * SAFETY + RAMP_STEP)  # regrows fast to 97 % of 200


def test_a_slow_start_into_a_window_someone_else_filled_goes_on_paced_and_ramping() -> None:
    budget = Budget(0)
    budget.cut(accepted=3)  # an earlier run's requests still fill the server's window
    assert budget.ramping and not budget.slow_start
    assert budget.value == INITIAL_BUDGET / 2
    budget.grow(limited=True, in_flight=1, accepted=1000)
    assert budget.value == INITIAL_BUDGET / 2 + RAMP_STEP
    for _ in range(100):
        budget.grow(limited=True, in_flight=1, accepted=20)
    assert budget.value == 40  # no further than twice the rate requests were accepted at


def test_a_budget_an_earlier_run_measured_is_paced_to_from_the_start() -> None:
    budget = Budget(0, max_in_flight=32, measured=100)
    assert budget.learning and not budget.ramping and not budget.slow_start
    assert (budget.estimate, budget.value) == (100, pytest.approx(100 * SAFETY))
    assert Budget(300, measured=100).value == 300  # a configured rate is not overridden


def test_known_budget_starts_at_the_rate_and_never_exceeds_it() -> None:
    budget = Budget(300)
    assert budget.value == 300 and not budget.learning and not budget.slow_start
    for _ in range(1000):
        budget.grow(limited=True, in_flight=1, accepted=1000)
    assert budget.value == 300
    budget.cut(accepted=250)
    assert budget.value == pytest.approx(250 * SAFETY)


# ---------------------------------------------------------------- one account


async def test_slow_start_holds_requests_until_one_in_flight_is_answered() -> None:
    clock = FakeClock()
    accounts = pool(("a", 0, 30.0), clock=clock, max_in_flight=16)
    first, second = await accounts.acquire(), await accounts.acquire()
    third = asyncio.ensure_future(accounts.acquire())
    await clock.blocked(1)  # two in flight is all a slow start allows
    accounts.accepted(first)  # sent with 1 of 2 out: the allowance grows to 3
    ticket = await third
    assert (ticket.in_flight, ticket.limited) == (2, True)
    fourth = await accounts.acquire()  # 3 allowed, 2 out
    assert fourth.in_flight == 3 and second.account.budget.in_flight == 3


async def test_the_first_429_measures_what_the_window_accepted() -> None:
    clock = FakeClock()
    accounts = pool(("a", 0, 30.0), clock=clock, max_in_flight=32)
    for _ in range(20):
        accounts.accepted(await accounts.acquire())
    refused, late = await accounts.acquire(), await accounts.acquire()
    accounts.rate_limited(refused, 30.0, quota_exceeded=False)
    budget = refused.account.budget
    assert budget.estimate == 20 and budget.value == pytest.approx(20 * SAFETY)
    accounts.accepted(late)  # in flight beside the refused one, accepted into the same window
    assert budget.estimate == 21
    (status,) = accounts.status().accounts
    assert status.rate == pytest.approx(21 * SAFETY) and status.learning


async def test_a_limit_measured_in_the_first_window_is_measured_again_after_it() -> None:
    # Early in a run the server's window may still hold an earlier run's requests, which
    # makes the first measurement too low: the account ramps once more after its first window.
    clock = FakeClock()
    accounts = pool(("a", 0, 1.0), clock=clock)
    for _ in range(19):
        accounts.accepted(await accounts.acquire())
    last = await accounts.acquire()
    accounts.rate_limited(last, 0.0, quota_exceeded=False)
    budget = last.account.budget
    assert budget.estimate == 19 and not budget.ramping
    clock.advance(1.1)  # past the first window and the 20 requests' span (1.06 s)
    accounts.accepted(await accounts.acquire())
    assert budget.ramping


async def test_every_measurement_is_told_for_the_next_run() -> None:
    clock, told = FakeClock(), []
    accounts = AccountPool(
        {"a": (0, 30.0)},
        max_retry_after_s=60,
        backoff=Backoff(),
        clock=clock,
        max_in_flight=32,
        on_measured=lambda name, requests: told.append((name, requests)),
    )
    for _ in range(20):
        accounts.accepted(await accounts.acquire())
    refused, late = await accounts.acquire(), await accounts.acquire()
    accounts.rate_limited(refused, 30.0, quota_exceeded=False)
    accounts.accepted(late)
    assert told == [("a", 20), ("a", 21)]


async def test_a_budget_from_an_earlier_run_is_measured_again_after_the_first_window() -> None:
    clock = FakeClock()
    accounts = AccountPool(
        {"a": (0, 1.0)}, max_retry_after_s=60, backoff=Backoff(), clock=clock, measured={"a": 20}
    )
    (account,) = accounts.accounts
    assert account.budget.value == pytest.approx(20 * SAFETY) and not account.budget.ramping
    accounts.accepted(await accounts.acquire())
    clock.advance(1.0)
    accounts.accepted(await accounts.acquire())
    assert account.budget.ramping  # grows until a 429 measures the limit as it is now


# ---------------------------------------------------------------- the pool


async def test_requests_go_to_the_account_with_most_headroom() -> None:
    accounts = pool(("a", 10_000, 30.0), ("b", 10_000, 30.0), clock=FakeClock())
    names = [(await accounts.acquire()).account.name for _ in range(10)]
    assert names.count("a") == names.count("b") == 5


async def test_slow_starts_of_several_accounts_share_the_requests() -> None:
    accounts = pool(("a", 0, 30.0), ("b", 0, 30.0), clock=FakeClock(), max_in_flight=32)
    names = [(await accounts.acquire()).account.name for _ in range(4)]
    assert sorted(names) == ["a", "a", "b", "b"]  # each account's two, none waiting


async def test_429_parks_only_its_account_and_others_keep_working(caplog) -> None:
    clock = FakeClock()
    accounts = pool(("a", 10_000, 30.0), ("b", 10_000, 30.0), clock=clock)
    ticket = await accounts.acquire()
    with caplog.at_level(logging.INFO, "crawler.api.pool"):
        accounts.rate_limited(ticket, 30.0, quota_exceeded=False)
    parked = ticket.account.name
    assert caplog.messages == [f"account {parked} rate-limited: pausing it for 30.0 s"]
    others = {(await accounts.acquire()).account.name for _ in range(20)}
    assert others == {"b" if parked == "a" else "a"}
    status = {s.account: s for s in accounts.status().accounts}
    assert status[parked].parked_until == clock.time() + 30
    assert accounts.status().all_parked_until is None


async def test_echoed_429s_of_one_burst_do_not_escalate_the_backoff() -> None:
    clock = FakeClock()
    accounts = pool(("a", 10_000, 30.0), clock=clock)
    tickets = [await accounts.acquire() for _ in range(5)]  # in flight together
    for ticket in tickets:
        accounts.rate_limited(ticket, None, quota_exceeded=False)
    account = tickets[0].account
    assert account.bare_429s == 1
    assert account.parked_until - clock.now == pytest.approx(0.05, abs=1e-9)


async def test_bare_429s_back_off_exponentially_until_a_success() -> None:
    clock = FakeClock()
    accounts = pool(("a", 10_000, 30.0), clock=clock)
    waits = []
    for _ in range(3):
        ticket = await accounts.acquire()
        accounts.rate_limited(ticket, None, quota_exceeded=False)
        waits.append(ticket.account.parked_until - clock.now)
        clock.advance(waits[-1])
    assert waits == pytest.approx([0.05, 0.1, 0.2], abs=1e-9)
    accounts.accepted(await accounts.acquire())
    assert accounts.accounts[0].bare_429s == 0


async def test_all_accounts_parked_beyond_the_limit_raises_with_the_resume_time() -> None:
    clock = FakeClock()
    accounts = pool(("a", 10_000, 30.0), ("b", 10_000, 30.0), clock=clock, max_retry_after_s=60)
    first, second = await accounts.acquire(), await accounts.acquire()
    accounts.rate_limited(first, 3600, quota_exceeded=False)
    accounts.rate_limited(second, 7200, quota_exceeded=False)
    with pytest.raises(AllAccountsParked) as caught:
        await accounts.acquire()
    resume_at = clock.time() + 3600
    when = datetime.fromtimestamp(resume_at, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
    assert caught.value.resume_at == resume_at
    assert (
        str(caught.value) == f"all 2 accounts are rate-limited until {when}; rerun then to resume"
    )


async def test_when_every_account_is_parked_briefly_requests_wait_for_the_first() -> None:
    clock = FakeClock()
    accounts = pool(("a", 10_000, 30.0), ("b", 10_000, 30.0), clock=clock, max_retry_after_s=60)
    first, second = await accounts.acquire(), await accounts.acquire()
    accounts.rate_limited(first, 3600, quota_exceeded=False)  # parked for the run
    accounts.rate_limited(second, 0.3, quota_exceeded=False)
    waiting = asyncio.ensure_future(accounts.acquire())
    await clock.blocked(1)
    clock.advance(0.1)
    resume = accounts.status().all_parked_until
    assert resume == pytest.approx(clock.time() + 0.2, abs=1e-6)  # for "resuming in X s"
    assert not waiting.done()
    clock.advance(0.2)
    ticket: Ticket = await waiting
    assert ticket.account is second.account
    assert ticket.sent_at == pytest.approx(first.sent_at + 0.3, abs=1e-9)


async def test_quota_exceeded_is_warned_once_per_account_and_shown_in_status(caplog) -> None:
    accounts = pool(("a", 10_000, 30.0), clock=FakeClock())
    with caplog.at_level(logging.WARNING, "crawler.api.pool"):
        for _ in range(3):
            ticket = await accounts.acquire()
            accounts.rate_limited(ticket, 0.0, quota_exceeded=True)
    assert caplog.text.count("QUOTA_EXCEEDED") == 1
    assert accounts.status().accounts[0].quota_exceeded


async def test_a_ticket_is_settled_once_however_often_it_is_released() -> None:
    accounts = pool(("a", 0, 30.0), clock=FakeClock(), max_in_flight=8)
    ticket = await accounts.acquire()
    accounts.accepted(ticket)
    accounts.released(ticket)
    accounts.released(ticket)
    assert ticket.account.in_flight == 0


# ---------------------------------------------------------------- against the simulator
# Real time here: only outcomes that no machine speed changes are asserted.


async def test_known_rate_never_exceeds_the_simulators_window(sim_server) -> None:
    sim = await sim_server(rate=100, window_s=1.0)
    artists = existing_artists(sim.catalog, 50)
    calls = 300
    async with sim_client(sim, rate=100, window_s=1.0) as client:
        await asyncio.gather(*(client.artists([artists[i % 50]]) for i in range(calls)))
    stats = await sim.stats()
    assert stats["throttled"] == 0
    assert stats["by_endpoint"]["artists.batch"] == calls


async def test_unknown_rate_is_discovered_with_few_429s(sim_server) -> None:
    sim = await sim_server(rate=100, window_s=1.0)
    artists = existing_artists(sim.catalog, 50)
    calls, concurrency = 400, 8
    stats = Stats()
    async with sim_client(
        sim, rate=0, window_s=1.0, stats=stats, concurrency=concurrency
    ) as client:
        await asyncio.gather(*(client.artists([artists[i % 50]]) for i in range(calls)))
        (account,) = client.status().accounts
    assert account.learning
    assert 0.85 * 100 <= account.rate <= 1.1 * 100
    assert stats.rate_limited <= 0.05 * calls
    assert stats.requests[("artists.batch", 200)] == calls


async def test_reaching_the_limit_in_the_first_window_earns_no_ban(sim_server) -> None:
    # The simulator bans (here for 10 s, longer than max_retry_after_s) an account with more
    # than `ban_after_429s` 429s in a window. A slow start overshoots by at most what is in
    # flight, the crawl's concurrency, and must send nothing more into the full window.
    # (Latency keeps requests in flight together, as on a network.)
    concurrency = 8
    sim = await sim_server(rate=40, window_s=1.0, ban_after_429s=concurrency, ban_scale=10 / 3600)
    artists = existing_artists(sim.catalog, 50)
    async with sim_client(
        sim, rate=0, window_s=1.0, concurrency=concurrency, max_retry_after_s=5
    ) as client:
        await asyncio.gather(*(client.artists([artists[i % 50]]) for i in range(100)))
        (account,) = client.status().accounts
    assert not account.parked_for_run
    assert 0 < (await sim.stats())["throttled"] <= 2 * concurrency


async def test_a_resumed_crawl_paces_to_the_budget_it_measured_before(sim_server) -> None:
    sim = await sim_server(rate=40, window_s=1.0, latency_ms=5)
    artists = existing_artists(sim.catalog, 50)
    async with sim_client(sim, rate=0, window_s=1.0, concurrency=8) as client:
        await asyncio.gather(*(client.artists([artists[i % 50]]) for i in range(60)))
        learned = client.capabilities.to_dict()
    assert 36 <= learned["budgets"]["sim-account"] <= 44  # the simulator's 40
    resumed = Capabilities.from_dict(learned)
    async with sim_client(sim, rate=0, window_s=1.0, capabilities=resumed) as client:
        (status,) = client.status().accounts
    assert status.rate == pytest.approx(learned["budgets"]["sim-account"] * SAFETY)


async def test_a_crawl_started_into_a_full_window_earns_no_ban(sim_server) -> None:
    # A rerun right after a crawl meets a window its predecessor filled: the first requests
    # of its slow start are refused, and it must not insist (3 429s in a window are allowed).
    sim = await sim_server(
        rate=40, window_s=2.0, ban_after_429s=3, ban_scale=10 / 3600, latency_ms=20
    )
    artists = existing_artists(sim.catalog, 50)
    async with sim_client(sim, rate=1_000_000, window_s=2.0) as client:
        await asyncio.gather(*(client.artists([artists[i % 50]]) for i in range(40)))
    assert (await sim.stats())["throttled"] == 0  # the window is full for the next 2 s
    async with sim_client(sim, rate=0, window_s=2.0, max_retry_after_s=5) as client:
        await asyncio.gather(*(client.artists([artists[i % 50]]) for i in range(60)))
        (account,) = client.status().accounts
    assert not account.parked_for_run
    assert (await sim.stats())["throttled"] >= 2  # the slow start's first two were refused
