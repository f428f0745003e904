"""Reproducible fault injection: latency, 5xx, dropped connections and truncated bodies."""

from __future__ import annotations

import random
from enum import Enum

from crawler.sim.config import SimConfig


class Fault(Enum):
    ERROR_500 = "error_500"
    ERROR_502 = "error_502"
    ERROR_503 = "error_503"
    DROP = "drop"
    # Headers promise more bytes than are sent before the connection closes.
    TRUNCATE_SHORT = "truncate_short"
    # A complete HTTP response whose JSON body is cut in the middle.
    TRUNCATE_JSON = "truncate_json"


_ERRORS = (Fault.ERROR_500, Fault.ERROR_502, Fault.ERROR_503)
_TRUNCATIONS = (Fault.TRUNCATE_SHORT, Fault.TRUNCATE_JSON)


class FaultInjector:
    """All draws come from one RNG seeded by the config, so a serial run replays exactly."""

    def __init__(self, config: SimConfig) -> None:
        self._config = config
        self._rng = random.Random(config.fault_seed)
        self.active = bool(
            config.latency_ms or config.error_rate or config.drop_rate or config.truncate_rate
        )

    def latency_s(self) -> float:
        """Exponentially distributed delay with the configured mean (0 when off)."""
        mean = self._config.latency_ms
        return self._rng.expovariate(1000.0 / mean) if mean > 0 else 0.0

    def pick(self) -> Fault | None:
        cfg = self._config
        r = self._rng.random()
        if r < cfg.error_rate:
            return self._rng.choice(_ERRORS)
        r -= cfg.error_rate
        if r < cfg.drop_rate:
            return Fault.DROP
        r -= cfg.drop_rate
        if r < cfg.truncate_rate:
            return self._rng.choice(_TRUNCATIONS)
        return None

    def chance(self, share: float) -> bool:
        return share > 0 and self._rng.random() < share
