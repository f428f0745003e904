"""Reads the dataset part of the report from the export tables (issue 13's public interface).

Every figure is aggregated by DuckDB in SQL, so a million-track dataset costs a few scans and
the report holds only bins and counts. A table that the export does not hold counts as None;
an empty one as 0 (development-mode apps get no audio features or related artists).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from crawler.report.model import Bins, Dataset

if TYPE_CHECKING:
    import duckdb

TABLES = (
    "artists",
    "albums",
    "tracks",
    "audio_features",
    "album_artists",
    "track_artists",
    "artist_albums",
    "related_artists",
    "playlists",
    "playlist_items",
)
TOP_GENRES = 25
UNIT_BINS = 40  # bins of the audio features that range over [0, 1]
UNIT_FEATURES = (
    "danceability",
    "energy",
    "speechiness",
    "acousticness",
    "instrumentalness",
    "liveness",
    "valence",
)
KEYS = ("C", "C♯", "D", "D♯", "E", "F", "F♯", "G", "G♯", "A", "A♯", "B")
# Other numeric features: (column, bin width, lowest bin, highest bin); outliers are clamped.
SCALED_FEATURES = (("loudness", 1.0, -60.0, 0.0), ("tempo", 5.0, 0.0, 250.0))
DURATION_BIN_MIN = 0.25  # track lengths in quarter minutes, up to …
DURATION_MAX_MIN = 15.0  # … 15 minutes (longer ones go to the last bin)


def read_dataset(con: duckdb.DuckDBPyConnection) -> Dataset:
    """Aggregates the export tables in ``con``'s current schema into a Dataset.

    Tables or views: a Parquet export is read through ``CREATE VIEW artists AS SELECT * FROM
    'artists.parquet'`` and so on, without loading it.
    """
    present = {
        name
        for (name,) in con.execute(
            """SELECT table_name FROM information_schema.tables
               WHERE table_schema = current_schema() AND table_catalog = current_database()"""
        ).fetchall()
    }
    counts: dict[str, int | None] = {
        table: _scalar(con, f"SELECT count(*) FROM {table}") if table in present else None
        for table in TABLES
    }

    def has(table: str) -> bool:
        return bool(counts.get(table))

    return Dataset(
        counts=counts,
        release_years=_release_years(con) if has("albums") else {},
        top_genres=_rows(
            con,
            f"""SELECT genre, count(*) AS n FROM (SELECT unnest(genres) AS genre FROM artists)
                GROUP BY genre ORDER BY n DESC, genre LIMIT {TOP_GENRES}""",
        )
        if has("artists")
        else (),
        features=_features(con) if has("audio_features") else {},
        durations=_binned(
            con, "tracks", "duration_ms / 60000.0", DURATION_BIN_MIN, 0.0, DURATION_MAX_MIN
        )
        if has("tracks")
        else (),
        related_in=_degrees(con, "related_artist_id") if has("related_artists") else (),
        related_out=_degrees(con, "artist_id") if has("related_artists") else (),
        playlist_sizes=_playlist_sizes(con) if has("playlists") else (),
        playlist_item_types=_rows(
            con,
            """SELECT CASE WHEN is_local THEN 'local' ELSE coalesce(item_type, 'unknown') END
                   AS kind, count(*) AS n
               FROM playlist_items GROUP BY kind ORDER BY n DESC, kind""",
        )
        if has("playlist_items")
        else (),
    )


def _scalar(con: duckdb.DuckDBPyConnection, sql: str) -> Any:
    row = con.execute(sql).fetchone()
    return row[0] if row else None


def _rows(con: duckdb.DuckDBPyConnection, sql: str) -> Bins:
    return tuple((label, int(n)) for label, n in con.execute(sql).fetchall())


def _release_years(con: duckdb.DuckDBPyConnection) -> dict[str, Bins]:
    by_type: dict[str, list[tuple[str | float, int]]] = {}
    for album_type, year, n in con.execute(
        """SELECT coalesce(album_type, 'unknown'), release_year, count(*) FROM albums
           WHERE release_year IS NOT NULL GROUP BY ALL ORDER BY 1, 2"""
    ).fetchall():
        by_type.setdefault(album_type, []).append((int(year), int(n)))
    return {album_type: tuple(bins) for album_type, bins in by_type.items()}


def _binned(
    con: duckdb.DuckDBPyConnection, table: str, expr: str, width: float, low: float, high: float
) -> Bins:
    """A histogram of ``expr`` with every bin from ``low`` to ``high`` (zeros included)."""
    last = round((high - low) / width)
    found = dict(
        con.execute(
            f"""SELECT least(greatest(floor(({expr} - ?) / ?), 0), ?)::INTEGER AS bin, count(*)
                FROM {table} WHERE {expr} IS NOT NULL GROUP BY bin""",
            [low, width, last],
        ).fetchall()
    )
    return tuple((round(low + b * width, 9), int(found.get(b, 0))) for b in range(last + 1))


def _features(con: duckdb.DuckDBPyConnection) -> dict[str, Bins]:
    width = 1.0 / UNIT_BINS
    features = {
        name: _binned(con, "audio_features", name, width, 0.0, 1.0 - width)
        for name in UNIT_FEATURES
    }
    for name, bin_width, low, high in SCALED_FEATURES:
        features[name] = _binned(con, "audio_features", name, bin_width, low, high)
    keys = dict(
        con.execute(
            "SELECT key, count(*) FROM audio_features WHERE key BETWEEN 0 AND 11 GROUP BY key"
        ).fetchall()
    )
    features["key"] = tuple((label, int(keys.get(i, 0))) for i, label in enumerate(KEYS))
    features["mode"] = _rows(
        con,
        """SELECT CASE mode WHEN 1 THEN 'major' WHEN 0 THEN 'minor' END AS m, count(*)
           FROM audio_features WHERE mode IN (0, 1) GROUP BY m ORDER BY m""",
    )
    features["time_signature"] = _rows(
        con,
        """SELECT time_signature || '/4', count(*) FROM audio_features
           WHERE time_signature IS NOT NULL GROUP BY time_signature ORDER BY time_signature""",
    )
    return features


def _degrees(con: duckdb.DuckDBPyConnection, column: str) -> Bins:
    """How many artists have each degree in the related-artists graph, by ``column``."""
    return _rows(
        con,
        f"""SELECT degree, count(*) FROM
                (SELECT count(*) AS degree FROM related_artists GROUP BY {column})
            GROUP BY degree ORDER BY degree""",
    )


def _playlist_sizes(con: duckdb.DuckDBPyConnection) -> Bins:
    """Playlists by size in powers of two (sizes span 0 to 10,000): 0, 1, 2–3, 4–7, …"""
    found = dict(
        con.execute(
            """SELECT CASE WHEN total_items <= 0 THEN -1
                      ELSE floor(log2(total_items))::INTEGER END AS b, count(*)
               FROM playlists WHERE total_items IS NOT NULL GROUP BY b"""
        ).fetchall()
    )
    if not found:
        return ()
    bins: list[tuple[str | float, int]] = [("0", int(found.get(-1, 0)))]
    for b in range(max(found) + 1):
        low, high = 2**b, 2 ** (b + 1) - 1
        bins.append((str(low) if low == high else f"{low}–{high}", int(found.get(b, 0))))
    return tuple(bins)
