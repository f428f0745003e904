"""The token stays on the API origin; secrets and tokens never reach logs, errors or stats."""

from __future__ import annotations

import logging

import aiohttp
import orjson
import pytest

from crawler.api.auth import TokenSource
from crawler.api.client import SpotifyClient
from crawler.api.http import ApiHttp
from crawler.core.config import ApiConfig, Credential
from crawler.core.errors import AuthError, ConfigError, RequestFailed
from crawler.core.stats import Stats
from tests.fakes import (
    CLIENT_ID,
    CREDENTIAL,
    FAST,
    SECRET,
    json_reply,
    running_fake_api,
    running_recorder,
    sim_credentials,
)


async def test_token_is_never_sent_to_another_origin(sim_server) -> None:
    sim = await sim_server()
    playlist = sim.catalog.playlist_id(0)
    (credential,) = sim_credentials(sim)
    async with running_recorder() as foreign, aiohttp.ClientSession() as session:
        source = TokenSource(
            credential, sim.token_url, session, Stats(), backoff=FAST, max_retries=0
        )
        token = await source.token()
        http = ApiHttp(session, sim.url)
        # Positive control: the API origin gets the token, and pages link to further pages.
        first = await http.get(f"{sim.url}/v1/playlists/{playlist}/items", None, token)
        assert first.status == 200
        next_url = orjson.loads(first.body)["next"]
        assert (await http.get(next_url, None, token)).status == 200
        port = foreign.url.rsplit(":", 1)[1]
        for url in (
            next_url.replace(sim.url, foreign.url),  # a `next` pointing elsewhere
            f"http://localhost:{port}/v1/me",  # same machine, another host name
            sim.url.replace("http://", "https://") + "/v1/me",  # another scheme
        ):
            with pytest.raises(ValueError, match="outside the API origin"):
                await http.get(url, None, token)
        assert foreign.requests == []


async def test_redirects_are_not_followed() -> None:
    async with running_recorder() as foreign, running_fake_api() as fake:
        fake.script.append(json_reply(302, None, {"Location": f"{foreign.url}/v1/playlists/p"}))
        async with SpotifyClient(
            fake.api(), [CREDENTIAL], concurrency=1, stats=Stats(), backoff=FAST
        ) as client:
            with pytest.raises(RequestFailed, match="HTTP 302"):
                await client.playlist("p")
        assert foreign.requests == []


@pytest.mark.parametrize(
    "url",
    [
        "http://api.example.com",
        "http://10.0.0.5:8080",
        "http://127.0.0.1.nip.io",
        "ftp://127.0.0.1",
        "api.spotify.com",
    ],
)
@pytest.mark.parametrize("field", ["base_url", "token_url"])
def test_plain_http_is_refused_except_on_loopback(field: str, url: str) -> None:
    api = ApiConfig(**{field: url})  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match=f"api.{field}"):
        SpotifyClient(api, [CREDENTIAL], concurrency=1, stats=Stats())


@pytest.mark.parametrize(
    "url",
    [
        "https://api.spotify.com",
        "http://127.0.0.1:8080",
        "http://127.3.2.1",
        "http://[::1]:80",
        "http://localhost:9",
    ],
)
def test_https_and_loopback_http_are_accepted(url: str) -> None:
    SpotifyClient(
        ApiConfig(base_url=url, token_url=url + "/api/token"),
        [CREDENTIAL],
        concurrency=1,
        stats=Stats(),
    )


async def test_no_secret_or_token_reaches_logs_errors_stats_or_status(caplog) -> None:
    caplog.set_level(logging.DEBUG)
    texts: list[str] = []
    async with running_fake_api() as fake:
        stats = Stats()
        async with SpotifyClient(
            fake.api(max_retries=3), [CREDENTIAL], concurrency=2, stats=stats, backoff=FAST
        ) as client:
            await client.playlist("p")
            fake.refused.add(fake.tokens[0])  # 401 → refresh
            fake.script.extend(
                [
                    (429, {}, None),
                    json_reply(429, {"error": {"reason": "QUOTA_EXCEEDED"}}, {"Retry-After": "0"}),
                    json_reply(500),
                    json_reply(200, b'{"trunc'),
                ]
            )
            await client.playlist("p")
            fake.script.extend([json_reply(503)] * 4)
            with pytest.raises(RequestFailed) as failed:
                await client.playlist("p")
            texts += [str(failed.value), repr(client.status())]
        wrong = Credential(CLIENT_ID, SECRET + "-wrong", "acct")
        async with SpotifyClient(fake.api(), [wrong], concurrency=1, stats=stats) as client:
            with pytest.raises(AuthError) as refused:
                await client.playlist("p")
            texts += [str(refused.value), repr(wrong), repr(CREDENTIAL)]
    texts += [caplog.text, repr(stats.as_dict())]
    everything = "\n".join(texts)
    assert len(fake.tokens) == 2 and stats.retries >= 5  # the paths above were all taken
    assert CLIENT_ID[:8] in everything  # credentials are named ...
    for secret in (SECRET, *fake.tokens):
        assert secret not in everything  # ... but never revealed
