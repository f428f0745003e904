"""What an exhaustive crawl of a simulated catalog must write, and the fewest calls it needs.

The crawl semantics (which the crawler implements) are:

1. Start sets: artist seeds plus the first page (limit 10) of an artist search per search
   seed; album seeds; track seeds; every item of every playlist seed (1 playlist call with
   its embedded first 50 items + 1 call per further page of 50).
2. Every artist is fetched (batches of 50 in extended mode, one GET each in development);
   deleted or unknown artists are `missing_artists` and are not expanded.
3. An existing artist adds its related artists (extended mode only, 1 call each) and its
   albums in the `artist_albums` groups (max(1, ceil(n/50)) calls extended, page size 10 in
   development).
4. Every album is fetched (batches of 20 extended, single GETs development); its first 50
   tracks are embedded.  With `album_tracks` all its tracks join the track set, at
   ceil((n-50)/50) extra calls for albums of more than 50 tracks.
5. Every track is written.  Calls: extended with tracks True/"auto" → ceil(|T|/50) batches;
   development with tracks True → one GET per track; otherwise only tracks known solely from
   track seeds are fetched, one GET each (album pages and playlist items already carry them).
6. With `track_artists`, every artist credited on a track joins the artist set (to a fixpoint).
7. With `audio_features` (extended only) features of all tracks cost ceil(|T|/100) calls.

The computation walks the model directly (no HTTP, no JSON).  Albums whose whole track list
is in the crawl are kept as albums, not as a million track tuples: their credited artists are
{owner} ∪ featured (every featured artist is credited on at least one track).
"""

from __future__ import annotations

import math
from collections import Counter, deque
from dataclasses import dataclass
from typing import Literal

from crawler.sim.catalog import Catalog
from crawler.sim.config import Mode
from crawler.sim.ids import Kind
from crawler.sim.model import GROUPS, AlbumKey, TrackKey
from crawler.sim.render import ALBUM_EMBEDDED_TRACKS, PLAYLIST_EMBEDDED_ITEMS

SEARCH_SEED_LIMIT = 10
BATCH = {"artists": 50, "albums": 20, "tracks": 50, "audio_features": 100}
PAGE = 50
DEV_ALBUMS_PAGE = 10


@dataclass(frozen=True)
class Seeds:
    artists: tuple[str, ...] = ()
    albums: tuple[str, ...] = ()
    tracks: tuple[str, ...] = ()
    playlists: tuple[str, ...] = ()
    search: tuple[str, ...] = ()


@dataclass(frozen=True)
class Expansion:
    related_artists: bool = False
    artist_albums: tuple[str, ...] = ()
    album_tracks: bool = False
    tracks: bool | Literal["auto"] = "auto"
    audio_features: bool = False
    track_artists: bool = False

    def __post_init__(self) -> None:
        unknown = set(self.artist_albums) - set(GROUPS)
        if unknown:
            raise ValueError(f"unknown include_groups: {sorted(unknown)}")


@dataclass(frozen=True)
class GroundTruth:
    artists: frozenset[str]
    missing_artists: frozenset[str]
    albums: frozenset[str]
    tracks: frozenset[str]
    audio_features: frozenset[str]
    calls: dict[str, int]

    @property
    def min_calls(self) -> int:
        return sum(self.calls.values())


def _pages(n: int, size: int) -> int:
    return math.ceil(max(0, n) / size)


class _Crawl:
    """Breadth-first closure of the crawl rules over catalog indices."""

    def __init__(self, catalog: Catalog, expand: Expansion, extended: bool) -> None:
        self.catalog = catalog
        self.model = catalog.model
        self.expand = expand
        self.extended = extended
        self.calls: Counter[str] = Counter()
        self.artists: set[int] = set()
        self.unknown_artists: set[str] = set()
        self.albums: set[AlbumKey] = set()
        self.unknown_albums = 0
        self.full_albums: set[AlbumKey] = set()
        self.loose_tracks: set[TrackKey] = set()
        self.paged_tracks: set[TrackKey] = set()
        self.unknown_tracks = 0
        self._artist_queue: deque[int] = deque()
        self._album_queue: deque[AlbumKey] = deque()
        self._track_queue: deque[TrackKey] = deque()

    # -- discovery -------------------------------------------------------------------------

    def add_artist(self, i: int) -> None:
        if i not in self.artists:
            self.artists.add(i)
            self._artist_queue.append(i)

    def add_album(self, key: AlbumKey) -> None:
        if key not in self.albums:
            self.albums.add(key)
            self._album_queue.append(key)

    def add_track(self, key: TrackKey, paged: bool) -> None:
        """`paged`: the track arrived as an object in a page (no fetch needed to know it)."""
        if key[:2] in self.full_albums:
            return
        if paged:
            self.paged_tracks.add(key)
        if key not in self.loose_tracks:
            self.loose_tracks.add(key)
            self._track_queue.append(key)

    def seed(self, seeds: Seeds) -> None:
        for spotify_id in seeds.artists:
            ref = self.catalog.decode(spotify_id)
            if ref is not None and ref.kind == Kind.ARTIST and ref.main < self.model.artists:
                self.add_artist(ref.main)
            else:
                self.unknown_artists.add(spotify_id)
        for text in seeds.search:
            self.calls["search"] += 1
            for i in self.model.search_artists(text)[:SEARCH_SEED_LIMIT]:
                self.add_artist(i)
        for spotify_id in seeds.albums:
            ref = self.catalog.lookup(spotify_id, Kind.ALBUM)
            if ref is None:
                self.unknown_albums += 1
            else:
                self.add_album((ref.main, ref.album))
        for spotify_id in seeds.tracks:
            ref = self.catalog.lookup(spotify_id, Kind.TRACK)
            if ref is None:
                self.unknown_tracks += 1
            else:
                self.add_track((ref.main, ref.album, ref.track), paged=False)
        for spotify_id in seeds.playlists:
            self.calls["playlist"] += 1
            ref = self.catalog.lookup(spotify_id, Kind.PLAYLIST)
            if ref is None:
                continue
            items = self.model.playlist(ref.main).items
            self.calls["playlist.items"] += _pages(items - PLAYLIST_EMBEDDED_ITEMS, PAGE)
            for k in range(items):
                key = self.model.playlist_item(ref.main, k)
                if key is not None:
                    self.add_track(key, paged=True)

    # -- expansion -------------------------------------------------------------------------

    def run(self) -> None:
        while self._artist_queue or self._album_queue or self._track_queue:
            while self._artist_queue:
                self._expand_artist(self._artist_queue.popleft())
            while self._album_queue:
                self._expand_album(self._album_queue.popleft())
            while self._track_queue:
                self._expand_track(self._track_queue.popleft())

    def _expand_artist(self, i: int) -> None:
        if not self.model.artist(i).exists:
            return
        if self.expand.related_artists and self.extended:
            self.calls["related_artists"] += 1
            for j in self.model.related(i):
                self.add_artist(j)
        groups = tuple(g for g in GROUPS if g in self.expand.artist_albums)
        if groups:
            found = self.model.discography(i, groups)
            page = PAGE if self.extended else DEV_ALBUMS_PAGE
            self.calls["artist.albums"] += max(1, _pages(len(found), page))
            for owner, a, _ in found:
                self.add_album((owner, a))

    def _expand_album(self, key: AlbumKey) -> None:
        if not self.expand.album_tracks:
            return
        rec = self.model.album(*key)
        self.calls["album.tracks"] += _pages(rec.tracks - ALBUM_EMBEDDED_TRACKS, PAGE)
        for t in range(1, rec.tracks + 1):
            self.paged_tracks.discard((*key, t))
            self.loose_tracks.discard((*key, t))
        self.full_albums.add(key)
        if self.expand.track_artists:
            self.add_artist(rec.artist)
            for j in rec.featured:
                self.add_artist(j)

    def _expand_track(self, key: TrackKey) -> None:
        if self.expand.track_artists and key[:2] not in self.full_albums:
            for j in self.model.track(*key).credits:
                self.add_artist(j)

    # -- results ---------------------------------------------------------------------------

    def count_fetches(self, track_count: int) -> None:
        artist_fetches = len(self.artists) + len(self.unknown_artists)
        album_fetches = len(self.albums) + self.unknown_albums
        if self.extended:
            self.calls["artists.batch"] += _pages(artist_fetches, BATCH["artists"])
            self.calls["albums.batch"] += _pages(album_fetches, BATCH["albums"])
        else:
            self.calls["artists"] += artist_fetches
            self.calls["album"] += album_fetches
        fetch_all = self.expand.tracks is True or (self.expand.tracks == "auto" and self.extended)
        wanted = track_count + self.unknown_tracks
        if fetch_all and self.extended:
            self.calls["tracks.batch"] += _pages(wanted, BATCH["tracks"])
        elif fetch_all:
            self.calls["track"] += wanted
        else:
            seed_only = sum(1 for key in self.loose_tracks if key not in self.paged_tracks)
            self.calls["track"] += seed_only + self.unknown_tracks
        if self.expand.audio_features and self.extended:
            self.calls["audio_features.batch"] += _pages(track_count, BATCH["audio_features"])


def ground_truth(
    catalog: Catalog, seeds: Seeds, expand: Expansion, mode: Mode = "extended"
) -> GroundTruth:
    """Sets of IDs an exhaustive crawl writes, and its per-endpoint minimum call counts."""
    crawl = _Crawl(catalog, expand, extended=mode == "extended")
    crawl.seed(seeds)
    crawl.run()
    model = catalog.model
    track_ids: list[str] = []
    feature_ids: list[str] = []
    want_features = expand.audio_features and mode == "extended"
    for i, a in crawl.full_albums:
        ids = catalog.track_ids_of(i, a)
        track_ids.extend(ids)
        if want_features:
            feature_ids.extend(ids[t - 1] for t in model.tracks_with_features(i, a))
    for key in crawl.loose_tracks:
        track_ids.append(catalog.track_id(*key))
        if want_features and model.track(*key).has_features:
            feature_ids.append(track_ids[-1])
    crawl.count_fetches(len(track_ids))
    found = {True: set[str](), False: set[str]()}
    for i in crawl.artists:
        found[model.artist(i).exists].add(catalog.artist_id(i))
    return GroundTruth(
        artists=frozenset(found[True]),
        missing_artists=frozenset(found[False] | crawl.unknown_artists),
        albums=frozenset(catalog.album_id(i, a) for i, a in crawl.albums),
        tracks=frozenset(track_ids),
        audio_features=frozenset(feature_ids),
        calls={name: n for name, n in sorted(crawl.calls.items()) if n},
    )
