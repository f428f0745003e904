"""``spotify-crawler crawl``: wires config, store, client and engine for one run."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import logging
import os
import signal
import sys
import time
from collections.abc import AsyncIterator

import msgspec
import orjson

from crawler.api.capabilities import Capabilities
from crawler.api.client import SpotifyClient
from crawler.api.ledger import Ledger
from crawler.cli.common import command, one_line_errors, run_async
from crawler.core.config import Config, StoreConfig, load_config
from crawler.core.errors import ConfigError, CrawlerError
from crawler.core.kinds import ENTITIES, STREAMS, Op, State
from crawler.core.logs import setup_logging
from crawler.core.stats import Stats
from crawler.crawl.engine import EXIT_FAILED, Engine, RunResult
from crawler.crawl.progress import ProgressDisplay
from crawler.obs.sampler import Sampler, Sources
from crawler.store import open_store
from crawler.store.base import Store, failed, pending
from crawler.store.lock import CheckpointLocked

log = logging.getLogger("crawler.cli.crawl")

EXIT_CODES = """\
exit codes:
  0    the crawl is complete
  1    anything else: requests kept failing (rerun retries them), a credential was refused,
       the disk is full, no seed exists
  2    usage or configuration error; a checkpoint that does not match the config, is
       unreadable, or is in use by another running crawl
  3    paused: every account is rate-limited beyond api.max_retry_after_s (rerun then)
  130  interrupted (SIGINT/SIGTERM); rerun the same command to resume
"""


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    crawl = command(
        sub,
        "crawl",
        help="crawl the catalog from the seeds in the config",
        description="Crawl the catalog from the seeds in the config; rerun to resume.",
        epilog=EXIT_CODES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    crawl.add_argument(
        "--sim", action="store_true", help="start the built-in simulator and crawl it"
    )
    crawl.add_argument(
        "--fresh", action="store_true", help="delete the checkpoint and outputs, start afresh"
    )
    crawl.add_argument("--progress", choices=("auto", "bar", "log", "off"), default=None)
    crawl.add_argument(
        "--metrics-port",
        type=int,
        default=None,
        metavar="PORT",
        help="serve Prometheus metrics on PORT (overrides crawl.metrics_port; 0 = off)",
    )
    crawl.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    crawl.add_argument(
        "--log-format",
        choices=("human", "json"),
        default="human",
        help="json: one JSON object per line on stderr, for log shippers (progress as log lines)",
    )
    crawl.set_defaults(func=crawl_command)


def _tune_gc() -> None:
    """A crawl makes millions of short-lived tuples and few reference cycles: collecting the
    young generation every 700 allocations cost ~9 % of the crawler's CPU (1,000-artist crawl)."""
    gc.freeze()  # what is loaded by now lives as long as the process: never scan it again
    gc.set_threshold(20_000, 10, 10)


def crawl_command(args: argparse.Namespace) -> int:
    setup_logging(args.verbose, args.log_format)

    def crawl() -> int:
        config = load_config(args.config, sim=args.sim)
        return run_async(_crawl(config, args))

    return one_line_errors(crawl)


async def _crawl(config: Config, args: argparse.Namespace) -> int:
    _tune_gc()
    if args.metrics_port is not None:
        if not 0 <= args.metrics_port <= 65535:
            raise ConfigError(f"--metrics-port: {args.metrics_port} is not a port (0..65535)")
        config = msgspec.structs.replace(
            config, crawl=msgspec.structs.replace(config.crawl, metrics_port=args.metrics_port)
        )
    result = await run_crawl(
        config, sim=args.sim, fresh=args.fresh, progress=args.progress, handle_signals=True
    )
    stream = sys.stdout if result.exit_code == 0 else sys.stderr
    print(result.message, file=stream)
    return result.exit_code


@contextlib.asynccontextmanager
async def _simulated(config: Config) -> AsyncIterator[Config]:
    """Serve the config's credentials from an in-process simulator and point the config at it."""
    from crawler.sim.catalog import Catalog
    from crawler.sim.config import SimClient, SimConfig
    from crawler.sim.server import start_sim

    clients = tuple(
        SimClient(c.client_id, c.client_secret, c.account, config.sim.rate or None)
        for c in config.credentials
    )
    sim_config = SimConfig(
        mode=config.sim.mode,
        clients=clients,
        rate=config.sim.rate,
        latency_ms=config.sim.latency_ms,
    )
    catalog = Catalog(config.sim.artists, seed=config.sim.seed, playlists=config.sim.playlists)
    sim = await start_sim(sim_config, catalog)
    log.info("simulator (%s mode, %d artists) at %s", config.sim.mode, config.sim.artists, sim.url)
    try:
        yield config.with_api(base_url=sim.url, token_url=f"{sim.url}/api/token")
    finally:
        await sim.close()


# With a SQLite store, the PostgreSQL database whose ledger the accounts' budgets share.
BUDGET_DSN_ENV = "SPOTIFY_CRAWLER_BUDGET_DSN"


@contextlib.asynccontextmanager
async def _shared_budgets(config: Config) -> AsyncIterator[Ledger | None]:
    """The ledger through which every process crawling with these accounts paces them:
    the PostgreSQL store's database, else $SPOTIFY_CRAWLER_BUDGET_DSN's; None: this process
    alone."""
    store = config.store
    if store.backend != "postgres":
        store = StoreConfig(dsn=os.environ.get(BUDGET_DSN_ENV, ""))
    if not store.dsn:
        yield None
        return
    try:
        import asyncpg

        from crawler.store.pg_budget import PgLedger
    except ImportError:
        raise ConfigError(
            "a budget shared through PostgreSQL needs asyncpg: "
            'pip install "spotify-crawler[postgres]"'
        ) from None

    try:
        ledger = await PgLedger.connect(store.dsn)
    except (OSError, asyncpg.PostgresError) as exc:
        raise CrawlerError(f"rate-limit ledger at {store.redacted_dsn}: {exc}") from None
    log.info("accounts' budgets shared through %s", store.redacted_dsn)
    async with ledger:
        yield ledger


async def run_crawl(
    config: Config,
    *,
    sim: bool = False,
    fresh: bool = False,
    progress: str | None = None,
    handle_signals: bool = False,
) -> RunResult:
    """One run of a crawl: resumes its store, writes stats.json, returns the outcome.

    stats.json is written at every exit once the store is open, errors included, and the
    store records the verdict so ``status`` agrees with it; a crawl refused because another
    one runs on the same checkpoint writes nothing (the files are the other run's).
    """
    if config.seeds.is_empty():
        raise ConfigError(f"{config.path}: seeds: no seeds configured; nothing to crawl")
    stats = Stats()
    async with contextlib.AsyncExitStack() as stack:
        if sim:
            config = await stack.enter_async_context(_simulated(config))
        try:
            store = await open_store(config, fresh=fresh)
        except CheckpointLocked:
            raise
        except CrawlerError as exc:
            _write_stats(config, None, stats, RunResult(exc.exit_code, False, str(exc)), 0.0)
            raise
        stack.push_async_callback(store.close)
        if fresh:
            (config.crawl.out_dir / "stats.json").unlink(missing_ok=True)
        result = RunResult(EXIT_FAILED, False, "the crawl stopped unexpectedly")
        engine: Engine | None = None
        try:
            run_id = await store.begin_run()
            learned = store.meta.get("capabilities")
            ledger = await stack.enter_async_context(_shared_budgets(config))
            client = await stack.enter_async_context(
                SpotifyClient(
                    config.api,
                    config.credentials,
                    concurrency=config.crawl.concurrency,
                    stats=stats,
                    capabilities=Capabilities.from_dict(learned) if learned else None,
                    ledger=ledger,
                )
            )
            engine = Engine(config, client, store, stats)
            sources = Sources(stats, store, client.status, run_id)
            result = await _run_engine(engine, sources, config, progress, handle_signals)
        except CrawlerError as exc:
            result = RunResult(exc.exit_code, False, str(exc))
        finally:
            with contextlib.suppress(Exception):  # e.g. the disk that just filled up
                await store.end_run(result.exit_code, result.message)
            commit_wait = engine.commit_wait_s if engine is not None else 0.0
            _write_stats(config, store, stats, result, commit_wait)
    return result


async def _run_engine(
    engine: Engine, sources: Sources, config: Config, progress: str | None, handle_signals: bool
) -> RunResult:
    if handle_signals:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, engine.interrupt)
    async with contextlib.AsyncExitStack() as stack:
        if config.crawl.metrics_port:
            from crawler.obs.metrics import CrawlCollector, MetricsServer  # aiohttp.web: 30 ms

            collector = CrawlCollector(sources, lambda: engine.last_progress)
            await stack.enter_async_context(
                MetricsServer(
                    collector, config.crawl.metrics_host, config.crawl.metrics_port, config.path
                )
            )
        sampler = asyncio.create_task(Sampler(sources).run())
        try:
            # Leaving the block draws the final counts: the run's last commit is behind it.
            async with ProgressDisplay(progress or config.crawl.progress, engine.snapshot):
                result = await engine.run()
        finally:
            sampler.cancel()  # it records one last sample, which the run's end makes durable
            with contextlib.suppress(asyncio.CancelledError):
                await sampler
    return result


def _write_stats(
    config: Config, store: Store | None, stats: Stats, result: RunResult, commit_wait_s: float
) -> None:
    summary = {
        "complete": result.complete,
        "exit_code": result.exit_code,
        "message": result.message,
        "elapsed_s": round(stats.elapsed(), 3),
        **stats.as_dict(),
    }
    if store is not None:
        counts, written, cost = store.counts(), store.written(), store.cost()
        summary |= {
            # Entities are totals over every run of this crawl: they are what the files hold.
            "written": {stream: written[stream] for stream in STREAMS},
            "missing": {k.stream: counts[(op, State.MISSING)] for op, k in ENTITIES.items()},
            "failures": failed(counts),
            "pending": pending(counts),
            "pending_by_op": {
                op.name.lower(): counts[(op, State.PENDING)]
                for op in Op
                if counts[(op, State.PENDING)]
            },
            "commits": cost.commits,
            "commit_seconds": round(cost.commit_seconds, 3),
            "checkpoint_cpu_s": round(cost.cpu_seconds, 3),
            "checkpoint_cpu_parts": {k: round(v, 3) for k, v in cost.cpu_parts.items()},
            "commit_wait_s": round(commit_wait_s, 3),
        }
    summary["finished_at"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    path = config.crawl.out_dir / "stats.json"
    try:
        path.write_bytes(orjson.dumps(summary, option=orjson.OPT_INDENT_2))
    except OSError as exc:  # e.g. an out_dir that cannot be written: the outcome still stands
        log.debug("could not write %s: %s", path, exc.strerror or exc)
