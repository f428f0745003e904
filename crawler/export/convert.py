"""``export()``: committed JSON lines → analysis-ready tables, published all at once or not at all.

Everything is staged in a work directory beside the target (same file system, so the final
step is one rename) and the work directory is removed whatever happens: an interrupted or
failed export leaves the previous target, or none, never half a file. DuckDB does the
conversion (its JSON reader and Parquet/CSV writers are built in), configured so that it never
installs or loads an extension: an export works offline. SQLite files are written through
Python's ``sqlite3`` from DuckDB's result rows, since DuckDB's SQLite support is an extension
it would download.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import logging
import os
import shutil
import sqlite3
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import orjson

from crawler.core.errors import ConfigError
from crawler.core.kinds import STREAMS, stream_file
from crawler.export.source import ExportError, ExportSource
from crawler.export.tables import FETCHED_STREAMS, STREAM_FIELDS, TABLES, Kind, Table

if TYPE_CHECKING:
    import duckdb

log = logging.getLogger("crawler.export")

Format = Literal["parquet", "duckdb", "sqlite", "csv", "jsonl"]
FORMATS: tuple[Format, ...] = ("parquet", "duckdb", "sqlite", "csv", "jsonl")
SINGLE_FILE: frozenset[Format] = frozenset({"duckdb", "sqlite"})
INSTALL_HINT = "pip install 'spotify-crawler[export]'"

# Bounds DuckDB's buffers (it spills to the work directory beyond them): with Python and the
# reader's buffers on top, a 1M-track export stays under 1 GB of RSS.
MEMORY_LIMIT = "500MB"
SQLITE_CHUNK = 20_000
_SQLITE_TYPES: dict[Kind, str] = {
    "text": "TEXT",
    "int": "INTEGER",
    "real": "REAL",
    "bool": "INTEGER",
    "list": "TEXT",
    "time": "TEXT",
}


class DuckDBMissing(ConfigError):
    """The optional dependency is not installed: a usage problem the user fixes with pip."""


@dataclass(frozen=True)
class ExportResult:
    """``rows``: table → rows written (for ``jsonl``: stream → lines copied)."""

    format: Format
    target: Path
    dataset_json: Path
    rows: dict[str, int]
    first_fetched_at: str | None
    last_fetched_at: str | None
    seconds: float


def dataset_json_path(fmt: Format, to: Path) -> Path:
    """Inside a directory target; beside a single-file one (``<to>.dataset.json``)."""
    return to.with_name(f"{to.name}.dataset.json") if fmt in SINGLE_FILE else to / "dataset.json"


def export(source: ExportSource, fmt: Format, to: Path, *, force: bool = False) -> ExportResult:
    """Write the source's committed records as ``fmt`` at ``to``, with its ``dataset.json``.

    Raises ConfigError (exit 2) for a target that exists (without ``force``) or that would
    swallow the source, DuckDBMissing when ``fmt`` needs DuckDB and it is not installed, and
    ExportError when a stream cannot be read.
    """
    if fmt not in FORMATS:
        raise ConfigError(f"unknown export format {fmt!r}; choose one of {', '.join(FORMATS)}")
    to = Path(os.path.abspath(to))
    _check_target(source, to, force)
    duckdb = None if fmt == "jsonl" else import_duckdb()
    started = time.monotonic()
    to.parent.mkdir(parents=True, exist_ok=True)
    work = to.parent / f".{to.name}.export-{os.getpid()}"
    shutil.rmtree(work, ignore_errors=True)  # a leftover of this pid's killed export
    work.mkdir()
    try:
        staged = work / to.name
        if duckdb is None:
            rows = _write_jsonl(source, staged)
            span = _span(source.times())
        else:
            try:
                rows, span = _write_with_duckdb(duckdb, source, fmt, staged, work)
            except (duckdb.Error, sqlite3.Error) as exc:  # e.g. a full disk: one line
                raise ExportError(f"cannot export to {to}: {_first_line(exc)}") from None
        card_path = (work if fmt in SINGLE_FILE else staged) / "dataset.json"
        card = _card(source, fmt, to, rows, span)
        card_path.write_bytes(orjson.dumps(card, option=orjson.OPT_INDENT_2) + b"\n")
        _publish(staged, to, card_path if fmt in SINGLE_FILE else None, fmt, work)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    seconds = time.monotonic() - started
    log.info("exported %s to %s in %.1f s", fmt, to, seconds)
    return ExportResult(fmt, to, dataset_json_path(fmt, to), rows, span[0], span[1], seconds)


def import_duckdb() -> Any:
    try:
        import duckdb
    except ImportError:
        raise DuckDBMissing(f"this export needs DuckDB: {INSTALL_HINT}") from None
    return duckdb


def _check_target(source: ExportSource, to: Path, force: bool) -> None:
    for path in source.jsonl.values():
        resolved = Path(os.path.abspath(path))
        if resolved == to or to in resolved.parents:
            raise ConfigError(f"{to}: the export target holds the crawl's own {path}; pick another")
    if to.exists() and not force:
        raise ConfigError(f"{to} already exists; pass --force to replace it")
    if to.exists() and not to.is_dir() and not to.is_file():
        raise ConfigError(f"{to} exists and is neither a file nor a directory; not replacing it")


def _publish(staged: Path, to: Path, card: Path | None, fmt: Format, work: Path) -> None:
    """Rename the staged target into place, so at no instant is a half-written one visible. A
    file replaces a file at once; a directory being replaced is first moved into the work
    directory (and removed with it): for that instant there is no target."""
    if to.is_dir():
        to.rename(work / "replaced")
    staged.replace(to)
    if card is not None:
        card.replace(dataset_json_path(fmt, to))


# -- fetched-at --------------------------------------------------------------------------


def _fetched_file(source: ExportSource, stream: str, work: Path) -> Path | None:
    """The stream's commit times as a TSV for DuckDB to load: formatting 2M pairs this way
    costs a quarter of what the csv module does. IDs are Spotify's base-62: no tab, no quote."""
    pairs = source.fetched_at.get(stream)
    if pairs is None or isinstance(pairs, Path):
        return pairs
    path = work / f"fetched_{stream}.tsv"
    with path.open("w") as f:
        f.writelines(f"{spotify_id}\t{at!r}\n" for spotify_id, at in pairs)
    return path


def _span(times: Iterable[float]) -> tuple[str | None, str | None]:
    """The first and last commit time, as ISO-8601 UTC."""
    low, high = float("inf"), float("-inf")
    for at in times:
        low, high = min(low, at), max(high, at)
    return (_iso(low), _iso(high)) if low <= high else (None, None)


def _iso(epoch: float) -> str:
    return dt.datetime.fromtimestamp(epoch, dt.UTC).isoformat(timespec="microseconds")


# -- jsonl: the committed bytes, as they are ---------------------------------------------


def _write_jsonl(source: ExportSource, staged: Path) -> dict[str, int]:
    staged.mkdir()
    rows = {}
    for stream in STREAMS:
        started = time.monotonic()
        with (staged / stream_file(stream)).open("wb") as dst:
            rows[stream] = source.copy(stream, dst)
        _progress(stream, rows[stream], started)
    return rows


# -- the DuckDB formats ------------------------------------------------------------------


def _write_with_duckdb(
    duckdb: Any, source: ExportSource, fmt: Format, staged: Path, work: Path
) -> tuple[dict[str, int], tuple[str | None, str | None]]:
    with _staged(duckdb, source, work, str(staged) if fmt == "duckdb" else ":memory:") as con:
        span = _fetched_span(con)
        if fmt not in SINGLE_FILE:
            staged.mkdir()
        write = _WRITERS[fmt]
        rows = {}
        for table in TABLES:
            started = time.monotonic()
            rows[table.name] = write(con, table, staged)
            _progress(table.name, rows[table.name], started)
        if fmt == "duckdb":
            con.execute("CHECKPOINT")
        return rows, span


@contextlib.contextmanager
def table_views(source: ExportSource, work: Path) -> Iterator[duckdb.DuckDBPyConnection]:
    """The export's tables as views over the staged streams, in an in-memory DuckDB: what
    the report aggregates, without writing an export first."""
    duckdb = import_duckdb()
    with _staged(duckdb, source, work, ":memory:") as con:
        for table in TABLES:
            con.execute(f"CREATE VIEW {table.name} AS {table.select()}")
        yield con


@contextlib.contextmanager
def _staged(
    duckdb: Any, source: ExportSource, work: Path, database: str
) -> Iterator[duckdb.DuckDBPyConnection]:
    """A DuckDB connection with every stream staged and the commit times loaded."""
    spill = work / "spill"
    spill.mkdir(exist_ok=True)
    config = {
        "autoinstall_known_extensions": False,
        "autoload_known_extensions": False,
        "allow_community_extensions": False,
        "memory_limit": MEMORY_LIMIT,
        "temp_directory": str(spill),
        "preserve_insertion_order": True,
    }
    con = duckdb.connect(database, config=config)
    try:
        con.execute("SET TimeZone = 'UTC'")  # fetched_at and added_at are UTC, rendered as such
        for stream in STREAMS:
            _stage(duckdb, con, source, stream, work)
        for stream in FETCHED_STREAMS:
            _load_fetched(con, stream, _fetched_file(source, stream, work))
        yield con
    finally:
        con.close()


def _fetched_span(con: duckdb.DuckDBPyConnection) -> tuple[str | None, str | None]:
    low, high = con.execute(
        "SELECT min(epoch), max(epoch) FROM ("
        + " UNION ALL ".join(f"SELECT epoch FROM fetched_{s}" for s in FETCHED_STREAMS)
        + ")"
    ).fetchone()
    return (None, None) if low is None else (_iso(low), _iso(high))


def _stage(
    duckdb: Any, con: duckdb.DuckDBPyConnection, source: ExportSource, stream: str, work: Path
) -> None:
    fields = STREAM_FIELDS[stream]
    ddl = ", ".join(f'"{name}" {kind}' for name, kind in fields.items())
    con.execute(f"CREATE TEMP TABLE stage_{stream} ({ddl})")
    started = time.monotonic()
    path = source.readable(stream, work)
    if path is None:
        return
    columns = "{" + ", ".join(f"'{n}': '{k}'" for n, k in fields.items()) + "}"
    try:
        con.execute(
            f"INSERT INTO stage_{stream} SELECT * FROM read_json({_literal(path)}, "
            f"format = 'newline_delimited', columns = {columns})"
        )
    except duckdb.Error as exc:
        raise ExportError(f"{source.jsonl[stream]}: {_first_line(exc)}") from None
    finally:
        if path != source.jsonl[stream]:
            path.unlink()  # a copy of the committed prefix: the disk it holds is needed next
    (count,) = con.execute(f"SELECT count(*) FROM stage_{stream}").fetchone()
    _progress(f"read {stream_file(stream)}", count, started)


def _load_fetched(con: duckdb.DuckDBPyConnection, stream: str, path: Path | None) -> None:
    con.execute(f"CREATE TEMP TABLE fetched_{stream} (id VARCHAR, epoch DOUBLE)")
    if path is not None and path.stat().st_size:
        # An id committed twice (never, by the store's rules) must not duplicate its row.
        con.execute(
            f"INSERT INTO fetched_{stream} SELECT id, max(epoch) FROM read_csv({_literal(path)}, "
            "delim = '\t', quote = '', escape = '', header = false, "
            "columns = {'id': 'VARCHAR', 'epoch': 'DOUBLE'}) GROUP BY id"
        )


def _copy_to(options: str, ext: str, text: bool) -> Callable[..., int]:
    def write(con: duckdb.DuckDBPyConnection, table: Table, staged: Path) -> int:
        path = staged / f"{table.name}.{ext}"
        (count,) = con.execute(
            f"COPY ({table.select(text)}) TO {_literal(path)} ({options})"
        ).fetchone()
        return int(count)

    return write


def _write_duckdb_table(con: duckdb.DuckDBPyConnection, table: Table, staged: Path) -> int:
    con.execute(f"CREATE TABLE {table.name} AS {table.select()}")
    (count,) = con.execute(f"SELECT count(*) FROM {table.name}").fetchone()
    return int(count)


def _write_sqlite_table(con: duckdb.DuckDBPyConnection, table: Table, staged: Path) -> int:
    db = sqlite3.connect(staged, isolation_level=None)
    try:
        # The file is renamed into place only once complete: no journal is needed.
        db.execute("PRAGMA journal_mode = OFF")
        db.execute("PRAGMA synchronous = OFF")
        columns = ", ".join(f"{c.name} {_SQLITE_TYPES[c.kind]}" for c in table.columns)
        db.execute(f"CREATE TABLE {table.name} ({columns})")
        insert = f"INSERT INTO {table.name} VALUES ({', '.join('?' * len(table.columns))})"
        result = con.execute(table.select(text=True))
        count = 0
        db.execute("BEGIN")
        while batch := result.fetchmany(SQLITE_CHUNK):
            db.executemany(insert, batch)
            count += len(batch)
        db.execute("COMMIT")
        return count
    finally:
        db.close()


_WRITERS: dict[Format, Callable[..., int]] = {
    "parquet": _copy_to("FORMAT parquet, COMPRESSION zstd", "parquet", text=False),
    "csv": _copy_to("FORMAT csv, HEADER", "csv", text=True),
    "duckdb": _write_duckdb_table,
    "sqlite": _write_sqlite_table,
}


def _literal(path: Path) -> str:
    return "'" + str(path).replace("'", "''") + "'"


def _first_line(exc: BaseException) -> str:
    return str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__


def _progress(name: str, rows: int, started: float) -> None:
    log.info("%s: %s rows in %.1f s", name, f"{rows:,}", time.monotonic() - started)


# -- dataset.json ------------------------------------------------------------------------


def _files(fmt: Format, to: Path, rows: dict[str, int]) -> list[str]:
    """The target's files, relative to the directory holding ``dataset.json``."""
    if fmt in SINGLE_FILE:
        return [to.name]
    return [stream_file(name) if fmt == "jsonl" else f"{name}.{fmt}" for name in rows]


def _card(
    source: ExportSource,
    fmt: Format,
    to: Path,
    rows: dict[str, int],
    span: tuple[str | None, str | None],
) -> dict[str, Any]:
    try:
        version = metadata.version("spotify-crawler")
    except metadata.PackageNotFoundError:  # pragma: no cover - run from a bare checkout
        version = None
    return {
        **source.dataset,
        "format": fmt,
        "tables": rows,
        "files": _files(fmt, to, rows),
        "first_fetched_at": span[0],
        "last_fetched_at": span[1],
        "exported_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "crawler_version": version,
    }
