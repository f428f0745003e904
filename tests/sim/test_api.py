"""The simulator's HTTP surface: tokens, errors, batches, paging, modes and counters."""

from __future__ import annotations

import asyncio
import base64
from typing import Any

import pytest

from crawler.sim.catalog import Catalog
from crawler.sim.config import SimClient, SimConfig
from crawler.sim.model import GROUPS

CATALOG = Catalog(150, seed=7)
M = CATALOG.model
EXISTING = [i for i in range(CATALOG.artists) if M.artist(i).exists]
DELETED = next(i for i in range(CATALOG.artists) if not M.artist(i).exists)
ARTIST = max(EXISTING, key=lambda i: M.artist(i).albums + len(M.appears_on(i)))
ALBUM = (ARTIST, 0)
TRACK = (ARTIST, 0, 1)


def error(status: int, message: str) -> dict[str, Any]:
    return {"error": {"status": status, "message": message}}


# -- tokens --------------------------------------------------------------------------------


async def test_token_by_basic_auth_or_form_fields(sim_api: Any) -> None:
    api = await sim_api(CATALOG, token_ttl_s=1800)
    basic = base64.b64encode(b"sim-client:sim-secret").decode()
    by_header = await api.request(
        "POST",
        "/api/token",
        auth=False,
        headers={"Authorization": f"Basic {basic}"},
        data={"grant_type": "client_credentials"},
    )
    assert by_header.status == 200
    body = by_header.json()
    assert body["token_type"] == "Bearer" and body["expires_in"] == 1800
    api.token = body["access_token"]
    assert (await api.get(f"/v1/artists/{CATALOG.artist_id(ARTIST)}")).status == 200


@pytest.mark.parametrize(
    ("form", "expected"),
    [
        (
            {"grant_type": "client_credentials", "client_id": "sim-client", "client_secret": "x"},
            {"error": "invalid_client", "error_description": "Invalid client"},
        ),
        (
            {"grant_type": "client_credentials", "client_id": "nobody", "client_secret": "x"},
            {"error": "invalid_client", "error_description": "Invalid client"},
        ),
        (
            {"client_id": "sim-client", "client_secret": "sim-secret"},
            {
                "error": "unsupported_grant_type",
                "error_description": "grant_type parameter is missing",
            },
        ),
        (
            {"grant_type": "password", "client_id": "sim-client", "client_secret": "sim-secret"},
            {
                "error": "unsupported_grant_type",
                "error_description": "grant_type must be client_credentials, "
                "authorization_code or refresh_token",
            },
        ),
    ],
)
async def test_token_errors(sim_api: Any, form: dict[str, str], expected: dict[str, str]) -> None:
    api = await sim_api(CATALOG)
    reply = await api.request("POST", "/api/token", auth=False, data=form)
    assert (reply.status, reply.json()) == (400, expected)


@pytest.mark.parametrize("header", [None, "Bearer nope", "Basic abc", "Bearer"])
async def test_missing_or_invalid_token_is_401(sim_api: Any, header: str | None) -> None:
    api = await sim_api(CATALOG)
    headers = {"Authorization": header} if header else {}
    reply = await api.request(
        "GET", f"/v1/artists/{CATALOG.artist_id(ARTIST)}", auth=False, headers=headers
    )
    assert (reply.status, reply.json()) == (401, error(401, "Invalid access token"))


async def test_expired_token_is_401_with_its_own_message(sim_api: Any) -> None:
    api = await sim_api(CATALOG, token_ttl_s=0.3)
    path = f"/v1/artists/{CATALOG.artist_id(ARTIST)}"
    assert (await api.get(path)).status == 200
    await asyncio.sleep(0.4)
    reply = await api.get(path)
    assert (reply.status, reply.json()) == (401, error(401, "The access token expired"))
    await api.authenticate()
    assert (await api.get(path)).status == 200


# -- single objects --------------------------------------------------------------------------

SINGLE = [
    "/v1/artists/{}",
    "/v1/artists/{}/albums",
    "/v1/artists/{}/related-artists",
    "/v1/artists/{}/top-tracks",
    "/v1/albums/{}",
    "/v1/albums/{}/tracks",
    "/v1/tracks/{}",
    "/v1/audio-features/{}",
    "/v1/playlists/{}",
    "/v1/playlists/{}/items",
    "/v1/playlists/{}/tracks",
]


@pytest.mark.parametrize("path", SINGLE)
@pytest.mark.parametrize("bad", ["short", "x" * 23, "0123456789abcdefghij-_"])
async def test_malformed_ids_are_400(sim_api: Any, path: str, bad: str) -> None:
    api = await sim_api(CATALOG)
    reply = await api.get(path.format(bad))
    assert (reply.status, reply.json()) == (400, error(400, "invalid id"))


@pytest.mark.parametrize("path", SINGLE)
async def test_well_formed_unknown_ids_are_404(sim_api: Any, path: str) -> None:
    api = await sim_api(CATALOG)
    foreign = Catalog(150, seed=8)
    for unknown in ("0" * 22, foreign.artist_id(0), foreign.track_id(*TRACK)):
        reply = await api.get(path.format(unknown))
        assert (reply.status, reply.json()) == (404, error(404, "non existing id")), unknown


async def test_ids_of_another_kind_and_deleted_artists_are_404(sim_api: Any) -> None:
    api = await sim_api(CATALOG)
    for path in (
        f"/v1/artists/{CATALOG.album_id(*ALBUM)}",
        f"/v1/albums/{CATALOG.track_id(*TRACK)}",
        f"/v1/tracks/{CATALOG.artist_id(ARTIST)}",
        f"/v1/playlists/{CATALOG.artist_id(ARTIST)}",
        f"/v1/artists/{CATALOG.artist_id(DELETED)}",
        f"/v1/artists/{CATALOG.artist_id(DELETED)}/albums",
    ):
        assert (await api.get(path)).status == 404, path


async def test_tracks_without_audio_features_are_404(sim_api: Any) -> None:
    api = await sim_api(CATALOG)
    key = next(
        (i, a, t)
        for i in EXISTING
        for a in range(M.artist(i).albums)
        for t in range(1, M.album(i, a).tracks + 1)
        if not M.track(i, a, t).has_features
    )
    reply = await api.get(f"/v1/audio-features/{CATALOG.track_id(*key)}")
    assert reply.status == 404
    assert (await api.get(f"/v1/tracks/{CATALOG.track_id(*key)}")).status == 200


# -- batches ---------------------------------------------------------------------------------

BATCHES = [
    ("/v1/artists", "artists", 50),
    ("/v1/albums", "albums", 20),
    ("/v1/tracks", "tracks", 50),
    ("/v1/audio-features", "audio_features", 100),
]


def known_ids(key: str, n: int) -> list[str]:
    if key == "artists":
        return [CATALOG.artist_id(EXISTING[k % len(EXISTING)]) for k in range(n)]
    if key == "albums":
        return [CATALOG.album_id(ARTIST, k % M.artist(ARTIST).albums) for k in range(n)]
    with_features = [
        CATALOG.track_id(i, a, t)
        for i in EXISTING[:20]
        for a in range(M.artist(i).albums)
        for t in range(1, M.album(i, a).tracks + 1)
        if M.track(i, a, t).has_features
    ]
    return with_features[:n]


@pytest.mark.parametrize(("path", "key", "maximum"), BATCHES)
async def test_batches_keep_order_and_null_unknown_ids(
    sim_api: Any, path: str, key: str, maximum: int
) -> None:
    api = await sim_api(CATALOG)
    ids = known_ids(key, maximum)
    ids[1] = "0" * 22
    if key == "artists":
        ids[2] = CATALOG.artist_id(DELETED)
    reply = await api.get(path, ids=",".join(ids))
    assert reply.status == 200
    items = reply.json()[key]
    assert len(items) == maximum
    assert [item and item["id"] for item in items] == [
        None if k in (1, 2) and (k == 1 or key == "artists") else i for k, i in enumerate(ids)
    ]


@pytest.mark.parametrize(("path", "key", "maximum"), BATCHES)
async def test_batch_errors(sim_api: Any, path: str, key: str, maximum: int) -> None:
    api = await sim_api(CATALOG)
    too_many = ",".join(known_ids(key, 1) * (maximum + 1))
    reply = await api.get(path, ids=too_many)
    assert (reply.status, reply.json()) == (400, error(400, "Too many ids requested"))
    reply = await api.get(path, ids=known_ids(key, 1)[0] + ",bad")
    assert (reply.status, reply.json()) == (400, error(400, "invalid id"))
    reply = await api.get(path)
    assert reply.status == 400


# -- limits, offsets and paging --------------------------------------------------------------


@pytest.mark.parametrize(
    ("mode", "path", "params", "ok"),
    [
        ("extended", "/v1/albums/{album}/tracks", {"limit": 50}, True),
        ("extended", "/v1/albums/{album}/tracks", {"limit": 51}, False),
        ("extended", "/v1/albums/{album}/tracks", {"limit": 0}, False),
        ("extended", "/v1/albums/{album}/tracks", {"limit": "ten"}, False),
        ("extended", "/v1/albums/{album}/tracks", {"offset": -1}, False),
        ("extended", "/v1/albums/{album}/tracks", {"offset": 10_000}, True),
        ("extended", "/v1/artists/{artist}/albums", {"limit": 50}, True),
        ("extended", "/v1/artists/{artist}/albums", {"limit": 51}, False),
        ("development", "/v1/artists/{artist}/albums", {"limit": 10}, True),
        ("development", "/v1/artists/{artist}/albums", {"limit": 11}, False),
        ("extended", "/v1/artists/{artist}/albums", {"include_groups": "album,bogus"}, False),
        ("extended", "/v1/search", {"q": "a", "type": "artist", "limit": 50}, True),
        ("extended", "/v1/search", {"q": "a", "type": "artist", "limit": 51}, False),
        ("development", "/v1/search", {"q": "a", "type": "artist", "limit": 10}, True),
        ("development", "/v1/search", {"q": "a", "type": "artist", "limit": 11}, False),
        ("extended", "/v1/search", {"q": "a", "type": "artist", "offset": 1000}, True),
        ("extended", "/v1/search", {"q": "a", "type": "artist", "offset": 1001}, False),
        ("extended", "/v1/playlists/{playlist}/tracks", {"limit": 100}, True),
        ("extended", "/v1/playlists/{playlist}/items", {"limit": 51}, False),
    ],
)
async def test_limit_and_offset_validation(
    sim_api: Any, mode: str, path: str, params: dict[str, Any], ok: bool
) -> None:
    api = await sim_api(CATALOG, mode=mode)
    ids = {
        "album": CATALOG.album_id(*ALBUM),
        "artist": CATALOG.artist_id(ARTIST),
        "playlist": CATALOG.playlist_id(0),
    }
    reply = await api.get(path.format(**ids), **params)
    if ok:
        assert reply.status == 200
    else:
        name = list(params)[-1]  # the parameter under test comes last
        name += " value" if name == "include_groups" else ""
        assert (reply.status, reply.json()) == (400, error(400, f"Invalid {name}"))


@pytest.mark.parametrize("groups", [None, "album", "single,appears_on", "compilation,album"])
async def test_artist_albums_pages_follow_next_to_the_whole_discography(
    sim_api: Any, groups: str | None
) -> None:
    api = await sim_api(CATALOG)
    params: dict[str, Any] = {"limit": 7}
    if groups:
        params["include_groups"] = groups
    reply = await api.get(f"/v1/artists/{CATALOG.artist_id(ARTIST)}/albums", **params)
    seen: list[tuple[str, str]] = []
    while True:
        assert reply.status == 200
        page = reply.json()
        assert page["href"].startswith(api.server.url)
        seen += [(item["id"], item["album_group"]) for item in page["items"]]
        if page["next"] is None:
            break
        assert "include_groups" in page["next"] or not groups
        reply = await api.request("GET", page["next"])
    wanted = tuple(GROUPS) if groups is None else tuple(g for g in GROUPS if g in groups)
    expected = [(CATALOG.album_id(i, a), g) for i, a, g in M.discography(ARTIST, wanted)]
    assert seen == expected and page["total"] == len(expected)


async def test_album_tracks_paging_and_previous_links(sim_api: Any) -> None:
    api = await sim_api(CATALOG)
    key = next(
        (i, a) for i in EXISTING for a in range(M.artist(i).albums) if M.album(i, a).tracks > 50
    )
    total = M.album(*key).tracks
    page = (
        await api.get(f"/v1/albums/{CATALOG.album_id(*key)}/tracks", offset=20, limit=20)
    ).json()
    assert [t["track_number"] for t in page["items"]] == list(range(21, 41))
    assert page["total"] == total and "offset=0&limit=20" in page["previous"]
    assert "offset=40&limit=20" in page["next"]
    last = (await api.get(f"/v1/albums/{CATALOG.album_id(*key)}/tracks", offset=total - 1)).json()
    assert len(last["items"]) == 1 and last["next"] is None
    beyond = (await api.get(f"/v1/albums/{CATALOG.album_id(*key)}/tracks", offset=total)).json()
    assert beyond["items"] == []


async def test_search(sim_api: Any) -> None:
    api = await sim_api(CATALOG)
    word = M.artist(ARTIST).name.split()[1]
    reply = await api.get("/v1/search", q=word.lower(), type="artist,track", limit=5)
    assert reply.status == 200
    body = reply.json()
    assert set(body) == {"artists", "tracks"}
    names = [a["name"] for a in body["artists"]["items"]]
    assert names and all(word in n for n in names)
    assert body["artists"]["total"] == len(M.search_artists(word))
    for params, message in (
        ({"type": "artist"}, "No search query"),
        ({"q": "x"}, "Missing parameter type"),
        ({"q": "x", "type": "artist,show"}, "Bad search type field"),
    ):
        reply = await api.get("/v1/search", **params)
        assert (reply.status, reply.json()) == (400, error(400, message))


def search_ids(kind: str, keys: tuple[Any, ...]) -> list[str]:
    mint = {"artist": CATALOG.artist_id, "playlist": CATALOG.playlist_id}.get(kind)
    if mint is not None:
        return [mint(key) for key in keys]
    mint_key = CATALOG.album_id if kind == "album" else CATALOG.track_id
    return [mint_key(*key) for key in keys]


SEARCHES = {
    "artist": ("e", M.search_artists),
    "album": ("love", M.search_albums),
    "track": ("night", M.search_tracks),
    "playlist": ("mix", M.search_playlists),
}


@pytest.mark.parametrize("mode", ["extended", "development"])
@pytest.mark.parametrize("kind", list(SEARCHES))
async def test_typed_search_pages_to_the_end_of_its_results(
    sim_api: Any, kind: str, mode: str
) -> None:
    api = await sim_api(CATALOG, mode=mode)
    query, find = SEARCHES[kind]
    limit = 7  # within both modes' maximum, and small enough for several pages
    reply = await api.get("/v1/search", q=query, type=kind, limit=limit)
    seen: list[str] = []
    pages = 0
    while True:
        assert reply.status == 200
        body = reply.json()
        assert list(body) == [f"{kind}s"]
        page = body[f"{kind}s"]
        assert all(item["type"] == kind for item in page["items"])
        seen += [item["id"] for item in page["items"]]
        pages += 1
        if page["next"] is None or pages == 4:
            break
        reply = await api.request("GET", page["next"])
    expected = search_ids(kind, find(query))
    assert page["total"] == len(expected) > 2 * limit
    assert seen == expected[: 4 * limit]


async def test_genre_filters_artists_and_tracks_by_the_main_artists_genres(sim_api: Any) -> None:
    api = await sim_api(CATALOG)
    genre = M.artist(ARTIST).genres[0] if M.artist(ARTIST).genres else "folk"
    with_genre = [i for i in EXISTING if genre in M.artist(i).genres]
    quoted = f'genre:"{genre.upper()}"'
    artists = (await api.get("/v1/search", q=quoted, type="artist", limit=50)).json()["artists"]
    assert [a["id"] for a in artists["items"]] == [CATALOG.artist_id(i) for i in with_genre][:50]
    assert all(genre in a["genres"] for a in artists["items"])
    word = M.artist(with_genre[0]).name.split()[1]
    narrowed = [i for i in with_genre if word in M.artist(i).name]
    both = (await api.get("/v1/search", q=f"{word} {quoted}", type="artist")).json()["artists"]
    assert both["total"] == len(narrowed) >= 1
    tracks = (await api.get("/v1/search", q=quoted, type="track", limit=50)).json()["tracks"]
    assert tracks["total"] > 0
    for track in tracks["items"]:
        main = CATALOG.decode(track["artists"][0]["id"])
        assert main is not None and genre in M.artist(main.main).genres
    # The filter is for artists and tracks: elsewhere the query is a plain substring.
    albums = (await api.get("/v1/search", q=quoted, type="album,playlist")).json()
    assert albums["albums"]["total"] == albums["playlists"]["total"] == 0
    if " " not in genre:  # an unquoted one-word genre works alike
        unquoted = await api.get("/v1/search", q=f"genre:{genre}", type="artist", limit=50)
        assert unquoted.json()["artists"]["total"] == len(with_genre)


def playlist_with_every_kind() -> int:
    for q in range(CATALOG.playlists):
        items = [M.playlist_item(q, k) for k in range(M.playlist(q).items)]
        if {i.kind for i in items} == {"track", "episode", "local", "removed"} and not all(
            i.added_by_owner for i in items
        ):
            return q
    raise AssertionError("no playlist holds every kind of item")


async def test_playlist_items_of_every_kind_on_both_routes_and_embedded(sim_api: Any) -> None:
    api = await sim_api(CATALOG)
    q = playlist_with_every_kind()
    playlist_id = CATALOG.playlist_id(q)
    total = M.playlist(q).items
    by_route = {}
    for route, limit in (("items", 50), ("tracks", 100)):
        reply = await api.get(f"/v1/playlists/{playlist_id}/{route}", limit=limit)
        collected = []
        while True:
            page = reply.json()
            assert page["limit"] == limit and page["total"] == total
            collected += page["items"]
            if page["next"] is None:
                break
            reply = await api.request("GET", page["next"])
        by_route[route] = collected
    assert by_route["items"] == by_route["tracks"] and len(by_route["items"]) == total
    embedded = (await api.get(f"/v1/playlists/{playlist_id}")).json()
    assert embedded["items"] == embedded["tracks"]
    assert embedded["items"]["items"] == by_route["items"][:50]
    owner = M.playlist(q).owner
    for k, item in enumerate(by_route["items"]):
        entry = M.playlist_item(q, k)
        assert item["item"] == item["track"]
        assert item["added_at"] == entry.added_at
        assert item["added_by"] == (
            None if not entry.added_by_owner else {**item["added_by"], "id": owner}
        )
        assert item["is_local"] == (entry.kind == "local")
        track = item["track"]
        if entry.kind == "removed":
            assert track is None
        elif entry.kind == "local":
            assert track["type"] == "track" and track["is_local"] is True
            assert track["id"] is None and track["href"] is None
            assert track["uri"].startswith("spotify:local:")
            assert track["uri"].endswith(f":{track['duration_ms'] // 1000}")
        elif entry.kind == "episode":
            assert track["type"] == "episode" and track["show"]["type"] == "show"
            assert track["id"] == CATALOG.episode_id(*entry.episode)  # type: ignore[misc]
            alone = await api.get(f"/v1/episodes/{track['id']}")
            assert alone.status == 200 and alone.json() == track
        else:
            assert track["id"] == CATALOG.track_id(*entry.track)  # type: ignore[misc]
            assert track["is_local"] is False


async def test_episodes_of_unknown_shows_or_numbers_are_404(sim_api: Any) -> None:
    api = await sim_api(CATALOG)
    shows = M.show(3).episodes
    assert (await api.get(f"/v1/episodes/{CATALOG.episode_id(3, shows)}")).status == 200
    for unknown in (CATALOG.episode_id(3, shows + 1), CATALOG.show_id(3), CATALOG.track_id(*TRACK)):
        assert (await api.get(f"/v1/episodes/{unknown}")).status == 404


# -- modes -----------------------------------------------------------------------------------


async def test_development_mode_refusals(sim_api: Any) -> None:
    api = await sim_api(CATALOG, mode="development")
    artist, track = CATALOG.artist_id(ARTIST), CATALOG.track_id(*TRACK)
    for path, params in (
        ("/v1/artists", {"ids": artist}),
        ("/v1/albums", {"ids": CATALOG.album_id(*ALBUM)}),
        ("/v1/tracks", {"ids": track}),
        (f"/v1/artists/{artist}/top-tracks", {}),
    ):
        reply = await api.get(path, **params)
        assert reply.status == 403, path
    assert (await api.get(f"/v1/artists/{artist}/related-artists")).status == 404
    for path, params in (
        (f"/v1/audio-features/{track}", {}),
        ("/v1/audio-features", {"ids": track}),
    ):
        reply = await api.get(path, **params)
        assert (reply.status, reply.body) == (403, b'{"error":{"status":403}}')
    default_page = (await api.get(f"/v1/artists/{artist}/albums")).json()
    assert default_page["limit"] == 5
    # album_group is gone for development-mode apps; external_ids came back in March 2026.
    assert default_page["items"] and all("album_group" not in a for a in default_page["items"])
    assert "external_ids" in (await api.get(f"/v1/tracks/{track}")).json()
    assert "external_ids" in (await api.get(f"/v1/albums/{CATALOG.album_id(*ALBUM)}")).json()


async def test_extended_mode_serves_everything(sim_api: Any) -> None:
    api = await sim_api(CATALOG)
    artist = CATALOG.artist_id(ARTIST)
    related = (await api.get(f"/v1/artists/{artist}/related-artists")).json()["artists"]
    assert [a["id"] for a in related] == [CATALOG.artist_id(j) for j in M.related(ARTIST)]
    top = (await api.get(f"/v1/artists/{artist}/top-tracks")).json()["tracks"]
    assert 0 < len(top) <= 10 and all(t["artists"][0]["id"] == artist for t in top)
    assert (await api.get(f"/v1/artists/{artist}")).json()["popularity"] >= 0


# -- routing and counters --------------------------------------------------------------------


async def test_trailing_slashes_and_unknown_routes(sim_api: Any) -> None:
    api = await sim_api(CATALOG)
    for path in (
        f"/v1/artists/{CATALOG.artist_id(ARTIST)}/",
        f"/v1/albums/{CATALOG.album_id(*ALBUM)}/tracks/",
        "/v1/search/",
    ):
        reply = await api.get(path, q="a", type="artist")
        assert reply.status == 200, path
    token = await api.request(
        "POST",
        "/api/token/",
        auth=False,
        data={
            "grant_type": "client_credentials",
            "client_id": "sim-client",
            "client_secret": "sim-secret",
        },
    )
    assert token.status == 200
    reply = await api.get("/v1/nothing-here")
    assert (reply.status, reply.json()) == (404, error(404, "Service not found"))


async def test_stats_count_requests_by_endpoint_status_and_account(sim_api: Any) -> None:
    clients = (
        SimClient("a1", "s", "acct-a"),
        SimClient("a2", "s", "acct-a"),
        SimClient("b", "s", "acct-b"),
    )
    api = await sim_api(CATALOG, clients=clients, latency_ms=30, fault_seed=3)
    api.server.reset_stats()
    for client in clients:
        await api.authenticate(client)
        await api.get(f"/v1/artists/{CATALOG.artist_id(ARTIST)}")
    await api.get("/v1/artists/bad")
    await asyncio.gather(*(api.get(f"/v1/albums/{CATALOG.album_id(*ALBUM)}") for _ in range(8)))
    reply = await api.request("GET", "/__stats", auth=False)
    stats = reply.json()
    assert stats == await api.server.stats()
    assert stats["total"] == 3 + 3 + 1 + 8
    assert stats["by_endpoint"] == {"token": 3, "artists": 4, "album": 8}
    assert stats["by_status"] == {"200": 14, "400": 1}
    assert stats["by_account"] == {"acct-a": 2 + 2, "acct-b": 2 + 1 + 8}
    assert stats["throttled"] == 0 and stats["in_flight"] == 0
    assert 2 <= stats["peak_concurrency"] <= 8
    assert stats["faults"] == {"latency": 15}
    reset = (await api.request("POST", "/__stats/reset", auth=False)).json()
    assert reset["total"] == 0 and reset["by_endpoint"] == {} and reset["faults"] == {}


def test_account_budget_follows_the_client_rates() -> None:
    config = SimConfig(
        rate=9,
        clients=(SimClient("a", "s", "x", 3), SimClient("b", "s", "x"), SimClient("c", "s", "y")),
    )
    assert config.account_rates() == {"x": 3, "y": 9}
    with pytest.raises(ValueError, match="disagree"):
        SimConfig(clients=(SimClient("a", "s", "x", 3), SimClient("b", "s", "x", 4)))
