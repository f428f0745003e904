"""Endpoint semantics and capability detection, against the simulator in both API modes."""

from __future__ import annotations

import asyncio
import logging

import pytest

from crawler.api.capabilities import Capabilities
from crawler.api.client import SpotifyClient
from crawler.core.config import ApiConfig, Credential
from crawler.core.errors import ConfigError, EdgeUnavailable, RequestFailed
from crawler.core.kinds import Op
from crawler.core.stats import Stats
from crawler.sim.catalog import Catalog
from crawler.sim.config import SimClient
from crawler.sim.server import SimServer
from tests.test_client_fakes import (
    CREDENTIAL,
    existing_artists,
    id_of,
    running_fake_api,
    sim_client,
)

UNKNOWN = "0" * 22  # well formed, names nothing


def sample(catalog: Catalog) -> dict[str, list[str]]:
    artists = [catalog.artist_id(i) for i in range(3)]
    albums = catalog.album_ids_of(0)[:3]
    tracks = catalog.track_ids_of(0, 0)[:3]
    return {"artists": artists, "albums": albums, "tracks": tracks}


async def crawl_a_little(client: SpotifyClient, ids: dict[str, list[str]]) -> dict[str, object]:
    """One call of each kind the engine makes, skipping edges the app may not use."""
    out: dict[str, object] = {
        "artists": await client.artists([*ids["artists"], UNKNOWN]),
        "albums": await client.albums(ids["albums"]),
        "tracks": await client.tracks(ids["tracks"]),
        "artist_albums": await client.artist_albums(ids["artists"][0], ["album", "single"]),
    }
    for name, call in (
        ("related", client.related_artists(ids["artists"][0])),
        ("features", client.audio_features(ids["tracks"])),
    ):
        try:
            out[name] = await call
        except EdgeUnavailable:
            out[name] = "unavailable"
    return out


def ids_of(objects: object) -> list[str | None]:
    assert isinstance(objects, list)
    return [id_of(o) for o in objects]


async def test_extended_app_uses_batches_and_learns_that_they_work(sim_server) -> None:
    sim: SimServer = await sim_server(mode="extended")
    ids = sample(sim.catalog)
    async with sim_client(sim, mode="auto") as client:
        got = await crawl_a_little(client, ids)
        caps = client.capabilities
    assert ids_of(got["artists"]) == [*ids["artists"], None]
    assert ids_of(got["albums"]) == ids["albums"]
    assert ids_of(got["tracks"]) == ids["tracks"]
    assert got["artist_albums"].limit == 50  # type: ignore[attr-defined]
    assert got["related"] and ids_of(got["features"]) == ids["tracks"]
    assert caps == Capabilities.for_mode("extended") and caps.changed
    assert (caps.batch_size(Op.ARTIST), caps.batch_size(Op.ALBUM)) == (50, 20)
    assert (caps.batch_size(Op.TRACK), caps.batch_size(Op.FEATURES)) == (50, 100)
    endpoints = (await sim.stats())["by_endpoint"]
    assert {"artists", "album", "track"}.isdisjoint(endpoints)  # no single-ID calls


async def test_development_app_is_detected_then_remembered(sim_server, caplog) -> None:
    sim: SimServer = await sim_server(mode="development")
    ids = sample(sim.catalog)
    with caplog.at_level(logging.WARNING, "crawler"):
        async with sim_client(sim, mode="auto") as client:
            first = await crawl_a_little(client, ids)
            await crawl_a_little(client, ids)  # nothing new to learn, nothing new to say
            learned = client.capabilities.to_dict()
    assert learned == Capabilities.for_mode("development").to_dict()
    # The batches in hand were served one ID at a time: nothing was lost.
    assert ids_of(first["artists"]) == [*ids["artists"], None]
    assert ids_of(first["albums"]) == ids["albums"]
    assert ids_of(first["tracks"]) == ids["tracks"]
    assert first["artist_albums"].limit == 10  # type: ignore[attr-defined]
    assert first["related"] == first["features"] == "unavailable"
    warnings = [r.getMessage() for r in caplog.records]
    assert len(warnings) == 6  # one per thing learned
    assert sum("related artists" in w for w in warnings) == 1

    sim.reset_stats()
    resumed = Capabilities.from_dict(learned)
    async with sim_client(sim, mode="auto", capabilities=resumed) as client:
        again = await crawl_a_little(client, ids)
    assert again.keys() == first.keys()
    for key in ("artists", "albums", "tracks"):
        assert ids_of(again[key]) == ids_of(first[key])
    counts = await sim.stats()
    assert counts["by_status"] == {"200": counts["total"] - 1, "404": 1}  # only UNKNOWN's 404
    assert {"artists.batch", "albums.batch", "tracks.batch", "related_artists"}.isdisjoint(
        counts["by_endpoint"]
    )
    assert "audio_features.batch" not in counts["by_endpoint"]


async def test_concurrent_first_calls_probe_only_once(sim_server) -> None:
    sim: SimServer = await sim_server(mode="development")
    artists = existing_artists(sim.catalog, 10)
    async with sim_client(sim, mode="auto") as client:
        batches = await asyncio.gather(
            *(client.artists(artists[i : i + 2]) for i in range(0, 10, 2))
        )
        related = await asyncio.gather(
            *(client.related_artists(a) for a in artists), return_exceptions=True
        )
    assert [id_of(a) for batch in batches for a in batch] == artists
    assert all(isinstance(r, EdgeUnavailable) for r in related)
    counts = (await sim.stats())["by_endpoint"]
    assert counts["artists.batch"] == counts["related_artists"] == 1


async def test_development_preset_makes_no_probe_calls(sim_server) -> None:
    sim: SimServer = await sim_server(mode="development")
    async with sim_client(sim, mode="development") as client:
        assert client.capabilities.batch_size(Op.ARTIST) == 1
        await crawl_a_little(client, sample(sim.catalog))
        assert not client.capabilities.changed
    assert set((await sim.stats())["by_status"]) == {"200", "404"}


def test_capabilities_survive_a_round_trip_and_ignore_unknown_keys() -> None:
    caps = Capabilities(batch_artists=False, artist_albums_limit=10, related_artists=True)
    data = caps.to_dict()
    assert "changed" not in data
    assert Capabilities.from_dict({**data, "from_the_future": 1}) == caps
    assert caps.learn("batch_albums", True) and caps.changed
    assert not caps.learn("batch_albums", True)


async def test_missing_entities_are_none(sim_server) -> None:
    sim: SimServer = await sim_server()
    async with sim_client(sim) as client:
        assert await client.playlist(UNKNOWN) is None
        assert await client.tracks([UNKNOWN, UNKNOWN]) == [None, None]


async def test_pages_and_search(sim_server) -> None:
    sim: SimServer = await sim_server()
    catalog = sim.catalog
    async with sim_client(sim) as client:
        album = catalog.album_ids_of(0)[0]
        tracks = await client.album_tracks(album, 0)
        playlist = catalog.playlist_id(0)
        items = await client.playlist_items(playlist, 50)
        found = await client.search_artists("lunar")
    assert [id_of(t) for t in tracks.items] == catalog.track_ids_of(0, 0)[:50]
    assert tracks.limit == items.limit == 50
    assert len(items.items) == min(50, items.total - 50)
    assert 0 < len(found) <= 10 and all(isinstance(a, str) and len(a) == 22 for a in found)


async def test_bad_requests_fail_without_retrying(sim_server) -> None:
    sim: SimServer = await sim_server()
    stats = Stats()
    async with sim_client(sim, stats=stats) as client:
        with pytest.raises(RequestFailed) as caught:
            await client.artists(["not-an-id"])
        with pytest.raises(ValueError):
            await client.albums([UNKNOWN] * 21)
    assert caught.value.endpoint == "artists.batch"
    assert caught.value.reason == "HTTP 400: invalid id"
    assert stats.retries == 0


async def test_connection_pool_matches_the_worker_count() -> None:
    async with (
        running_fake_api() as fake,
        SpotifyClient(fake.api(), [CREDENTIAL], concurrency=7, stats=Stats()) as client,
    ):
        assert client._session is not None
        assert client._session.connector is not None
        assert client._session.connector.limit == 7


def test_credentials_of_one_account_must_agree_on_its_quota() -> None:
    other = Credential("another-client-id", "x", CREDENTIAL.account, rate=5)
    api = ApiConfig(base_url="http://127.0.0.1:9", token_url="http://127.0.0.1:9/api/token")
    with pytest.raises(ConfigError, match="disagree"):
        SpotifyClient(api, [CREDENTIAL, other], concurrency=1, stats=Stats())
    with pytest.raises(ConfigError, match="no credentials"):
        SpotifyClient(api, [], concurrency=1, stats=Stats())


async def test_requests_are_shared_across_accounts(sim_server) -> None:
    sim: SimServer = await sim_server(
        clients=(SimClient("client-one-id", "s1", "one"), SimClient("client-two-id", "s2", "two"))
    )
    (artist,) = existing_artists(sim.catalog, 1)
    async with sim_client(sim, rate=50, window_s=1.0) as client:
        await asyncio.gather(*(client.artists([artist]) for _ in range(60)))
    by_account = (await sim.stats())["by_account"]
    assert by_account["one"] >= 25 and by_account["two"] >= 25
