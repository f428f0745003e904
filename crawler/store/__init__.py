"""Where a crawl's work and output live: one interface (``base.Store``), backends behind it."""

from __future__ import annotations

from typing import Any

import msgspec

from crawler.core.config import Config
from crawler.core.errors import ConfigError
from crawler.core.kinds import ENTITY_STREAMS, STREAMS
from crawler.store.base import Store
from crawler.store.plan import fingerprint
from crawler.store.sqlite import SqliteStore


def crawl_fingerprint(config: Config) -> dict[str, Any]:
    """The settings a checkpoint belongs to (see ``plan.fingerprint``)."""
    return fingerprint(config.seeds, config.expand, config.output)


def enabled_streams(config: Config) -> list[str]:
    """The streams this crawl writes: every entity stream, and the edges turned on."""
    edges = msgspec.structs.asdict(config.output)
    return [s for s in STREAMS if s in ENTITY_STREAMS or edges[s]]


def _sqlite_only(config: Config) -> None:
    if config.store.backend != "sqlite":
        raise ConfigError(
            f"{config.path}: store.backend: {config.store.backend!r} is not available yet"
        )


async def open_store(config: Config, *, fresh: bool = False) -> Store:
    """Lock and open the crawl's store for writing (``fresh``: wiped first, under the lock)."""
    _sqlite_only(config)
    return await SqliteStore.open(
        config.crawl.checkpoint_path,
        config.crawl.out_dir,
        crawl_fingerprint(config),
        enabled_streams(config),
        fresh=fresh,
    )


async def open_store_readonly(config: Config) -> SqliteStore:
    """For ``status`` and ``export``: a running crawl's store, read without disturbing it."""
    _sqlite_only(config)
    return await SqliteStore.open_readonly(config.crawl.checkpoint_path, config.crawl.out_dir)
