"""JSON-lines output files whose committed length is what the checkpoint says, byte for byte.

Lines are buffered between commits and written, flushed and fsynced *before* the checkpoint
records the new length, so the files are never shorter than the checkpoint believes; a crash
leaves at most a tail past that length, which the next run truncates away.
"""

from __future__ import annotations

import os
from pathlib import Path

from crawler.core.errors import CheckpointError
from crawler.core.tasks import Line


class JsonlSink:
    def __init__(self, path: Path, committed: int) -> None:
        self.path = path
        self._buffer: list[Line] = []
        self._fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        size = os.fstat(self._fd).st_size
        if size < committed:
            os.close(self._fd)
            raise CheckpointError(
                f"{path} has {size} bytes but the checkpoint committed {committed}: the file was "
                "edited or replaced; restore it, or rerun with --fresh to start afresh"
            )
        if size > committed:
            os.ftruncate(self._fd, committed)  # drop the tail of work that was never committed
        self.length = committed
        self.lines = 0

    def add(self, obj: Line) -> None:
        """Queue one JSON object (no newline of its own: compact JSON) as one line."""
        self._buffer.append(obj)
        self._buffer.append(b"\n")

    def flush(self) -> int:
        """Write what is buffered and make it durable; return the new committed length."""
        if self._buffer:
            data = b"".join(self._buffer)
            try:
                view = memoryview(data)
                while view:
                    view = view[os.write(self._fd, view) :]
                os.fsync(self._fd)
            except OSError:
                # ENOSPC mid-write: cut the partial tail so later appends never follow garbage.
                os.ftruncate(self._fd, self.length)
                raise
            self.length += len(data)
            self.lines += len(self._buffer) // 2
            self._buffer.clear()
        return self.length

    def discard(self) -> None:
        """Forget buffered lines whose transaction failed; the tasks will be redone."""
        self._buffer.clear()

    def close(self) -> None:
        os.close(self._fd)
