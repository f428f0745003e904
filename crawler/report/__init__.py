"""The crawl and dataset report (issue 16): one self-contained HTML file.

``read_dataset`` (export tables in DuckDB) and ``read_timeline`` (the store's samples and
runs) gather a ``ReportData`` of small aggregates; ``build_report`` writes it with Bokeh (why
Bokeh, by measurement: crawler/report/render.py). Bokeh is the optional extra ``report``:
it is imported only when ``build_report`` is first used, so the crawler can record samples
(``Sample``, ``Run``) without it.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from crawler.report.charts import sections
from crawler.report.dataset import read_dataset
from crawler.report.model import Dataset, ReportData, Run, Sample, Timeline
from crawler.report.timeline import read_timeline

if TYPE_CHECKING:
    from crawler.report.render import build_report

__all__ = [
    "Dataset",
    "ReportData",
    "Run",
    "Sample",
    "Timeline",
    "build_report",
    "read_dataset",
    "read_timeline",
    "sections",
]


def __getattr__(name: str) -> Any:
    if name == "build_report":
        return importlib.import_module("crawler.report.render").build_report
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
