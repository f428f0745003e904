"""The arithmetic of one account's rate limit: no asyncio and no clock, every time is passed in.

Spotify limits each account to an unpublished number of requests in a rolling 30 s window. Two
pieces decide when a request may go:

* ``Pacer``, a leaky bucket. A bucket of burst C draining D per second admits up to C + D·W
  requests over any window W, so a bucket sized (rate, window) would admit twice the rate and
  earn 429s. The burst is small (C = 2 % of the budget B) and the drain is (B − C)/W', which
  keeps C + D·W' = B over a window W' slightly longer than the server's (``span``: latency
  jitter moves a request's arrival, so the server may see two requests closer together than
  they were sent). The account's rolling log of send times caps any W' at B on top of it.
* ``Budget``, the requests per window the account may send, and how many may be in flight:
  the configured rate, or for rate 0 a discovered one (see ``Budget``).
"""

from __future__ import annotations

import math

BURST_SHARE = 0.02
# W' = W × (1 + WINDOW_SLACK) + WINDOW_PAD_S: room for latency jitter between send and arrival.
WINDOW_SLACK = 0.01
WINDOW_PAD_S = 0.05
# An unknown limit is approached by a slow start: this many requests in flight at first, one
# more per success, i.e. twice as many every round trip while requests succeed.
INITIAL_IN_FLIGHT = 2
# A 429 that measured fewer than half of this is no measurement (see Budget.cut).
INITIAL_BUDGET = 30.0
# A paced ramp (after such a 429, or to measure again) grows by this per limited success...
RAMP_STEP = 6.0
# ... up to twice the rate at which requests were accepted over this share of the window.
RAMP_HORIZON = 1 / 30
# After a 429, run at this share of the requests the server had just accepted.
SAFETY = 0.97
MIN_BUDGET = 2.0
# Float slack when a waiter wakes exactly when the bucket said it would have room.
_EPSILON = 1e-9


def span(window_s: float) -> float:
    """The window the account enforces: the server's plus room for latency jitter."""
    return window_s * (1 + WINDOW_SLACK) + WINDOW_PAD_S


def pace(budget: float, span_s: float) -> tuple[float, float]:
    """(burst, drain per second) with burst + drain × span_s == budget."""
    burst = max(1.0, budget * BURST_SHARE)
    return burst, (budget - burst) / span_s


class Pacer:
    """A leaky bucket whose rate can change while requests wait for it."""

    def __init__(self, budget: float, span_s: float) -> None:
        self.burst, self.drain = pace(budget, span_s)
        self.level = 0.0
        self._at: float | None = None

    def _leak(self, now: float) -> None:
        if self._at is not None:
            self.level = max(0.0, self.level - (now - self._at) * self.drain)
        self._at = now

    def retune(self, budget: float, span_s: float, now: float) -> None:
        self._leak(now)  # what drained so far drained at the old rate
        self.burst, self.drain = pace(budget, span_s)

    def delay(self, now: float) -> float:
        """Seconds until one more request fits."""
        self._leak(now)
        excess = self.level + 1 - self.burst
        return excess / self.drain if excess > _EPSILON else 0.0

    def take(self, now: float) -> None:
        self._leak(now)
        self.level += 1


class Budget:
    """Requests per window an account may send, and how many may be in flight at once.

    Known rate: ``value`` starts there and never exceeds it; a 429 cuts it as below.

    Unknown rate (0) starts with a slow start: no pace, at most ``in_flight`` requests in
    flight, INITIAL_IN_FLIGHT at first and one more for every success of a request sent while
    at least half of that allowance was in use (so the allowance doubles every round trip
    while it is what holds the crawl back, up to ``max_in_flight``, the crawl's concurrency).
    A latency-bound crawl with no limit to find is thus at full concurrency within a few
    round trips. The first 429 ends the slow start with a direct measurement: the requests
    the account had accepted within the window up to the refused one are the server's budget
    (so the overshoot is at most the requests that were in flight). From then on the account
    is paced at SAFETY of that estimate and probes upwards: one request per window's worth of
    successes, doubling the step after each such window, so an estimate that came out low
    (the window held someone else's requests) is outgrown in a few windows; each 429
    measures again.

    A measurement below half the initial budget (or half the current one, if smaller) is too
    small to trust, as it may be the tail of someone else's use of the account: it halves the
    budget instead (or, ending a slow start, paces at half the initial budget) and a paced
    ramp of RAMP_STEP per limited success goes on until a 429 measures. A paced ramp never
    runs ahead of twice the rate its requests were accepted at lately (over RAMP_HORIZON of
    the window: 1 s of Spotify's 30): it doubles about that often, and meets the limit at no
    more than twice the pace the server grants, so the requests that pass the limit before
    its first 429 are few.

    For the same reason as above, Account measures once more (``remeasure``) after its first
    window: until then the server's window may still hold an earlier run's requests.

    ``measured``: what an earlier run of the crawl measured (rate 0 only). The account starts
    as if it had just measured it, paced, with no blind slow start into the limit; Account
    measures again after the first window, as the limit may have changed since.

    ``pace_past``: the crawl could send more than ``max_in_flight`` (processes sharing an
    account, whose allowance is one crawl's concurrency among them). A slow start that has
    its whole allowance in use with no 429 then goes on as a paced ramp from the rate it was
    accepted at, instead of staying at the allowance while no limit is found: more requests
    go out only as fast as the paced ramp grows, which meets a limit at no more than twice
    the pace the server granted, where a larger blind allowance could overshoot it by all of
    its requests.
    """

    def __init__(
        self,
        rate: int,
        max_in_flight: float = math.inf,
        measured: float | None = None,
        *,
        pace_past: bool = False,
    ) -> None:
        self.ceiling: float = rate or math.inf
        self.estimate: float = rate or math.inf  # believed server budget; inf until measured
        self.value: float = rate or math.inf  # paced requests per window; inf: not paced
        self.in_flight: float = math.inf if rate else float(INITIAL_IN_FLIGHT)
        self.max_in_flight = max_in_flight
        self.pace_past = pace_past
        self.learning = rate == 0
        if self.learning and measured:
            self.estimate, self.value, self.in_flight = measured, measured * SAFETY, math.inf
        self._probe_step = 1.0  # requests added per window's worth of successes
        self._probed = 0  # successes since the step last doubled

    @property
    def ramping(self) -> bool:
        """No measurement stands: the budget grows fast until the next 429."""
        return self.estimate == math.inf

    @property
    def slow_start(self) -> bool:
        return self.value == math.inf and self.learning

    def grow(self, limited: bool, in_flight: int, accepted: float) -> None:
        """A success of a request that waited (``limited``) or went with ``in_flight`` out;
        ``accepted``: the recent rate of accepted requests, in requests per window."""
        if self.slow_start:
            if 2 * in_flight < self.in_flight:
                return  # the allowance is not what holds the crawl back
            if self.pace_past and self.in_flight >= self.max_in_flight:
                self.value = max(MIN_BUDGET, accepted)  # a paced ramp from here
                self.in_flight = math.inf  # the pace bounds it from now on
            else:
                self.in_flight = min(self.max_in_flight, self.in_flight + 1)
            return
        if not limited:
            return  # the budget is not what holds the crawl back: no evidence to grow on
        if self.value < self.estimate * SAFETY:  # ramping, or regrowing after a halving
            self.value = max(self.value, min(self.value + RAMP_STEP, 2.0 * accepted))
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
            new = self.value / 2 if self.value < math.inf else INITIAL_BUDGET / 2
        self.value = max(MIN_BUDGET, min(self.value, new))
        self.in_flight = math.inf  # the pace bounds it from now on
        self._probe_step, self._probed = 1.0, 0

    def accepted_late(self) -> None:
        """A request of the measured window was accepted after the 429 that measured it.

        Requests sent together reach the server in any order, and their answers return in
        any order: the measurement counts every acceptance of that window, however late.
        """
        if not self.ramping:
            self.estimate += 1
            self.value = min(self.ceiling, max(self.value, self.estimate * SAFETY))
