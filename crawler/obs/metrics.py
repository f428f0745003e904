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
        requests = _family(_Counter, "requests", "API responses", "endpoint", "status")
        for (endpoint, status), n in sorted(self._sources.stats.requests.items()):
            requests.add_metric([endpoint, str(status)], n)
        yield requests
        limited = _family(_Counter, "rate_limited", "429 responses", "account", "reason")
        for account, reasons in sorted(sample.rate_limited.items()):
            for reason, n in sorted(reasons.items()):
                limited.add_metric([account, reason], n)
        yield limited
        parked = {account: sample.parked_until.get(account, 0.0) for account in sample.used}
        for kind, name, documentation, label, values in (
            (_Counter, "faults", "failed requests by kind (retried)", "kind", sample.faults),
            (_Counter, "records_written", "records committed per stream", "stream", sample.written),
            (_Gauge, "tasks_pending", "tasks still to do per operation", "op", sample.pending),
            (_Gauge, "account_budget_requests_per_second", _BUDGET, "account", sample.budget),
            (_Gauge, "account_parked_until_timestamp_seconds", _PARKED, "account", parked),
            (_Counter, "account_requests", "requests sent per account", "account", sample.used),
        ):
            family = _family(kind, name, documentation, label)
            for key, value in sorted(values.items()):
                family.add_metric([key], value)
            yield family
        yield _Counter(f"{PREFIX}retries", "requests retried", value=sample.retries)
        yield _Counter(f"{PREFIX}commits", "store commits", value=sample.commits)
        yield _Counter(
            f"{PREFIX}commit_seconds", "wall time of store commits", value=sample.commit_s
        )
        yield _Gauge(
            f"{PREFIX}last_progress_timestamp_seconds",
            "when a commit last settled work (a stalled crawl stops moving it)",
            value=self._last_progress(),
        )


_Counter, _Gauge = CounterMetricFamily, GaugeMetricFamily
_BUDGET = "the request rate each account is paced to (absent while its limit is discovered)"
_PARKED = "until when each account is rate-limited (0: it is running)"


def _family(
    kind: type[CounterMetricFamily | GaugeMetricFamily], name: str, documentation: str, *labels: str
) -> CounterMetricFamily | GaugeMetricFamily:
    return kind(f"{PREFIX}{name}", documentation, labels=labels)


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
