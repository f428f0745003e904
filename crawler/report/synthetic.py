"""Synthetic report inputs of any size: export tables made in SQL and a crawl's samples.

The tests and scripts/bench_report.py need a 1M-track dataset and a week of samples in
seconds, without crawling. The tables follow issue 13's columns, with skewed distributions
like real ones (heavy-tailed related-artist in-degree, few genres dominating, recent years
most common); ``mode="development"`` leaves audio features and related artists empty and
``album_group`` null, as the API does for such apps.
"""

from __future__ import annotations

import random
from typing import TYPE_CHECKING

from crawler.core.config import ApiMode
from crawler.report.model import Run, Sample
from crawler.sim.words import GENRES

if TYPE_CHECKING:
    import duckdb

REGIONS = ("", "uk ", "german ", "french ", "japanese ", "brazilian ", "nordic ")
STREAMS_PER_REQUEST = {"artists": 4.0, "albums": 2.0, "tracks": 14.0, "audio_features": 12.0}
OPS = ("artist", "album", "track", "features", "related", "artist_albums", "album_tracks")


def synthetic_dataset(
    con: duckdb.DuckDBPyConnection, tracks: int, mode: ApiMode = "extended", seed: int = 1
) -> None:
    """Creates the export tables in ``con``: ``tracks`` tracks and the rest in proportion."""
    artists = max(10, tracks // 50)
    albums = max(10, tracks // 12)
    playlists = max(5, tracks // 5000)
    genres = [f"{region}{genre}" for region in REGIONS for genre in GENRES]
    extended = mode != "development"
    con.execute(f"SELECT setseed({1 / (seed + 1)})")
    con.execute(
        """CREATE TABLE artists AS SELECT
               'ar' || lpad(i::VARCHAR, 20, '0') AS id,
               'Artist ' || i AS name,
               list_transform(range(CAST(floor(random() * 4) AS BIGINT)),
                   lambda _: ($genres)[1 + CAST(floor(len($genres) * pow(random(), 2)) AS BIGINT)])
                   AS genres,
               CAST(floor(100 * pow(random(), 1.5)) AS INTEGER) AS popularity,
               CAST(floor(pow(10, 7 * random())) AS BIGINT) AS followers,
               'https://i.scdn.co/image/' || md5(i::VARCHAR) AS image_url,
               TIMESTAMP '2026-03-01' + to_seconds(i % 86400) AS fetched_at
           FROM range($artists) t(i)""",
        {"genres": genres, "artists": artists},
    )
    con.execute(
        """CREATE TABLE albums AS SELECT *,
               CAST(substr(release_date, 1, 4) AS INTEGER) AS release_year
           FROM (SELECT
               'al' || lpad(i::VARCHAR, 20, '0') AS id,
               'Album ' || i AS name,
               ['album', 'single', 'single', 'compilation'][1 + CAST(floor(random() * 4) AS INT)]
                   AS album_type,
               CAST(2025 - floor(75 * pow(random(), 2.5)) AS INTEGER)::VARCHAR || '-01-01'
                   AS release_date,
               'day' AS release_date_precision,
               CAST(1 + floor(24 * random()) AS INTEGER) AS total_tracks,
               'Label ' || (i % 500) AS label,
               CAST(floor(100 * random()) AS INTEGER) AS popularity,
               lpad((i * 7919)::VARCHAR, 12, '0') AS upc,
               TIMESTAMP '2026-03-01' + to_seconds(i % 86400) AS fetched_at
           FROM range($albums) t(i))""",
        {"albums": albums},
    )
    con.execute(
        """CREATE TABLE tracks AS SELECT
               'tr' || lpad(i::VARCHAR, 20, '0') AS id,
               'Track ' || i AS name,
               'al' || lpad((i % $albums)::VARCHAR, 20, '0') AS album_id,
               1 AS disc_number,
               CAST(1 + i // $albums AS INTEGER) AS track_number,
               CAST(greatest(20000, 60000 * (2.5 + random() + random() + random()
                   + pow(random(), 8) * 10)) AS INTEGER) AS duration_ms,
               random() < 0.15 AS explicit,
               CAST(floor(100 * pow(random(), 1.3)) AS INTEGER) AS popularity,
               'USRC1' || lpad(i::VARCHAR, 7, '0') AS isrc,
               TIMESTAMP '2026-03-01' + to_seconds(i % 86400) AS fetched_at
           FROM range($tracks) t(i)""",
        {"albums": albums, "tracks": tracks},
    )
    con.execute(
        f"""CREATE TABLE audio_features AS SELECT
               id AS track_id,
               (random() + random() + random()) / 3 AS danceability,
               1 - pow(random(), 1.6) AS energy,
               CAST(floor(random() * 12) AS INTEGER) AS key,
               -2 - 14 * pow(random(), 2) - 20 * pow(random(), 12) AS loudness,
               CAST(random() < 0.62 AS INTEGER) AS mode,
               0.02 + 0.6 * pow(random(), 5) AS speechiness,
               pow(random(), 2.2) AS acousticness,
               CASE WHEN random() < 0.7 THEN 0.01 * random() ELSE random() END
                   AS instrumentalness,
               0.03 + 0.9 * pow(random(), 3) AS liveness,
               random() AS valence,
               70 + 35 * (random() + random() + random() + random()) / 2 AS tempo,
               [4, 4, 4, 4, 4, 4, 4, 3, 5, 1][1 + CAST(floor(random() * 10) AS INT)]
                   AS time_signature,
               duration_ms
           FROM tracks WHERE {extended} AND random() < 0.95"""
    )
    con.execute(
        """CREATE TABLE album_artists AS
           SELECT id AS album_id, 'ar' || lpad((hash(id) % $artists)::VARCHAR, 20, '0')
               AS artist_id, 0 AS position FROM albums
           UNION ALL
           SELECT id, 'ar' || lpad((hash(id || 'f') % $artists)::VARCHAR, 20, '0'), 1
           FROM albums WHERE random() < 0.2""",
        {"artists": artists},
    )
    con.execute(
        """CREATE TABLE track_artists AS
           SELECT t.id AS track_id, a.artist_id, 0 AS position
           FROM tracks t JOIN album_artists a ON a.album_id = t.album_id AND a.position = 0
           UNION ALL
           SELECT id, 'ar' || lpad((hash(id) % $artists)::VARCHAR, 20, '0'), 1
           FROM tracks WHERE random() < 0.25""",
        {"artists": artists},
    )
    con.execute(
        f"""CREATE TABLE artist_albums AS SELECT artist_id, album_id,
               CASE WHEN {extended} THEN CASE position WHEN 0 THEN albums.album_type
                    ELSE 'appears_on' END END AS album_group,
               CAST(row_number() OVER (PARTITION BY artist_id ORDER BY album_id) - 1 AS INTEGER)
                   AS position
           FROM album_artists JOIN albums ON albums.id = album_id"""
    )
    con.execute(
        f"""CREATE TABLE related_artists AS SELECT a.id AS artist_id,
               'ar' || lpad(CAST(floor($artists * pow(random(), 2.5)) AS BIGINT)::VARCHAR,
                   20, '0') AS related_artist_id,
               CAST(r AS INTEGER) AS rank
           FROM artists a, range(CAST(
               CASE WHEN hash(a.id) % 8 = 0 THEN hash(a.id) % 20 ELSE 20 END AS BIGINT)) t(r)
           WHERE {extended}""",
        {"artists": artists},
    )
    con.execute(
        """CREATE TABLE playlists AS SELECT
               'pl' || lpad(i::VARCHAR, 20, '0') AS id,
               'Playlist ' || i AS name,
               'user' || (i % 97) AS owner_id,
               md5(i::VARCHAR) AS snapshot_id,
               CAST(floor(pow(10, 6 * random())) AS BIGINT) AS followers,
               CAST(floor(pow(2, 11 * random())) - 1 AS INTEGER) AS total_items,
               TIMESTAMP '2026-03-01' + to_seconds(i % 86400) AS fetched_at
           FROM range($playlists) t(i)""",
        {"playlists": playlists},
    )
    con.execute(
        """CREATE TABLE playlist_items AS SELECT
               p.id AS playlist_id, CAST(pos AS INTEGER) AS position,
               CASE WHEN r < 0.04 THEN 'episode' ELSE 'track' END AS item_type,
               CASE WHEN r >= 0.98 THEN NULL
                    ELSE 'tr' || lpad((hash(p.id, pos) % $tracks)::VARCHAR, 20, '0') END
                   AS item_id,
               TIMESTAMP '2020-01-01' + to_seconds(CAST(pos * 3600 AS BIGINT)) AS added_at,
               CASE WHEN r < 0.5 THEN p.owner_id END AS added_by,
               r >= 0.98 AS is_local
           FROM (SELECT *, random() AS r FROM playlists p, range(p.total_items) t(pos)) p""",
        {"tracks": tracks},
    )


def synthetic_crawl(
    days: float = 0.1,
    every_s: float = 5.0,
    accounts: int = 2,
    mode: ApiMode = "extended",
    seed: int = 1,
    start: float = 1_772_323_200.0,  # 2026-03-01 00:00 UTC
) -> tuple[list[Sample], list[Run]]:
    """A crawl of ``days`` in four runs: a ban pause (exit 3), a kill, an error, a finish.

    Like the real rate limiter, each account's believed budget ramps up until the API's
    hidden one answers 429, is cut below it and probes upward again; at the end of the
    first run every account is banned for hours, so that run exits 3. The gaps between runs
    are a twentieth of the span each. A development-mode crawl writes no audio features and
    has no related-artists or audio-features tasks.
    """
    crawl = _Crawl(random.Random(seed), start, days * 86400, every_s, mode)
    hidden = {f"account-{chr(ord('a') + i)}": crawl.rng.uniform(4.0, 8.0) for i in range(accounts)}
    plan = [(0.0, 0.3, 3), (0.35, 0.55, None), (0.6, 0.8, 1), (0.85, 1.0, 0)]
    samples: list[Sample] = []
    runs: list[Run] = []
    for run_id, (begin, finish, code) in enumerate(plan, 1):
        t0, t1 = start + begin * crawl.span, start + finish * crawl.span
        runs.append(Run(run_id, t0, t1 if code is not None else None, code))
        samples += crawl.run(run_id, t0, t1, hidden, banned_at_end=code == 3)
    return samples, runs


class _Crawl:
    """What carries over from run to run: the store's totals and the random stream."""

    def __init__(
        self, rng: random.Random, start: float, span: float, every_s: float, mode: ApiMode
    ) -> None:
        self.rng, self.start, self.span, self.every_s = rng, start, span, every_s
        unavailable = {"audio_features", "features", "related"} if mode == "development" else ()
        self.written = {k: 0.0 for k in STREAMS_PER_REQUEST if k not in unavailable}
        self.pending = {k: 0.0 for k in OPS if k not in unavailable}

    def run(
        self, run: int, t0: float, t1: float, hidden: dict[str, float], banned_at_end: bool
    ) -> list[Sample]:
        """One run's samples: its own counters start from zero, the store's totals go on."""
        rng, every_s = self.rng, self.every_s
        budget = dict.fromkeys(hidden, 1.0)
        used = dict.fromkeys(hidden, 0)
        limited: dict[str, dict[str, int]] = {}
        statuses = {200: 0, 404: 0, 429: 0, 500: 0, 503: 0}
        faults = {"timeout": 0, "reset": 0, "truncated": 0}
        retries = commits = 0
        commit_s = 0.0
        parked: dict[str, float] = {}
        out = []
        t = t0 + every_s
        while t <= t1:
            ban = banned_at_end and t > t1 - 3 * every_s
            for name, limit in hidden.items():
                if parked.get(name, 0.0) > t:
                    continue
                sent = round(min(budget[name], limit * 1.1) * every_s * rng.uniform(0.85, 1.0))
                used[name] += sent
                refused = 0
                if ban or budget[name] > limit or rng.random() < 0.002:
                    refused = rng.randint(1, 3)
                    reason = "ban" if ban else rng.choice(("window", "window", "window", "quota"))
                    reasons = limited.setdefault(name, {})
                    reasons[reason] = reasons.get(reason, 0) + refused
                    budget[name] = max(1.0, min(budget[name], limit) * 0.9)
                    parked[name] = t + (6 * 3600 if ban else rng.uniform(2, 30))
                else:
                    budget[name] *= 1.02 if budget[name] < 0.8 * limit else 1.002
                statuses[429] += refused
                statuses[200] += sent - refused
                for stream in self.written:
                    per = STREAMS_PER_REQUEST[stream] * rng.uniform(0.6, 1.4)
                    self.written[stream] += (sent - refused) * per
            if rng.random() < 0.02 * every_s / 5:
                kind = rng.choice(list(faults))
                faults[kind] += 1
                statuses[503 if kind == "truncated" else 500] += 1
                retries += 1
            statuses[404] += rng.random() < 0.05
            commits += int(every_s * 2)
            commit_s += every_s * 2 * rng.uniform(0.008, 0.02)
            done = min(1.0, (t - self.start) / self.span)
            for i, op in enumerate(self.pending):
                target = 9000 * done**0.3 * (1 - done) ** (1 + i / 3) * (1 + 0.2 * rng.random())
                self.pending[op] += (target - self.pending[op]) * 0.05
            out.append(
                Sample(
                    at=t,
                    run=run,
                    requests=dict(statuses),
                    rate_limited={n: dict(r) for n, r in limited.items()},
                    faults=dict(faults),
                    retries=retries,
                    written={k: round(v) for k, v in self.written.items()},
                    pending={k: round(v) for k, v in self.pending.items()},
                    commits=commits,
                    commit_s=commit_s,
                    budget=dict(budget),
                    used=dict(used),
                    parked_until=dict(parked),
                )
            )
            t += every_s
        return out
