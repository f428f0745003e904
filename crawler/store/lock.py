"""One crawl per checkpoint: an exclusive lock held by the process for the whole run.

Two crawls of one SQLite checkpoint (a second terminal, an overlapping cron job) would each
believe they own the frontier and the files, and write the same records twice. The lock is
an ``flock`` on a file beside the checkpoint: the kernel releases it when the process dies,
however it dies, so a SIGKILLed crawl never leaves a stale lock behind. The file's content
(pid, host, start time) only names the holder for the refusal message.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import socket
import time
from pathlib import Path

import orjson

from crawler.core.errors import CrawlerError


class CheckpointLocked(CrawlerError):
    """Another process runs this crawl now."""

    exit_code = 2


def lock_path(checkpoint: Path) -> Path:
    return checkpoint.with_name(checkpoint.name + ".lock")


class CheckpointLock:
    """Held from ``acquire`` until ``release`` or the end of the process."""

    def __init__(self, checkpoint: Path) -> None:
        self.checkpoint = checkpoint
        self.path = lock_path(checkpoint)
        self._fd: int | None = None

    def acquire(self) -> None:
        """Take the lock now or refuse at once, naming the process that holds it."""
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise CheckpointLocked(
                f"{self.checkpoint}: another crawl is running on this checkpoint "
                f"({describe_holder(self.path)}); wait for it to end, or stop it first"
            ) from None
        except BaseException:
            os.close(fd)
            raise
        holder = {"pid": os.getpid(), "host": socket.gethostname(), "since": time.time()}
        os.ftruncate(fd, 0)
        os.pwrite(fd, orjson.dumps(holder), 0)
        self._fd = fd

    def release(self) -> None:
        if self._fd is not None:
            with contextlib.suppress(OSError):
                os.ftruncate(self._fd, 0)
            os.close(self._fd)  # closing the descriptor releases the flock
            self._fd = None


def running_holder(checkpoint: Path) -> str | None:
    """Who runs this crawl now (for ``status``), or None; never takes the lock for long."""
    path = lock_path(checkpoint)
    try:
        fd = os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return describe_holder(path)
    else:
        fcntl.flock(fd, fcntl.LOCK_UN)
        return None
    finally:
        os.close(fd)


def describe_holder(path: Path) -> str:
    """``pid 4242 on host lab-3 since 2026-12-02 10:15:04 UTC`` from the lock file."""
    try:
        holder = orjson.loads(path.read_bytes())
        since = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(holder["since"]))
        return f"pid {holder['pid']} on host {holder['host']} since {since}"
    except (OSError, orjson.JSONDecodeError, KeyError, TypeError):
        return "a process that has not written its name yet"
