"""Dropping the monitor's per-pass chatter before the logs are parsed.

Nova's monitor logs two DEBUG lines every half second of every migration: "Current 46 elapsed 12
steps [...]" and, when nothing changes, "Downtime does not need to change". With DEBUG on they
are most of the lines that mention migration, and they say nothing that the first "Current None
…" line (the whole ramp) and the "Increasing downtime" lines do not. Cutting them out of each
binary chunk with `bytes.find` costs next to nothing; parsing them costs most of a replay's time.
"""

from __future__ import annotations

import io
from collections import deque
from typing import BinaryIO

# Logged on every monitor pass that changes nothing, right after that pass's "Current <ms>
# elapsed <s> steps [...]" line, which repeats the ramp ("Current None …", the first, is kept).
_UNCHANGED = b"Downtime does not need to change"
_REPEATED_RAMP = b"] Current "


class ChatterFilter(io.RawIOBase):
    """A binary stream of whole lines without the monitor's chatter; counts what it dropped.

    The kept stretches of each chunk are handed on as views of it, so a byte is copied once on
    its way to the reader's buffer.
    """

    def __init__(self, stream: BinaryIO, chunk_bytes: int = 1 << 20) -> None:
        super().__init__()
        self._stream = stream
        self._chunk_bytes = chunk_bytes
        self._pieces: deque[memoryview] = deque()
        self.dropped_lines = 0
        self.bytes_read = 0

    def readable(self) -> bool:
        return True

    def readinto(self, target: bytearray | memoryview) -> int:  # type: ignore[override]
        while not self._pieces:
            chunk = self._stream.read(self._chunk_bytes)
            if not chunk:
                return 0
            self.bytes_read += len(chunk)
            cut = chunk.rfind(b"\n") + 1
            self._keep(chunk, 0, cut)
            if cut < len(chunk):  # finish the last line, which the next read would split
                rest = self._stream.readline()
                self.bytes_read += len(rest)
                last = chunk[cut:] + rest
                self._keep(last, 0, len(last))
        filled = 0
        room = len(target)
        while self._pieces and filled < room:
            piece = self._pieces[0]
            size = min(room - filled, len(piece))
            target[filled : filled + size] = piece[:size]
            filled += size
            if size == len(piece):
                self._pieces.popleft()
            else:
                self._pieces[0] = piece[size:]
        return filled

    def _keep(self, buffer: bytes, begin: int, end: int) -> None:
        """Queue `buffer[begin:end]` (whole lines) without the unchanged-downtime lines and the
        repeated ramp line before each."""
        view = memoryview(buffer)
        cursor = begin
        position = buffer.find(_UNCHANGED, begin, end)
        while position >= 0:
            start = buffer.rfind(b"\n", begin, position) + 1 or begin
            stop = buffer.find(b"\n", position, end)
            stop = end if stop < 0 else stop + 1
            if start >= cursor:
                previous = buffer.rfind(b"\n", begin, max(start - 1, begin)) + 1 or begin
                ramp = buffer.find(_REPEATED_RAMP, previous, start)
                after = ramp + len(_REPEATED_RAMP)
                if previous >= cursor and ramp >= 0 and buffer[after : after + 1].isdigit():
                    start = previous
                    self.dropped_lines += 1
                if start > cursor:
                    self._pieces.append(view[cursor:start])
                self.dropped_lines += 1
                cursor = stop
            position = buffer.find(_UNCHANGED, stop, end)
        if end > cursor:
            self._pieces.append(view[cursor:end])
