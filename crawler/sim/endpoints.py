"""The Web API's catalog endpoints as plain functions from a parsed call to a JSON body.

Authentication, rate limiting and responses happen around these (see app.py), so each
function only validates its parameters the way Spotify does and asks the catalog's view for
serialized objects (see render.py for why bodies are assembled from bytes).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

from multidict import MultiMapping

from crawler.sim.catalog import Catalog
from crawler.sim.errors import ApiError
from crawler.sim.ids import Kind, Ref, are_well_formed, is_well_formed
from crawler.sim.model import GROUPS
from crawler.sim.render import NULL, Renderer, array, encode, search_query

SEARCH_TYPES = ("album", "artist", "playlist", "track")
SEARCH_MAX_OFFSET = 1000


@dataclass(frozen=True, slots=True)
class Call:
    """What an endpoint may look at: parsing stays in the endpoint, transport stays outside."""

    query: MultiMapping[str]
    params: Mapping[str, str]
    view: Renderer
    catalog: Catalog
    extended: bool


Endpoint = Callable[[Call], bytes]


# -- parameter parsing ---------------------------------------------------------------------


def _require_extended(call: Call) -> None:
    if not call.extended:
        raise ApiError(403, "Forbidden")


def _one(call: Call, kind: Kind) -> Ref:
    spotify_id = call.params["id"]
    if not is_well_formed(spotify_id):
        raise ApiError(400, "invalid id")
    ref = call.catalog.lookup(spotify_id, kind)
    if ref is None:
        raise ApiError(404, "non existing id")
    return ref


def _many(call: Call, kind: Kind, maximum: int) -> list[Ref | None]:
    raw = call.query.get("ids")
    if raw is None:
        raise ApiError(400, "Missing required field: ids")
    ids = raw.split(",")
    if len(ids) > maximum:
        raise ApiError(400, "Too many ids requested")
    if not are_well_formed(raw):
        raise ApiError(400, "invalid id")
    return [call.catalog.lookup(i, kind) for i in ids]


def _int(call: Call, name: str, default: int, low: int, high: int) -> int:
    raw = call.query.get(name)
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        value = low - 1
    if not low <= value <= high:
        raise ApiError(400, f"Invalid {name}")
    return value


def _limit(call: Call, default: int, maximum: int) -> int:
    return _int(call, "limit", default, 1, maximum)


def _offset(call: Call, maximum: int = 1 << 31) -> int:
    return _int(call, "offset", 0, 0, maximum)


def _mode_limit(call: Call) -> tuple[int, int]:
    """(default, max) page size where development mode got the 2026 cuts (10 instead of 50)."""
    return (20, 50) if call.extended else (5, 10)


# -- artists -------------------------------------------------------------------------------


def _batch(name: str, items: list[bytes | None]) -> bytes:
    return encode({name: array(items)})


def artist(call: Call) -> bytes:
    return call.view.artist_json(_one(call, Kind.ARTIST).main)


def artists_batch(call: Call) -> bytes:
    _require_extended(call)
    refs = _many(call, Kind.ARTIST, 50)
    return _batch("artists", [call.view.artist_json(r.main) if r else None for r in refs])


def related_artists(call: Call) -> bytes:
    if not call.extended:
        raise ApiError(404, "Resource not found")
    return call.view.related_artists_json(_one(call, Kind.ARTIST).main)


def artist_albums(call: Call) -> bytes:
    i = _one(call, Kind.ARTIST).main
    limit = _limit(call, *_mode_limit(call))
    offset = _offset(call)
    raw = call.query.get("include_groups")
    wanted = {g.strip() for g in raw.split(",") if g.strip()} if raw else set(GROUPS)
    if not wanted <= set(GROUPS):
        raise ApiError(400, "Invalid include_groups value")
    return call.view.artist_albums_json(i, tuple(g for g in GROUPS if g in wanted), offset, limit)


def top_tracks(call: Call) -> bytes:
    _require_extended(call)
    return call.view.top_tracks_json(_one(call, Kind.ARTIST).main)


# -- albums --------------------------------------------------------------------------------


def album(call: Call) -> bytes:
    ref = _one(call, Kind.ALBUM)
    return call.view.album_json(ref.main, ref.album)


def albums_batch(call: Call) -> bytes:
    _require_extended(call)
    refs = _many(call, Kind.ALBUM, 20)
    return _batch("albums", [call.view.album_json(r.main, r.album) if r else None for r in refs])


def album_tracks(call: Call) -> bytes:
    ref = _one(call, Kind.ALBUM)
    limit = _limit(call, 20, 50)
    return call.view.album_tracks_json(ref.main, ref.album, _offset(call), limit)


# -- tracks and audio features -------------------------------------------------------------


def _track_key(ref: Ref) -> tuple[int, int, int]:
    return ref.main, ref.album, ref.track


def track(call: Call) -> bytes:
    return call.view.track_json(_track_key(_one(call, Kind.TRACK)))


def tracks_batch(call: Call) -> bytes:
    _require_extended(call)
    refs = _many(call, Kind.TRACK, 50)
    return _batch("tracks", [call.view.track_json(_track_key(r)) if r else None for r in refs])


def _require_features_access(call: Call) -> None:
    """Development-mode apps lost audio features in 2024; Spotify answers with no message."""
    if not call.extended:
        raise ApiError(403, None)


def audio_features(call: Call) -> bytes:
    _require_features_access(call)
    features = call.view.audio_features_json(_track_key(_one(call, Kind.TRACK)))
    if features == NULL:
        raise ApiError(404, "analysis not found")
    return features


def audio_features_batch(call: Call) -> bytes:
    _require_features_access(call)
    refs = _many(call, Kind.TRACK, 100)
    view = call.view
    return _batch(
        "audio_features", [view.audio_features_json(_track_key(r)) if r else None for r in refs]
    )


# -- playlists -----------------------------------------------------------------------------


def playlist(call: Call) -> bytes:
    return call.view.playlist_json(_one(call, Kind.PLAYLIST).main)


def playlist_items(call: Call) -> bytes:
    """/tracks (deprecated) pages up to 100 items, /items up to 50, as in the OpenAPI file."""
    q = _one(call, Kind.PLAYLIST).main
    route = call.params["route"]
    limit = _limit(call, 20, 100 if route == "tracks" else 50)
    return call.view.playlist_items_json(q, _offset(call), limit, route)


# -- podcasts ------------------------------------------------------------------------------


def episode(call: Call) -> bytes:
    """Episodes are served so that the `href` of one met in a playlist leads somewhere."""
    ref = _one(call, Kind.EPISODE)
    return call.view.episode_json((ref.main, ref.track))


# -- search --------------------------------------------------------------------------------


def search(call: Call) -> bytes:
    """`genre:` filters artists and tracks (see `parse_query`); every query is otherwise a
    name substring.  The API pages up to offset 1000, 50 a page (10 in development mode)."""
    text = call.query.get("q", "").strip()
    if not text:
        raise ApiError(400, "No search query")
    raw_types = call.query.get("type")
    if not raw_types:
        raise ApiError(400, "Missing parameter type")
    types = list(dict.fromkeys(t.strip() for t in raw_types.split(",")))
    if not all(t in SEARCH_TYPES for t in types):
        raise ApiError(400, "Bad search type field")
    limit = _limit(call, *_mode_limit(call))
    offset = _offset(call, SEARCH_MAX_OFFSET)
    query = search_query(text, ",".join(types))
    return encode(
        {f"{t}s": call.view.search_page_json(t, text, offset, limit, query) for t in types}
    )
