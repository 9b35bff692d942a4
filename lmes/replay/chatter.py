"""Dropping the monitor's per-pass chatter before the logs are parsed.

Nova's monitor logs two DEBUG lines every half second of every migration: "Current 46 elapsed 12
steps [...]" and, when nothing changes, "Downtime does not need to change". With DEBUG on they
are most of the lines that mention migration, and they say nothing that the first "Current None
…" line (the whole ramp) and the "Increasing downtime" lines do not. Cutting them out of each
binary chunk with `bytes.find` costs next to nothing; parsing them costs most of a replay's time.
"""

from __future__ import annotations

import io
from typing import BinaryIO

# Logged on every monitor pass that changes nothing, right after that pass's "Current <ms>
# elapsed <s> steps [...]" line, which repeats the ramp ("Current None …", the first, is kept).
_UNCHANGED = b"Downtime does not need to change"
_REPEATED_RAMP = b"] Current "
# A reader's buffer at least this large is filled in place (read, then the chatter squeezed
# out); a smaller one is served from this stream's own buffer.
_IN_PLACE_FROM_BYTES = 64 << 10


class ChatterFilter(io.RawIOBase):
    """A binary stream of whole lines without the monitor's chatter; counts what it dropped.

    Into a large enough buffer the file is read directly and the chatter squeezed out in place
    (a move within the buffer), so no byte is copied twice on its way to the reader.
    """

    def __init__(self, stream: BinaryIO, chunk_bytes: int = 1 << 20) -> None:
        super().__init__()
        self._stream = stream
        self._chunk_bytes = chunk_bytes
        self._ready = bytearray()
        """Filtered whole lines not handed out yet (small buffers only)."""
        self._ready_from = 0
        self._tail = b""
        """What the last read left for the next: the line it cut, and a ramp line held back
        until the line after it says whether it goes (so where reads cut changes nothing)."""
        self.dropped_lines = 0
        self.bytes_read = 0

    def readable(self) -> bool:
        return True

    def readinto(self, target: bytearray | memoryview) -> int:  # type: ignore[override]
        room = len(target)
        if self._ready_from < len(self._ready):
            return self._hand_out(target)
        if not isinstance(target, bytearray) or room < _IN_PLACE_FROM_BYTES:
            return self._hand_out(target) if self._fill() else 0
        while len(self._tail) * 2 <= room:  # else a line longer than half the buffer
            kept = len(self._tail)
            target[:kept] = self._tail
            with memoryview(target) as view:
                received = self._stream.readinto(view[kept:]) or 0
            self.bytes_read += received
            size = kept + received
            if received == 0:  # the end: the last line may lack its line end
                self._tail = b""
                return self._squeeze(target, size)
            cut = _before_last_ramp(target, target.rfind(b"\n", 0, size) + 1)
            self._tail = bytes(target[cut:size])
            kept_bytes = self._squeeze(target, cut)
            if kept_bytes:
                return kept_bytes
        return self._hand_out(target) if self._fill() else 0

    def _fill(self) -> bool:
        """Read whole lines into `_ready`, without the chatter; False at the end."""
        while True:
            chunk = self._tail + (self._stream.read(self._chunk_bytes) or b"")
            self.bytes_read += len(chunk) - len(self._tail)
            self._tail = b""
            if not chunk:
                return False
            if not chunk.endswith(b"\n"):  # finish the last line
                rest = self._stream.readline()
                self.bytes_read += len(rest)
                chunk += rest
            cut = _before_last_ramp(chunk, len(chunk))
            if cut == 0:  # a lone ramp line: take the line that decides its fate with it
                rest = self._stream.readline()
                self.bytes_read += len(rest)
                chunk += rest
                cut = _before_last_ramp(chunk, len(chunk)) or len(chunk)
            chunk, self._tail = chunk[:cut], chunk[cut:]
            ready = bytearray(chunk)
            del ready[self._squeeze(ready, len(ready)) :]
            if ready:
                self._ready = ready
                self._ready_from = 0
                return True

    def _hand_out(self, target: bytearray | memoryview) -> int:
        start = self._ready_from
        size = min(len(target), len(self._ready) - start)
        target[:size] = self._ready[start : start + size]
        self._ready_from = start + size
        return size

    def _squeeze(self, buffer: bytearray, end: int) -> int:
        """Move the kept lines of `buffer[:end]` to its front; return their length."""
        written = cursor = 0
        with memoryview(buffer) as view:
            for start, stop in [*self._chatter(buffer, end), (end, end)]:
                if start > cursor and written < cursor:  # else the lines are in place
                    view[written : written + start - cursor] = view[cursor:start]
                written += start - cursor
                cursor = stop
        return written

    def _chatter(self, buffer: bytes | bytearray, end: int) -> list[tuple[int, int]]:
        """The stretches of `buffer[:end]` (whole lines) to drop: each unchanged-downtime line
        and the repeated ramp line before it; counts them."""
        stretches = []
        cursor = 0
        position = buffer.find(_UNCHANGED, 0, end)
        while position >= 0:
            start = buffer.rfind(b"\n", 0, position) + 1
            stop = buffer.find(b"\n", position, end)
            stop = end if stop < 0 else stop + 1
            if start >= cursor:
                previous = buffer.rfind(b"\n", 0, max(start - 1, 0)) + 1
                ramp = buffer.find(_REPEATED_RAMP, previous, start)
                after = ramp + len(_REPEATED_RAMP)
                if previous >= cursor and ramp >= 0 and buffer[after : after + 1].isdigit():
                    start = previous
                    self.dropped_lines += 1
                stretches.append((start, stop))
                self.dropped_lines += 1
                cursor = stop
            position = buffer.find(_UNCHANGED, stop, end)
        return stretches


def _before_last_ramp(buffer: bytes | bytearray, end: int) -> int:
    """Where to stop in `buffer[:end]` (whole lines): before the last line if it is a ramp
    line, whose fate the next line decides (0 when it is the only line)."""
    if end == 0:
        return 0
    last = buffer.rfind(b"\n", 0, end - 1) + 1
    return last if buffer.find(_REPEATED_RAMP, last, end) >= 0 else end
