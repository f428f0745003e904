"""Rolling-window 429s, Retry-After, QUOTA_EXCEEDED, bare 429s and escalating bans."""

from __future__ import annotations

import asyncio
from typing import Any

from crawler.sim.catalog import Catalog
from crawler.sim.config import SimClient, SimConfig
from crawler.sim.ratelimit import RateLimiter

CATALOG = Catalog(50, seed=9)
PATH = f"/v1/artists/{CATALOG.first_artist_ids()[0]}"
LIMITED = {"error": {"status": 429, "message": "API rate limit exceeded"}}


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def limiter(**options: Any) -> tuple[RateLimiter, Clock]:
    clock = Clock()
    return RateLimiter(SimConfig(**options), clock), clock


def test_window_is_rolling_and_retry_after_points_at_the_oldest_request() -> None:
    rl, clock = limiter(rate=5, window_s=30)
    for _ in range(3):
        assert rl.admit("sim-account") is None
    clock.now += 10
    for _ in range(2):
        assert rl.admit("sim-account") is None
    assert rl.admit("sim-account") == 20.0  # the first three leave at t+30
    clock.now += 20
    for _ in range(3):
        assert rl.admit("sim-account") is None
    assert rl.admit("sim-account") == 10.0  # now the two from t+10 are the oldest


def test_rejections_do_not_consume_budget() -> None:
    rl, clock = limiter(rate=2, window_s=1)
    assert rl.admit("sim-account") is None and rl.admit("sim-account") is None
    for _ in range(50):
        assert rl.admit("sim-account") is not None
    clock.now += 1.0
    assert rl.admit("sim-account") is None and rl.admit("sim-account") is None


def test_unlimited_by_default() -> None:
    rl, _ = limiter()
    assert all(rl.admit("sim-account") is None for _ in range(10_000))


def test_bans_escalate_double_and_cap_at_a_day() -> None:
    rl, clock = limiter(rate=1, window_s=30, ban_after_429s=2)
    bans = []
    for _ in range(7):
        clock.now += 100_000  # well after any ban or window
        assert rl.admit("sim-account") is None
        assert rl.admit("sim-account") == 30.0
        assert rl.admit("sim-account") == 30.0
        bans.append(rl.admit("sim-account"))  # the third 429 within the window bans
        assert rl.admit("sim-account") == bans[-1]  # banned: told the time left
    assert bans == [3600, 7200, 14400, 28800, 57600, 86400, 86400]


def test_ban_scale_and_forced_ban() -> None:
    rl, clock = limiter(ban_scale=0.01, force_ban_account="sim-account", force_ban_after=3)
    assert [rl.admit("sim-account") for _ in range(3)] == [None, None, None]
    assert rl.admit("sim-account") == 36.0
    clock.now += 36.0
    assert rl.admit("sim-account") is None


async def test_http_429_when_the_window_is_full(sim_api: Any) -> None:
    api = await sim_api(CATALOG, rate=5, window_s=1.0)
    statuses = [(await api.get(PATH)).status for _ in range(5)]
    reply = await api.get(PATH)
    assert statuses == [200] * 5
    assert (reply.status, reply.json(), reply.headers["Retry-After"]) == (429, LIMITED, "1")
    await asyncio.sleep(1.05)
    assert [(await api.get(PATH)).status for _ in range(6)] == [200] * 5 + [429]
    stats = await api.server.stats()
    assert stats["throttled"] == 2 and stats["by_status"]["429"] == 2


async def test_accounts_share_budgets_across_their_clients(sim_api: Any) -> None:
    clients = (
        SimClient("a1", "s", "shared", 3),
        SimClient("a2", "s", "shared"),
        SimClient("solo", "s", "own"),
    )
    api = await sim_api(CATALOG, clients=clients, rate=2, window_s=5)
    got = []
    for client in clients:
        await api.authenticate(client)
        got.append([(await api.get(PATH)).status for _ in range(3)])
    assert got == [[200, 200, 200], [429, 429, 429], [200, 200, 429]]


async def test_quota_exceeded_reason(sim_api: Any) -> None:
    api = await sim_api(CATALOG, rate=1, window_s=5, quota_exceeded=True)
    await api.get(PATH)
    reply = await api.get(PATH)
    assert reply.status == 429 and int(reply.headers["Retry-After"]) == 5
    assert reply.json() == {"error": {**LIMITED["error"], "reason": "QUOTA_EXCEEDED"}}


async def test_bare_429_has_no_header_and_no_body(sim_api: Any) -> None:
    api = await sim_api(CATALOG, rate=1, window_s=5, bare_429_rate=1.0)
    await api.get(PATH)
    reply = await api.get(PATH)
    assert (reply.status, reply.body, "Retry-After" in reply.headers) == (429, b"", False)
    assert (await api.server.stats())["faults"] == {"bare_429": 1}


async def test_http_ban_announces_the_scaled_duration_and_lifts(sim_api: Any) -> None:
    # 3600 s × 0.0004 = 1.44 s ban, announced as 2 s (whole seconds, rounded up).
    api = await sim_api(CATALOG, rate=1, window_s=0.5, ban_after_429s=2, ban_scale=0.0004)
    assert (await api.get(PATH)).status == 200
    replies = [await api.get(PATH) for _ in range(3)]
    assert [r.headers["Retry-After"] for r in replies] == ["1", "1", "2"]
    await asyncio.sleep(0.6)  # the window has passed, the ban has not
    assert (await api.get(PATH)).status == 429
    await asyncio.sleep(1.0)
    assert (await api.get(PATH)).status == 200
