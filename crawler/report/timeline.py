"""Reads the crawl part of the report: samples and runs onto one bounded time grid.

A crawl may run for a week and be sampled every few seconds; the report needs a few hundred
points per series (a laptop screen is ~1,300 pixels wide). Because a sample's counters are
cumulative within its run, keeping only the last sample of each bucket loses nothing: the
rate between two kept samples is the exact mean rate between them. Each interval between a
worker's consecutive samples carries that rate (and the later sample's gauges) and is spread
over the buckets it overlaps; a bucket no run covers stays None, so the gaps between runs show.
"""

from __future__ import annotations

import itertools
import math
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass

from crawler.report.model import Run, Sample, Timeline

MAX_BUCKETS = 600

Series = dict[str, list[float | None]]


def status_class(status: int | str) -> str:
    """429 apart from the other 4xx: it is the rate limiter's signal, not a client error.

    A status read back from JSON is a string; it means the same.
    """
    code = int(status)
    return "429" if code == 429 else f"{code // 100}xx"


@dataclass
class _Worker:
    """One worker's sums per bucket: time covered, counter increments, gauge × time."""

    buckets: int

    def __post_init__(self) -> None:
        self.cover = [0.0] * self.buckets
        self.counters: dict[tuple[str, str], list[float]] = defaultdict(self._zeros)
        self.gauges: dict[tuple[str, str], list[float]] = defaultdict(self._zeros)

    def _zeros(self) -> list[float]:
        return [0.0] * self.buckets


def read_timeline(
    samples: Iterable[Sample], runs: Iterable[Run], max_buckets: int = MAX_BUCKETS
) -> Timeline | None:
    """The Timeline of ``samples`` (any order; run ids unique in the crawl); None if empty."""
    run_list = tuple(sorted(runs, key=lambda r: (r.started, r.id)))
    tracks: dict[tuple[int, str | None], list[Sample]] = defaultdict(list)
    for sample in samples:
        tracks[(sample.run, sample.worker)].append(sample)
    if not tracks:
        return None
    started = {run.id: run.started for run in run_list}
    for track in tracks.values():
        track.sort(key=lambda s: s.at)
    start = min([t[0].at for t in tracks.values()] + [r.started for r in run_list])
    end = max(
        [t[-1].at for t in tracks.values()] + [r.ended for r in run_list if r.ended is not None]
    )
    steps = [b.at - a.at for t in tracks.values() for a, b in itertools.pairwise(t)]
    typical = sorted(steps)[len(steps) // 2] if steps else 1.0
    width = max((end - start) / max_buckets, typical, 1e-3)
    buckets = max(1, math.ceil((end - start) / width))

    def bucket_of(at: float) -> int:
        """The bucket an interval ending at ``at`` ends in (a sample closes its interval)."""
        return min(buckets - 1, max(0, math.ceil((at - start) / width) - 1))

    workers: dict[str | None, _Worker] = {}
    for (run, worker), track in tracks.items():
        kept = list({bucket_of(s.at): s for s in track}.values())
        base = started.get(run)
        prev = Sample(at=base, run=run, worker=worker) if base is not None else kept[0]
        acc = workers.setdefault(worker, _Worker(buckets))
        for cur in kept:
            if cur.at > prev.at:
                _spread(acc, prev, cur, start, width)
                prev = cur
    seen: dict[int, float] = {}
    for (run, _), track in tracks.items():
        seen[run] = max(seen.get(run, track[-1].at), track[-1].at)
    ends = {r.id: r.ended if r.ended is not None else seen.get(r.id, r.started) for r in run_list}
    return _combine(workers, start, width, buckets, run_list, ends)


def _spread(acc: _Worker, prev: Sample, cur: Sample, start: float, width: float) -> None:
    """Adds the interval (prev.at, cur.at] to the buckets it overlaps."""
    dt = cur.at - prev.at
    counters = _increments(prev, cur)
    gauges = _gauges(prev, cur, dt)
    first = int((prev.at - start) / width)
    last = min(acc.buckets - 1, int((cur.at - start) / width))
    for b in range(max(0, first), last + 1):
        low, high = start + b * width, start + (b + 1) * width
        overlap = min(high, cur.at) - max(low, prev.at)
        if overlap <= 0:
            continue
        share = overlap / dt
        acc.cover[b] += overlap
        for key, value in counters.items():
            acc.counters[key][b] += value * share
        for key, value in gauges.items():
            acc.gauges[key][b] += value * overlap


def _delta(prev: Mapping[str, float], cur: Mapping[str, float], key: str) -> float:
    return max(0.0, cur.get(key, 0) - prev.get(key, 0))


def _increments(prev: Sample, cur: Sample) -> dict[tuple[str, str], float]:
    out: dict[tuple[str, str], float] = defaultdict(float)
    for account in cur.used:
        out[("used", account)] = _delta(prev.used, cur.used, account)
    for account, reasons in cur.rate_limited.items():
        before = prev.rate_limited.get(account, {})
        for reason in reasons:
            out[("limited", f"{account}: {reason}")] = _delta(before, reasons, reason)
    for status, n in cur.requests.items():
        out[("status", status_class(status))] += max(0, n - prev.requests.get(status, 0))
    for kind in cur.faults:
        out[("faults", kind)] = _delta(prev.faults, cur.faults, kind)
    out[("faults", "retries")] = max(0, cur.retries - prev.retries)
    out[("commit", "n")] = max(0, cur.commits - prev.commits)
    out[("commit", "s")] = max(0.0, cur.commit_s - prev.commit_s)
    return out


def _gauges(prev: Sample, cur: Sample, dt: float) -> dict[tuple[str, str], float]:
    out: dict[tuple[str, str], float] = {}
    for account, rps in cur.budget.items():
        out[("budget", account)] = rps
    for stream, n in cur.written.items():
        out[("written", stream)] = n
    for op, n in cur.pending.items():
        out[("pending", op)] = n
    accounts = {*cur.budget, *cur.used, *cur.parked_until, *prev.parked_until}
    for account in accounts:
        # What prev knew: parked from prev.at until its parked_until, within this interval.
        until = prev.parked_until.get(account, 0.0)
        out[("parked", account)] = min(1.0, max(0.0, (until - prev.at) / dt))
    return out


def _combine(
    workers: Mapping[str | None, _Worker],
    start: float,
    width: float,
    buckets: int,
    runs: tuple[Run, ...],
    ends: dict[int, float],
) -> Timeline:
    """Per bucket: rates summed over workers; gauges summed, maxed or averaged."""

    def series(
        metric: str, source: str, fold: Callable[[list[float]], float], scale: float = 1.0
    ) -> Series:
        keys = sorted({k for w in workers.values() for m, k in getattr(w, source) if m == metric})
        out: Series = {}
        for key in keys:
            values: list[float | None] = []
            for b in range(buckets):
                parts = [
                    getattr(w, source)[(metric, key)][b] / w.cover[b] * scale
                    for w in workers.values()
                    if w.cover[b] > 0
                ]
                values.append(fold(parts) if parts else None)
            out[key] = values
        return out

    def mean(parts: list[float]) -> float:
        return sum(parts) / len(parts)

    def commit_ms(b: int) -> float | None:
        n = sum(w.counters[("commit", "n")][b] for w in workers.values())
        s = sum(w.counters[("commit", "s")][b] for w in workers.values())
        return 1000 * s / n if n > 0 else None

    return Timeline(
        start=start,
        width=width,
        buckets=buckets,
        used_rps=series("used", "counters", sum),
        budget_rps=series("budget", "gauges", sum),
        rate_limited_pm=series("limited", "counters", sum, 60),
        status_rps=series("status", "counters", sum),
        faults_pm=series("faults", "counters", sum, 60),
        written=series("written", "gauges", max),
        pending=series("pending", "gauges", max),
        commit_ms=[commit_ms(b) for b in range(buckets)],
        parked=series("parked", "gauges", mean),
        runs=runs,
        run_ends=ends,
    )
