"""``spotify-crawler report``: one self-contained HTML file of how the crawl went and what the
dataset holds (see crawler/report/), built from the store without disturbing a running crawl."""

from __future__ import annotations

import argparse
import logging
import tempfile
import time
from pathlib import Path

from crawler.cli.common import command, one_line_errors, run_async
from crawler.cli.export import dataset_card, store_source
from crawler.core.config import Config, load_config
from crawler.core.errors import ConfigError
from crawler.core.logs import setup_logging
from crawler.core.timeseries import Run, Sample
from crawler.export import table_views
from crawler.store import open_store_readonly

log = logging.getLogger("crawler.cli.report")
INSTALL_HINT = "pip install 'spotify-crawler[report]'"


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = command(
        sub,
        "report",
        help="write an HTML report of the crawl and its dataset (opens offline)",
        description="One self-contained HTML file: requests, 429s, budgets, faults, entities "
        "and pending work over time, runs and pauses; the dataset's tables and distributions.",
    )
    p.add_argument("--to", type=Path, help="the HTML file (default: <out_dir>/report.html)")
    p.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    p.set_defaults(func=report_command)


def report_command(args: argparse.Namespace) -> int:
    setup_logging(args.verbose)

    def run() -> int:
        config = load_config(args.config, credentials=False)
        to = args.to if args.to is not None else config.crawl.out_dir / "report.html"
        seconds = build(config, to)
        print(f"report written to {to} in {seconds:.1f} s")
        return 0

    return one_line_errors(run)


def build(config: Config, to: Path) -> float:
    """Gather the report's data from the store and render it; returns the seconds it took."""
    try:
        # build_report imports Bokeh on first use: here, so a missing extra is one line.
        from crawler.report import ReportData, build_report, read_dataset, read_timeline
    except ImportError:
        raise ConfigError(f"the report needs Bokeh and DuckDB: {INSTALL_HINT}") from None
    started = time.monotonic()
    to.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=".report-", dir=to.parent) as scratch:
        work = Path(scratch)
        source = run_async(store_source(config, work))
        samples, runs, capabilities = run_async(_series(config))
        with table_views(source, work) as con:
            dataset = read_dataset(con)
        card = dataset_card(config, capabilities)
        data = ReportData(
            title=f"spotify-crawler: {config.path.name}",
            generated_at=time.time(),
            api_mode=str(card["api_mode"]),
            capabilities=card["capabilities"] or {},
            dataset=dataset,
            timeline=read_timeline(samples, runs),
        )
        build_report(data, to)
    return time.monotonic() - started


async def _series(config: Config) -> tuple[list[Sample], list[Run], dict | None]:
    store = await open_store_readonly(config)
    try:
        return await store.samples(), await store.runs(), store.meta.get("capabilities")
    finally:
        await store.close()
