"""Every knob of the simulator in one frozen value, so a run is fully described by its config."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Mode = Literal["extended", "development"]
DEFAULT_ARTISTS = 1000  # catalog size when none is given


@dataclass(frozen=True)
class SimClient:
    """An app's credentials; apps of one `account` share that account's request budget.

    `rate` (requests per window, 0 = unlimited) overrides `SimConfig.rate` for the account;
    None means "use the config's default".
    """

    client_id: str
    client_secret: str
    account: str
    rate: int | None = None


DEFAULT_CLIENT = SimClient("sim-client", "sim-secret", "sim-account")


@dataclass(frozen=True)
class SimConfig:
    """Simulator behaviour.  Rates are shares in [0, 1]; durations in seconds unless `_ms`."""

    mode: Mode = "extended"
    clients: tuple[SimClient, ...] = (DEFAULT_CLIENT,)
    # Rolling-window rate limit, per account.
    rate: int = 0
    window_s: float = 30.0
    quota_exceeded: bool = False
    bare_429_rate: float = 0.0
    # Escalating bans: more than `ban_after_429s` 429s inside one window bans the account for
    # 3600 s × 2^level (≤ 86400 s), scaled by `ban_scale`; 0 disables bans.
    ban_after_429s: int = 0
    ban_scale: float = 1.0
    # Chaos: ban this account once it has made `force_ban_after` accepted requests.
    force_ban_account: str | None = None
    force_ban_after: int = 0
    token_ttl_s: float = 3600.0
    # Fault injection, reproducible from `fault_seed`.
    latency_ms: float = 0.0
    error_rate: float = 0.0
    drop_rate: float = 0.0
    truncate_rate: float = 0.0
    fault_seed: int = 0

    def __post_init__(self) -> None:
        if self.mode not in ("extended", "development"):
            raise ValueError(f"unknown mode {self.mode!r}")
        if not self.clients:
            raise ValueError("at least one client is needed")
        if len({c.client_id for c in self.clients}) != len(self.clients):
            raise ValueError("client IDs must be unique")
        for name in ("error_rate", "drop_rate", "truncate_rate", "bare_429_rate"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"{name} must be in [0, 1]")
        if self.error_rate + self.drop_rate + self.truncate_rate > 1.0:
            raise ValueError("error_rate + drop_rate + truncate_rate must not exceed 1")
        if self.window_s <= 0 or self.token_ttl_s <= 0 or self.ban_scale <= 0:
            raise ValueError("window_s, token_ttl_s and ban_scale must be positive")
        self.account_rates()

    @property
    def extended(self) -> bool:
        return self.mode == "extended"

    def account_rates(self) -> dict[str, int]:
        """Budget per account; conflicting explicit rates for one account are a config error."""
        explicit: dict[str, int] = {}
        for c in self.clients:
            if c.rate is None:
                continue
            if explicit.setdefault(c.account, c.rate) != c.rate:
                raise ValueError(f"clients of account {c.account!r} disagree on its rate")
        return {c.account: explicit.get(c.account, self.rate) for c in self.clients}
