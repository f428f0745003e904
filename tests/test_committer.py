"""The group committer's error paths: what reaches the user is the store's own one line."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from crawler.core.errors import CrawlerError
from crawler.crawl.committer import GroupCommitter
from crawler.store.plan import plan_commit


def committer(
    refill_error: Exception, errors: list[CrawlerError], tmp_path: Path
) -> GroupCommitter:
    async def refill() -> None:
        raise refill_error

    return GroupCommitter(
        None,  # type: ignore[arg-type]  # no commit is due: the refill fails first
        interval_s=0.05,
        max_backlog=10,
        group=lambda outcomes, meta, seeds: plan_commit(outcomes, meta=meta, seeds=seeds),
        new=lambda tasks: None,
        settled=lambda ops: None,
        on_error=errors.append,
        hungry=lambda: True,
        needs_refill=lambda: True,
        refill=refill,
        wake=lambda: None,
        out_dir=tmp_path,
    )


async def test_a_store_error_in_a_refill_is_reported_as_it_is(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A claim that lost the database (the store's resumable one-liner) is no crash of the
    committer: no traceback, no "checkpoint failed" wrapped around it."""
    lost = CrawlerError("store.dsn postgresql://u:***@h/db: lost the database (gone); rerun")
    errors: list[CrawlerError] = []
    with caplog.at_level(logging.ERROR):
        await committer(lost, errors, tmp_path).run()
    assert errors == [lost]
    assert caplog.records == []


async def test_an_unexpected_refill_error_is_logged_with_its_traceback(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    errors: list[CrawlerError] = []
    with caplog.at_level(logging.ERROR):
        await committer(ValueError("a bug"), errors, tmp_path).run()
    assert [str(e) for e in errors] == ["checkpoint failed: a bug"]
    assert [r.exc_info is not None for r in caplog.records] == [True]
