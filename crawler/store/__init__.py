"""Where a crawl's work and output live: one interface (``base.Store``), backends behind it."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import msgspec

from crawler.core.config import Config
from crawler.core.errors import ConfigError
from crawler.core.kinds import ENTITY_STREAMS, STREAMS
from crawler.store.base import Store
from crawler.store.plan import fingerprint
from crawler.store.sqlite import SqliteStore, ensure_writable

if TYPE_CHECKING:
    from crawler.store.postgres import PostgresStore


def crawl_fingerprint(config: Config) -> dict[str, Any]:
    """The settings a checkpoint belongs to (see ``plan.fingerprint``)."""
    return fingerprint(config.seeds, config.expand, config.output)


def enabled_streams(config: Config) -> list[str]:
    """The streams this crawl writes: every entity stream, and the edges turned on."""
    edges = msgspec.structs.asdict(config.output)
    return [s for s in STREAMS if s in ENTITY_STREAMS or edges[s]]


def _postgres(config: Config) -> type[PostgresStore]:
    try:
        from crawler.store.postgres import PostgresStore
    except ImportError:  # asyncpg is the optional extra "postgres"
        raise ConfigError(
            f'{config.path}: store.backend: "postgres" needs asyncpg: pip install -e ".[postgres]"'
        ) from None
    return PostgresStore


async def open_store(config: Config, *, fresh: bool = False) -> Store:
    """Open the crawl's store for writing (``fresh``: wiped first; SQLite: locked first)."""
    store = config.store
    if store.backend == "postgres":
        ensure_writable(config.crawl.out_dir)  # stats.json: the records are in the database
        return await _postgres(config).open(
            store.dsn, store.redacted_dsn, store.name, crawl_fingerprint(config), fresh=fresh
        )
    return await SqliteStore.open(
        config.crawl.checkpoint_path,
        config.crawl.out_dir,
        crawl_fingerprint(config),
        enabled_streams(config),
        fresh=fresh,
    )


async def open_store_readonly(config: Config) -> SqliteStore | PostgresStore:
    """For ``status`` and ``export``: a running crawl's store, read without disturbing it."""
    store = config.store
    if store.backend == "postgres":
        return await _postgres(config).open(
            store.dsn, store.redacted_dsn, store.name, None, readonly=True
        )
    return await SqliteStore.open_readonly(config.crawl.checkpoint_path, config.crawl.out_dir)
