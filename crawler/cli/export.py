"""The ``export`` sub-command: a crawl's committed outputs as tables (see crawler/export/)."""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import logging
import sqlite3
import sys
from collections.abc import Mapping
from dataclasses import asdict
from pathlib import Path
from typing import Any

import orjson

from crawler.api.capabilities import Capabilities
from crawler.cli.crawl import _one_line_errors, _setup_logging, fingerprint
from crawler.core.config import Config, load_config
from crawler.core.errors import ConfigError
from crawler.core.kinds import STREAMS, stream_file
from crawler.export import FORMATS, ExportSource, Format, committed_length, export

log = logging.getLogger("crawler.export")

# Edges an app can be refused (development mode): the card names those that were.
OPTIONAL_EDGES = ("related_artists", "audio_features")


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "export",
        help="write the committed outputs as Parquet, DuckDB, SQLite, CSV or JSON-lines tables",
        description="Turns what a crawl has committed (finished, running or interrupted) into "
        "analysis-ready tables, with a dataset.json describing them.",
    )
    p.add_argument("-c", "--config", default="crawl.toml", help="config file (crawl.toml)")
    p.add_argument("--format", required=True, choices=FORMATS)
    p.add_argument(
        "--to",
        type=Path,
        help="target: a directory for parquet, csv and jsonl, a file for duckdb and sqlite "
        "(default: <out_dir>/export/<format>, or <out_dir>/export/spotify.duckdb / .sqlite)",
    )
    p.add_argument("--force", action="store_true", help="replace an existing target")
    p.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    p.set_defaults(func=export_command)


def default_target(config: Config, fmt: Format) -> Path:
    base = config.crawl.out_dir / "export"
    return base / f"spotify.{fmt}" if fmt in ("duckdb", "sqlite") else base / fmt


def export_command(args: argparse.Namespace) -> int:
    _setup_logging(args.verbose)

    def run() -> int:
        config = load_config(args.config, need_credentials=False)
        to = args.to if args.to is not None else default_target(config, args.format)
        try:
            result = export(out_dir_source(config), args.format, to, force=args.force)
        except KeyboardInterrupt:
            print(f"interrupted: {to} was left as it was", file=sys.stderr)
            return 130
        print(
            f"exported {sum(result.rows.values()):,} rows in {len(result.rows)} "
            f"{'streams' if result.format == 'jsonl' else 'tables'} to {result.target} "
            f"in {result.seconds:.1f} s; dataset card: {result.dataset_json}"
        )
        return 0

    return _one_line_errors(run)


def dataset_card(config: Config, capabilities: Mapping[str, Any] | None) -> dict[str, Any]:
    """What dataset.json says about the crawl: the store's source passes this on."""
    crawl = fingerprint(config)
    caps = Capabilities.from_dict(dict(capabilities)) if capabilities else None
    return {
        "fingerprint": hashlib.sha256(orjson.dumps(crawl, option=orjson.OPT_SORT_KEYS)).hexdigest(),
        "seeds": orjson.loads(orjson.dumps(asdict(config.seeds))),
        "expand": crawl["expand"],
        "api_mode": config.api.mode,
        "capabilities": caps.to_dict() if caps else None,
        "unavailable_edges": (
            [edge for edge in OPTIONAL_EDGES if getattr(caps, edge) is False] if caps else None
        ),
    }


def out_dir_source(config: Config) -> ExportSource:
    """INTERIM — the lead replaces this with the store's ``store.export_source()``.

    Built from ``out_dir``'s JSON-lines files: each stream's committed length comes from the
    checkpoint's ``output`` table (a read-only look, so a running crawl is not disturbed), or
    where the checkpoint has none from the file's last newline; ``fetched_at`` is empty (the
    columns are null) because today's checkpoint does not record commit times.
    """
    out = config.crawl.out_dir
    jsonl = {s: out / stream_file(s) for s in STREAMS if (out / stream_file(s)).exists()}
    if not jsonl:
        raise ConfigError(f"{out}: no crawl output to export; run `spotify-crawler crawl` first")
    lengths, capabilities = _checkpoint_facts(config.crawl.checkpoint_path)
    lengths = {s: lengths.get(stream_file(s), committed_length(p)) for s, p in jsonl.items()}
    return ExportSource(jsonl, {}, dataset_card(config, capabilities), lengths)


def _checkpoint_facts(path: Path) -> tuple[dict[str, int], dict[str, Any] | None]:
    """INTERIM: committed file lengths and learned capabilities, from today's checkpoint."""
    if not path.exists():
        return {}, None
    try:
        with contextlib.closing(
            sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)
        ) as db:
            lengths = dict(db.execute("SELECT name, length FROM output").fetchall())
            row = db.execute("SELECT value FROM meta WHERE key = 'capabilities'").fetchone()
    except sqlite3.Error as exc:
        raise ConfigError(f"{path}: cannot read the checkpoint: {exc}") from None
    return lengths, orjson.loads(row[0]) if row else None
