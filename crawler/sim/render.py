"""Turns catalog records into the Web API's JSON (shapes from the OpenAPI schemas), as bytes.

A Renderer is bound to one origin (object and paging links point back at the server that
answered, so a crawler can follow them) and one mode: development-mode apps never see
popularity, followers, label, available_markets or album_group (external_ids came back to
them in March 2026).

Responses are assembled from serialized fragments rather than dicts: a crawl downloads tens
of megabytes of nested objects that mostly repeat (every track embeds its album, every album
a page of its tracks, and each of those the 180-market list), so each fragment is serialized
once and spliced into every object that embeds it.  Small shared fragments (artist refs,
simplified albums) live in count-bounded LRUs; whole objects live in the catalog's
byte-bounded ByteCache, keyed by origin and mode too.  Splicing keeps orjson's compact
layout and key order, so bodies are byte-for-byte what `orjson.dumps` of the dicts would be.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Sequence
from functools import lru_cache
from typing import Any, Protocol, TypeVar
from urllib.parse import quote, quote_plus

import orjson

from crawler.sim.cache import ByteCache
from crawler.sim.hashing import mix
from crawler.sim.model import (
    AlbumKey,
    EpisodeKey,
    Model,
    PlaylistItem,
    TrackKey,
    TrackRec,
    local_file,
)
from crawler.sim.words import LABELS, MARKETS, NOUNS

Json = dict[str, Any]
K = TypeVar("K", bound=Hashable)
ALBUM_EMBEDDED_TRACKS = 50
PLAYLIST_EMBEDDED_ITEMS = 50
EXTENDED_ONLY = frozenset({"popularity", "followers", "label", "available_markets", "album_group"})
NULL = b"null"
_SPOTIFY = "https://open.spotify.com"
_IMAGES = "https://i.scdn.co/image/"
_MARKETS = orjson.dumps(list(MARKETS))


class Ids(Protocol):
    def artist_id(self, i: int) -> str: ...
    def album_id(self, i: int, a: int) -> str: ...
    def track_id(self, i: int, a: int, t: int) -> str: ...
    def playlist_id(self, q: int) -> str: ...
    def show_id(self, s: int) -> str: ...
    def episode_id(self, s: int, e: int) -> str: ...


def dumps(value: Any) -> bytes:
    """`orjson.dumps(value)` copied into a bytes object of its own length.

    orjson hands back its output buffer over-allocated (some 4 KB for a 600-byte object):
    harmless for a response, but a cache of a hundred thousand such objects held 500 MB for
    40 MB of JSON.  Fragments that are sliced or joined are copies already.
    """
    return bytes(memoryview(orjson.dumps(value)))


def encode(fields: Json) -> bytes:
    """`orjson.dumps(fields)`, except that bytes values are spliced in as serialized JSON."""
    parts: list[bytes] = []
    plain: Json = {}
    for key, value in fields.items():
        if isinstance(value, bytes):
            if plain:
                parts.append(orjson.dumps(plain)[1:-1])
                plain = {}
            parts.append(b'"%s":%s' % (key.encode(), value))
        else:
            plain[key] = value
    if plain:
        parts.append(orjson.dumps(plain)[1:-1])
    return b"{" + b",".join(parts) + b"}"


def extend(obj: bytes, fields: Json) -> bytes:
    """A serialized object with more fields appended, as `{**obj, **fields}` would order them."""
    tail = encode(fields)
    return obj if tail == b"{}" else obj[:-1] + b"," + tail[1:]


def array(items: Sequence[bytes | None]) -> bytes:
    """A JSON array of serialized items; None becomes null (unknown IDs in batches)."""
    return b"[" + b",".join([NULL if x is None else x for x in items]) + b"]"


def _images(h: int, sizes: Sequence[int]) -> list[Json]:
    return [{"url": f"{_IMAGES}{mix(h, s):016x}{h:016x}", "height": s, "width": s} for s in sizes]


def _unit(h: int, shift: int) -> float:
    """A float in [0, 1) from 10 bits of a hash, rounded like the API's 3-4 digit values."""
    return round((h >> shift & 1023) / 1024, 4)


class Renderer:
    """Builds API objects for one (origin, mode): `*_json` methods return serialized JSON."""

    def __init__(self, model: Model, ids: Ids, base: str, extended: bool, cache: ByteCache) -> None:
        self.model = model
        self.ids = ids
        self.base = base
        self.extended = extended
        self._cache = cache
        self._markets: dict[str, Any] = {"available_markets": _MARKETS} if extended else {}
        self._markets_field = b',"available_markets":' + _MARKETS if extended else b""
        self.simple_artist_json = lru_cache(maxsize=1 << 12)(self._simple_artist)
        self.simple_album_json = lru_cache(maxsize=1 << 12)(self._simple_album)

    def _cached(self, kind: str, key: K, build: Callable[[K], bytes]) -> bytes:
        return self._cache.get((self.base, self.extended, kind, key), build, key)

    def _trim(self, obj: Json) -> Json:
        if not self.extended:
            for key in EXTENDED_ONLY.intersection(obj):
                del obj[key]
        return obj

    def _common(self, kind: str, spotify_id: str, api_path: str) -> Json:
        return {
            "external_urls": {"spotify": f"{_SPOTIFY}/{kind}/{spotify_id}"},
            "href": f"{self.base}/v1/{api_path}/{spotify_id}",
            "id": spotify_id,
            "type": kind,
            "uri": f"spotify:{kind}:{spotify_id}",
        }

    # -- decoded objects, for callers that inspect rather than serve -----------------------

    def artist(self, i: int) -> Json:
        return orjson.loads(self.artist_json(i))

    def album(self, i: int, a: int) -> Json:
        return orjson.loads(self.album_json(i, a))

    def playlist(self, q: int) -> Json:
        return orjson.loads(self.playlist_json(q))

    # -- paging ----------------------------------------------------------------------------

    def page_json(
        self,
        items: Sequence[bytes | None],
        total: int,
        offset: int,
        limit: int,
        path: str,
        query: str = "",
    ) -> bytes:
        """A paging object whose links repeat the request's extra `query` (e.g. include_groups)."""

        def link(at: int) -> str:
            return f"{self.base}{path}?offset={at}&limit={limit}{query}"

        return encode(
            {
                "href": link(offset),
                "items": array(items),
                "limit": limit,
                "next": link(offset + limit) if offset + limit < total else None,
                "offset": offset,
                "previous": link(max(0, offset - limit)) if offset > 0 else None,
                "total": total,
            }
        )

    def paged_json(
        self,
        keys: Sequence[Any],
        build: Callable[[Any], bytes],
        offset: int,
        limit: int,
        path: str,
        query: str = "",
    ) -> bytes:
        items = [build(key) for key in keys[offset : offset + limit]]
        return self.page_json(items, len(keys), offset, limit, path, query)

    # -- artists ---------------------------------------------------------------------------

    def _simple_artist(self, i: int) -> bytes:
        obj = self._common("artist", self.ids.artist_id(i), "artists")
        obj["name"] = self.model.artist(i).name
        return encode(obj)

    def artist_json(self, i: int) -> bytes:
        return self._cached("artist", i, self._artist)

    def _artist(self, i: int) -> bytes:
        rec = self.model.artist(i)
        more = {
            "followers": {"href": None, "total": rec.followers},
            "genres": list(rec.genres),
            "images": _images(mix(self.model.seed, i), (640, 320, 160)),
            "popularity": rec.popularity,
        }
        return extend(self.simple_artist_json(i), self._trim(more))

    def related_artists_json(self, i: int) -> bytes:
        return encode({"artists": array([self.artist_json(j) for j in self.model.related(i)])})

    def top_tracks_json(self, i: int) -> bytes:
        return encode({"tracks": array([self.track_json(k) for k in self.model.top_tracks(i)])})

    def artist_albums_json(self, i: int, groups: tuple[str, ...], offset: int, limit: int) -> bytes:
        """One page of an artist's albums in `groups` (ordered as GROUPS), with album_group."""
        path = f"/v1/artists/{self.ids.artist_id(i)}/albums"
        keys = self.model.discography(i, groups)
        extra = f"&include_groups={','.join(groups)}"
        return self.paged_json(keys, self._discography_album, offset, limit, path, extra)

    def _discography_album(self, key: tuple[int, int, str]) -> bytes:
        i, a, group = key
        return extend(self.simple_album_json(i, a), self._trim({"album_group": group}))

    # -- albums ----------------------------------------------------------------------------

    def _simple_album(self, i: int, a: int) -> bytes:
        """Embedded in each of the album's tracks and in discography pages: built once."""
        rec = self.model.album(i, a)
        month, day = 1 + rec.hash % 12, 1 + (rec.hash >> 4) % 28
        release = {
            "day": f"{rec.year}-{month:02d}-{day:02d}",
            "month": f"{rec.year}-{month:02d}",
            "year": str(rec.year),
        }[rec.precision]
        obj = self._common("album", self.ids.album_id(i, a), "albums")
        obj.update(
            album_type=rec.group,
            total_tracks=rec.tracks,
            **self._markets,
            images=_images(rec.hash, (640, 300, 64)),
            name=rec.name,
            release_date=release,
            release_date_precision=rec.precision,
            artists=array([self.simple_artist_json(i)]),
        )
        return encode(obj)

    def simple_album_of(self, key: AlbumKey) -> bytes:
        return self.simple_album_json(*key)

    def album_json(self, i: int, a: int) -> bytes:
        return self._cached("album", (i, a), self._album)

    def _album(self, key: AlbumKey) -> bytes:
        rec = self.model.album(*key)
        label = f"{NOUNS[rec.hash % len(NOUNS)]} {LABELS[(rec.hash >> 5) % len(LABELS)]}"
        more = {
            "tracks": self.album_tracks_json(*key, 0, ALBUM_EMBEDDED_TRACKS),
            "copyrights": [
                {"text": f"© {rec.year} {label}", "type": "C"},
                {"text": f"℗ {rec.year} {label}", "type": "P"},
            ],
            "external_ids": {"upc": f"{rec.hash % 10**12:012d}"},
            "genres": [],
            "label": label,
            "popularity": rec.popularity,
        }
        return extend(self.simple_album_json(*key), self._trim(more))

    def album_tracks_json(self, i: int, a: int, offset: int, limit: int) -> bytes:
        total = self.model.album(i, a).tracks
        numbers = range(offset + 1, min(total, offset + limit) + 1)
        items = [self.simple_track_json((i, a, t)) for t in numbers]
        path = f"/v1/albums/{self.ids.album_id(i, a)}/tracks"
        return self.page_json(items, total, offset, limit, path)

    # -- tracks ----------------------------------------------------------------------------

    def simple_track_json(self, key: TrackKey, rec: TrackRec | None = None) -> bytes:
        """`rec` spares a caller that already derived the record from deriving it again."""
        return self._cached("simple_track", key, lambda k: self._simple_track(rec or self._rec(k)))

    def _rec(self, key: TrackKey) -> TrackRec:
        return self.model.track(*key)

    def _simple_track(self, rec: TrackRec) -> bytes:
        """Spliced by hand rather than by `encode`: a crawl renders every track of the catalog."""
        track_id = self.ids.track_id(rec.artist, rec.album, rec.number)
        head = orjson.dumps(self._common("track", track_id, "tracks"))
        tail = orjson.dumps(
            {
                "disc_number": 1,
                "duration_ms": rec.duration_ms,
                "explicit": rec.explicit,
                "is_local": False,
                "name": rec.name,
                "preview_url": None,
                "track_number": rec.number,
            }
        )
        artists = array([self.simple_artist_json(j) for j in rec.credits])
        return b"".join((head[:-1], b',"artists":', artists, self._markets_field, b",", tail[1:]))

    def track_json(self, key: TrackKey) -> bytes:
        return self._cached("track", key, self._track)

    def _track(self, key: TrackKey) -> bytes:
        rec = self._rec(key)
        more = {
            "album": self.simple_album_json(key[0], key[1]),
            "external_ids": {"isrc": f"US{NOUNS[rec.hash % 32][:3].upper()}{rec.hash % 10**7:07d}"},
            "popularity": rec.popularity,
        }
        return extend(self.simple_track_json(key, rec), self._trim(more))

    def audio_features_json(self, key: TrackKey) -> bytes:
        """NULL for a track without features, as batches show it (a 404 on its own)."""
        return self._cached("audio_features", key, self._audio_features)

    def _audio_features(self, key: TrackKey) -> bytes:
        rec = self._rec(key)
        if not rec.has_features:
            return NULL
        track_id = self.ids.track_id(*key)
        h = mix(rec.hash, 7)
        return dumps(
            {
                "acousticness": _unit(h, 0),
                "analysis_url": f"{self.base}/v1/audio-analysis/{track_id}",
                "danceability": _unit(h, 10),
                "duration_ms": rec.duration_ms,
                "energy": _unit(h, 20),
                "id": track_id,
                "instrumentalness": _unit(h, 30),
                "key": (h >> 40) % 13 - 1,
                "liveness": _unit(h, 44),
                "loudness": -round((h >> 54) / 1024 * 60, 3),
                "mode": h >> 63,
                "speechiness": _unit(h, 50),
                "tempo": round(60 + (h >> 8 & 0xFFFF) / 65536 * 140, 3),
                "time_signature": 3 + (h >> 36) % 5,
                "track_href": f"{self.base}/v1/tracks/{track_id}",
                "type": "audio_features",
                "uri": f"spotify:track:{track_id}",
                "valence": _unit(h, 4),
            }
        )

    # -- playlists -------------------------------------------------------------------------

    def _user(self, name: str) -> Json:
        return {
            "external_urls": {"spotify": f"{_SPOTIFY}/user/{name}"},
            "href": f"{self.base}/v1/users/{name}",
            "id": name,
            "type": "user",
            "uri": f"spotify:user:{name}",
        }

    def _playlist_fields(self, q: int) -> Json:
        """What full and simplified playlist objects share."""
        rec = self.model.playlist(q)
        obj = self._common("playlist", self.ids.playlist_id(q), "playlists")
        obj.update(
            collaborative=False,
            description=f"{rec.name}, made by {rec.owner}.",
            images=_images(rec.hash, (640,)),
            name=rec.name,
            owner={**self._user(rec.owner), "display_name": rec.owner.title()},
            public=True,
            snapshot_id=f"{mix(rec.hash, 1):016x}{mix(rec.hash, 2):016x}",
        )
        return obj

    def playlist_json(self, q: int) -> bytes:
        rec = self.model.playlist(q)
        page = self.playlist_items_json(q, 0, PLAYLIST_EMBEDDED_ITEMS, "items")
        obj = self._playlist_fields(q)
        obj.update(followers={"href": None, "total": rec.followers}, items=page, tracks=page)
        return encode(self._trim(obj))

    def simple_playlist_json(self, q: int) -> bytes:
        """As search lists playlists: the items are a link and a count, not a page."""
        obj = self._playlist_fields(q)
        total = self.model.playlist(q).items
        for route in ("items", "tracks"):
            obj[route] = {"href": f"{obj['href']}/{route}", "total": total}
        return encode(obj)

    def playlist_items_json(self, q: int, offset: int, limit: int, route: str) -> bytes:
        rec = self.model.playlist(q)
        items = [
            self._playlist_item(rec.owner, self.model.playlist_item(q, k))
            for k in range(offset, min(rec.items, offset + limit))
        ]
        path = f"/v1/playlists/{self.ids.playlist_id(q)}/{route}"
        return self.page_json(items, rec.items, offset, limit, path)

    def _playlist_item(self, owner: str, item: PlaylistItem) -> bytes:
        """Episodes and local files sit under `track` (and `item`) like tracks do."""
        if item.track is not None:
            obj = self.track_json(item.track)
        elif item.episode is not None:
            obj = self.episode_json(item.episode)
        elif item.kind == "local":
            obj = self._local_track(item.hash)
        else:
            obj = NULL
        return encode(
            {
                "added_at": item.added_at,
                "added_by": self._user(owner) if item.added_by_owner else None,
                "is_local": item.kind == "local",
                "item": obj,
                "track": obj,
            }
        )

    def _local_track(self, h: int) -> bytes:
        """A file from the owner's own disk, as the API shows one: no IDs or links anywhere,
        its names only in the `spotify:local:` URI and the name fields."""
        artist, album, name, duration_ms = local_file(h)
        unlinked = {"external_urls": {}, "href": None, "id": None}
        uri = ":".join(quote_plus(part) for part in (artist, album, name))
        obj = {
            "album": {
                "album_type": None,
                "artists": [],
                **({"available_markets": []} if self.extended else {}),
                **unlinked,
                "images": [],
                "name": album,
                "release_date": None,
                "release_date_precision": None,
                "type": "album",
                "uri": None,
            },
            "artists": [{**unlinked, "name": artist, "type": "artist", "uri": None}],
            "available_markets": [],
            "disc_number": 0,
            "duration_ms": duration_ms,
            "explicit": False,
            "external_ids": {},
            **unlinked,
            "is_local": True,
            "name": name,
            "popularity": 0,
            "preview_url": None,
            "track_number": 0,
            "type": "track",
            "uri": f"spotify:local:{uri}:{duration_ms // 1000}",
        }
        return encode(self._trim(obj))

    # -- podcasts --------------------------------------------------------------------------

    def simple_show_json(self, s: int) -> bytes:
        return self._cached("show", s, self._simple_show)

    def _simple_show(self, s: int) -> bytes:
        rec = self.model.show(s)
        obj = self._common("show", self.ids.show_id(s), "shows")
        about = f"{rec.name}, from {rec.publisher}."
        obj.update(
            **self._markets,
            copyrights=[],
            description=about,
            html_description=f"<p>{about}</p>",
            explicit=False,
            images=_images(rec.hash, (640, 300, 64)),
            is_externally_hosted=False,
            languages=["en"],
            media_type="audio",
            name=rec.name,
            publisher=rec.publisher,
            total_episodes=rec.episodes,
        )
        return encode(obj)

    def episode_json(self, key: EpisodeKey) -> bytes:
        return self._cached("episode", key, self._episode)

    def _episode(self, key: EpisodeKey) -> bytes:
        rec = self.model.episode(*key)
        obj = self._common("episode", self.ids.episode_id(*key), "episodes")
        about = f"Episode {rec.number} of {self.model.show(rec.show).name}."
        obj.update(
            audio_preview_url=None,
            description=about,
            html_description=f"<p>{about}</p>",
            duration_ms=rec.duration_ms,
            explicit=rec.explicit,
            images=_images(rec.hash, (640, 300, 64)),
            is_externally_hosted=False,
            is_playable=True,
            language="en",
            languages=["en"],
            name=rec.name,
            release_date=rec.release_date,
            release_date_precision="day",
            show=self.simple_show_json(rec.show),
        )
        return encode(obj)

    # -- search ----------------------------------------------------------------------------

    def search_page_json(self, kind: str, text: str, offset: int, limit: int, query: str) -> bytes:
        """One result type of /search; `query` carries q and type into the paging links."""
        keys: Sequence[Any]
        build: Callable[[Any], bytes]
        if kind == "artist":
            keys, build = self.model.search_artists(text), self.artist_json
        elif kind == "album":
            keys, build = self.model.search_albums(text), self.simple_album_of
        elif kind == "playlist":
            keys, build = self.model.search_playlists(text), self.simple_playlist_json
        else:
            keys, build = self.model.search_tracks(text), self.track_json
        return self.paged_json(keys, build, offset, limit, "/v1/search", query)


def search_query(text: str, types: str) -> str:
    return f"&q={quote(text)}&type={types}"
