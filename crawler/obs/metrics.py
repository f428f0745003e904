"""Prometheus metrics of a running crawl: ``/metrics`` on ``[crawl] metrics_port``.

Nothing is counted twice: a collector reads, at scrape time, the same counters the time
series samples (``sampler.observe``), so instrumenting costs the crawl nothing between
scrapes. Names follow the Prometheus conventions: the ``spotify_crawler_`` prefix, ``_total``
counters, base units (seconds, requests per second), and labels that are never IDs (accounts
are the names users give them in crawl.toml). Served by aiohttp on the crawl's own event loop,
bound to loopback unless configured otherwise.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.process_collector import ProcessCollector
from prometheus_client.registry import Collector

from crawler.core.errors import ConfigError
from crawler.obs.sampler import Sources, observe

log = logging.getLogger("crawler.obs.metrics")
PREFIX = "spotify_crawler_"


class CrawlCollector(Collector):
    def __init__(self, sources: Sources, last_progress: Callable[[], float]) -> None:
        self._sources = sources
        self._last_progress = last_progress

    def collect(self) -> Iterator[Metric]:
        sample = observe(self._sources, time.time())
        stats = self._sources.stats

        requests = _counter(
            "requests", "API responses by endpoint and HTTP status", "endpoint", "status"
        )
        for (endpoint, status), n in sorted(stats.requests.items()):
            requests.add_metric([endpoint, str(status)], n)
        yield requests
        limited = _counter(
            "rate_limited", "429 responses by account and reason", "account", "reason"
        )
        for account, reasons in sorted(sample.rate_limited.items()):
            for reason, n in sorted(reasons.items()):
                limited.add_metric([account, reason], n)
        yield limited
        faults = _counter("faults", "failed requests by kind (retried)", "kind")
        for kind, n in sorted(sample.faults.items()):
            faults.add_metric([kind], n)
        yield faults
        yield CounterMetricFamily(f"{PREFIX}retries", "requests retried", value=sample.retries)
        written = _counter("records_written", "records committed per output stream", "stream")
        for stream, n in sorted(sample.written.items()):
            written.add_metric([stream], n)
        yield written
        pending = _gauge("tasks_pending", "tasks still to do per operation", "op")
        for op, n in sample.pending.items():
            pending.add_metric([op], n)
        yield pending
        budget = _gauge(
            "account_budget_requests_per_second",
            "the request rate each account is paced to (absent while its limit is discovered)",
            "account",
        )
        for account, rps in sorted(sample.budget.items()):
            budget.add_metric([account], rps)
        yield budget
        parked = _gauge(
            "account_parked_until_timestamp_seconds",
            "until when each account is rate-limited (0: it is running)",
            "account",
        )
        for account in sorted(sample.used):
            parked.add_metric([account], sample.parked_until.get(account, 0.0))
        yield parked
        used = _counter("account_requests", "requests sent per account", "account")
        for account, n in sorted(sample.used.items()):
            used.add_metric([account], n)
        yield used
        yield CounterMetricFamily(f"{PREFIX}commits", "store commits", value=sample.commits)
        yield CounterMetricFamily(
            f"{PREFIX}commit_seconds", "wall time spent in store commits", value=sample.commit_s
        )
        yield GaugeMetricFamily(
            f"{PREFIX}last_progress_timestamp_seconds",
            "when a commit last settled work (a stalled crawl stops moving it)",
            value=self._last_progress(),
        )


def _counter(name: str, documentation: str, *labels: str) -> CounterMetricFamily:
    return CounterMetricFamily(f"{PREFIX}{name}", documentation, labels=labels)


def _gauge(name: str, documentation: str, *labels: str) -> GaugeMetricFamily:
    return GaugeMetricFamily(f"{PREFIX}{name}", documentation, labels=labels)


class MetricsServer:
    """``async with MetricsServer(...)``: serves ``/metrics`` for the block's duration."""

    def __init__(
        self, collector: CrawlCollector, host: str, port: int, config_path: object = "crawl.toml"
    ) -> None:
        self.registry = CollectorRegistry()
        self.registry.register(collector)
        ProcessCollector(namespace=PREFIX.rstrip("_"), registry=self.registry)
        self._host, self._port = host, port
        self._config_path = config_path
        self._runner: web.AppRunner | None = None
        self.url = ""

    async def __aenter__(self) -> MetricsServer:
        app = web.Application()
        app.router.add_get("/metrics", self._metrics)
        self._runner = web.AppRunner(app, access_log=None, handle_signals=False)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self._host, self._port)
        try:
            await site.start()
        except OSError as exc:
            await self._runner.cleanup()
            raise ConfigError(
                f"{self._config_path}: crawl.metrics_port: cannot serve metrics on "
                f"{self._host}:{self._port}: {exc.strerror or exc}"
            ) from None
        host, port = self._runner.addresses[0][:2]
        self.url = f"http://{host}:{port}/metrics"
        log.info("metrics at %s", self.url)
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    async def _metrics(self, _: web.Request) -> web.Response:
        body = generate_latest(self.registry)
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})
