"""Per-account rolling-window rate limiting with escalating bans, like Spotify's 429s.

Each account may make `rate` requests in any `window_s`-long interval.  A rejected request
does not consume budget and is told to retry when the oldest request in the window leaves
it.  Accounts that keep sending while limited get banned for hours (scaled for tests).
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

from crawler.sim.config import SimConfig

BAN_BASE_S = 3600.0
BAN_MAX_S = 86400.0


@dataclass
class _Account:
    rate: int
    admitted: deque[float] = field(default_factory=deque)
    rejected: deque[float] = field(default_factory=deque)
    total: int = 0
    banned_until: float = 0.0
    ban_level: int = 0


class RateLimiter:
    def __init__(self, config: SimConfig, clock: Callable[[], float] = time.monotonic) -> None:
        self._config = config
        self._clock = clock
        self._accounts = {name: _Account(rate) for name, rate in config.account_rates().items()}

    def admit(self, account: str) -> float | None:
        """None if the request may proceed, else the seconds the client should wait."""
        st = self._accounts[account]
        now = self._clock()
        if st.banned_until > now:
            return self._reject(st, now, st.banned_until - now)
        if st.rate:
            horizon = now - self._config.window_s
            while st.admitted and st.admitted[0] <= horizon:
                st.admitted.popleft()
            if len(st.admitted) >= st.rate:
                return self._reject(st, now, st.admitted[0] - horizon)
            st.admitted.append(now)
        st.total += 1
        cfg = self._config
        if account == cfg.force_ban_account and st.total == cfg.force_ban_after:
            self._ban(st, now)
        return None

    def _reject(self, st: _Account, now: float, wait: float) -> float:
        """Counts the 429; too many of them inside one window (re-)bans for twice as long."""
        limit = self._config.ban_after_429s
        if limit:
            st.rejected.append(now)
            while st.rejected[0] <= now - self._config.window_s:
                st.rejected.popleft()
            if len(st.rejected) > limit:
                st.rejected.clear()
                self._ban(st, now)
                wait = st.banned_until - now
        return wait

    def _ban(self, st: _Account, now: float) -> None:
        duration = min(BAN_BASE_S * 2**st.ban_level, BAN_MAX_S) * self._config.ban_scale
        st.ban_level += 1
        st.banned_until = now + duration
