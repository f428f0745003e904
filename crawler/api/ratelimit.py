"""Per-account request budgets: pacing, rolling-window caps, learned limits and parking.

Spotify limits each account (all client IDs of one developer account together) to an
unpublished number of requests in a rolling 30 s window. Every account here gets:

* a leaky bucket (aiolimiter) for pacing. ``AsyncLimiter(C, P)`` admits a burst of C and then
  C/P per second, so over any window W it admits up to C + (C/P)·W requests; configured as
  ``AsyncLimiter(rate, window)`` it would admit twice the rate and earn 429s. So the burst is
  small (C = 2 % of the budget B) and the drain is (B − C)/W', which keeps C + drain·W' ≤ B
  over a window W' slightly longer than the server's (latency jitter moves a request's
  arrival, so the server may see two requests closer together than we sent them);
* a rolling-window cap: a log of send times that never lets more than B requests into any W',
  which is what keeps a ramp-up from leaving a burst in the window after the budget is cut;
* a ``Budget``: the configured rate, or for rate 0 a learned one (see ``Budget``);
* parking: a 429 stops only its account until Retry-After (or a backoff) has passed.

``AccountPool`` hands each request to the account with the most headroom and raises
``AllAccountsParked`` once every account is parked for longer than the run may wait.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime

from aiolimiter import AsyncLimiter

from crawler.api.retry import Backoff
from crawler.core.errors import AllAccountsParked

log = logging.getLogger("crawler.api.ratelimit")

BURST_SHARE = 0.02
# W' = W × (1 + WINDOW_SLACK) + WINDOW_PAD_S: room for latency jitter between send and arrival.
WINDOW_SLACK = 0.01
WINDOW_PAD_S = 0.05
# Unknown limits start at INITIAL_BUDGET per window and grow by RAMP_STEP per limited success.
INITIAL_BUDGET = 30.0
RAMP_STEP = 6.0
# After a 429, run at this share of the requests the server had just accepted.
SAFETY = 0.97
MIN_BUDGET = 2.0


class Budget:
    """Requests per window an account may send: the configured rate, or a learned one.

    Unknown rate (0): start at INITIAL_BUDGET and grow by RAMP_STEP for every success of a
    request that had to wait for the limiter (so the budget only grows while it is what holds
    the crawl back): the rate doubles about every W·ln 2/RAMP_STEP seconds, so the server's
    window fills within the first window, where its unspent budget is free. The first 429
    ends the ramp with a direct measurement: the requests the account had accepted within the
    window up to the refused one are the server's budget. From then on the account runs at
    SAFETY of that estimate and probes upwards: one request per window's worth of successes,
    doubling the step after each such window, so an estimate that came out low (the window
    held someone else's requests) is outgrown in a few windows; each 429 measures again.

    A measurement below half the initial budget (or half the current one, if smaller) is too
    small to trust, as it may be the tail of someone else's use of the account: it halves the
    budget instead (and a ramp goes on), which then regrows quickly towards SAFETY of the last
    estimate. For the same reason Account measures once more (``remeasure``) after its first
    window: until then the server's window may still hold an earlier run's requests.

    Known rate: start there and never exceed it; 429s are handled as above.
    """

    def __init__(self, rate: int) -> None:
        self.ceiling: float = rate or math.inf
        self.estimate: float = rate or math.inf  # believed server budget; inf while ramping
        self.value: float = rate or INITIAL_BUDGET
        self.learning = rate == 0
        self._probe_step = 1.0  # requests added per window's worth of successes
        self._probed = 0  # successes since the step last doubled

    @property
    def ramping(self) -> bool:
        return self.estimate == math.inf

    def grow(self) -> None:
        if self.value < self.estimate * SAFETY:  # ramping, or regrowing after a halving
            self.value += RAMP_STEP
        else:
            self.value += self._probe_step / self.value
            self._probed += 1
            if self._probed >= self.value:
                self._probe_step *= 2
                self._probed = 0
        self.value = min(self.ceiling, self.value)

    def remeasure(self) -> None:
        """Ramp up again from here until the next 429 measures the limit afresh."""
        self.estimate = math.inf

    def cut(self, accepted: int) -> None:
        """A 429 after ``accepted`` accepted requests in the window up to it."""
        if accepted >= min(self.value, INITIAL_BUDGET) / 2:
            self.estimate = float(accepted)
            new = accepted * SAFETY
        else:
            new = self.value / 2
        self.value = max(MIN_BUDGET, min(self.value, new))
        self._probe_step, self._probed = 1.0, 0


class _Bucket(AsyncLimiter):
    """An AsyncLimiter whose rate can change in place, so queued waiters follow the new rate.

    aiolimiter has no public way to change the drain rate; this relies on its (1.x) internals
    ``_rate_per_sec`` and ``_wake_next``, and tests/test_ratelimit.py checks the behaviour.
    """

    __slots__ = ()

    def __init__(self, budget: float, window_s: float) -> None:
        burst, drain = _pace(budget, window_s)
        super().__init__(burst, burst / drain)

    def retune(self, budget: float, window_s: float) -> None:
        self.has_capacity()  # drains the level at the old rate up to now
        burst, drain = _pace(budget, window_s)
        self.max_rate, self.time_period, self._rate_per_sec = burst, burst / drain, drain
        self._wake_next()


def _pace(budget: float, window_s: float) -> tuple[float, float]:
    """(burst, drain per second) with burst + drain × window_s == budget."""
    burst = max(1.0, budget * BURST_SHARE)
    return burst, (budget - burst) / window_s


@dataclass(frozen=True, slots=True)
class Ticket:
    """Permission to send one request now on ``account``."""

    account: Account
    sent_at: float  # time.monotonic()
    limited: bool  # it had to wait for the limiter


class Account:
    """One quota: the credentials that name the same account share it."""

    def __init__(self, name: str, rate: int, window_s: float) -> None:
        self.name = name
        self.window_s = window_s
        self.budget = Budget(rate)
        self._span = window_s * (1 + WINDOW_SLACK) + WINDOW_PAD_S
        self._tuned_for = self.budget.value
        self._bucket = _Bucket(self._tuned_for, self._span)
        self._sent: deque[float] = deque()  # send times within the last span
        self._accepted: deque[float] = deque()  # send times of requests not refused by a 429
        self.queued = 0
        self._first_sent: float | None = None
        self._remeasure_at: float | None = None  # see Budget
        self.parked_until = 0.0  # time.monotonic()
        self.parked_for_run = False
        self.park_started = -math.inf
        self.last_cut = -math.inf
        self.bare_429s = 0  # consecutive 429s without Retry-After, for the backoff
        self.quota_exceeded = False
        self.warned_quota = False

    def parked(self, now: float) -> bool:
        return self.parked_for_run or now < self.parked_until

    def _recent(self, times: deque[float], now: float) -> int:
        """Drops times older than the span; returns how many are left."""
        horizon = now - self._span
        while times and times[0] <= horizon:
            times.popleft()
        return len(times)

    def load(self, now: float) -> float:
        """Share of the budget already committed, counting requests waiting for this account."""
        return (self._recent(self._sent, now) + self.queued + 1) / self.budget.value

    async def admit(self) -> Ticket | None:
        """Wait for pace and window room; None if the account got parked meanwhile.

        After waiting for window room a request queues for the bucket again: otherwise all
        the requests that waited for room would go out together the moment it appears.
        """
        limited = self.queued > 0 or not self._bucket.has_capacity()
        self.queued += 1
        try:
            while True:
                await self._bucket.acquire()
                now = time.monotonic()
                if self.parked(now):
                    return None
                if self._recent(self._sent, now) < self.budget.value:
                    break
                limited = True
                await asyncio.sleep(self._sent[0] + self._span - now)
        finally:
            self.queued -= 1
        self._sent.append(now)
        if self._first_sent is None:
            self._first_sent = now
        return Ticket(self, now, limited)

    def accepted(self, ticket: Ticket) -> None:
        self._recent(self._accepted, time.monotonic())
        self._accepted.append(ticket.sent_at)
        self.bare_429s = 0
        self.quota_exceeded = False
        if self._remeasure_at is not None and ticket.sent_at >= self._remeasure_at:
            self._remeasure_at = None
            self.budget.remeasure()
        if ticket.limited:
            self.budget.grow()
            self._retune()

    def accepted_since(self, sent_at: float) -> int:
        """Accepted requests sent since one window before ``sent_at``.

        Requests sent together reach the server in any order, so those sent just after the
        refused one count too: the server had accepted them into the same window.
        """
        horizon = sent_at - self.window_s
        return sum(1 for t in self._accepted if t > horizon)

    def _retune(self) -> None:
        if abs(self.budget.value - self._tuned_for) >= 1:
            self._tuned_for = self.budget.value
            self._bucket.retune(self._tuned_for, self._span)

    def cut(self, ticket: Ticket) -> None:
        old, was_ramping = self.budget.value, self.budget.ramping
        accepted = self.accepted_since(ticket.sent_at)
        self.budget.cut(accepted)
        self.last_cut = time.monotonic()
        if was_ramping and not self.budget.ramping and self._first_sent is not None:
            first_window_ends = self._first_sent + self.window_s
            if ticket.sent_at < first_window_ends:
                self._remeasure_at = first_window_ends
        self._tuned_for = self.budget.value
        self._bucket.retune(self._tuned_for, self._span)
        # The end of the ramp is worth telling the user: it is the limit this run found.
        log.log(
            logging.INFO if was_ramping and not self.budget.ramping else logging.DEBUG,
            "account %s: 429 after %d accepted requests in %g s; pacing %.0f → %.0f per window",
            self.name,
            accepted,
            self.window_s,
            old,
            self.budget.value,
        )


@dataclass(frozen=True, slots=True)
class AccountStatus:
    account: str
    rate: float  # the budget it paces to, in requests per window
    window_s: float
    learning: bool  # the limit is being discovered (configured rate 0)
    parked_until: float | None  # epoch seconds
    parked_for_run: bool
    quota_exceeded: bool  # its last answer was a 429 QUOTA_EXCEEDED


@dataclass(frozen=True, slots=True)
class PoolStatus:
    accounts: tuple[AccountStatus, ...]

    @property
    def all_parked_until(self) -> float | None:
        """Epoch seconds when the first account resumes, if every account is parked now."""
        ends = [a.parked_until for a in self.accounts]
        if not ends or any(end is None for end in ends):
            return None
        return min(end for end in ends if end is not None)


class AccountPool:
    """Chooses the account for each request and parks accounts that got a 429."""

    def __init__(
        self,
        accounts: Mapping[str, tuple[int, float]],
        *,
        max_retry_after_s: float,
        backoff: Backoff,
    ) -> None:
        """``accounts`` maps each account name to its (rate, window_s)."""
        self.accounts = [Account(name, rate, w) for name, (rate, w) in accounts.items()]
        self._max_retry_after_s = max_retry_after_s
        self._backoff = backoff
        self._parks_changed = asyncio.Event()

    async def acquire(self) -> Ticket:
        """A ticket on the least loaded usable account, waiting while all are briefly parked."""
        while True:
            now = time.monotonic()
            usable = [a for a in self.accounts if not a.parked(now)]
            if not usable:
                await self._wait_for_unpark(now)
                continue
            ticket = await min(usable, key=lambda a: a.load(now)).admit()
            if ticket is not None:
                return ticket

    async def _wait_for_unpark(self, now: float) -> None:
        waiting = [a.parked_until for a in self.accounts if not a.parked_for_run]
        if not waiting:
            resume_at = _epoch(min(a.parked_until for a in self.accounts), now)
            when = datetime.fromtimestamp(resume_at, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
            raise AllAccountsParked(
                resume_at,
                f"all {len(self.accounts)} accounts are rate-limited until {when}; "
                "rerun then to resume",
            )
        changed = self._parks_changed
        try:
            async with asyncio.timeout(min(waiting) - now):
                await changed.wait()
        except TimeoutError:
            pass

    def accepted(self, ticket: Ticket) -> None:
        ticket.account.accepted(ticket)

    def rate_limited(
        self, ticket: Ticket, retry_after: float | None, *, quota_exceeded: bool
    ) -> None:
        """Park the ticket's account after a 429 and learn from it.

        429s for requests sent before the current park began are echoes of the same event
        (they were in flight together): they neither lengthen the backoff nor cut again.
        """
        account, now = ticket.account, time.monotonic()
        if ticket.sent_at >= account.last_cut:
            account.cut(ticket)
        if quota_exceeded:
            account.quota_exceeded = True
            if not account.warned_quota:
                account.warned_quota = True
                log.warning(
                    "account %s exceeded its quota (429 QUOTA_EXCEEDED): all its apps share "
                    "one budget, so more client IDs on this account will not help",
                    account.name,
                )
        fresh = ticket.sent_at >= account.park_started
        if retry_after is not None:
            delay = retry_after
        elif fresh:
            delay = self._backoff.ceiling(account.bare_429s)
            account.bare_429s += 1
        else:
            return
        if now + delay <= account.parked_until:
            return
        was_parked = account.parked(now)
        account.parked_until = now + delay
        if not was_parked:
            account.park_started = now
        if delay > self._max_retry_after_s and not account.parked_for_run:
            account.parked_for_run = True
            log.warning(
                "account %s is rate-limited for %.0f s, longer than api.max_retry_after_s: "
                "not using it again in this run",
                account.name,
                delay,
            )
        elif not was_parked:
            log.info("account %s rate-limited: pausing it for %.1f s", account.name, delay)
        self._parks_changed.set()
        self._parks_changed = asyncio.Event()

    def status(self) -> PoolStatus:
        now = time.monotonic()
        return PoolStatus(
            tuple(
                AccountStatus(
                    account=a.name,
                    rate=a.budget.value,
                    window_s=a.window_s,
                    learning=a.budget.learning,
                    parked_until=_epoch(a.parked_until, now) if a.parked(now) else None,
                    parked_for_run=a.parked_for_run,
                    quota_exceeded=a.quota_exceeded,
                )
                for a in self.accounts
            )
        )


def _epoch(monotonic_at: float, now: float) -> float:
    return time.time() + (monotonic_at - now)
