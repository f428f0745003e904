"""Client-credentials tokens: single flight, refresh on expiry and on 401, refused credentials."""

from __future__ import annotations

import asyncio
import time

import pytest

from crawler.api.client import SpotifyClient
from crawler.core.errors import AuthError
from crawler.core.stats import Stats
from tests.fakes import (
    CREDENTIAL,
    FAST,
    SECRET,
    existing_artists,
    id_of,
    is_playlist,
    running_fake_api,
    sim_client,
)


async def test_one_token_request_for_100_concurrent_first_requests(sim_server) -> None:
    sim = await sim_server()
    (artist,) = existing_artists(sim.catalog, 1)
    async with sim_client(sim, concurrency=100) as client:
        found = await asyncio.gather(*(client.artists([artist]) for _ in range(100)))
    assert all(id_of(a[0]) == artist for a in found)
    stats = await sim.stats()
    assert stats["by_endpoint"]["token"] == 1
    assert stats["by_endpoint"]["artists.batch"] == 100


async def test_100_concurrent_401s_cause_exactly_one_refresh() -> None:
    async with running_fake_api() as fake:
        stats = Stats()
        async with SpotifyClient(
            fake.api(), [CREDENTIAL], concurrency=100, stats=stats, backoff=FAST
        ) as client:
            await client.playlist("p")
            fake.refused.add(fake.tokens[0])  # the token "expires" server-side
            results = await asyncio.gather(*(client.playlist("p") for _ in range(100)))
    assert all(is_playlist(r) for r in results)
    assert fake.token_requests == 2
    assert stats.requests[("playlist", 401)] == 100
    assert stats.requests[("playlist", 200)] == 101
    assert stats.retries == 100


async def test_token_expiring_mid_crawl_is_renewed_without_failures(sim_server) -> None:
    # The simulator announces expires_in=1 but expires tokens after 0.4 s, so requests meet
    # both paths: proactive renewal before the announced expiry and 401 → re-auth → retry.
    sim = await sim_server(token_ttl_s=0.4)
    (artist,) = existing_artists(sim.catalog, 1)
    stats = Stats()
    done = 0
    async with sim_client(sim, concurrency=8, stats=stats) as client:
        deadline = time.monotonic() + 2.5

        async def worker() -> None:
            nonlocal done
            while time.monotonic() < deadline:
                assert id_of((await client.artists([artist]))[0]) == artist
                done += 1
                await asyncio.sleep(0.01)

        await asyncio.gather(*(worker() for _ in range(8)))
    counts = await sim.stats()
    assert done > 100
    assert counts["by_endpoint"]["token"] >= 3  # renewed, and only by single flights
    assert counts["by_endpoint"]["token"] <= 10
    assert counts["by_status"].get("401", 0) > 0
    assert stats.requests[("artists.batch", 200)] == done


async def test_invalid_client_raises_auth_error_naming_the_credential(sim_server) -> None:
    sim = await sim_server()
    wrong = "wrong-secret-value-42"
    async with sim_client(sim, secret=wrong) as client:
        with pytest.raises(AuthError) as caught:
            await client.playlist(sim.catalog.playlist_id(0))
    message = str(caught.value)
    assert sim.config.clients[0].client_id[:8] in message
    assert "invalid_client" in message
    assert wrong not in message and SECRET not in message
    assert (await sim.stats())["by_endpoint"] == {"token": 1}  # refused once, not retried
