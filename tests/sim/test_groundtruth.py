"""Ground truth equals what a naive exhaustive crawl over HTTP finds, call counts included.

The naive crawl below fetches everything one object at a time and follows every `next`
link; its result sets (entities and edges) must equal `ground_truth`'s, and for the
endpoints where the minimum is fixed by paging (not by batching) its call counts must too.
"""

from __future__ import annotations

import math
from collections import deque
from typing import Any

import pytest

from crawler.sim.catalog import Catalog
from crawler.sim.groundtruth import Expansion, GroundTruth, Search, Seeds, ground_truth
from crawler.sim.words import GENRES

CATALOG = Catalog(40, seed=12)
M = CATALOG.model
GENRE = max(GENRES, key=lambda g: sum(g in M.artist(i).genres for i in range(40)))
TRACK_SEARCH = Search(f'genre:"{GENRE}"', "track", 23)  # quoted: the genre has two words
PAGED = ("search", "playlist", "playlist.items", "related_artists", "artist.albums", "album.tracks")


def seeds() -> Seeds:
    first = next(i for i in range(10) if M.artist(i).exists and M.artist(i).albums)
    far = next(i for i in range(25, 40) if M.artist(i).albums > 1)
    word = M.artist(30).name.split()[1]
    # A track no album page or playlist of these seeds lists: its fetch is the only one needed.
    listed = {first, far, *M.search_artists(word)[:10]}
    playlist_items = {M.playlist_item(2, k).track for k in range(M.playlist(2).items)}
    lone = next(
        (i, a, 1)
        for i in range(11, 40)
        if i not in listed
        for a in range(M.artist(i).albums)
        if M.album(i, a).group == "single" and (i, a, 1) not in playlist_items
    )
    return Seeds(
        artists=(CATALOG.artist_id(first), "0" * 22),
        albums=(CATALOG.album_id(far, 1),),
        tracks=(CATALOG.track_id(*lone),),
        playlists=(CATALOG.playlist_id(2),),
        search=(
            word,
            TRACK_SEARCH,
            Search("love", "album", 3),
            Search("mix", "playlist", 2),
        ),
    )


class NaiveCrawl:
    def __init__(self, api: Any, expand: Expansion, extended: bool) -> None:
        self.api = api
        self.expand = expand
        self.extended = extended
        self.artists: set[str] = set()
        self.missing: set[str] = set()
        self.albums: set[str] = set()
        self.tracks: dict[str, list[str]] = {}
        self.playlists: set[str] = set()
        self.related: set[tuple[str, str, int]] = set()
        self.artist_albums: set[tuple[str, str, str | None, int]] = set()
        self.playlist_items: set[tuple] = set()
        self.seen: set[tuple[str, str]] = set()
        self.queue: deque[tuple[str, str]] = deque()

    async def json(self, path: str, **params: Any) -> Any:
        reply = await self.api.get(path, **params)
        return reply.json() if reply.status == 200 else None

    async def pages(self, first: dict[str, Any]) -> list[dict[str, Any]]:
        items, page = list(first["items"]), first
        while page["next"]:
            page = (await self.api.request("GET", page["next"])).json()
            items += page["items"]
        return items

    def push(self, kind: str, spotify_id: str) -> None:
        if (kind, spotify_id) not in self.seen:
            self.seen.add((kind, spotify_id))
            self.queue.append((kind, spotify_id))

    def add_track(self, track: dict[str, Any]) -> None:
        if track["id"] not in self.tracks:
            self.tracks[track["id"]] = [a["id"] for a in track["artists"]]
            if self.expand.track_artists:
                for artist in track["artists"]:
                    self.push("artist", artist["id"])

    async def search(self, seed: Search) -> list[dict[str, Any]]:
        """Pages of the largest size the mode allows, the last one cut to the limit."""
        page = 50 if self.extended else 10
        found: list[dict[str, Any]] = []
        while True:
            want = min(page, seed.limit - len(found))
            body = await self.json(
                "/v1/search", q=seed.q, type=seed.type, limit=want, offset=len(found)
            )
            result = body[f"{seed.type}s"]
            found += result["items"]
            if len(found) >= seed.limit or result["next"] is None:
                return found

    async def run(self, seeds: Seeds) -> None:
        for spotify_id in seeds.artists:
            self.push("artist", spotify_id)
        for seed in seeds.searches():
            for found in await self.search(seed):
                if seed.type == "track":
                    track = await self.json(f"/v1/tracks/{found['id']}")
                    self.add_track(track)
                else:
                    self.push(seed.type, found["id"])
        for spotify_id in seeds.albums:
            self.push("album", spotify_id)
        for spotify_id in seeds.tracks:
            track = await self.json(f"/v1/tracks/{spotify_id}")
            if track:
                self.add_track(track)
        for spotify_id in seeds.playlists:
            self.push("playlist", spotify_id)
        while self.queue:
            kind, spotify_id = self.queue.popleft()
            await getattr(self, kind)(spotify_id)

    async def playlist(self, spotify_id: str) -> None:
        playlist = await self.json(f"/v1/playlists/{spotify_id}")
        if playlist is None:
            return
        self.playlists.add(spotify_id)
        for position, item in enumerate(await self.pages(playlist["items"])):
            track = item["track"]
            assert track == item["item"]
            if track is not None and track["type"] == "track" and not track["is_local"]:
                self.add_track(track)
            adder = item["added_by"]["id"] if item["added_by"] else None
            self.playlist_items.add(
                (
                    spotify_id,
                    position,
                    track and track["type"],
                    track and track["id"],
                    item["added_at"],
                    adder,
                    item["is_local"],
                )
            )

    async def artist(self, spotify_id: str) -> None:
        if await self.json(f"/v1/artists/{spotify_id}") is None:
            self.missing.add(spotify_id)
            return
        self.artists.add(spotify_id)
        if self.expand.related_artists and self.extended:
            related = (await self.json(f"/v1/artists/{spotify_id}/related-artists"))["artists"]
            for rank, artist in enumerate(related):
                self.related.add((spotify_id, artist["id"], rank))
                self.push("artist", artist["id"])
        if self.expand.artist_albums:
            first = await self.json(
                f"/v1/artists/{spotify_id}/albums",
                include_groups=",".join(self.expand.artist_albums),
                limit=50 if self.extended else 10,
            )
            for position, album in enumerate(await self.pages(first)):
                group = album.get("album_group")
                self.artist_albums.add((spotify_id, album["id"], group, position))
                self.push("album", album["id"])

    async def album(self, spotify_id: str) -> None:
        album = await self.json(f"/v1/albums/{spotify_id}")
        if album is None:
            return
        self.albums.add(spotify_id)
        if self.expand.album_tracks:
            for track in await self.pages(album["tracks"]):
                self.add_track(track)

    async def features(self) -> set[str]:
        if not (self.expand.audio_features and self.extended):
            return set()
        ids = sorted(self.tracks)
        found: set[str] = set()
        for k in range(0, len(ids), 100):
            batch = await self.json("/v1/audio-features", ids=",".join(ids[k : k + 100]))
            found |= {f["id"] for f in batch["audio_features"] if f}
        return found


EXPANSIONS = {
    "extended-everything": (
        "extended",
        Expansion(True, ("album", "single", "compilation", "appears_on"), True, "auto", True, True),
    ),
    "extended-albums-only": ("extended", Expansion(False, ("album",), True, True, True, False)),
    "development-credits": (
        "development",
        Expansion(True, ("single", "appears_on"), False, "auto", True, True),
    ),
}


@pytest.mark.parametrize("name", EXPANSIONS)
async def test_ground_truth_matches_a_naive_http_crawl(sim_api: Any, name: str) -> None:
    mode, expand = EXPANSIONS[name]
    api = await sim_api(CATALOG, mode=mode)
    api.server.reset_stats()
    crawl = NaiveCrawl(api, expand, mode == "extended")
    await crawl.run(seeds())
    features = await crawl.features()
    truth = ground_truth(CATALOG, seeds(), expand, mode)
    assert truth.artists == crawl.artists
    assert truth.missing_artists == crawl.missing
    assert truth.albums == crawl.albums
    assert truth.tracks == set(crawl.tracks)
    assert truth.audio_features == features
    assert truth.playlists == crawl.playlists
    assert truth.related_artists == crawl.related
    assert truth.artist_albums == crawl.artist_albums
    assert truth.playlist_items == crawl.playlist_items
    assert len(truth.tracks) > 20 and truth.missing_artists
    # Every kind of playlist item, and the searches' playlists besides the seed.
    assert {
        (kind, item_id is None, local) for _, _, kind, item_id, _, _, local in truth.playlist_items
    } == {
        ("track", False, False),
        ("track", True, True),
        ("episode", False, False),
        (None, True, False),
    }
    assert None in {adder for *_, adder, _ in truth.playlist_items}
    assert len(truth.playlists) == 3
    if mode == "extended" and expand.related_artists:
        assert truth.related_artists
    assert bool(truth.artist_albums) == bool(expand.artist_albums)
    assert {group is None for _, _, group, _ in truth.artist_albums} <= {mode == "development"}
    counted = (await api.server.stats())["by_endpoint"]
    assert {k: truth.calls.get(k, 0) for k in PAGED} == {k: counted.get(k, 0) for k in PAGED}


def test_batch_call_counts_follow_the_documented_formulas() -> None:
    truth = ground_truth(CATALOG, seeds(), EXPANSIONS["extended-everything"][1], "extended")
    fetched_artists = len(truth.artists) + len(truth.missing_artists)
    assert truth.calls["artists.batch"] == math.ceil(fetched_artists / 50)
    assert truth.calls["albums.batch"] == math.ceil(len(truth.albums) / 20)
    assert truth.calls["tracks.batch"] == math.ceil(len(truth.tracks) / 50)
    assert truth.calls["audio_features.batch"] == math.ceil(len(truth.tracks) / 100)
    assert truth.min_calls == sum(truth.calls.values())


def development_truth(tracks: bool | str) -> GroundTruth:
    expand = Expansion(False, ("album",), True, tracks, False, False)  # type: ignore[arg-type]
    return ground_truth(CATALOG, seeds(), expand, "development")


def test_development_track_fetches_depend_on_the_tracks_option() -> None:
    everything, auto, off = (development_truth(t) for t in (True, "auto", False))
    assert everything.tracks == auto.tracks == off.tracks
    assert everything.calls["track"] == len(everything.tracks)
    # Only the track seed, and the tracks found by search on no album crawled and in no
    # playlist, are not already known from a page.
    albums = {CATALOG.decode(album)[1:3] for album in auto.albums}  # type: ignore[index]
    listed = {M.playlist_item(2, k).track for k in range(M.playlist(2).items)}
    searched = [
        k for k in M.search_tracks(TRACK_SEARCH.q)[:23] if k[:2] not in albums and k not in listed
    ]
    assert 0 < len(searched) < 23
    assert auto.calls["track"] == off.calls["track"] == 1 + len(searched)
    assert everything.calls["album"] == len(everything.albums)
    assert everything.calls["artists"] == len(everything.artists) + len(everything.missing_artists)


def test_unknown_seeds_cost_calls_but_write_nothing() -> None:
    truth = ground_truth(
        CATALOG,
        Seeds(albums=("1" * 22,), tracks=("2" * 22,), playlists=("3" * 22,)),
        Expansion(tracks=True),
    )
    assert not (truth.artists or truth.albums or truth.tracks)
    assert truth.calls == {"albums.batch": 1, "tracks.batch": 1, "playlist": 1}


def test_typed_search_seeds_cost_their_pages_and_seed_their_kind() -> None:
    query = TRACK_SEARCH.q
    found = M.search_tracks(query)
    assert len(found) > 60
    for mode, page in (("extended", 50), ("development", 10)):
        truth = ground_truth(
            CATALOG, Seeds(search=(Search(query, "track", 60),)), Expansion(tracks=True), mode
        )
        assert truth.calls["search"] == math.ceil(60 / page)
        assert truth.tracks == {CATALOG.track_id(*key) for key in found[:60]}
    word = M.artist(30).name.split()[1]
    plain = ground_truth(CATALOG, Seeds(search=(word,)), Expansion())
    assert plain == ground_truth(CATALOG, Seeds(search=(Search(word, "artist", 10),)), Expansion())
    assert plain.artists == {CATALOG.artist_id(i) for i in M.search_artists(word)[:10]}
    assert plain.calls["search"] == 1
    nothing = ground_truth(
        CATALOG, Seeds(search=(Search("no such title", "album", 99),)), Expansion()
    )
    assert nothing.calls == {"search": 1} and not nothing.albums
    playlists = M.search_playlists("mix")[:2]
    listed = ground_truth(CATALOG, Seeds(search=(Search("mix", "playlist", 2),)), Expansion())
    assert listed.playlists == {CATALOG.playlist_id(q) for q in playlists}
    assert len(listed.playlist_items) == sum(M.playlist(q).items for q in playlists)
