"""Benchmark of the report (issue 16): a 1M-track dataset and a week-long crawl's samples.

    python scripts/bench_report.py [--tracks 1000000] [--days 7] [--runs 3] [--compare]

Makes the export tables in DuckDB with SQL (``range()`` and random values) and a week of
samples every 5 s (no downsampling: the worst case a store could hand over), then times the
two readers and ``build_report`` and prints each run's figures and PASS/FAIL against the
issue's budget (≤ 30 s to build, < 5 MB). Generating the inputs is not timed.

``--compare`` also draws the same charts with plotly (plotly.js inline) and matplotlib (PNG
and SVG embedded) — the measurement behind choosing Bokeh, see crawler/report/render.py.
They are not dependencies of the project: ``pip install plotly matplotlib`` first.
"""

from __future__ import annotations

import argparse
import base64
import io
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import duckdb
import numpy as np

from crawler.api.capabilities import Capabilities
from crawler.report import ReportData, build_report, read_dataset, read_timeline, sections
from crawler.report.charts import Chart, Section
from crawler.report.render import HEIGHTS
from crawler.report.synthetic import synthetic_crawl, synthetic_dataset

MAX_BUILD_S = 30.0
MAX_BYTES = 5_000_000


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tracks", type=int, default=1_000_000)
    parser.add_argument("--days", type=float, default=7.0)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--compare", action="store_true")
    parser.add_argument("--keep", type=Path, help="write the last report here")
    args = parser.parse_args(argv)
    if args.runs < 1:
        parser.error("--runs must be at least 1")

    print(f"making {args.tracks:,} tracks and {args.days:g} days of samples every 5 s …")
    con = duckdb.connect()
    synthetic_dataset(con, args.tracks, "extended")
    samples, runs = synthetic_crawl(days=args.days, accounts=3)
    print(f"{len(samples):,} samples, {len(runs)} runs")

    ok = True
    walls: list[float] = []
    with tempfile.TemporaryDirectory() as tmp:
        path = args.keep or Path(tmp) / "report.html"
        for i in range(args.runs):
            c0, t0 = time.process_time(), time.perf_counter()
            data = ReportData(
                title="bench",
                generated_at=time.time(),
                api_mode="extended",
                capabilities=Capabilities.for_mode("extended").to_dict(),
                dataset=read_dataset(con),
                timeline=read_timeline(samples, runs),
            )
            c1, t1 = time.process_time(), time.perf_counter()
            build_report(data, path)
            c2, t2 = time.process_time(), time.perf_counter()
            size = path.stat().st_size
            walls.append(t2 - t0)
            good = t2 - t0 <= MAX_BUILD_S and size < MAX_BYTES
            ok = ok and good
            print(
                f"run {i + 1}: readers {t1 - t0:.2f} s (CPU {c1 - c0:.2f} s) + build"
                f" {t2 - t1:.2f} s (CPU {c2 - c1:.2f} s) = {t2 - t0:.2f} s (≤ {MAX_BUILD_S:.0f} s),"
                f" {size / 1e6:.3f} MB (< {MAX_BYTES / 1e6:.0f} MB) {'PASS' if good else 'FAIL'}"
            )
        print(f"median {statistics.median(walls):.2f} s {'PASS' if ok else 'FAIL'}")
        if args.compare:
            compare(sections(data), bokeh_size=size)
    return 0 if ok else 1


def compare(content: tuple[Section, ...], bokeh_size: int) -> None:
    """Times the other libraries twice each (the first includes importing them)."""
    print(f"bokeh: {bokeh_size / 1e6:.3f} MB, build times above")
    candidates: list[tuple[str, Callable[[tuple[Section, ...]], str]]] = [
        ("plotly", plotly_page),
        ("matplotlib PNG", lambda c: matplotlib_page(c, "png")),
        ("matplotlib SVG", lambda c: matplotlib_page(c, "svg")),
    ]
    for name, draw in candidates:
        for attempt in ("cold", "warm"):
            c0, t0 = time.process_time(), time.perf_counter()
            page = draw(content)
            wall, cpu = time.perf_counter() - t0, time.process_time() - c0
            size = len(page.encode())
            print(f"{name} ({attempt}): {wall:.2f} s (CPU {cpu:.2f} s), {size / 1e6:.3f} MB")


def _charts(content: tuple[Section, ...]) -> list[Chart]:
    return [c for section in content for c in section.charts if c.note is None]


def _values(ys: Sequence[float | None]) -> Any:
    return np.array([np.nan if v is None else v for v in ys], dtype=np.float32)


def _page(head: str, body: str) -> str:
    return (
        f"<!DOCTYPE html><html><head><meta charset='utf-8'>{head}</head><body>{body}</body></html>"
    )


def plotly_page(content: tuple[Section, ...]) -> str:
    """plotly.js inline once, each figure's data as typed arrays, time axes as x0 + dx."""
    import plotly.graph_objects as go
    from plotly.offline import get_plotlyjs

    divs, scripts = [], []
    for chart in _charts(content):
        fig = go.Figure()
        for t in chart.traces:
            y = _values(t.y)
            if chart.x_kind == "time":
                dx = (t.x[1] - t.x[0]) * 1000 if len(t.x) > 1 else 1
                fig.add_scatter(x0=float(t.x[0]) * 1000, dx=dx, y=y, name=t.name, mode="lines")
            elif chart.bars and chart.horizontal:
                fig.add_bar(x=y, y=list(t.x), name=t.name, orientation="h")
            elif chart.bars:
                fig.add_bar(x=list(t.x), y=y, name=t.name)
            else:
                fig.add_scatter(x=list(t.x), y=y, name=t.name, mode="lines")
        shapes = [
            {
                "type": "rect",
                "xref": "x",
                "yref": "paper",
                "x0": run.started * 1000,
                "x1": end * 1000,
                "y0": 0,
                "y1": 1,
                "fillcolor": "red" if run.exit_code == 3 else "grey",
                "opacity": 0.07,
                "line_width": 0,
            }
            for run, end in chart.runs
        ]
        fig.update_layout(
            title=chart.title,
            height=HEIGHTS[chart.size],
            barmode="stack" if chart.stacked else None,
            shapes=shapes,
        )
        if chart.x_kind == "time":
            fig.update_xaxes(type="date")
        divs.append(f"<div id='{chart.key}'></div>")
        scripts.append(f"(f => Plotly.newPlot('{chart.key}', f.data, f.layout))({fig.to_json()});")
    body = "".join(divs) + "<script>" + "\n".join(scripts) + "</script>"
    return _page(f"<script>{get_plotlyjs()}</script>", body)


def matplotlib_page(content: tuple[Section, ...], fmt: str) -> str:
    """One figure per chart, embedded as a PNG data URL or inline SVG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    widths = {"wide": 13.0, "half": 6.5, "small": 3.2}
    parts = []
    for chart in _charts(content):
        fig, ax = plt.subplots(
            figsize=(widths[chart.size], HEIGHTS[chart.size] / 100), dpi=100, layout="constrained"
        )
        bottom = None
        for t in chart.traces:
            x: Any = list(map(str, t.x)) if chart.x_kind == "category" else np.array(t.x, float)
            if chart.x_kind == "time":
                x = x.astype("datetime64[s]")
            y = _values(t.y)
            if chart.bars and chart.horizontal:
                ax.barh(x, y, label=t.name)
            elif chart.bars:
                ax.bar(x, y, bottom=bottom if chart.stacked else None, label=t.name)
                bottom = y if bottom is None else bottom + y
            else:
                ax.plot(x, y, "--" if t.dash else "-", label=t.name, lw=1)
        for run, end in chart.runs:
            start, stop = np.datetime64(int(run.started), "s"), np.datetime64(int(end), "s")
            ax.axvspan(start, stop, color="red" if run.exit_code == 3 else "grey", alpha=0.07)
        ax.set_title(chart.title, fontsize=10)
        if len(chart.traces) > 1:
            ax.legend(fontsize=7)
        out = io.BytesIO()
        fig.savefig(out, format=fmt)
        plt.close(fig)
        if fmt == "png":
            parts.append(
                f"<img src='data:image/png;base64,{base64.b64encode(out.getvalue()).decode()}'>"
            )
        else:
            svg = out.getvalue().decode()
            parts.append(svg[svg.index("<svg") :])
    return _page("", "".join(parts))


if __name__ == "__main__":
    sys.exit(main())
