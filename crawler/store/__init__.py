"""Where a crawl's work and output live: one interface (``base.Store``), backends behind it."""

from __future__ import annotations

from crawler.core.config import Config
from crawler.core.kinds import EDGE_STREAMS, STREAMS
from crawler.store.base import Store
from crawler.store.plan import fingerprint
from crawler.store.sqlite import SqliteStore


def crawl_fingerprint(config: Config) -> dict:
    """The settings a checkpoint belongs to (see ``plan.fingerprint``)."""
    return fingerprint(config.seeds, config.expand, output_settings(config))


def output_settings(config: Config) -> dict[str, bool]:
    """Which edge streams the crawl writes."""
    return dict.fromkeys(EDGE_STREAMS, True)


def enabled_streams(config: Config) -> list[str]:
    """The streams this crawl writes: every entity stream, and the edges turned on."""
    edges = output_settings(config)
    return [s for s in STREAMS if edges.get(s, True)]


async def open_store(config: Config, *, fresh: bool = False) -> Store:
    """Lock and open the crawl's store for writing (``fresh``: wiped first, under the lock)."""
    return await SqliteStore.open(
        config.crawl.checkpoint_path,
        config.crawl.out_dir,
        crawl_fingerprint(config),
        enabled_streams(config),
        fresh=fresh,
    )


async def open_store_readonly(config: Config) -> SqliteStore:
    """For ``status`` and ``export``: a running crawl's store, read without disturbing it."""
    return await SqliteStore.open_readonly(config.crawl.checkpoint_path, config.crawl.out_dir)
