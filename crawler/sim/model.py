"""The synthetic catalog's structure, as pure functions of (seed, indices).

Nothing is stored: an artist is its index, an album is (artist, ordinal), a track is
(artist, ordinal, number), a playlist is its index, and every attribute is sliced from a
64-bit hash of those.  Relations that the API exposes in both directions are designed so both
directions are cheap: featured artists of an album come from the next `NEIGHBOURHOOD` artist
indices, so an artist's `appears_on` albums are found by looking only at its predecessors.
Bounded LRU caches keep hot records without letting memory grow with the catalog.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from functools import lru_cache
from typing import Literal, NamedTuple, TypeVar

from crawler.sim.hashing import mix, splitmix
from crawler.sim.words import ADJECTIVES, GENRES, LABELS, NOUNS, TITLE_WORDS

NEIGHBOURHOOD = 6
MAX_RELATED = 20
MAX_TOP_TRACKS = 10
GROUPS = ("album", "single", "compilation", "appears_on")
SHOWS = 40  # podcasts, whose episodes playlists hold: a small space of their own
ItemKind = Literal["track", "episode", "local", "removed"]


T = TypeVar("T")


def _has_features(track_hash: int) -> bool:
    return (track_hash >> 24) % 100 >= 5


def _pick(words: tuple[str, ...], h: int) -> str:
    return words[h % len(words)]


def _title(h: int) -> str:
    """Album and track names: two or three title words, so names repeat like real ones do."""
    first, second = _pick(TITLE_WORDS, h), _pick(TITLE_WORDS, h >> 5)
    if h >> 10 & 3 == 0:
        return f"{_pick(ADJECTIVES, h >> 12)} {first} {second}"
    return f"{first} {second}" if first != second else first


class ArtistRec(NamedTuple):
    index: int
    exists: bool
    albums: int
    name: str
    popularity: int
    followers: int
    genres: tuple[str, ...]


class AlbumRec(NamedTuple):
    artist: int
    ordinal: int
    group: str
    tracks: int
    featured: tuple[int, ...]
    anchors: tuple[int, ...]
    name: str
    year: int
    precision: str
    popularity: int
    hash: int


class TrackRec(NamedTuple):
    artist: int
    album: int
    number: int
    name: str
    duration_ms: int
    explicit: bool
    popularity: int
    has_features: bool
    credits: tuple[int, ...]
    hash: int


class PlaylistRec(NamedTuple):
    index: int
    items: int
    name: str
    owner: str
    followers: int
    hash: int


class PlaylistItem(NamedTuple):
    """One entry of a playlist.  Most are catalog tracks; a minority are podcast episodes,
    local files (no ID, a `spotify:local:` URI), tracks since removed (the API sends null),
    and entries whose adder the API no longer names (`added_by` null)."""

    kind: ItemKind
    track: TrackKey | None  # the catalog track of a "track" entry
    episode: EpisodeKey | None  # (show, number) of an "episode" entry
    added_at: str
    added_by_owner: bool  # False: added_by is null
    hash: int


class LocalFile(NamedTuple):
    artist: str
    album: str
    name: str
    duration_ms: int


def local_file(item_hash: int) -> LocalFile:
    """What a "local" playlist entry names: files of the owner's, not catalog entities."""
    h = item_hash
    artist = f"{_pick(ADJECTIVES, h >> 16)} {_pick(NOUNS, h >> 21)}"
    return LocalFile(artist, _title(h >> 26), _title(h >> 40), 90_000 + (h >> 34) % 300_000)


class ShowRec(NamedTuple):
    index: int
    name: str
    publisher: str
    episodes: int
    hash: int


class EpisodeRec(NamedTuple):
    show: int
    number: int
    name: str
    duration_ms: int
    explicit: bool
    release_date: str
    hash: int


TrackKey = tuple[int, int, int]
AlbumKey = tuple[int, int]
EpisodeKey = tuple[int, int]


def _cached(fn: Callable[..., T], size: int) -> Callable[..., T]:
    return lru_cache(maxsize=size)(fn)


class Model:
    """Deterministic structure of a catalog of `artists` artists and `playlists` playlists."""

    def __init__(self, artists: int, seed: int = 1, playlists: int = 20) -> None:
        if artists < 1 or playlists < 0:
            raise ValueError(
                "a catalog needs at least one artist and a non-negative playlist count"
            )
        self.artists = artists
        self.playlists = playlists
        self.seed = seed
        # One pre-mixed key per kind of derivation, so each record costs one or two mixes.
        self._k_artist, self._k_album, self._k_related, self._k_playlist, self._k_item = (
            mix(seed, salt) for salt in range(1, 6)
        )
        self._k_show = mix(seed, 6)
        # Sized for a crawl's locality (an album's tracks come together), not for the catalog:
        # full, they hold some 25 MB; search results (up to 1,000 keys each) some 10 MB.
        self.artist = _cached(self._artist, 1 << 14)
        self.album = _cached(self._album, 1 << 15)
        self.appears_on = _cached(self._appears_on, 1 << 10)
        self.discography = _cached(self._discography, 1 << 10)
        self.related = _cached(self._related, 1 << 10)
        self.search_artists = _cached(self._search_artists, 32)
        self.search_albums = _cached(self._search_albums, 32)
        self.search_tracks = _cached(self._search_tracks, 32)
        self.search_playlists = _cached(self._search_playlists, 32)

    # -- records ---------------------------------------------------------------------------

    def _artist(self, i: int) -> ArtistRec:
        h = splitmix(self._k_artist ^ i)
        exists = h % 1000 >= 30
        size = h >> 10 & 1023
        if not exists or size < 51:
            albums = 0
        elif size < 72:
            albums = 51 + (h >> 20) % 70
        else:
            albums = 1 + (h >> 20) % 24
        genres = tuple(sorted({_pick(GENRES, h >> (28 + 4 * k)) for k in range((h >> 40) % 4)}))
        return ArtistRec(
            index=i,
            exists=exists,
            albums=albums,
            name=f"{_pick(ADJECTIVES, h >> 44)} {_pick(NOUNS, h >> 50)} {i}",
            popularity=(h >> 56) % 101,
            followers=(h >> 24) % 3_000_000,
            genres=genres,
        )

    def _album(self, i: int, a: int) -> AlbumRec:
        h = mix(self._k_album, i, a)
        kind = h % 100
        size = h >> 7 & 1023
        if kind < 30:
            group, tracks = "single", 1 if size < 700 else 2 + size % 2
        elif kind < 38:
            group, tracks = "compilation", 12 + size % 29
        else:
            group = "album"
            tracks = 51 + size % 80 if size < 33 else 6 + size % 17
        featured: list[int] = []
        anchors: list[int] = []
        if self.artists > 1 and h >> 17 & 127 < 51:
            for k in range(1 + (h >> 24 & 15 < 3)):
                f = (i + 1 + (h >> (28 + 3 * k)) % NEIGHBOURHOOD) % self.artists
                if f != i and f not in featured:
                    featured.append(f)
                    anchors.append(1 + (h >> (36 + 8 * k)) % tracks)
        return AlbumRec(
            artist=i,
            ordinal=a,
            group=group,
            tracks=tracks,
            featured=tuple(featured),
            anchors=tuple(anchors),
            name=_title(h >> 52),
            year=1960 + (h >> 20) % 66,
            precision=("day", "day", "day", "year", "month", "day", "day", "day")[h >> 61],
            popularity=(h >> 44) % 101,
            hash=h,
        )

    def tracks_with_features(self, i: int, a: int) -> list[int]:
        """Track numbers of an album whose audio features exist, for whole-catalog scans."""
        h = self.album(i, a)
        return [t for t in range(1, h.tracks + 1) if _has_features(splitmix(h.hash ^ t))]

    def track(self, i: int, a: int, t: int) -> TrackRec:
        album = self.album(i, a)
        h = splitmix(album.hash ^ t)
        credits = [i]
        for k, f in enumerate(album.featured):
            if t == album.anchors[k] or (h >> (8 * k)) % 100 < 40:
                credits.append(f)
        return TrackRec(
            artist=i,
            album=a,
            number=t,
            name=_title(h >> 20),
            duration_ms=90_000 + (h >> 32) % 330_000,
            explicit=h >> 16 & 7 == 0,
            popularity=(h >> 52) % 101,
            has_features=_has_features(h),
            credits=tuple(credits),
            hash=h,
        )

    def playlist(self, q: int) -> PlaylistRec:
        h = splitmix(self._k_playlist ^ q)
        size = h % 10
        if size == 0:
            items = (h >> 8) % 11
        elif size < 8:
            items = 10 + (h >> 8) % 91
        else:
            items = 100 + (h >> 8) % 201
        owner = f"{_pick(NOUNS, h >> 20).lower()}{(h >> 26) % 10_000}"
        name = f"{_pick(ADJECTIVES, h >> 40)} {_pick(TITLE_WORDS, h >> 46)} Mix"
        return PlaylistRec(q, items, name, owner, (h >> 30) % 100_000, h)

    # -- existence -------------------------------------------------------------------------

    def artist_exists(self, i: int) -> bool:
        return 0 <= i < self.artists and self.artist(i).exists

    def album_exists(self, i: int, a: int) -> bool:
        return 0 <= i < self.artists and 0 <= a < self.artist(i).albums

    def track_exists(self, i: int, a: int, t: int) -> bool:
        return self.album_exists(i, a) and 1 <= t <= self.album(i, a).tracks

    # -- relations -------------------------------------------------------------------------

    def _appears_on(self, j: int) -> tuple[AlbumKey, ...]:
        """Albums of other artists with a track crediting `j`: only predecessors can feature j."""
        found: list[AlbumKey] = []
        for d in range(NEIGHBOURHOOD, 0, -1):
            i = (j - d) % self.artists
            if i == j:
                continue
            found.extend(
                (i, a) for a in range(self.artist(i).albums) if j in self.album(i, a).featured
            )
        return tuple(dict.fromkeys(found))

    def _discography(self, i: int, groups: tuple[str, ...]) -> tuple[tuple[int, int, str], ...]:
        """An artist's albums in `groups`, ordered by group as the real API does."""
        owned = [self.album(i, a) for a in range(self.artist(i).albums)]
        result: list[tuple[int, int, str]] = []
        for group in GROUPS:
            if group not in groups:
                continue
            if group == "appears_on":
                result.extend((k, a, group) for k, a in self.appears_on(i))
            else:
                result.extend((i, rec.ordinal, group) for rec in owned if rec.group == group)
        return tuple(result)

    def _related(self, i: int) -> tuple[int, ...]:
        """Mostly near neighbours plus random jumps, so related-artist crawls span the catalog."""
        h = splitmix(self._k_related ^ i)
        want = min(h % (MAX_RELATED + 1), self.artists - 1)
        found: dict[int, None] = {}
        for k in range(4 * MAX_RELATED):
            if len(found) >= want:
                break
            r = mix(h, k)
            if k % 3 == 2:
                j = r % self.artists
            else:
                j = (i + (1 + r % 8) * (1 if r >> 8 & 1 else -1)) % self.artists
            if j != i and self.artist(j).exists:
                found[j] = None
        return tuple(found)

    def top_tracks(self, i: int) -> tuple[TrackKey, ...]:
        """First tracks of the first albums: enough to be plausible, cheap to derive."""
        keys: list[TrackKey] = []
        for a in range(self.artist(i).albums):
            rec = self.album(i, a)
            keys.extend((i, a, t) for t in range(1, min(rec.tracks, 3) + 1))
            if len(keys) >= MAX_TOP_TRACKS:
                break
        return tuple(keys[:MAX_TOP_TRACKS])

    def playlist_item(self, q: int, k: int) -> PlaylistItem:
        """The k-th entry of playlist q.  Its kind comes from a hash of its own, so the entries
        that are tracks are the same tracks whatever the other kinds' shares."""
        h = mix(self._k_item, q, k)
        day = mix(q, k) % 3000
        added_at = f"{2015 + day // 365}-{1 + day % 12:02d}-{1 + day % 28:02d}T12:00:00Z"
        g = mix(h, 1)
        roll = g % 100
        track = episode = None
        kind: ItemKind
        if roll < 5:
            kind = "episode"
            show = (g >> 16) % SHOWS
            episode = show, 1 + (g >> 24) % self.show(show).episodes
        elif roll < 8:
            kind = "local"
        else:
            track = None if roll < 10 else self._playlist_track(h)
            kind = "removed" if track is None else "track"
        return PlaylistItem(kind, track, episode, added_at, (g >> 8) % 100 >= 4, g)

    def _playlist_track(self, h: int) -> TrackKey | None:
        """A catalog track; None only in a catalog without any album."""
        start = h % self.artists
        for step in range(self.artists):
            i = (start + step) % self.artists
            albums = self.artist(i).albums
            if albums:
                a = (h >> 20) % albums
                return i, a, 1 + (h >> 40) % self.album(i, a).tracks
        return None

    def show(self, s: int) -> ShowRec:
        h = splitmix(self._k_show ^ s)
        name = f"The {_pick(ADJECTIVES, h)} {_pick(NOUNS, h >> 5)} Podcast"
        publisher = f"{_pick(NOUNS, h >> 10)} {_pick(LABELS, h >> 15)}"
        return ShowRec(s, name, publisher, 1 + (h >> 20) % 200, h)

    def episode(self, s: int, e: int) -> EpisodeRec:
        h = mix(self._k_show, s, e)
        day = h % 3000
        return EpisodeRec(
            show=s,
            number=e,
            name=f"#{e}: {_title(h >> 12)}",
            duration_ms=600_000 + (h >> 24) % 5_400_000,
            explicit=h >> 50 & 7 == 0,
            release_date=f"{2015 + day // 365}-{1 + day % 12:02d}-{1 + day % 28:02d}",
            hash=h,
        )

    def episode_exists(self, s: int, e: int) -> bool:
        return 0 <= s < SHOWS and 1 <= e <= self.show(s).episodes

    def artist_albums(self, i: int) -> Iterator[AlbumRec]:
        return (self.album(i, a) for a in range(self.artist(i).albums))

    # -- search ----------------------------------------------------------------------------

    def _search_artists(self, query: str) -> tuple[int, ...]:
        text, genre = parse_query(query)
        return tuple(
            _bounded(
                i
                for i in range(self.artists)
                if (rec := self.artist(i)).exists
                and text in rec.name.lower()
                and (genre is None or genre in rec.genres)
            )
        )

    def _search_albums(self, query: str) -> tuple[AlbumKey, ...]:
        needle = query.lower()
        return tuple(
            _bounded(
                (rec.artist, rec.ordinal)
                for rec in self._scan_albums()
                if needle in rec.name.lower()
            )
        )

    def _search_tracks(self, query: str) -> tuple[TrackKey, ...]:
        """A track's genres are its main artist's, as Spotify files genres under artists."""
        text, genre = parse_query(query)
        hits = (
            (rec.artist, rec.ordinal, t)
            for rec in self._scan_albums()
            if genre is None or genre in self.artist(rec.artist).genres
            for t in range(1, rec.tracks + 1)
            if text in self.track(rec.artist, rec.ordinal, t).name.lower()
        )
        return tuple(_bounded(hits))

    def _search_playlists(self, query: str) -> tuple[int, ...]:
        needle = query.lower()
        return tuple(
            _bounded(q for q in range(self.playlists) if needle in self.playlist(q).name.lower())
        )

    def _scan_albums(self) -> Iterator[AlbumRec]:
        """Album and track search look at the first SEARCH_SCAN albums only, like an index shard."""
        scanned = 0
        for i in range(self.artists):
            for rec in self.artist_albums(i):
                yield rec
                scanned += 1
                if scanned >= SEARCH_SCAN:
                    return


SEARCH_SCAN = 5_000
SEARCH_MAX_RESULTS = 1_000
_GENRE_FILTER = re.compile(r'genre:(?:"([^"]*)"|(\S+))', re.IGNORECASE)


def parse_query(query: str) -> tuple[str, str | None]:
    """(name substring, genre) of an artist or track query: `genre:shoegaze` or
    `genre:"deep house"` filters by genre (exact, any case), the rest of the text matches
    names as a substring; without the filter the whole query is that substring."""
    found = _GENRE_FILTER.search(query)
    if found is None:
        return query.strip().lower(), None
    rest = query[: found.start()] + query[found.end() :]
    return " ".join(rest.split()).lower(), (found.group(1) or found.group(2)).lower()


def _bounded(items: Iterator[T]) -> Iterator[T]:
    """Search results stop at the API's reachable window (offset ≤ 1000)."""
    for n, item in enumerate(items):
        if n >= SEARCH_MAX_RESULTS:
            return
        yield item
