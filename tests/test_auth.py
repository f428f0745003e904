"""Client-credentials tokens: single flight, refresh on expiry and on 401, refused credentials,
and a token endpoint that cannot be reached, each cause named in one line."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from pathlib import Path
from typing import Any

import pytest

from crawler.api.client import SpotifyClient
from crawler.core.config import ApiConfig, Credential
from crawler.core.errors import AuthError, Unreachable
from crawler.core.stats import Stats
from tests.crawlkit import run_crawl_cli, write_config
from tests.fakes import (
    CLIENT_ID,
    CREDENTIAL,
    FAST,
    SECRET,
    FakeClock,
    existing_artists,
    id_of,
    is_playlist,
    refusing_port,
    running_fake_api,
    silent_server,
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


async def test_token_expiring_mid_crawl_is_renewed_without_failures() -> None:
    # Both paths a long crawl meets: renewal before the announced expiry (100 s, renewed 10 s
    # early), and a token the server stops accepting sooner (401 → one refresh → retry).
    clock = FakeClock()
    async with running_fake_api(expires_in=100) as fake:
        stats = Stats()
        async with SpotifyClient(
            fake.api(), [CREDENTIAL], concurrency=8, stats=stats, backoff=FAST, clock=clock
        ) as client:

            async def burst() -> None:
                results = await asyncio.gather(*(client.playlist("p") for _ in range(8)))
                assert all(is_playlist(r) for r in results)

            await burst()
            clock.advance(89.9)
            await burst()
            assert fake.token_requests == 1  # still valid for another 0.1 s
            clock.advance(0.1)
            await burst()
            assert fake.token_requests == 2 and stats.requests[("playlist", 401)] == 0
            fake.refused.add(fake.tokens[-1])
            await burst()
    assert fake.token_requests == 3
    assert stats.requests[("playlist", 401)] == 8 and stats.retries == 8
    assert stats.requests[("playlist", 200)] == 32


async def test_the_simulators_token_is_renewed_before_it_expires(sim_server) -> None:
    sim = await sim_server()  # tokens for 3600 s: renewed 60 s before
    (artist,) = existing_artists(sim.catalog, 1)
    clock = FakeClock()
    async with sim_client(sim, clock=clock) as client:
        await client.artists([artist])
        clock.advance(3540)
        await asyncio.gather(*(client.artists([artist]) for _ in range(10)))
    counts = await sim.stats()
    assert counts["by_endpoint"] == {"token": 2, "artists.batch": 11}
    assert counts["by_status"] == {"200": 13}


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


async def test_workers_waiting_for_a_refused_token_share_its_refusal() -> None:
    async with running_fake_api() as fake:
        wrong = Credential(CLIENT_ID, SECRET + "-wrong", "acct")
        async with SpotifyClient(
            fake.api(), [wrong], concurrency=20, stats=Stats(), backoff=FAST
        ) as client:
            results = await asyncio.gather(
                *(client.playlist("p") for _ in range(20)), return_exceptions=True
            )
    assert all(isinstance(r, AuthError) for r in results)
    assert fake.token_requests == 1


# ---------------------------------------------------------------- unreachable token endpoint


async def unreachable_token(token_url: str, **api: Any) -> tuple[Unreachable, Stats, FakeClock]:
    """The Unreachable that a first request meets; the API origin is never reached."""
    clock, stats = FakeClock(auto=True), Stats()
    with refusing_port() as api_port:
        config = ApiConfig(
            base_url=f"http://127.0.0.1:{api_port}",
            token_url=token_url,
            **{"max_retries": 2, "connect_timeout_s": 5.0, "read_timeout_s": 0.2, **api},
        )
        async with SpotifyClient(
            config, [CREDENTIAL], concurrency=4, stats=stats, backoff=FAST, clock=clock
        ) as client:
            with pytest.raises(Unreachable) as caught:
                await client.playlist("p")
    assert "\n" not in str(caught.value) and caught.value.exit_code == 1
    return caught.value, stats, clock


async def test_a_refused_token_endpoint_is_named_after_one_retry_cycle(caplog) -> None:
    with refusing_port() as port, caplog.at_level(logging.WARNING, "crawler"):
        error, stats, clock = await unreachable_token(f"http://127.0.0.1:{port}/api/token")
    assert str(error) == f"cannot reach the token endpoint at 127.0.0.1:{port}: connection refused"
    assert stats.retries == 2 and len(clock.waits) == 2  # max_retries, each after a backoff
    assert caplog.messages == [f"token endpoint 127.0.0.1:{port}: connection refused; retrying"]


@asynccontextmanager
async def unresolvable() -> AsyncIterator[str]:
    yield "https://nonexistent.invalid"


@asynccontextmanager
async def untrusted_tls() -> AsyncIterator[str]:
    async with silent_server(tls=True) as tls:
        yield f"https://127.0.0.1:{tls.port}"


@asynccontextmanager
async def plain_http_as_https() -> AsyncIterator[str]:
    async with running_fake_api() as fake:
        yield fake.url.replace("http://", "https://")


@asynccontextmanager
async def never_answering() -> AsyncIterator[str]:
    async with silent_server() as silent:
        yield f"http://127.0.0.1:{silent.port}"


@pytest.mark.parametrize(
    ("endpoint", "causes", "retries"),
    [
        (unresolvable, {"DNS lookup failed (the host name does not resolve)"}, 1),
        (
            untrusted_tls,
            {  # OpenSSL 3's wording, and 1.1's
                "TLS certificate not trusted (self-signed certificate)",
                "TLS certificate not trusted (self signed certificate)",
            },
            0,
        ),
        (plain_http_as_https, {"TLS handshake failed (is it an https server?)"}, 0),
        (never_answering, {"timed out waiting for an answer"}, 6),
    ],
)
async def test_each_cause_of_an_unreachable_token_endpoint_is_named(
    endpoint: Callable[[], AbstractAsyncContextManager[str]], causes: set[str], retries: int
) -> None:
    # DNS and TLS failures will not change within a retry cycle: at most one retry. A port that
    # accepts and never answers may be a server starting: the whole cycle (6 retries).
    async with endpoint() as origin:
        error, stats, _ = await unreachable_token(f"{origin}/api/token", max_retries=6)
    authority = origin.split("://", 1)[1]
    assert str(error) in {f"cannot reach the token endpoint at {authority}: {c}" for c in causes}
    assert stats.retries == retries


async def test_workers_waiting_for_an_unreachable_token_endpoint_share_one_retry_cycle() -> None:
    clock, stats = FakeClock(auto=True), Stats()
    with refusing_port() as port:
        url = f"http://127.0.0.1:{port}"
        api = ApiConfig(base_url=url, token_url=f"{url}/api/token", max_retries=3)
        async with SpotifyClient(
            api, [CREDENTIAL], concurrency=20, stats=stats, backoff=FAST, clock=clock
        ) as client:
            results = await asyncio.gather(
                *(client.playlist("p") for _ in range(20)), return_exceptions=True
            )
    assert all(isinstance(r, Unreachable) for r in results)
    assert len({str(r) for r in results}) == 1
    assert stats.retries == 3  # one flight's retries, not one cycle per worker


def test_the_cli_reports_an_unreachable_token_endpoint_in_one_line(tmp_path: Path) -> None:
    with refusing_port() as port:
        url = f"http://127.0.0.1:{port}"
        config = write_config(
            tmp_path,
            url,
            seeds={"artists": ["0" * 22]},
            api={"token_url": f"{url}/api/token", "max_retries": 1},
        )
        code, out, err = run_crawl_cli(config)
    message = f"cannot reach the token endpoint at 127.0.0.1:{port}: connection refused"
    lines = err.strip().splitlines()
    assert code == 1 and out == ""
    assert lines[-1] in {message, f"error: {message}"}
    assert "Traceback" not in err and "could not probe" not in err
