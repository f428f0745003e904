"""``spotify-crawler export``: a crawl's committed JSON lines as Parquet, DuckDB, SQLite, CSV or
JSON-lines tables (see ``tables.py`` for the public tables and ``convert.py`` for the layout)."""

from crawler.export.convert import (
    FORMATS,
    INSTALL_HINT,
    DuckDBMissing,
    ExportResult,
    Format,
    dataset_json_path,
    export,
    table_views,
)
from crawler.export.source import ExportError, ExportSource
from crawler.export.tables import TABLE_NAMES, TABLES

__all__ = [
    "FORMATS",
    "INSTALL_HINT",
    "TABLES",
    "TABLE_NAMES",
    "DuckDBMissing",
    "ExportError",
    "ExportResult",
    "ExportSource",
    "Format",
    "dataset_json_path",
    "export",
    "table_views",
]
