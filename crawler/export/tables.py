"""The export's public tables: what each column is, and from which stream's JSON it comes.

Each stream is read once, with an explicit schema, into a narrow staging table (``stage_<stream>``):
an explicit schema lets DuckDB's reader skip the fields no table needs (an album's 50 embedded
tracks, every object's market list) and turns a field the API omitted — development mode has no
popularity, followers, label or album_group — into a null instead of a missing column. Tables
are then plain SELECTs over the staging tables, so ``tracks`` and ``track_artists`` (or
``albums`` and ``album_artists``) cost one parse of their stream, not two.

Table names and column names are the public interface: add columns, never rename or drop one.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

# How a column is typed outside DuckDB: SQLite's column affinity and the CSV/SQLite rendering.
Kind = Literal["text", "int", "real", "bool", "list", "time"]

_ARTIST_REFS = "STRUCT(id VARCHAR)[]"
_IMAGES = "STRUCT(url VARCHAR)[]"
_TOTAL = "STRUCT(total BIGINT)"

# Audio features in the table's column order (the API's own order is alphabetical).
_INT_FEATURES = ("key", "mode", "time_signature", "duration_ms")
_FEATURES = {
    name: "INTEGER" if name in _INT_FEATURES else "DOUBLE"
    for name in (
        *("danceability", "energy", "key", "loudness", "mode", "speechiness", "acousticness"),
        *("instrumentalness", "liveness", "valence", "tempo", "time_signature", "duration_ms"),
    )
}

# The fields each stream's staging table keeps, as DuckDB types for `read_json(columns=…)`.
STREAM_FIELDS: dict[str, dict[str, str]] = {
    "artists": {
        "id": "VARCHAR",
        "name": "VARCHAR",
        "genres": "VARCHAR[]",
        "popularity": "INTEGER",
        "followers": _TOTAL,
        "images": _IMAGES,
    },
    "albums": {
        "id": "VARCHAR",
        "name": "VARCHAR",
        "album_type": "VARCHAR",
        "release_date": "VARCHAR",
        "release_date_precision": "VARCHAR",
        "total_tracks": "INTEGER",
        "label": "VARCHAR",
        "popularity": "INTEGER",
        "external_ids": "STRUCT(upc VARCHAR)",
        "images": _IMAGES,
        "artists": _ARTIST_REFS,
    },
    "tracks": {
        "id": "VARCHAR",
        "name": "VARCHAR",
        "album": "STRUCT(id VARCHAR)",
        "disc_number": "INTEGER",
        "track_number": "INTEGER",
        "duration_ms": "INTEGER",
        "explicit": "BOOLEAN",
        "popularity": "INTEGER",
        "external_ids": "STRUCT(isrc VARCHAR)",
        "is_local": "BOOLEAN",
        "artists": _ARTIST_REFS,
    },
    "audio_features": {
        "id": "VARCHAR",
        **_FEATURES,
    },
    "playlists": {
        "id": "VARCHAR",
        "name": "VARCHAR",
        "description": "VARCHAR",
        "public": "BOOLEAN",
        "collaborative": "BOOLEAN",
        "owner": "STRUCT(id VARCHAR, display_name VARCHAR)",
        "snapshot_id": "VARCHAR",
        "followers": _TOTAL,
        # The API moved the page from `tracks` to `items` (2025); either may carry the total.
        "items": _TOTAL,
        "tracks": _TOTAL,
    },
    "related_artists": {
        "artist_id": "VARCHAR",
        "related_artist_id": "VARCHAR",
        "rank": "INTEGER",
    },
    "artist_albums": {
        "artist_id": "VARCHAR",
        "album_id": "VARCHAR",
        "album_group": "VARCHAR",
        "position": "INTEGER",
    },
    "playlist_items": {
        "playlist_id": "VARCHAR",
        "snapshot_id": "VARCHAR",
        "position": "INTEGER",
        "item_type": "VARCHAR",
        "item_id": "VARCHAR",
        "added_at": "VARCHAR",
        "added_by": "VARCHAR",
        "is_local": "BOOLEAN",
    },
}

# The streams of entities fetched by ID, whose tables get `fetched_at` from the store.
FETCHED_STREAMS: tuple[str, ...] = ("artists", "albums", "tracks", "playlists")


@dataclass(frozen=True)
class Column:
    name: str
    expr: str  # over the staging row `s` (and `f`, the fetched-at row, where joined)
    kind: Kind


@dataclass(frozen=True)
class Table:
    name: str
    stream: str
    columns: tuple[Column, ...]
    order: tuple[str, ...]  # a total order of the rows: exports are identical run to run
    rows: str = ""  # FROM-clause rows other than the staging table's own (a list unnested)

    def select(self, text: bool = False) -> str:
        """The table as one SELECT; ``text`` renders lists as JSON and times as ISO-8601 UTC,
        for the formats without those types (CSV, SQLite)."""
        exprs = ", ".join(f"{_render(c) if text else c.expr} AS {c.name}" for c in self.columns)
        source = self.rows or f"stage_{self.stream} s"
        if FETCHED_AT in self.columns:
            source += f" LEFT JOIN fetched_{self.stream} f ON f.id = s.id"
        order = ", ".join(self.order)
        return f"SELECT {exprs} FROM {source} ORDER BY {order}"


def _render(column: Column) -> str:
    if column.kind == "list":
        return f"to_json({column.expr})::VARCHAR"
    if column.kind == "time":
        return f"strftime({column.expr}, '%Y-%m-%dT%H:%M:%S.%fZ')"
    return column.expr


def _c(name: str, kind: Kind = "text", expr: str | None = None) -> Column:
    return Column(name, expr or f"s.{name}", kind)


FETCHED_AT = Column("fetched_at", "to_timestamp(f.epoch)", "time")


def _credits(table: str, key: str, stream: str) -> Table:
    """A many-to-many table from an object's `artists` list; position is the list index (0-based),
    kept even where an entry without an id (a local file's artist) is left out."""
    rows = (
        f"(SELECT s.id AS {key}, unnest(s.artists).id AS artist_id,"
        f" unnest(range(len(s.artists)))::INTEGER AS position FROM stage_{stream} s) s"
        " WHERE s.artist_id IS NOT NULL"
    )
    return Table(
        table,
        stream,
        (_c(key), _c("artist_id"), _c("position", "int")),
        (key, "position", "artist_id"),
        rows,
    )


TABLES: tuple[Table, ...] = (
    Table(
        "artists",
        "artists",
        (
            _c("id"),
            _c("name"),
            _c("genres", "list"),
            _c("popularity", "int"),
            _c("followers", "int", "s.followers.total"),
            _c("image_url", "text", "s.images[1].url"),
            FETCHED_AT,
        ),
        ("id",),
    ),
    Table(
        "albums",
        "albums",
        (
            _c("id"),
            _c("name"),
            _c("album_type"),
            _c("release_date"),
            _c("release_date_precision"),
            _c("release_year", "int", "TRY_CAST(left(s.release_date, 4) AS INTEGER)"),
            _c("total_tracks", "int"),
            _c("label"),
            _c("popularity", "int"),
            _c("upc", "text", "s.external_ids.upc"),
            FETCHED_AT,
            _c("image_url", "text", "s.images[1].url"),
        ),
        ("id",),
    ),
    Table(
        "tracks",
        "tracks",
        (
            _c("id"),
            _c("name"),
            _c("album_id", "text", "s.album.id"),
            _c("disc_number", "int"),
            _c("track_number", "int"),
            _c("duration_ms", "int"),
            _c("explicit", "bool"),
            _c("popularity", "int"),
            _c("isrc", "text", "s.external_ids.isrc"),
            FETCHED_AT,
            _c("is_local", "bool"),
        ),
        ("id",),
    ),
    Table(
        "audio_features",
        "audio_features",
        (
            _c("track_id", "text", "s.id"),
            *(_c(n, "int" if n in _INT_FEATURES else "real") for n in _FEATURES),
        ),
        ("track_id",),
    ),
    _credits("album_artists", "album_id", "albums"),
    _credits("track_artists", "track_id", "tracks"),
    Table(
        "artist_albums",
        "artist_albums",
        (_c("artist_id"), _c("album_id"), _c("album_group"), _c("position", "int")),
        ("artist_id", "position", "album_id", "album_group"),
    ),
    Table(
        "related_artists",
        "related_artists",
        (_c("artist_id"), _c("related_artist_id"), _c("rank", "int")),
        ("artist_id", "rank", "related_artist_id"),
    ),
    Table(
        "playlists",
        "playlists",
        (
            _c("id"),
            _c("name"),
            _c("owner_id", "text", "s.owner.id"),
            _c("snapshot_id"),
            _c("followers", "int", "s.followers.total"),
            _c("total_items", "int", "coalesce(s.items.total, s.tracks.total)"),
            FETCHED_AT,
            _c("owner_name", "text", "s.owner.display_name"),
            _c("description"),
            _c("public", "bool"),
            _c("collaborative", "bool"),
        ),
        ("id",),
    ),
    Table(
        "playlist_items",
        "playlist_items",
        (
            _c("playlist_id"),
            _c("position", "int"),
            _c("item_type"),
            _c("item_id"),
            _c("added_at", "time", "TRY_CAST(s.added_at AS TIMESTAMPTZ)"),
            _c("added_by"),
            _c("is_local", "bool"),
            _c("snapshot_id"),
        ),
        ("playlist_id", "snapshot_id", "position", "item_id"),
    ),
)

TABLE_NAMES: tuple[str, ...] = tuple(t.name for t in TABLES)
