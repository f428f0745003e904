"""Draws the chart specs with Bokeh into one self-contained HTML file.

Why Bokeh: ``scripts/bench_report.py --compare`` draws the same 26 charts (a 1M-track
dataset, a week of samples every 5 s cut to 600 points a series, numbers as typed arrays in
every library) with each candidate. Figures of one run on the shared 2-core VM (load ~7, so
wall time is 2-4x CPU time; two builds each for the others, one with its import):

=====================  ==========  ====================  ===================================
library                file        build: wall (CPU)     on a laptop screen
=====================  ==========  ====================  ===================================
plotly 7.1, plotly.js  5.14 MB     0.5-1.2 s (0.2-0.3)   hover, zoom; but plotly.js alone is
4.1 inline             over budget                       4.82 MB: 180 kB left for all data
bokeh 3.9, INLINE      1.58 MB     4.7-7.6 s (1.8-2.4)   hover, zoom along time, legends
                                                         that hide a series; 1.27 MB of JS
matplotlib 3.11, PNG   1.21 MB     14-19 s (4.0-4.8)     static pictures: no values on
matplotlib 3.11, SVG   1.06 MB     12-14 s (4.6-4.9)     hover, no zoom into a long crawl
=====================  ==========  ====================  ===================================

Plotly misses the size budget before any data is added. Matplotlib fits and looks as good
in a screenshot, but a crawl that ran for days is read by zooming into the hour where the
429s began and hovering for a value, which only a JavaScript library gives; it is also the
slowest. Bokeh does both within budget. Its one trap, avoided here: adding the 26 roots one
by one recomputes the whole model graph each time; freezing the graph while they are added
makes that one pass, and took this build from ~16 s to ~5 s (wall, measured minutes apart).
"""

from __future__ import annotations

import html
import math
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from bokeh.document import Document
from bokeh.embed import file_html
from bokeh.models import (
    BoxAnnotation,
    ColumnDataSource,
    DataRange1d,
    FactorRange,
    HoverTool,
    Label,
    Legend,
    NumeralTickFormatter,
    Range1d,
)
from bokeh.palettes import Category10_10
from bokeh.plotting import figure
from bokeh.resources import INLINE

from crawler.report.charts import Chart, Table, Trace, sections, utc
from crawler.report.model import ReportData

HEIGHTS = {"wide": 260, "half": 320, "small": 190}
MAX_RUN_LABELS = 20  # runs labelled on wide charts; beyond this the runs table says it
RUN_COLOURS = {0: "#2ca02c", 3: "#d62728"}  # finished, paused by a ban
OTHER_RUN = "#7f7f7f"
FLOAT32_EXACT = 2**24  # from here on float32 no longer holds every integer

CSS = """
body { font: 14px/1.4 system-ui, sans-serif; color: #222; }
main { margin: 0 auto; max-width: 1400px; padding: 0 16px 32px; }
h1 { font-size: 22px; margin: 16px 0 4px; } h2 { font-size: 18px; margin: 28px 0 8px;
     border-bottom: 1px solid #ddd; } h3 { font-size: 14px; margin: 0 0 4px; }
.meta { color: #555; margin: 0 0 12px; }
.tables { display: flex; flex-wrap: wrap; gap: 24px; align-items: flex-start; }
table { border-collapse: collapse; font-size: 13px; }
th, td { padding: 2px 10px 2px 0; text-align: left; border-bottom: 1px solid #eee; }
td.n { text-align: right; font-variant-numeric: tabular-nums; }
.scroll { max-height: 260px; overflow-y: auto; }
.grid { display: grid; grid-template-columns: repeat(4, minmax(0, 1fr)); gap: 12px; }
.wide { grid-column: span 4; } .half { grid-column: span 2; } .small { grid-column: span 1; }
.note { align-self: start; border: 1px dashed #bbb; border-radius: 4px; padding: 10px; color: #555;
        background: #fafafa; }
.bad { color: #b00; }
@media (max-width: 900px) { .half, .small { grid-column: span 4; } }
"""

# Bokeh extends its own page with this (its head keeps the title, its JavaScript and CSS).
TEMPLATE = """{% from macros import embed %}
{% block preamble %}<meta name="viewport" content="width=device-width, initial-scale=1">
<style>{{ css }}</style>{% endblock %}
{% block contents %}{% for part in parts %}{% if part.root is not none %}{{ part.before }}\
{{ embed(roots[part.root]) }}</div>{% else %}{{ part.html }}{% endif %}{% endfor %}{% endblock %}
"""


def build_report(data: ReportData, path: Path) -> None:
    """Writes the report to ``path`` through a temporary name, so no half file is ever seen."""
    text = render_html(data)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with open(tmp, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def render_html(data: ReportData) -> str:
    """The report as one HTML document with Bokeh's JavaScript inline."""
    parts: list[dict[str, Any]] = [{"root": None, "html": f"<main>{_header(data)}"}]
    plots = []
    timeline = data.timeline
    # One x range for every time chart: zooming into an hour of one zooms them all.
    span = (
        None if timeline is None else _time_range(timeline.start, timeline.width, timeline.buckets)
    )
    for section in sections(data):
        tables = "".join(_table(t) for t in section.tables)
        html_ = f"<h2>{_e(section.title)}</h2><div class='tables'>{tables}</div><div class='grid'>"
        parts.append({"root": None, "html": html_})
        for chart in section.charts:
            if chart.note is not None:
                note = f"<h3>{_e(chart.title)}</h3><p>{_e(chart.note)}</p>"
                parts.append(
                    {"root": None, "html": f"<div class='{chart.size} note' data-note>{note}</div>"}
                )
                continue
            plots.append(_plot(chart, span))
            before = f"<div class='{chart.size} chart' data-chart='{_e(chart.key)}'>"
            parts.append({"root": len(plots) - 1, "before": before})
        parts.append({"root": None, "html": "</div>"})
    parts.append({"root": None, "html": "</main>"})
    if not plots:
        return _plain(data.title, parts)
    doc = Document()
    with doc.models.freeze():  # one recompute of the model graph, not one per root
        for plot in plots:
            doc.add_root(plot)
    variables = {"parts": parts, "css": CSS}
    return file_html(doc, INLINE, data.title, template=TEMPLATE, template_variables=variables)


def _plain(title: str, parts: list[dict[str, Any]]) -> str:
    """A report with nothing to chart (Bokeh will not embed an empty document)."""
    body = "".join(part["html"] for part in parts)
    return (
        f"<!DOCTYPE html>\n<html lang='en'><head><meta charset='utf-8'><title>{_e(title)}"
        f"</title><style>{CSS}</style></head><body>{body}</body></html>\n"
    )


def _e(text: object) -> str:
    return html.escape(str(text))


def _header(data: ReportData) -> str:
    return (
        f"<h1>{_e(data.title)}</h1><p class='meta'>Generated {utc(data.generated_at)} UTC"
        f" · API mode {_e(data.api_mode)} · all times UTC</p>"
    )


def _table(table: Table) -> str:
    head = "".join(f"<th>{_e(h)}</th>" for h in table.head)
    rows = "".join(
        "<tr>"
        + "".join(
            f"<td class='{'n' if c.number else ''} {'bad' if c.bad else ''}'>{_e(c.text)}</td>"
            for c in row
        )
        + "</tr>"
        for row in table.rows
    )
    return (
        f"<div><h3>{_e(table.title)}</h3><div class='scroll'><table><tr>{head}</tr>{rows}"
        "</table></div></div>"
    )


def _array(values: Sequence[float | str | None]) -> Any:
    """A typed array (Bokeh writes it as base64), float32 where counts stay exact: half the
    bytes of float64 and a quarter of the JSON numbers a list would become."""
    out = np.array([math.nan if v is None else v for v in values], dtype=np.float64)
    finite = out[np.isfinite(out)]
    if finite.size == 0 or np.abs(finite).max() < FLOAT32_EXACT:
        return out.astype(np.float32)
    return out


def _time_range(start: float, width: float, buckets: int) -> Range1d:
    return Range1d(start=start * 1000, end=(start + width * buckets) * 1000)  # milliseconds


def _plot(chart: Chart, time_range: Range1d | None) -> Any:
    categories = [str(x) for x in chart.traces[0].x] if chart.x_kind == "category" else None
    options: dict[str, Any] = {
        "title": chart.title,
        "height": HEIGHTS[chart.size],
        "sizing_mode": "stretch_width",
        "tools": "xpan,xwheel_zoom,box_zoom,reset,save",
        "toolbar_location": "above",
        "name": chart.key,
    }
    if chart.x_kind == "time":
        options["x_axis_type"] = "datetime"
        options["x_range"] = time_range
        # Counts and rates: from zero, so that a level series (a short run's) is drawn
        # inside the frame rather than on its edge.
        options["y_range"] = DataRange1d(start=0)
    if chart.log_xy:
        options["x_axis_type"] = options["y_axis_type"] = "log"
    if categories is not None:
        options["y_range" if chart.horizontal else "x_range"] = FactorRange(*categories)
    p = figure(**options)
    p.toolbar.autohide = True
    p.title.text_font_size = "13px"
    (p.xaxis if chart.horizontal else p.yaxis).formatter = NumeralTickFormatter(format="0.[00]a")
    if chart.y_title:
        (p.xaxis if chart.horizontal else p.yaxis).axis_label = chart.y_title
    if chart.x_title:
        (p.yaxis if chart.horizontal else p.xaxis).axis_label = chart.x_title
    if categories is not None and not chart.horizontal and len(categories) > 8:
        p.xaxis.major_label_orientation = math.pi / 4
    renderers = _draw(p, chart, categories)
    if len(chart.traces) > 1:
        legend = Legend(items=[(t.name, [r]) for t, r in zip(chart.traces, renderers, strict=True)])
        legend.click_policy = "hide"
        legend.label_text_font_size = "11px"
        legend.spacing = 0
        p.add_layout(legend, "right")
    _mark_runs(p, chart)
    return p


def _draw(p: Any, chart: Chart, categories: list[str] | None) -> list[Any]:
    """One glyph per trace and one hover tool for them all.

    Each trace's column and glyph are named after it, so the tooltip's ``@$name`` finds the
    value under the cursor in whichever series it is over. Traces on one x (every time
    chart) share one data source: the times are written once.
    """
    groups = list(dict.fromkeys(t.group or t.name for t in chart.traces))
    colour = {g: Category10_10[i % len(Category10_10)] for i, g in enumerate(groups)}
    colours = [colour[t.group or t.name] for t in chart.traces]
    names = [t.name or chart.y_title for t in chart.traces]
    first = chart.traces[0].x
    if chart.stacked or all(list(t.x) == list(first) for t in chart.traces):
        columns = {name: _array(t.y) for name, t in zip(names, chart.traces, strict=True)}
        shared = ColumnDataSource({"x": _xs(first, chart)} | columns)
        sources = [shared] * len(chart.traces)
    else:
        sources = [
            ColumnDataSource({"x": _xs(t.x, chart), name: _array(t.y)})
            for name, t in zip(names, chart.traces, strict=True)
        ]
    if chart.stacked:
        width = _bar_width(first, categories)
        renderers = p.vbar_stack(names, x="x", width=width, color=colours, source=shared)
        for renderer, name in zip(renderers, names, strict=True):
            renderer.name = name
    else:
        renderers = [
            _glyph(p, chart, *args, categories)
            for args in zip(chart.traces, sources, names, colours, strict=True)
        ]
    at = ("at", "@x{%F %H:%M}") if chart.x_kind == "time" else ("", "@x")
    p.add_tools(
        HoverTool(
            renderers=list(renderers),
            tooltips=[("", "$name"), at, ("value", "@$name{0,0.[00]}")],
            formatters={"@x": "datetime"} if chart.x_kind == "time" else {},
            mode="hline" if chart.horizontal else "vline",
        )
    )
    return list(renderers)


def _glyph(
    p: Any,
    chart: Chart,
    trace: Trace,
    source: ColumnDataSource,
    name: str,
    colour: str,
    categories: list[str] | None,
) -> Any:
    style = {"source": source, "color": colour, "name": name}
    if chart.log_xy:  # a degree distribution: points, since most degrees have no artist
        return p.scatter("x", name, size=4, **style)
    if not chart.bars:
        dash = "dashed" if trace.dash else "solid"
        if _isolated(trace.y):  # a line needs two neighbouring points: a short run has one
            p.scatter("x", name, size=5, **style)
        return p.line("x", name, line_width=1.6, line_dash=dash, **style)
    if chart.horizontal:
        return p.hbar(y="x", right=name, height=0.8, **style)
    return p.vbar(x="x", top=name, width=_bar_width(trace.x, categories), **style)


def _isolated(ys: Sequence[float | None]) -> bool:
    """Does the series have a point with no neighbour on either side (a line would not
    show it)?"""
    known = [y is not None for y in ys]
    return any(
        k and (i == 0 or not known[i - 1]) and (i == len(known) - 1 or not known[i + 1])
        for i, k in enumerate(known)
    )


def _xs(xs: Sequence[float | str], chart: Chart) -> Any:
    if chart.x_kind == "category":
        return [str(x) for x in xs]
    if chart.x_kind == "time":
        return np.array(xs, dtype=np.float64) * 1000  # Bokeh's datetimes are milliseconds
    return _array(xs)


def _bar_width(xs: Sequence[float | str], categories: list[str] | None = None) -> float:
    if categories is not None or len(xs) < 2:
        return 0.8
    return 0.9 * (float(xs[1]) - float(xs[0]))


def _mark_runs(p: Any, chart: Chart) -> None:
    """Each run shaded (paused by a ban red, finished green, others grey) and labelled."""
    for run, end in chart.runs:
        colour = (
            RUN_COLOURS.get(run.exit_code, OTHER_RUN) if run.exit_code is not None else OTHER_RUN
        )
        left, right = run.started * 1000, max(end, run.started + 1) * 1000
        p.add_layout(
            BoxAnnotation(
                left=left, right=right, fill_color=colour, fill_alpha=0.07, level="underlay"
            )
        )
        if chart.size == "wide" and len(chart.runs) <= MAX_RUN_LABELS:
            code = "running or killed" if run.exit_code is None else f"exit {run.exit_code}"
            code += " · paused" if run.exit_code == 3 else ""
            p.add_layout(
                Label(
                    x=left,
                    y=0,
                    y_units="screen",
                    x_offset=2,
                    y_offset=2,
                    text=f"run {run.id} · {code}",
                    text_font_size="10px",
                    text_color=colour,
                )
            )
