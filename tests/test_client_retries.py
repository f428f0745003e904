"""429s, parking, transient failures, exhausted retries and an API that cannot be reached, end
to end through the client; every wait on a FakeClock, so the waits are asserted exactly."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import pytest

from crawler.api.client import SpotifyClient
from crawler.api.retry import Backoff
from crawler.core.config import ApiConfig
from crawler.core.errors import AllAccountsParked, RequestFailed, Unreachable
from crawler.core.stats import Stats
from crawler.sim.config import SimClient
from tests.fakes import (
    CREDENTIAL,
    DROP,
    FAST,
    SLOW,
    FakeClock,
    Scripted,
    existing_artists,
    id_of,
    is_playlist,
    json_reply,
    refusing_port,
    running_fake_api,
    sim_client,
)

TWO_ACCOUNTS = (SimClient("client-a-id", "sa", "acct-a"), SimClient("client-b-id", "sb", "acct-b"))


async def fetch_playlist(script: list[Scripted], **api: Any) -> tuple:
    """One client.playlist("p") against a fake scripted with ``script``; max_retries 2.

    Returns the result (or RequestFailed), the waits made, the stats and the requests seen.
    """
    clock = FakeClock(auto=True)
    async with running_fake_api() as fake:
        fake.script.extend(script)
        stats = Stats()
        async with SpotifyClient(
            fake.api(**{"max_retries": 2, **api}),
            [CREDENTIAL],
            concurrency=4,
            stats=stats,
            backoff=FAST,
            clock=clock,
        ) as client:
            try:
                result: object = await client.playlist("p")
            except RequestFailed as exc:
                result = exc
        return result, clock.waits, stats, list(fake.api_requests)


# ---------------------------------------------------------------- 429


async def test_retry_after_is_honoured_and_not_counted_as_a_failure() -> None:
    script = [json_reply(429, {"error": {"status": 429}}, {"Retry-After": "1"})] * 3
    result, waits, stats, requests = await fetch_playlist(script, max_retries=1)
    assert is_playlist(result)
    assert waits == [1.0, 1.0, 1.0]  # three 1 s parks, none cut short; max_retries (1) not used up
    assert stats.requests[("playlist", 429)] == 3 and stats.rate_limited == 3
    assert stats.retries == 3 and len(requests) == 4
    account = CREDENTIAL.account
    assert stats.rate_limited_by == {(account, "window"): 3}
    assert stats.sent == {account: 4}


async def test_429_without_header_or_body_backs_off_exponentially() -> None:
    clock = FakeClock(auto=True)
    async with running_fake_api() as fake:
        fake.script.extend([(429, {}, None)] * 3)
        async with SpotifyClient(
            fake.api(),
            [CREDENTIAL],
            concurrency=1,
            stats=Stats(),
            backoff=Backoff(0.1, 5.0),
            clock=clock,
        ) as client:
            assert is_playlist(await client.playlist("p"))
    assert clock.waits == pytest.approx([0.1, 0.2, 0.4], abs=1e-9)


async def test_simulator_429s_with_and_without_retry_after_end_in_success(sim_server) -> None:
    for bare_share in (0.0, 1.0):
        sim = await sim_server(rate=20, window_s=1.0, bare_429_rate=bare_share)
        artists = existing_artists(sim.catalog, 40)
        stats = Stats()
        # The client is told a far higher rate than the server grants: it must learn.
        async with sim_client(sim, rate=1000, window_s=1.0, stats=stats) as client:
            got = await asyncio.gather(*(client.artists([a]) for a in artists))
        assert [id_of(g[0]) for g in got] == artists
        counts = await sim.stats()
        assert 0 < counts["throttled"] == stats.rate_limited <= 25
        reason = "bare" if bare_share else "window"
        assert stats.rate_limited_by == {("sim-account", reason): stats.rate_limited}
        assert counts["faults"].get("bare_429", 0) == (counts["throttled"] if bare_share else 0)


async def test_a_parked_account_does_not_hold_up_the_others(sim_server) -> None:
    # acct-a gets banned for 30 s after 5 requests; acct-b must carry the rest at once.
    sim = await sim_server(
        clients=TWO_ACCOUNTS, force_ban_account="acct-a", force_ban_after=5, ban_scale=30 / 3600
    )
    artists = existing_artists(sim.catalog, 60)
    clock = FakeClock(auto=True)
    async with sim_client(sim, max_retry_after_s=900, clock=clock) as client:
        got = await asyncio.gather(*(client.artists([a]) for a in artists))
        status = {s.account: s for s in client.status().accounts}
    assert [id_of(g[0]) for g in got] == artists
    assert clock.waits == []  # nothing waited for acct-a's 30 s
    assert status["acct-a"].parked_until == pytest.approx(clock.time() + 30, abs=1)
    assert status["acct-b"].parked_until is None
    assert status["acct-a"].parked_for_run is False


async def test_every_account_parked_beyond_the_limit_pauses_the_crawl(sim_server) -> None:
    sim = await sim_server(clients=TWO_ACCOUNTS, rate=3, window_s=3600)
    (artist,) = existing_artists(sim.catalog, 1)
    clock = FakeClock(auto=True)
    async with sim_client(sim, rate=0, window_s=1.0, max_retry_after_s=60, clock=clock) as client:
        results = await asyncio.gather(
            *(client.artists([artist]) for _ in range(20)), return_exceptions=True
        )
        status = client.status()
    paused = [r for r in results if isinstance(r, AllAccountsParked)]
    assert len(paused) == 20 - 6  # each account served its 3, the rest wait for a rerun
    assert all(p.resume_at == pytest.approx(clock.time() + 3600, abs=2) for p in paused)
    assert str(paused[0]).startswith("all 2 accounts are rate-limited until ")
    assert all(a.parked_for_run for a in status.accounts)


async def test_quota_exceeded_is_reported_once_per_account(sim_server, caplog) -> None:
    sim = await sim_server(
        clients=(SimClient("client-one-id", "s1", "dev"), SimClient("client-two-id", "s2", "dev")),
        rate=5,
        window_s=0.5,
        quota_exceeded=True,
    )
    (artist,) = existing_artists(sim.catalog, 1)
    with caplog.at_level(logging.WARNING, "crawler"):
        async with sim_client(sim, rate=100, window_s=0.5) as client:
            await asyncio.gather(*(client.artists([artist]) for _ in range(12)))
    assert (await sim.stats())["throttled"] > 0
    quota = [r for r in caplog.records if "QUOTA_EXCEEDED" in r.getMessage()]
    assert len(quota) == 1 and "dev" in quota[0].getMessage()


# ---------------------------------------------------------------- transient failures


async def test_faults_are_retried_until_success(sim_server) -> None:
    sim = await sim_server(error_rate=0.1, drop_rate=0.1, truncate_rate=0.1, fault_seed=7)
    artists = existing_artists(sim.catalog, 40)
    stats = Stats()
    async with sim_client(sim, stats=stats, max_retries=10, clock=FakeClock(auto=True)) as client:
        got = await asyncio.gather(*(client.artists(artists[i : i + 2]) for i in range(0, 40, 2)))
    assert [id_of(a) for pair in got for a in pair] == artists
    faults = (await sim.stats())["faults"]
    for kind in ("error_", "drop", "truncate_"):
        assert sum(n for name, n in faults.items() if name.startswith(kind)) > 0, kind
    assert stats.retries >= sum(faults.get(k, 0) for k in faults if k != "latency") - 5


@pytest.mark.parametrize(
    ("reply", "reason"),
    [
        (
            json_reply(503, {"error": {"status": 503, "message": "Service unavailable"}}),
            "HTTP 503: Service unavailable",
        ),
        ((DROP, {}, None), "connection failed (ServerDisconnectedError)"),
        (json_reply(200, b'{"id": "p", "name'), "truncated or invalid JSON body"),
        (json_reply(200, ["not", "an", "object"]), "response body of an unexpected shape ("),
        ((SLOW, {}, None), "timed out"),
    ],
)
async def test_exhausted_retries_raise_request_failed(reply: tuple, reason: str) -> None:
    # Ample script: aiohttp itself resends once when a reused connection was dropped.
    result, _, stats, requests = await fetch_playlist([reply] * 6, read_timeout_s=0.2)
    assert isinstance(result, RequestFailed)
    assert result.endpoint == "playlist" and result.reason.startswith(reason)
    assert stats.retries == 2 and 3 <= len(requests) <= 6


async def test_a_mix_of_failures_within_the_retry_budget_succeeds() -> None:
    script = [json_reply(502), json_reply(200, b"{")]
    result, _, stats, requests = await fetch_playlist(script)
    assert is_playlist(result)
    assert stats.retries == 2 and len(requests) == 3
    assert stats.faults == {"5xx": 1, "bad_body": 1}  # what the metrics count, by kind


async def test_wrong_length_batch_is_retried() -> None:
    async with running_fake_api() as fake:
        fake.script.extend(
            [json_reply(200, {"artists": [None]}), json_reply(200, {"artists": [None, None]})]
        )
        async with SpotifyClient(
            fake.api(), [CREDENTIAL], concurrency=1, stats=Stats(), backoff=FAST
        ) as client:
            assert await client.artists(["a" * 22, "b" * 22]) == [None, None]  # nulls
    assert len(fake.api_requests) == 2


# ---------------------------------------------------------------- an API that cannot be reached


async def unreachable_api(base_url: str, **api: Any) -> tuple[Unreachable, Stats, FakeClock]:
    """What two requests meet when the token endpoint works and the API origin does not."""
    clock, stats = FakeClock(auto=True), Stats()
    async with running_fake_api() as fake:
        config = ApiConfig(
            base_url=base_url, token_url=f"{fake.url}/api/token", **{"max_retries": 2, **api}
        )
        async with SpotifyClient(
            config, [CREDENTIAL], concurrency=4, stats=stats, backoff=FAST, clock=clock
        ) as client:
            with pytest.raises(Unreachable) as first:
                await client.playlist("p")
            retries = stats.retries
            with pytest.raises(Unreachable) as second:
                await client.albums(["a" * 22])
    assert second.value is first.value and stats.retries == retries  # no second retry cycle
    assert fake.token_requests == 1
    return first.value, stats, clock


async def test_a_refused_api_origin_ends_the_crawl_after_one_retry_cycle(caplog) -> None:
    with refusing_port() as port, caplog.at_level(logging.WARNING, "crawler"):
        error, stats, clock = await unreachable_api(f"http://127.0.0.1:{port}")
    assert str(error) == f"cannot reach the API at 127.0.0.1:{port}: connection refused"
    assert stats.retries == 2 and len(clock.waits) == 2
    assert caplog.messages == [f"API 127.0.0.1:{port}: connection refused; retrying"]


async def test_an_api_host_that_does_not_resolve_fails_after_one_retry() -> None:
    error, stats, _ = await unreachable_api("https://nonexistent.invalid", max_retries=6)
    assert str(error) == (
        "cannot reach the API at nonexistent.invalid: "
        "DNS lookup failed (the host name does not resolve)"
    )
    assert stats.retries == 1


async def test_https_spoken_to_a_plain_http_api_fails_at_once() -> None:
    async with running_fake_api() as plain:
        port = plain.url.rsplit(":", 1)[1]
        error, stats, _ = await unreachable_api(f"https://127.0.0.1:{port}", max_retries=6)
    assert str(error) == (
        f"cannot reach the API at 127.0.0.1:{port}: TLS handshake failed (is it an https server?)"
    )
    assert stats.retries == 0 and plain.api_requests == []
