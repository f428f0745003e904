"""JSON-lines output files whose committed length is what the store says, byte for byte.

Lines are buffered between commits and written, flushed and fsynced *before* the store
records the new length, so the files are never shorter than the store believes; a crash
leaves at most a tail past that length, which the next run truncates away.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import NamedTuple

from crawler.core.errors import CheckpointError
from crawler.core.kinds import stream_file
from crawler.core.tasks import Line

_IOV_MAX = 1024  # buffers per writev (the Linux limit)


class Committed(NamedTuple):
    """How much of a stream is durable: its byte length and its number of records."""

    length: int
    lines: int


class JsonlSink:
    def __init__(self, path: Path, committed: Committed) -> None:
        self.path = path
        self._buffer: list[Line] = []
        self._fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        size = os.fstat(self._fd).st_size
        if size < committed.length:
            os.close(self._fd)
            raise CheckpointError(
                f"{path} has {size} bytes but the checkpoint committed {committed.length}: the "
                "file was edited or replaced; restore it, or rerun with --fresh to start afresh"
            )
        if size > committed.length:
            os.ftruncate(self._fd, committed.length)  # drop the tail never committed
        self.committed = committed

    def add(self, obj: Line) -> None:
        """Queue one JSON object (compact JSON, no newline of its own) as one line."""
        self._buffer.append(obj)
        self._buffer.append(b"\n")

    def flush(self) -> Committed:
        """Write what is buffered and make it durable; return the new committed state."""
        if self._buffer:
            try:
                size = _write_all(self._fd, self._buffer)
                os.fsync(self._fd)
            except OSError:
                # ENOSPC mid-write: cut the partial tail so later appends never follow garbage.
                os.ftruncate(self._fd, self.committed.length)
                raise
            self.committed = Committed(
                self.committed.length + size, self.committed.lines + len(self._buffer) // 2
            )
            self._buffer.clear()
        return self.committed

    def discard(self) -> None:
        """Forget buffered lines whose transaction failed; their tasks will be redone."""
        self._buffer.clear()

    def close(self) -> None:
        os.close(self._fd)


def _write_all(fd: int, buffers: list[Line]) -> int:
    """Append ``buffers`` in order, with writev: the kernel reads each line where it lies (a
    slice of a response) instead of a joined copy of the commit's megabytes, which halved the
    files' CPU (2 GB: 0.9 against 1.8 CPU s). Returns the bytes written."""
    size = 0
    for start in range(0, len(buffers), _IOV_MAX):
        views = [memoryview(b) for b in buffers[start : start + _IOV_MAX]]
        while views:
            written = os.writev(fd, views)
            size += written
            while views and written >= len(views[0]):  # drop what went out whole
                written -= len(views.pop(0))
            if written:
                views[0] = views[0][written:]
    return size


class Outputs:
    """The JSON-lines files of a crawl's streams, all opened at their committed state."""

    def __init__(self, out_dir: Path, streams: Iterable[str], committed: Mapping[str, Committed]):
        self.out_dir = out_dir
        self._sinks: dict[str, JsonlSink] = {}
        self.cpu_seconds = 0.0  # the flushes' CPU: they run in a worker thread
        try:
            for stream in streams:
                path = out_dir / stream_file(stream)
                self._sinks[stream] = JsonlSink(path, committed.get(stream, Committed(0, 0)))
        except BaseException:
            self.close()
            raise

    def add(self, stream: str, line: Line) -> None:
        """Queue a record of an open stream (the expander makes none for a stream turned off)."""
        self._sinks[stream].add(line)

    def flush(self) -> dict[str, Committed]:
        """Make every buffered line durable (blocking: call it from a thread)."""
        started = time.thread_time()
        try:
            return {stream: sink.flush() for stream, sink in self._sinks.items()}
        finally:
            self.cpu_seconds += time.thread_time() - started

    def discard(self) -> None:
        for sink in self._sinks.values():
            sink.discard()

    def committed(self) -> dict[str, Committed]:
        return {stream: sink.committed for stream, sink in self._sinks.items()}

    def close(self) -> None:
        for sink in self._sinks.values():
            sink.close()
        self._sinks.clear()
