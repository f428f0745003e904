"""Ground truth equals what a naive exhaustive crawl over HTTP finds, call counts included.

The naive crawl below fetches everything one object at a time and follows every `next`
link; its result sets must equal `ground_truth`'s, and for the endpoints where the minimum
is fixed by paging (not by batching) its call counts must too.
"""

from __future__ import annotations

import math
from collections import deque
from typing import Any

import pytest

from crawler.sim.catalog import Catalog
from crawler.sim.groundtruth import Expansion, GroundTruth, Seeds, ground_truth

CATALOG = Catalog(40, seed=12)
M = CATALOG.model
PAGED = ("search", "playlist", "playlist.items", "related_artists", "artist.albums", "album.tracks")


def seeds() -> Seeds:
    first = next(i for i in range(10) if M.artist(i).exists and M.artist(i).albums)
    far = next(i for i in range(25, 40) if M.artist(i).albums > 1)
    word = M.artist(30).name.split()[1]
    # A track no album page or playlist of these seeds lists: its fetch is the only one needed.
    listed = {first, far, *M.search_artists(word)[:10]}
    playlist_items = {M.playlist_item(2, k) for k in range(M.playlist(2).items)}
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
        search=(word,),
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
        self.seen: set[str] = set()
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

    async def run(self, seeds: Seeds) -> None:
        for spotify_id in seeds.artists:
            self.push("artist", spotify_id)
        for text in seeds.search:
            found = await self.json("/v1/search", q=text, type="artist", limit=10)
            for artist in found["artists"]["items"]:
                self.push("artist", artist["id"])
        for spotify_id in seeds.albums:
            self.push("album", spotify_id)
        for spotify_id in seeds.tracks:
            track = await self.json(f"/v1/tracks/{spotify_id}")
            if track:
                self.add_track(track)
        for spotify_id in seeds.playlists:
            playlist = await self.json(f"/v1/playlists/{spotify_id}")
            for item in await self.pages(playlist["items"]):
                self.add_track(item["track"])
        while self.queue:
            kind, spotify_id = self.queue.popleft()
            await (self.artist if kind == "artist" else self.album)(spotify_id)

    async def artist(self, spotify_id: str) -> None:
        if await self.json(f"/v1/artists/{spotify_id}") is None:
            self.missing.add(spotify_id)
            return
        self.artists.add(spotify_id)
        if self.expand.related_artists and self.extended:
            for artist in (await self.json(f"/v1/artists/{spotify_id}/related-artists"))["artists"]:
                self.push("artist", artist["id"])
        if self.expand.artist_albums:
            first = await self.json(
                f"/v1/artists/{spotify_id}/albums",
                include_groups=",".join(self.expand.artist_albums),
                limit=50 if self.extended else 10,
            )
            for album in await self.pages(first):
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
    assert len(truth.tracks) > 20 and truth.missing_artists
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
    # Only the track seed is not already known from an album page or a playlist.
    assert auto.calls["track"] == off.calls["track"] == 1
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
