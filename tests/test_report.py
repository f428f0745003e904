"""The report's readers, content and file, without a browser (tests/test_report_browser.py
opens the file in Chromium).

The time-series figures are checked against values worked out by hand from the samples;
the dataset figures against small tables whose every aggregate is known.
"""

from __future__ import annotations

import random
import re
from pathlib import Path

import duckdb
import pytest

from crawler.api.capabilities import Capabilities
from crawler.report import ReportData, Run, Sample, read_dataset, read_timeline, sections
from crawler.report.charts import UNAVAILABLE, Chart
from crawler.report.model import Timeline
from crawler.report.timeline import MAX_BUCKETS

T0 = 1_772_323_200.0


def sample(at: float, run: int = 1, worker: str | None = None, **counters: object) -> Sample:
    return Sample(at=T0 + at, run=run, worker=worker, **counters)  # type: ignore[arg-type]


def timeline(samples: list[Sample], runs: list[Run], max_buckets: int = MAX_BUCKETS) -> Timeline:
    tl = read_timeline(samples, runs, max_buckets)
    assert tl is not None
    return tl


def charts(data: ReportData) -> dict[str, Chart]:
    return {c.key: c for section in sections(data) for c in section.charts}


# --- the crawl part ---------------------------------------------------------------------


def test_rates_come_from_the_counters_between_samples_and_gaps_stay_empty() -> None:
    runs = [Run(1, T0, T0 + 30, 3), Run(2, T0 + 60, T0 + 90, 0)]
    samples = [
        sample(10, used={"a": 50}, requests={200: 45, 429: 5}, rate_limited={"a": {"ban": 5}}),
        sample(20, used={"a": 150}, requests={200: 145, 429: 5}, rate_limited={"a": {"ban": 5}}),
        sample(30, used={"a": 150}, requests={200: 145, 429: 5}, rate_limited={"a": {"ban": 5}}),
        # A new run: its counters start again from zero.
        sample(70, run=2, used={"a": 20}, requests={200: 18, 503: 2}),
        sample(80, run=2, used={"a": 40}, requests={200: 38, 503: 2}),
        sample(90, run=2, used={"a": 40}, requests={200: 38, 503: 2}),
    ]
    tl = timeline(samples, runs)

    assert (tl.start, tl.width, tl.buckets) == (T0, 10.0, 9)
    gap = [None, None, None]
    assert tl.used_rps == {"a": [5.0, 10.0, 0.0, *gap, 2.0, 2.0, 0.0]}
    assert tl.status_rps["2xx"] == [4.5, 10.0, 0.0, *gap, 1.8, 2.0, 0.0]
    assert tl.status_rps["429"] == [0.5, 0.0, 0.0, *gap, 0.0, 0.0, 0.0]
    assert tl.status_rps["5xx"] == [0.0, 0.0, 0.0, *gap, 0.2, 0.0, 0.0]
    assert tl.rate_limited_pm == {"a: ban": [30.0, 0.0, 0.0, *gap, 0.0, 0.0, 0.0]}
    assert tl.run_ends == {1: T0 + 30, 2: T0 + 90}


def test_a_run_that_never_ended_ends_at_its_last_sample() -> None:
    runs = [Run(1, T0), Run(2, T0 + 100, T0 + 200, 0)]
    samples = [sample(10), sample(40), sample(150, run=2), sample(200, run=2)]
    tl = timeline(samples, runs)
    assert tl.run_ends == {1: T0 + 40, 2: T0 + 200}
    assert [r.id for r in tl.runs] == [1, 2]


def test_dropping_samples_keeps_the_rates_exact() -> None:
    """What lets the store downsample old rows by deleting them."""
    rng = random.Random(7)
    used, samples = 0, []
    for i in range(1, 1001):
        used += rng.randint(0, 40)
        samples.append(sample(i * 5, used={"a": used}))
    run = [Run(1, T0, T0 + 5000, 0)]
    kept = [s for s in samples if rng.random() < 0.2] + [samples[-1]]

    for rows in (samples, kept):
        tl = timeline(rows, run, max_buckets=50)
        assert tl.buckets == 50
        total = sum(v * tl.width for v in tl.used_rps["a"] if v is not None)
        assert total == pytest.approx(used, rel=1e-9)


def test_a_week_of_samples_fits_the_bucket_bound() -> None:
    samples = [sample(i * 5.0, used={"a": i}) for i in range(1, 7 * 86400 // 5)]
    tl = timeline(samples, [Run(1, T0)])
    assert tl.buckets == MAX_BUCKETS
    assert all(len(v) == MAX_BUCKETS for v in tl.used_rps.values())
    assert tl.used_rps["a"][10] == pytest.approx(0.2)


def test_workers_add_up_and_share_the_store_totals() -> None:
    """PostgreSQL workers: rates and budgets are summed, the store's totals are not."""
    runs = [Run(1, T0, worker="w1"), Run(2, T0, worker="w2")]
    samples = []
    for run, worker, per_s in ((1, "w1", 3), (2, "w2", 5)):
        for i in (1, 2):
            samples.append(
                sample(
                    i * 10,
                    run=run,
                    worker=worker,
                    used={"a": per_s * 10 * i},
                    budget={"a": per_s + 1.0},
                    written={"tracks": 1000 * i},
                    pending={"album": 50 - 10 * i},
                )
            )
    tl = timeline(samples, runs)
    assert tl.used_rps == {"a": [8.0, 8.0]}
    assert tl.budget_rps == {"a": [10.0, 10.0]}
    assert tl.written == {"tracks": [1000.0, 2000.0]}
    assert tl.pending == {"album": [40.0, 30.0]}


def test_faults_retries_commit_latency_and_parking() -> None:
    samples = [
        sample(
            10, faults={"timeout": 1}, retries=2, commits=10, commit_s=0.2,
            parked_until={"a": T0 + 15},
        ),
        sample(
            20, faults={"timeout": 1, "reset": 3}, retries=5, commits=30, commit_s=1.0,
            used={"a": 0, "b": 1},
        ),
    ]  # fmt: skip
    tl = timeline(samples, [Run(1, T0)])
    assert tl.faults_pm == {"reset": [0.0, 18.0], "retries": [12.0, 18.0], "timeout": [6.0, 0.0]}
    assert tl.commit_ms == [pytest.approx(20.0), pytest.approx(40.0)]
    # Parked from t=10 (as the sample at 10 says) until 15: half of the second bucket.
    assert tl.parked == {"a": [0.0, 0.5], "b": [0.0, 0.0]}


def test_statuses_read_back_from_json_count_the_same() -> None:
    rows = [sample(10, requests={200: 30, 429: 10}), sample(20, requests={200: 60, 429: 10})]
    as_json = [
        Sample(s.at, s.run, requests={str(k): v for k, v in s.requests.items()}) for s in rows
    ]  # type: ignore[misc]
    run = [Run(1, T0)]
    assert timeline(as_json, run).status_rps == timeline(rows, run).status_rps
    assert timeline(rows, run).status_rps == {"2xx": [3.0, 3.0], "429": [1.0, 0.0]}


def test_a_row_stored_twice_changes_nothing() -> None:
    rows = [sample(10, used={"a": 50}), sample(20, used={"a": 150})]
    once = timeline(rows, [Run(1, T0)])
    twice = timeline([rows[0], *rows], [Run(1, T0)])
    assert twice == once and once.used_rps == {"a": [5.0, 10.0]}


def test_no_samples_is_no_timeline() -> None:
    assert read_timeline([], [Run(1, T0)]) is None


# --- the dataset part -------------------------------------------------------------------


def tiny_export(con: duckdb.DuckDBPyConnection, extended: bool = True) -> None:
    """Issue 13's tables, a handful of rows each, every aggregate known."""
    con.execute("""
        CREATE TABLE artists AS SELECT * FROM (VALUES
            ('a1', 'A', ['rock', 'pop'], 50, 10, NULL, TIMESTAMP '2026-01-01'),
            ('a2', 'B', ['rock'], 40, 5, NULL, TIMESTAMP '2026-01-01'),
            ('a3', 'C', [], 30, 1, NULL, TIMESTAMP '2026-01-01'),
            ('a4', 'D', ['jazz', 'rock'], 20, 1, NULL, TIMESTAMP '2026-01-01')
        ) t(id, name, genres, popularity, followers, image_url, fetched_at);
        CREATE TABLE albums AS SELECT * FROM (VALUES
            ('x1', 'X', 'album', '1999-01-01', 'day', 1999, 10, 'L', 1, NULL, NULL),
            ('x2', 'Y', 'single', '1999', 'year', 1999, 1, 'L', 1, NULL, NULL),
            ('x3', 'Z', 'album', '2020-05', 'month', 2020, 12, 'L', 1, NULL, NULL),
            ('x4', 'W', 'album', NULL, NULL, NULL, 3, 'L', 1, NULL, NULL)
        ) t(id, name, album_type, release_date, release_date_precision, release_year,
            total_tracks, label, popularity, upc, fetched_at);
        CREATE TABLE tracks AS SELECT * FROM (VALUES
            ('t1', 'a', 'x1', 1, 1, 61000, false, 1, NULL, NULL),
            ('t2', 'b', 'x1', 1, 2, 200000, false, 1, NULL, NULL),
            ('t3', 'c', 'x2', 1, 1, 3600000, true, 1, NULL, NULL)
        ) t(id, name, album_id, disc_number, track_number, duration_ms, explicit, popularity,
            isrc, fetched_at);
        CREATE TABLE audio_features (track_id VARCHAR, danceability DOUBLE, energy DOUBLE,
            key INTEGER, loudness DOUBLE, mode INTEGER, speechiness DOUBLE, acousticness DOUBLE,
            instrumentalness DOUBLE, liveness DOUBLE, valence DOUBLE, tempo DOUBLE,
            time_signature INTEGER, duration_ms INTEGER);
        CREATE TABLE related_artists (artist_id VARCHAR, related_artist_id VARCHAR,
            rank INTEGER);
        CREATE TABLE playlists AS SELECT * FROM (VALUES
            ('p1', 'P', 'u', 's', 0, 0, NULL), ('p2', 'Q', 'u', 's', 0, 1, NULL),
            ('p3', 'R', 'u', 's', 0, 5, NULL), ('p4', 'S', 'u', 's', 0, 7, NULL)
        ) t(id, name, owner_id, snapshot_id, followers, total_items, fetched_at);
        CREATE TABLE playlist_items AS SELECT * FROM (VALUES
            ('p2', 0, 'track', 't1', NULL, NULL, false),
            ('p3', 0, 'episode', 'e1', NULL, NULL, false),
            ('p3', 1, 'track', NULL, NULL, NULL, true),
            ('p3', 2, 'track', 't2', NULL, NULL, false)
        ) t(playlist_id, position, item_type, item_id, added_at, added_by, is_local);
    """)
    if extended:
        con.execute("""
            INSERT INTO audio_features VALUES
                ('t1', 0.0, 1.0, 0, -5.5, 1, 0.5, 0.5, 0.5, 0.5, 0.5, 120.0, 4, 61000),
                ('t2', 0.99, 0.5, 11, -70.0, 0, 0.5, 0.5, 0.5, 0.5, 0.5, 300.0, 3, 200000);
            INSERT INTO related_artists VALUES
                ('a1', 'a2', 0), ('a1', 'a3', 1), ('a2', 'a3', 0), ('a4', 'a3', 0);
        """)


def test_dataset_aggregates_are_exact() -> None:
    con = duckdb.connect()
    tiny_export(con)
    ds = read_dataset(con)

    assert ds.counts == {
        "artists": 4,
        "albums": 4,
        "tracks": 3,
        "audio_features": 2,
        "album_artists": None,
        "track_artists": None,
        "artist_albums": None,
        "related_artists": 4,
        "playlists": 4,
        "playlist_items": 4,
    }
    assert ds.top_genres == (("rock", 3), ("jazz", 1), ("pop", 1))
    assert ds.release_years == {"album": ((1999, 1), (2020, 1)), "single": ((1999, 1),)}
    # In-degree: a3 is named 3 times, a2 once; out-degree: a1 names 2, a2 and a4 one each.
    assert ds.related_in == ((1, 1), (3, 1))
    assert ds.related_out == ((1, 2), (2, 1))
    assert ds.playlist_sizes == (("0", 1), ("1", 1), ("2–3", 0), ("4–7", 2))
    assert ds.playlist_item_types == (("track", 2), ("episode", 1), ("local", 1))
    durations = dict(ds.durations)
    assert durations[1.0] == 1 and durations[3.25] == 1 and durations[15.0] == 1  # clamped
    assert sum(durations.values()) == 3
    assert dict(ds.features["danceability"])[0.0] == 1
    assert dict(ds.features["danceability"])[0.975] == 1
    assert dict(ds.features["energy"])[0.975] == 1  # 1.0 falls in the last bin
    assert dict(ds.features["loudness"])[-6.0] == 1 and dict(ds.features["loudness"])[-60.0] == 1
    assert dict(ds.features["tempo"])[120.0] == 1 and dict(ds.features["tempo"])[250.0] == 1
    assert dict(ds.features["key"]) == {k: int(k in ("C", "B")) for k in dict(ds.features["key"])}
    assert ds.features["mode"] == (("major", 1), ("minor", 1))
    assert ds.features["time_signature"] == (("3/4", 1), ("4/4", 1))


def test_parquet_files_read_through_views_give_the_same_figures(tmp_path: Path) -> None:
    con = duckdb.connect()
    tiny_export(con)
    expected = read_dataset(con)
    for (table,) in con.execute("SHOW TABLES").fetchall():
        con.execute(f"COPY {table} TO '{tmp_path / table}.parquet' (FORMAT parquet)")
    views = duckdb.connect()
    for file in tmp_path.glob("*.parquet"):
        views.execute(f"CREATE VIEW {file.stem} AS SELECT * FROM '{file}'")
    assert read_dataset(views) == expected


def data_for(
    con: duckdb.DuckDBPyConnection, mode: str, tl: Timeline | None = None, title: str = "t"
) -> ReportData:
    return ReportData(
        title=title,
        generated_at=T0,
        api_mode=mode,
        capabilities=Capabilities.for_mode(mode).to_dict(),  # type: ignore[arg-type]
        dataset=read_dataset(con),
        timeline=tl,
    )


def test_development_mode_says_what_the_app_may_not_have() -> None:
    con = duckdb.connect()
    tiny_export(con, extended=False)
    shown = charts(data_for(con, "development"))
    assert shown["features"].note == UNAVAILABLE
    assert shown["related-degree"].note == UNAVAILABLE
    assert not any(key.startswith("feature-") for key in shown)
    assert shown["genres"].note is None and shown["release-years"].note is None


def test_an_empty_edge_the_app_may_have_is_not_called_unavailable() -> None:
    con = duckdb.connect()
    tiny_export(con, extended=False)
    shown = charts(data_for(con, "extended"))
    assert shown["features"].note is not None and "None crawled" in shown["features"].note
    con.execute("DROP TABLE related_artists")
    shown = charts(data_for(con, "auto"))
    assert shown["related-degree"].note == "The export has no related_artists table."


def test_tables_name_runs_capabilities_and_counts() -> None:
    con = duckdb.connect()
    tiny_export(con, extended=False)
    runs = [Run(1, T0, T0 + 3600, 3), Run(2, T0 + 7200)]
    data = data_for(con, "development", timeline([sample(60), sample(7300, run=2)], runs))
    crawl, dataset = sections(data)
    (runs_table,) = crawl.tables
    assert [[c.text for c in row] for row in runs_table.rows] == [
        ["1", "", "2026-03-01 00:00:00", "1 h 00 min", "3", "paused: accounts banned"],
        ["2", "", "2026-03-01 02:00:00", "2 min", "—", "killed or still running"],
    ]
    counts, caps = dataset.tables
    assert ("album_artists", "not exported") in [(r[0].text, r[1].text) for r in counts.rows]
    refused = {r[0].text for r in caps.rows if r[1].bad}
    assert refused == {
        "several artists per call",
        "several albums per call",
        "several tracks per call",
        "related artists",
        "audio features",
    }


# --- the file ---------------------------------------------------------------------------


def test_the_file_is_whole_self_contained_and_escaped(tmp_path: Path) -> None:
    from crawler.report import build_report

    con = duckdb.connect()
    tiny_export(con)
    samples = [sample(10, used={"a": 5}), sample(20, used={"a": 9})]
    tl = timeline(samples, [Run(1, T0)])
    data = data_for(con, "extended", tl, title="<script>alert(1)</script> crawl")
    path = tmp_path / "report.html"
    path.write_text("an older report")
    build_report(data, path)

    text = path.read_text(encoding="utf-8")
    assert list(tmp_path.iterdir()) == [path]  # the temporary file was renamed
    assert text.startswith("<!DOCTYPE html>") and text.rstrip().endswith("</html>")
    assert "<script>alert(1)</script>" not in text
    assert "&lt;script&gt;alert(1)&lt;/script&gt; crawl" in text
    # Nothing to fetch: every script inline, no stylesheet link, no src attribute at all.
    assert re.findall(r"<script[^>]*\ssrc=", text) == []
    assert re.findall(r"<link\b", text) == []
    assert "Bokeh" in text and len(re.findall(r"data-chart=", text)) == sum(
        1 for c in charts(data).values() if c.note is None
    )


def test_a_failed_build_leaves_the_old_report(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from crawler.report import render as render_module

    def broken(data: ReportData) -> str:
        raise RuntimeError("no")

    monkeypatch.setattr(render_module, "render_html", broken)
    path = tmp_path / "report.html"
    path.write_text("an older report")
    with pytest.raises(RuntimeError):
        render_module.build_report(ReportData("t", T0, "auto", {}), path)
    assert path.read_text() == "an older report"
    assert list(tmp_path.iterdir()) == [path]


def test_a_report_with_nothing_to_chart_is_still_a_page(tmp_path: Path) -> None:
    from crawler.report import build_report

    path = tmp_path / "report.html"
    build_report(ReportData("empty", T0, "auto", {}), path)
    text = path.read_text()
    assert "<h1>empty</h1>" in text and "data-chart" not in text and "Bokeh" not in text
