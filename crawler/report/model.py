"""The report's inputs as plain values, so the store, the exporter and the renderer meet here.

The store keeps ``Sample`` and ``Run`` rows; the readers (``dataset.py``, ``timeline.py``)
turn the export tables and those rows into the small aggregates of ``ReportData``, which is
all the renderer sees. Everything here is bounded in size whatever the crawl's size.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from crawler.core.timeseries import Run, Sample

__all__ = ["Bins", "CapabilityValue", "Dataset", "ReportData", "Run", "Sample", "Timeline"]

# A capability as `Capabilities.to_dict()` gives it: True/False, None while not yet probed,
# or a number (the artist-albums page size).
CapabilityValue = bool | int | None


Bins = tuple[tuple[str | float, int], ...]  # (bin label or left edge, count), in order


@dataclass(frozen=True)
class Dataset:
    """Aggregates of the export tables; None for a table that the export does not hold."""

    counts: Mapping[str, int | None]
    release_years: Mapping[str, Bins]  # album_type → (year, albums)
    top_genres: Bins  # (genre, artists), most common first
    features: Mapping[str, Bins]  # audio feature → histogram; empty when there are none
    durations: Bins  # track length in minutes (left edges) → tracks
    related_in: Bins  # (artists naming an artist as related, artists)
    related_out: Bins  # (length of an artist's related list, artists)
    playlist_sizes: Bins  # ("0", "1", "2–3", "4–7", …) → playlists
    playlist_item_types: Bins  # item_type → items ("local" for local files)


@dataclass(frozen=True)
class Timeline:
    """The crawl's time series on one grid of ``width``-second buckets starting at ``start``.

    Each series has one value per bucket, None where no run was sampled (the gaps between
    runs). Series are keyed by account, status class, fault kind, stream or operation.
    """

    start: float
    width: float
    buckets: int
    used_rps: Mapping[str, list[float | None]]
    budget_rps: Mapping[str, list[float | None]]
    rate_limited_pm: Mapping[str, list[float | None]]  # "account: reason" → 429s per minute
    status_rps: Mapping[str, list[float | None]]  # "2xx", "429", … → responses per second
    faults_pm: Mapping[str, list[float | None]]  # fault kinds and "retries" → per minute
    written: Mapping[str, list[float | None]]
    pending: Mapping[str, list[float | None]]
    commit_ms: list[float | None]
    parked: Mapping[str, list[float | None]]  # account → share of the bucket spent parked
    runs: tuple[Run, ...]  # by start time
    run_ends: Mapping[int, float]  # run id → its end, or its last sample if it never ended


@dataclass(frozen=True)
class ReportData:
    """Everything one report shows; either part may be missing (no export, no samples)."""

    title: str
    generated_at: float  # epoch seconds
    api_mode: str
    capabilities: Mapping[str, CapabilityValue]
    dataset: Dataset | None = None
    timeline: Timeline | None = None
