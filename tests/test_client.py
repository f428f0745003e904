"""Endpoint semantics and capability detection, against the simulator in both API modes."""

from __future__ import annotations

import asyncio
import logging

import orjson
import pytest

from crawler.api.capabilities import Capabilities
from crawler.api.client import SpotifyClient
from crawler.api.schema import (
    NULL,
    ArtistAlbumsPage,
    decode_item_ref,
    decode_playlist_item,
    decoder,
)
from crawler.core.config import ApiConfig, Credential
from crawler.core.errors import ConfigError, EdgeUnavailable, RequestFailed
from crawler.core.kinds import Op
from crawler.core.stats import Stats
from crawler.sim.catalog import Catalog
from crawler.sim.config import SimClient
from crawler.sim.server import SimServer
from tests.fakes import (
    CREDENTIAL,
    FAST,
    existing_artists,
    id_of,
    json_reply,
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
        "search": await client.search("track", "lunar", 0, 50),
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
    assert got["search"].limit == 50  # type: ignore[attr-defined]
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
    assert first["search"].limit == 10 and len(first["search"].ids) == 10  # type: ignore[attr-defined]
    assert first["related"] == first["features"] == "unavailable"
    warnings = [r.getMessage() for r in caplog.records]
    assert len(warnings) == 7  # one per thing learned
    assert "search refused limit=50 (400, development mode?): using pages of 10" in warnings
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
    caps.learn("search_limit", 10)
    data = caps.to_dict()
    assert "changed" not in data and data["search_limit"] == 10
    assert Capabilities.from_dict({**data, "from_the_future": 1}) == caps
    assert caps.learn("batch_albums", True) and caps.changed
    assert not caps.learn("batch_albums", True)


def test_capabilities_learned_by_other_processes_are_merged_in() -> None:
    """Each process of a shared crawl takes what the others stored and says whether the store
    lacks anything it knows (then it writes its own, merged, back)."""
    mine = Capabilities(batch_artists=False, search_limit=10, budgets={"a": 290})
    stored = Capabilities(related_artists=False, artist_albums_limit=10, budgets={"a": 300})
    assert mine.merge(stored.to_dict())  # the store lacks batch_artists and search_limit
    assert mine == Capabilities(
        batch_artists=False,
        related_artists=False,
        artist_albums_limit=10,
        search_limit=10,
        budgets={"a": 290},  # its own measurement stays: no write for a budget both have
    )
    assert not mine.merge(mine.to_dict())
    assert not Capabilities(budgets={"a": 1}).merge({"budgets": {"a": 2, "b": 3}})
    assert Capabilities(budgets={"c": 1}).merge({"budgets": {"a": 2}})


def test_capabilities_of_an_older_checkpoint_keep_the_new_limits_unknown() -> None:
    older = {  # what a checkpoint written before search and playlist page sizes were learned holds
        "batch_artists": False,
        "batch_albums": False,
        "batch_tracks": False,
        "artist_albums_limit": 10,
        "related_artists": False,
        "audio_features": False,
    }
    caps = Capabilities.from_dict(older)
    assert (caps.search_limit, caps.playlist_items_limit) == (50, 50)  # learned again if refused
    assert caps.artist_albums_limit == 10 and not caps.changed


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


# ---------------------------------------------------------------- typed search and pages


@pytest.mark.parametrize("kind", ["artist", "album", "track"])
async def test_typed_search_returns_the_apis_page(sim_api, kind: str) -> None:
    api = await sim_api()
    raw = (await api.get("/v1/search", q="an", type=kind, offset=5, limit=20)).json()
    expected = raw[f"{kind}s"]
    async with sim_client(api.server) as client:
        page = await client.search(kind, "an", 5, 20)  # type: ignore[arg-type]
    assert expected["total"] > 25  # a page with results before and after it
    assert page.ids == [item["id"] for item in expected["items"]]
    assert (page.total, page.limit, page.offset, len(page.ids)) == (expected["total"], 20, 5, 20)


async def test_search_learns_the_development_page_size_once(sim_server, caplog) -> None:
    sim = await sim_server(mode="development")
    with caplog.at_level(logging.WARNING, "crawler"):
        async with sim_client(sim, mode="auto") as client:
            pages = [await client.search("artist", "an", offset, 50) for offset in (0, 10)]
            caps = client.capabilities
    assert caps.search_limit == 10 and caps.changed
    assert [(p.limit, len(p.ids), p.offset) for p in pages] == [(10, 10, 0), (10, 10, 10)]
    assert set(pages[0].ids).isdisjoint(pages[1].ids)
    assert caplog.messages == [
        "search refused limit=50 (400, development mode?): using pages of 10"
    ]
    # The token, the first page's refused and second try, the second page: one 400 only.
    assert (await sim.stats())["by_status"] == {"200": 3, "400": 1}


async def test_search_results_hidden_by_the_api_are_skipped() -> None:
    playlists = {"items": [{"id": "p1"}, None, {"id": "p2"}], "total": 3, "limit": 50}
    async with running_fake_api() as fake:
        fake.script.extend(
            [
                json_reply(200, {"artists": playlists}),  # not what was asked for: retried
                json_reply(200, {"playlists": playlists}),
            ]
        )
        async with SpotifyClient(
            fake.api(), [CREDENTIAL], concurrency=1, stats=Stats(), backoff=FAST
        ) as client:
            page = await client.search("playlist", "shoegaze", 0, 50)
    assert (page.ids, page.total, page.limit) == (["p1", "p2"], 3, 50)
    assert len(fake.api_requests) == 2


async def test_playlist_items_learn_a_refused_page_size() -> None:
    page = {"items": [], "total": 7, "limit": 10}
    invalid = {"error": {"status": 400, "message": "Invalid limit"}}
    async with running_fake_api() as fake:
        fake.script.extend([json_reply(400, invalid), json_reply(200, page), json_reply(200, page)])
        async with SpotifyClient(
            fake.api(), [CREDENTIAL], concurrency=1, stats=Stats(), backoff=FAST
        ) as client:
            first = await client.playlist_items("p", 0)
            again = await client.playlist_items("p", 10)
            limit = client.capabilities.playlist_items_limit
    assert first.limit == again.limit == limit == 10
    assert fake.api_requests == [
        "/v1/playlists/p/items?offset=0&limit=50",
        "/v1/playlists/p/items?offset=0&limit=10",
        "/v1/playlists/p/items?offset=10&limit=10",
    ]


async def test_a_400_that_a_smaller_page_does_not_cure_is_a_failure_not_a_lesson() -> None:
    bad = {"error": {"status": 400, "message": "No search query"}}
    async with running_fake_api() as fake:
        fake.script.extend([json_reply(400, bad)] * 2)
        async with SpotifyClient(
            fake.api(), [CREDENTIAL], concurrency=1, stats=Stats(), backoff=FAST
        ) as client:
            with pytest.raises(RequestFailed) as caught:
                await client.search("track", " ", 0, 50)
            assert client.capabilities.search_limit == 50
    assert str(caught.value) == "search: HTTP 400: No search query"


# ---------------------------------------------------------------- views the expander reads


async def test_artist_albums_and_playlists_carry_what_the_edge_streams_need(sim_api) -> None:
    api = await sim_api()
    catalog = api.server.catalog
    artist, playlist = existing_artists(catalog, 1)[0], catalog.playlist_id(0)
    raw_albums = (
        await api.get(f"/v1/artists/{artist}/albums", include_groups="album,single", limit=50)
    ).json()
    raw_playlist = (await api.get(f"/v1/playlists/{playlist}")).json()
    async with sim_client(api.server) as client:
        albums = await client.artist_albums(artist, ["album", "single"])
        fetched = await client.playlist(playlist)
    assert [(a.id, a.album_group) for a in albums.items] == [
        (a["id"], a["album_group"]) for a in raw_albums["items"]
    ]
    assert {a.album_group for a in albums.items} <= {"album", "single"}
    assert fetched is not None
    raw, got = fetched
    assert orjson.loads(bytes(raw)) == raw_playlist  # the API's own object, for playlists.jsonl
    assert (got.id, got.snapshot_id) == (playlist, raw_playlist["snapshot_id"])
    for raw, want in zip(got.page.items, raw_playlist["items"]["items"], strict=True):
        item = decode_playlist_item(raw)
        assert item.added_at == want["added_at"]
        assert (item.added_by and item.added_by.id) == (want["added_by"] or {}).get("id")
        held = want["item"]
        if held is None:
            assert item.content == NULL  # a removed track
        else:
            ref = decode_item_ref(item.content)
            assert (ref.type, ref.id) == (held["type"], held["id"])


def test_artist_album_group_is_none_where_the_api_omits_it() -> None:
    page = (
        b'{"items": [{"id": "a1", "album_group": "single"}, {"id": "a2"}], "total": 2, "limit": 10}'
    )
    items = decoder(ArtistAlbumsPage).decode(page).items
    assert [(a.id, a.album_group) for a in items] == [("a1", "single"), ("a2", None)]


# One item of each kind a playlist can hold, as the 2026 API returns them.
TRACK = {"id": "t" * 22, "type": "track", "is_local": False, "artists": []}
EPISODE = {"id": "e" * 22, "type": "episode"}
LOCAL = {"id": None, "type": "track", "is_local": True, "name": "demo.mp3", "artists": []}
USER = {"id": "someone", "type": "user"}
PLAYLIST_ITEMS = [
    (
        {
            "added_at": "2020-01-01T00:00:00Z",
            "added_by": USER,
            "is_local": False,
            "item": TRACK,
            "track": TRACK,
        },
        ("track", "t" * 22, "someone", False),
    ),
    (
        {
            "added_at": "2021-02-02T00:00:00Z",
            "added_by": USER,
            "is_local": False,
            "item": EPISODE,
            "track": EPISODE,
        },
        ("episode", "e" * 22, "someone", False),
    ),
    (
        {"added_at": None, "added_by": None, "is_local": True, "item": LOCAL, "track": LOCAL},
        ("track", None, None, True),
    ),
    (
        {
            "added_at": "2019-03-03T00:00:00Z",
            "added_by": {"id": None},
            "is_local": False,
            "track": TRACK,
        },
        ("track", "t" * 22, None, False),
    ),  # before 2026: "track" only
]


@pytest.mark.parametrize(("body", "expected"), PLAYLIST_ITEMS)
def test_every_kind_of_playlist_item_decodes(body: dict, expected: tuple) -> None:
    item = decode_playlist_item(orjson.dumps(body))
    ref = decode_item_ref(item.content)
    added_by = item.added_by.id if item.added_by is not None else None
    assert (ref.type, ref.id, added_by, item.is_local) == expected
    assert item.added_at == body["added_at"]


@pytest.mark.parametrize("body", [b'{"added_at": null, "track": null, "item": null}', b"{}"])
def test_a_playlist_item_whose_track_is_gone_decodes_to_null(body: bytes) -> None:
    item = decode_playlist_item(body)
    assert item.content == NULL and item.added_by is None and not item.is_local
