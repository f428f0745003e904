"""The one table of what the crawler fetches: operations, entity kinds and output streams.

An *operation* (``Op``) is a kind of task. An *entity kind* ties the four batchable
operations to their API path, batch size, capability flag and output stream. A *stream* is a
named output (``artists``, ``related_artists``…) written as ``<stream>.jsonl``: entity
streams hold the API's own objects, edge streams the relationships between them. Everything
else (client, capabilities, store, engine, status, export) reads these tables instead of
keeping its own copy.
"""

from __future__ import annotations

from enum import IntEnum
from typing import Literal, NamedTuple


class Op(IntEnum):
    """Stored as integers in checkpoints: never renumber, only add."""

    ARTIST = 1
    ALBUM = 2
    TRACK = 3
    FEATURES = 4
    RELATED = 5
    ARTIST_ALBUMS = 6
    ALBUM_TRACKS = 7
    PLAYLIST = 8
    PLAYLIST_ITEMS = 9
    SEARCH = 10


class State(IntEnum):
    """Stored as integers in checkpoints: never renumber, only add."""

    PENDING = 0
    DONE = 1
    MISSING = 2
    FAILED = 3
    SKIPPED = 4


# Capabilities that decide whether a batch endpoint may be used (see api/capabilities.py).
Flag = Literal["batch_artists", "batch_albums", "batch_tracks", "related_artists", "audio_features"]


class EntityKind(NamedTuple):
    """A kind of entity fetched by ID: ``GET path?ids=…`` in batches, ``GET path/{id}`` alone."""

    op: Op
    stream: str  # its output stream; also the batch response's envelope key
    path: str
    batch_size: int  # the API's maximum of IDs per batch call
    flag: Flag  # False once the app is known to be refused the batch endpoint
    endpoint: str  # the batch endpoint's name in stats and errors
    single: str | None  # the single-ID endpoint's name; None: no fallback, a refusal skips it


ENTITIES: dict[Op, EntityKind] = {
    kind.op: kind
    for kind in (
        EntityKind(
            Op.ARTIST, "artists", "/v1/artists", 50, "batch_artists", "artists.batch", "artists"
        ),
        EntityKind(Op.ALBUM, "albums", "/v1/albums", 20, "batch_albums", "albums.batch", "album"),
        EntityKind(Op.TRACK, "tracks", "/v1/tracks", 50, "batch_tracks", "tracks.batch", "track"),
        EntityKind(
            Op.FEATURES,
            "audio_features",
            "/v1/audio-features",
            100,
            "audio_features",
            "audio_features.batch",
            None,
        ),
    )
}

EntityStream = Literal["artists", "albums", "tracks", "audio_features"]
EdgeStream = Literal["playlists", "related_artists", "artist_albums", "playlist_items"]
Stream = EntityStream | EdgeStream

# Every output stream, in the order status, stats.json and export list them. The entity
# streams are always written; each edge stream can be switched off in ``[output]``.
ENTITY_STREAMS: tuple[EntityStream, ...] = ("artists", "albums", "tracks", "audio_features")
EDGE_STREAMS: tuple[EdgeStream, ...] = (
    "playlists",
    "related_artists",
    "artist_albums",
    "playlist_items",
)
STREAMS: tuple[Stream, ...] = (*ENTITY_STREAMS, *EDGE_STREAMS)


def stream_file(stream: str) -> str:
    """The JSON-lines file of a stream, inside ``out_dir``."""
    return f"{stream}.jsonl"
