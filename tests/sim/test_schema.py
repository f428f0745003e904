"""Every endpoint's responses have the shapes of the OpenAPI description of the real API.

The description marks few fields as required, so for the objects the simulator builds every
documented field is made required here (except the ones the real API only sends in special
cases), which also proves development mode drops exactly the quota-only fields.  Where the
real API sends what the description leaves out (playlist items whose track was removed or
whose adder it no longer names, local files), the schemas are widened by exactly that.
"""

from __future__ import annotations

import copy
from functools import cache
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from crawler.sim.catalog import Catalog
from crawler.sim.render import EXTENDED_ONLY

SPEC = (
    Path(__file__).resolve().parents[3]
    / "shared"
    / "spotify-openapi"
    / "fixed-spotify-open-api.yml"
)
pytestmark = pytest.mark.skipif(
    not SPEC.exists(), reason=f"OpenAPI description not found at {SPEC}"
)

# Objects the simulator builds, with the fields the real API sends only in special cases
# (track relinking, content restrictions).
STRICT = {
    "ArtistObject": set(),
    "SimplifiedArtistObject": set(),
    "TrackObject": {"is_playable", "linked_from", "restrictions"},
    "SimplifiedTrackObject": {"is_playable", "linked_from", "restrictions"},
    "AudioFeaturesObject": set(),
    "PlaylistObject": set(),
    "SimplifiedPlaylistObject": set(),
    "PlaylistTracksRefObject": set(),
    "PlaylistTrackObject": set(),
    "PlaylistUserObject": set(),
    "FollowersObject": set(),
    "ImageObject": set(),
}
CATALOG = Catalog(120, seed=4)
# A playlist track the way the real API sends a local file: a track object without an ID or
# links, its names in the `spotify:local:` URI.
LOCAL_TRACK = {
    "type": "object",
    "required": ["album", "artists", "duration_ms", "href", "id", "is_local", "name", "uri"],
    "properties": {
        "album": {
            "type": "object",
            "required": ["id", "name", "type"],
            "properties": {"id": {"type": "null"}, "type": {"const": "album"}},
        },
        "artists": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["id", "name"],
                "properties": {"id": {"type": "null"}, "name": {"type": "string"}},
            },
        },
        "duration_ms": {"type": "integer"},
        "href": {"type": "null"},
        "id": {"type": "null"},
        "is_local": {"const": True},
        "name": {"type": "string"},
        "type": {"const": "track"},
        "uri": {"type": "string", "pattern": "^spotify:local:"},
    },
}


def _openapi_to_jsonschema(node: Any) -> Any:
    """OpenAPI 3.0 `nullable: true` → JSON Schema's explicit null alternative."""
    if isinstance(node, list):
        return [_openapi_to_jsonschema(x) for x in node]
    if not isinstance(node, dict):
        return node
    out = {k: _openapi_to_jsonschema(v) for k, v in node.items() if k != "nullable"}
    return {"anyOf": [out, {"type": "null"}]} if node.get("nullable") else out


@cache
def _spec() -> dict[str, Any]:
    return yaml.load(SPEC.read_text(), Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))


@cache
def _components(extended: bool) -> dict[str, Any]:
    components = copy.deepcopy(_spec()["components"])
    schemas = components["schemas"]
    for name, optional in STRICT.items():
        schemas[name]["required"] = sorted(set(schemas[name]["properties"]) - optional)
    schemas["LocalTrackObject"] = LOCAL_TRACK
    item = schemas["PlaylistTrackObject"]["properties"]
    item["added_by"]["nullable"] = True
    for key in ("item", "track"):
        item[key]["nullable"] = True
        item[key]["oneOf"].append({"$ref": "#/components/schemas/LocalTrackObject"})
    if not extended:
        for schema in schemas.values():
            for part in [schema, *schema.get("allOf", [])]:
                if "required" in part:
                    part["required"] = [f for f in part["required"] if f not in EXTENDED_ONLY]
    return _openapi_to_jsonschema(components)


def check(instance: Any, schema_name: str, extended: bool) -> None:
    """Validates against a component schema, or a response's schema if the name is one."""
    components = _components(extended)
    if schema_name in components["schemas"]:
        root: dict[str, Any] = {"$ref": f"#/components/schemas/{schema_name}"}
    else:
        root = dict(components["responses"][schema_name]["content"]["application/json"]["schema"])
    root["components"] = components
    jsonschema.Draft202012Validator(root).validate(instance)
    if not extended:
        assert not _quota_fields(instance), "development mode leaks quota-only fields"


def _quota_fields(node: Any) -> set[str]:
    if isinstance(node, list):
        return set().union(*map(_quota_fields, node)) if node else set()
    if isinstance(node, dict):
        found = EXTENDED_ONLY.intersection(node)
        return found.union(*map(_quota_fields, node.values())) if node else found
    return set()


def samples(catalog: Catalog) -> dict[str, Any]:
    m = catalog.model
    artist = next(i for i in range(catalog.artists) if m.artist(i).albums > 3 and m.related(i))
    album = next(
        (i, a)
        for i in range(catalog.artists)
        for a in range(m.artist(i).albums)
        if m.album(i, a).tracks > 50
    )
    track = (album[0], album[1], 2)
    playlist = next(
        q
        for q in range(catalog.playlists)
        if m.playlist(q).items > 60
        and {m.playlist_item(q, k).kind for k in range(10, 60)} >= {"episode", "local", "removed"}
    )
    episode = next(
        m.playlist_item(q, k).episode
        for q in range(catalog.playlists)
        for k in range(m.playlist(q).items)
        if m.playlist_item(q, k).episode
    )
    return {
        "artist": catalog.artist_id(artist),
        "artists": ",".join(
            catalog.artist_id(artist + k) for k in range(3) if m.artist_exists(artist + k)
        ),
        "album": catalog.album_id(*album),
        "albums": ",".join(catalog.album_ids_of(artist)[:3]),
        "track": catalog.track_id(*track),
        "tracks": ",".join(catalog.track_ids_of(*album)[:5]),
        "features": catalog.track_id(
            *next(k for k in ((*album, t) for t in range(1, 50)) if m.track(*k).has_features)
        ),
        "playlist": catalog.playlist_id(playlist),
        "episode": catalog.episode_id(*episode),  # type: ignore[misc]
        "query": m.artist(artist).name.split()[0],
    }


COMMON = [
    ("/v1/artists/{artist}", {}, "ArtistObject"),
    (
        "/v1/artists/{artist}/albums",
        {"limit": 10, "offset": 1},
        "PagingArtistDiscographyAlbumObject",
    ),
    ("/v1/albums/{album}", {}, "AlbumObject"),
    ("/v1/albums/{album}/tracks", {"limit": 50, "offset": 20}, "PagingSimplifiedTrackObject"),
    ("/v1/tracks/{track}", {}, "TrackObject"),
    ("/v1/playlists/{playlist}", {}, "PlaylistObject"),
    ("/v1/playlists/{playlist}/items", {"limit": 50, "offset": 10}, "PagingPlaylistTrackObject"),
    ("/v1/playlists/{playlist}/tracks", {"limit": 100}, "PagingPlaylistTrackObject"),
    ("/v1/search", {"q": "{query}", "type": "artist,album,track", "limit": 10}, "SearchItems"),
    ("/v1/search", {"q": "mix", "type": "playlist", "limit": 10}, "SearchItems"),
    ("/v1/episodes/{episode}", {}, "EpisodeObject"),
]
EXTENDED = [
    ("/v1/artists", {"ids": "{artists}"}, "ManyArtists"),
    ("/v1/artists/{artist}/related-artists", {}, "ManyArtists"),
    ("/v1/artists/{artist}/top-tracks", {"market": "US"}, "ManyTracks"),
    (
        "/v1/artists/{artist}/albums",
        {"limit": 50, "include_groups": "album,appears_on"},
        "PagingArtistDiscographyAlbumObject",
    ),
    ("/v1/albums", {"ids": "{albums}"}, "ManyAlbums"),
    ("/v1/tracks", {"ids": "{tracks}"}, "ManyTracks"),
    ("/v1/audio-features/{features}", {}, "AudioFeaturesObject"),
    ("/v1/audio-features", {"ids": "{tracks}"}, "ManyAudioFeatures"),
    ("/v1/search", {"q": "{query}", "type": "track", "limit": 50}, "SearchItems"),
]


@pytest.mark.parametrize(
    ("mode", "path", "params", "schema"),
    [("extended", *case) for case in COMMON + EXTENDED]
    + [("development", *case) for case in COMMON],
)
async def test_responses_match_the_openapi_schemas(
    sim_api: Any, mode: str, path: str, params: dict[str, Any], schema: str
) -> None:
    api = await sim_api(CATALOG, mode=mode)
    ids = samples(CATALOG)
    reply = await api.get(
        path.format(**ids), **{k: str(v).format(**ids) for k, v in params.items()}
    )
    assert reply.status == 200, reply.body
    body = reply.json()
    if schema == "ManyAudioFeatures":  # features may be missing for a track: null entries
        body = {"audio_features": [f for f in body["audio_features"] if f is not None]}
    check(body, schema, extended=mode == "extended")


async def test_error_bodies_match_the_error_schema(sim_api: Any) -> None:
    api = await sim_api(CATALOG)
    for reply in (
        await api.get("/v1/artists/not-an-id"),
        await api.get(f"/v1/albums/{CATALOG.artist_id(0)}"),
        await api.request("GET", f"/v1/artists/{CATALOG.artist_id(0)}", auth=False),
    ):
        assert reply.status in (400, 401, 404)
        check(reply.json(), "Unauthorized", extended=True)


async def test_embedded_pages_link_to_the_rest(sim_api: Any) -> None:
    api = await sim_api(CATALOG)
    ids = samples(CATALOG)
    album = (await api.get(f"/v1/albums/{ids['album']}")).json()
    assert len(album["tracks"]["items"]) == 50 and album["tracks"]["limit"] == 50
    rest = await api.request("GET", album["tracks"]["next"])
    assert rest.status == 200
    page = rest.json()
    assert page["offset"] == 50 and page["previous"].startswith(api.server.url)
    assert page["items"][0]["track_number"] == 51
    playlist = (await api.get(f"/v1/playlists/{ids['playlist']}")).json()
    assert playlist["items"] == playlist["tracks"]
    nxt = await api.request("GET", playlist["items"]["next"])
    assert nxt.status == 200 and nxt.json()["offset"] == 50
