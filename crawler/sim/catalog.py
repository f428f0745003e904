"""The simulated Spotify catalog: IDs, lookups and JSON views over the O(1)-memory model."""

from __future__ import annotations

from functools import lru_cache

from crawler.sim.cache import DEFAULT_CACHE_MB, ByteCache
from crawler.sim.ids import IdCodec, Kind, Ref, is_well_formed
from crawler.sim.model import SHOWS, Model
from crawler.sim.render import Renderer

REAL_ORIGIN = "https://api.spotify.com"
MAX_VIEWS = 4
# The ID caches grow with the byte cache: a cache that holds a catalog's objects but decodes
# its IDs through 32,768 slots (a 1,000-artist catalog has ~175,000 IDs) spent most of a warm
# batch's time decoding them again. An entry costs ~200 B, so two caches of 256 entries per
# megabyte add ~10 % to the budget; small budgets keep the floor.
MIN_ID_CACHE = 1 << 15
IDS_PER_CACHE_MB = 256


def _id_cache_size(cache_mb: float) -> int:
    return max(MIN_ID_CACHE, int(cache_mb * IDS_PER_CACHE_MB))


class Catalog:
    """A deterministic synthetic catalog: same (artists, seed, playlists) → same objects and IDs.

    Artists are indexed 0..artists-1 and playlists 0..playlists-1; albums and tracks are
    addressed through their artist.  `view()` renders API objects; the `*_id` methods mint IDs
    and `lookup()` turns an ID back into coordinates.  Serialized objects are kept in a
    `cache_mb` megabyte LRU shared by all views (0 disables it), and IDs in LRUs sized from
    it (~10 % more); nothing else grows with use.
    """

    def __init__(
        self, artists: int, seed: int = 1, playlists: int = 20, cache_mb: float = DEFAULT_CACHE_MB
    ) -> None:
        self.model = Model(artists, seed, playlists)
        self.cache = ByteCache(int(cache_mb * (1 << 20)))
        self._codec = IdCodec(seed)
        ids = _id_cache_size(cache_mb)
        self._encode = lru_cache(maxsize=ids)(self._codec.encode)
        # Crawlers ask for each ID several times (album pages, batches, audio features), and
        # decoding is most of the work of a batch whose objects are cached.
        self._decode = lru_cache(maxsize=ids)(self._checked_decode)
        self._views: dict[tuple[str, bool], Renderer] = {}

    @property
    def artists(self) -> int:
        return self.model.artists

    @property
    def playlists(self) -> int:
        return self.model.playlists

    @property
    def seed(self) -> int:
        return self.model.seed

    # -- IDs -------------------------------------------------------------------------------

    def artist_id(self, i: int) -> str:
        return self._encode(Ref(Kind.ARTIST, i))

    def album_id(self, i: int, a: int) -> str:
        return self._encode(Ref(Kind.ALBUM, i, a))

    def track_id(self, i: int, a: int, t: int) -> str:
        return self._encode(Ref(Kind.TRACK, i, a, t))

    def playlist_id(self, q: int) -> str:
        return self._encode(Ref(Kind.PLAYLIST, q))

    def show_id(self, s: int) -> str:
        return self._encode(Ref(Kind.SHOW, s))

    def episode_id(self, s: int, e: int) -> str:
        return self._encode(Ref(Kind.EPISODE, s, 0, e))

    def first_artist_ids(self, count: int = 1, start: int = 0) -> list[str]:
        """IDs of the first `count` existing artists from index `start` on (fewer if the
        catalog ends first): the usual seeds, as some artists of every catalog are deleted."""
        found: list[str] = []
        for i in range(start, self.artists):
            if len(found) == count:
                break
            if self.model.artist_exists(i):
                found.append(self.artist_id(i))
        return found

    def album_ids_of(self, i: int) -> list[str]:
        """IDs of the albums artist i owns (not the ones it merely appears on)."""
        return [self.album_id(i, a) for a in range(self.model.artist(i).albums)]

    def track_ids_of(self, i: int, a: int) -> list[str]:
        """Bypasses the ID cache: bulk minting (ground truth) would only evict hot entries."""
        return self._codec.encode_tracks(i, a, self.model.album(i, a).tracks)

    def decode(self, spotify_id: str) -> Ref | None:
        """Coordinates of any ID this catalog's seed minted (even of deleted or foreign-size
        entities), None for malformed or foreign IDs."""
        return self._decode(spotify_id)

    def _checked_decode(self, spotify_id: str) -> Ref | None:
        return self._codec.decode(spotify_id) if is_well_formed(spotify_id) else None

    def lookup(self, spotify_id: str, kind: Kind) -> Ref | None:
        """Coordinates of an entity of `kind` that the API would return, else None (→ 404/null).

        Deleted artists are credited on tracks but not retrievable, so they look up as None.
        """
        ref = self.decode(spotify_id)
        if ref is None or ref.kind != kind:
            return None
        m = self.model
        if kind is Kind.TRACK:
            found = m.track_exists(ref.main, ref.album, ref.track)
        elif kind is Kind.ALBUM:
            found = m.album_exists(ref.main, ref.album)
        elif kind is Kind.ARTIST:
            found = m.artist_exists(ref.main)
        elif kind is Kind.EPISODE:
            found = m.episode_exists(ref.main, ref.track)
        elif kind is Kind.SHOW:
            found = 0 <= ref.main < SHOWS
        else:
            found = 0 <= ref.main < m.playlists
        return ref if found else None

    def view(self, base: str = REAL_ORIGIN, extended: bool = True) -> Renderer:
        """Object builders whose links point at `base`; development mode drops quota fields."""
        key = (base, extended)
        if key not in self._views:
            # Each view keeps its own fragment caches (~7 MB when full): a server answers on
            # one or two origins, and a stream of new ones must not add up.
            if len(self._views) >= MAX_VIEWS:
                self._views.clear()
            self._views[key] = Renderer(self.model, self, base, extended, self.cache)
        return self._views[key]
