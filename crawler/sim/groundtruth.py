"""What an exhaustive crawl of a simulated catalog must write, and the fewest calls it needs.

The crawl semantics (which the crawler implements) are:

1. Start sets: artist, album and track seeds; every item of every playlist seed (1 playlist
   call with its embedded first 50 items + 1 call per further page of 50); and the results
   of every search seed `(q, type, limit)`, a plain string being `(q, "artist", 10)`: the
   first min(limit, total) results, in pages of at most 50 (10 in development mode), so
   max(1, ceil(min(limit, total) / page)) calls, become artist, album or track seeds, or
   playlist seeds.
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
   track seeds (and track searches) are fetched, one GET each (album pages and playlist
   items already carry them).  Of a playlist's items only catalog tracks join the track set:
   episodes, local files and removed tracks are written as items and not followed.
6. With `track_artists`, every artist credited on a track joins the artist set (to a fixpoint).
7. With `audio_features` (extended only) features of all tracks cost ceil(|T|/100) calls.

Besides the entities, the crawl writes edges: each related-artists list with ranks, each
artist-albums listing with groups and positions, each playlist and its items.

The computation walks the model directly (no HTTP, no JSON).  Albums whose whole track list
is in the crawl are kept as albums, not as a million track tuples: their credited artists are
{owner} ∪ featured (every featured artist is credited on at least one track).
"""

from __future__ import annotations

import math
from collections import Counter, deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal, NamedTuple

from crawler.sim.catalog import Catalog
from crawler.sim.config import Mode
from crawler.sim.ids import Kind
from crawler.sim.model import GROUPS, AlbumKey, PlaylistItem, TrackKey
from crawler.sim.render import ALBUM_EMBEDDED_TRACKS, PLAYLIST_EMBEDDED_ITEMS

BATCH = {"artists": 50, "albums": 20, "tracks": 50, "audio_features": 100}
PAGE = 50
DEV_PAGE = 10  # development mode's page of artist albums and of search results
SearchType = Literal["artist", "album", "track", "playlist"]
SEARCH_TYPES: tuple[SearchType, ...] = ("artist", "album", "track", "playlist")


class Search(NamedTuple):
    """A search seed: the first `limit` results of `type` matching `q` are seeds."""

    q: str
    type: SearchType = "artist"
    limit: int = 10


@dataclass(frozen=True)
class Seeds:
    artists: tuple[str, ...] = ()
    albums: tuple[str, ...] = ()
    tracks: tuple[str, ...] = ()
    playlists: tuple[str, ...] = ()
    search: tuple[str | Search, ...] = ()  # a plain string is Search(q)

    def searches(self) -> tuple[Search, ...]:
        return tuple(Search(s) if isinstance(s, str) else Search(*s) for s in self.search)


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

    @classmethod
    def full(cls) -> Expansion:
        """Every edge followed, albums in an artist's own groups (appears_on would pull in
        its neighbours' whole discographies): what the tests, benchmarks and soak crawl.
        `dataclasses.asdict` of it is the matching `[expand]` table."""
        return cls(True, ("album", "single", "compilation"), True, "auto", True, True)


# Edge records as tuples, in the field order of their JSON lines (see crawler/sim/verify.py).
RelatedEdge = tuple[str, str, int]  # artist_id, related_artist_id, rank
ArtistAlbumEdge = tuple[str, str, str | None, int]  # artist_id, album_id, album_group, position
# playlist_id, position, item_type, item_id, added_at, added_by, is_local
PlaylistItemEdge = tuple[str, int, str | None, str | None, str, str | None, bool]


@dataclass(frozen=True)
class GroundTruth:
    """The IDs of each entity stream, the tuples of each edge stream, and the minimum calls.

    `related_artists` holds every crawled existing artist's list (extended mode with related
    artists followed), `artist_albums` every such artist's listing in the configured groups
    (group None in development mode, which omits it), `playlist_items` every item of every
    playlist written (item_type None for a removed track; item_id None for it and for local
    files).
    """

    artists: frozenset[str]
    missing_artists: frozenset[str]
    albums: frozenset[str]
    tracks: frozenset[str]
    audio_features: frozenset[str]
    playlists: frozenset[str]
    related_artists: frozenset[RelatedEdge]
    artist_albums: frozenset[ArtistAlbumEdge]
    playlist_items: frozenset[PlaylistItemEdge]
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
        self.groups = tuple(g for g in GROUPS if g in expand.artist_albums)
        self.calls: Counter[str] = Counter()
        self.artists: set[int] = set()
        self.unknown_artists: set[str] = set()
        self.albums: set[AlbumKey] = set()
        self.unknown_albums = 0
        self.full_albums: set[AlbumKey] = set()
        self.loose_tracks: set[TrackKey] = set()
        self.paged_tracks: set[TrackKey] = set()
        self.unknown_tracks = 0
        self.playlists: set[int] = set()
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

    def add_playlist(self, q: int) -> None:
        """A playlist's items are all written; only its catalog tracks are followed."""
        if q in self.playlists:
            return
        self.playlists.add(q)
        self.calls["playlist"] += 1
        items = self.model.playlist(q).items
        self.calls["playlist.items"] += _pages(items - PLAYLIST_EMBEDDED_ITEMS, PAGE)
        for k in range(items):
            track = self.model.playlist_item(q, k).track
            if track is not None:
                self.add_track(track, paged=True)

    def search(self, seed: Search) -> None:
        m = self.model
        finders: dict[str, tuple[Callable[[str], tuple[Any, ...]], Callable[[Any], None]]] = {
            "artist": (m.search_artists, self.add_artist),
            "album": (m.search_albums, self.add_album),
            # Found tracks are fetched, as track seeds are: nothing else lists them.
            "track": (m.search_tracks, lambda key: self.add_track(key, paged=False)),
            "playlist": (m.search_playlists, self.add_playlist),
        }
        find, take = finders[seed.type]
        found = find(seed.q)[: seed.limit]
        for key in found:
            take(key)
        self.calls["search"] += max(1, _pages(len(found), PAGE if self.extended else DEV_PAGE))

    def seed(self, seeds: Seeds) -> None:
        for spotify_id in seeds.artists:
            ref = self.catalog.decode(spotify_id)
            if ref is not None and ref.kind == Kind.ARTIST and ref.main < self.model.artists:
                self.add_artist(ref.main)
            else:
                self.unknown_artists.add(spotify_id)
        for search in seeds.searches():
            self.search(search)
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
            ref = self.catalog.lookup(spotify_id, Kind.PLAYLIST)
            if ref is None:
                self.calls["playlist"] += 1  # a 404, and nothing to write
            else:
                self.add_playlist(ref.main)

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
        if self.groups:
            found = self.model.discography(i, self.groups)
            page = PAGE if self.extended else DEV_PAGE
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

    def edges(self) -> tuple[set[RelatedEdge], set[ArtistAlbumEdge], set[PlaylistItemEdge]]:
        """The edge records of every crawled existing artist and every playlist written."""
        m, aid = self.model, self.catalog.artist_id
        related: set[RelatedEdge] = set()
        listings: set[ArtistAlbumEdge] = set()
        for i in self.artists:
            if not m.artist(i).exists:
                continue
            if self.expand.related_artists and self.extended:
                related.update((aid(i), aid(j), rank) for rank, j in enumerate(m.related(i)))
            for position, (owner, a, group) in enumerate(m.discography(i, self.groups)):
                album_id = self.catalog.album_id(owner, a)
                listings.add((aid(i), album_id, group if self.extended else None, position))
        items: set[PlaylistItemEdge] = set()
        for q in self.playlists:
            playlist_id, owner = self.catalog.playlist_id(q), m.playlist(q).owner
            for k in range(m.playlist(q).items):
                item = m.playlist_item(q, k)
                kind, item_id = _item_identity(self.catalog, item)
                adder = owner if item.added_by_owner else None
                items.add(
                    (playlist_id, k, kind, item_id, item.added_at, adder, item.kind == "local")
                )
        return related, listings, items


def _item_identity(catalog: Catalog, item: PlaylistItem) -> tuple[str | None, str | None]:
    """(item_type, item_id) as a playlist item's record has them: local files are tracks
    without an ID, a removed track is neither."""
    if item.track is not None:
        return "track", catalog.track_id(*item.track)
    if item.episode is not None:
        return "episode", catalog.episode_id(*item.episode)
    return ("track", None) if item.kind == "local" else (None, None)


def ground_truth(
    catalog: Catalog, seeds: Seeds, expand: Expansion, mode: Mode = "extended"
) -> GroundTruth:
    """What an exhaustive crawl writes, stream by stream, and its per-endpoint minimum calls."""
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
    related, listings, items = crawl.edges()
    return GroundTruth(
        artists=frozenset(found[True]),
        missing_artists=frozenset(found[False] | crawl.unknown_artists),
        albums=frozenset(catalog.album_id(i, a) for i, a in crawl.albums),
        tracks=frozenset(track_ids),
        audio_features=frozenset(feature_ids),
        playlists=frozenset(catalog.playlist_id(q) for q in crawl.playlists),
        related_artists=frozenset(related),
        artist_albums=frozenset(listings),
        playlist_items=frozenset(items),
        calls={name: n for name, n in sorted(crawl.calls.items()) if n},
    )
