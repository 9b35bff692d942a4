"""Searching bytes for several literal strings at once.

The relevant-path reader looks for a few needles in every byte of the logs, and tests the lines
it follows for any of a few dozen catalogue fragments. `bytes.find` makes one pass per needle
and slows down on needles of common letters (`igrat`); a regex alternation tries each fragment
at each position. Hyperscan, when installed, matches all of them in one vectorised pass, several
times faster; without it the same answers come from `bytes.find` and `re`.
"""

from __future__ import annotations

import re
from collections.abc import Callable

try:
    import hyperscan
except ImportError:  # optional: the pure-Python search gives the same answers
    hyperscan = None


class LiteralSearch:
    """Where, and whether, any of `needles` (non-empty byte strings) occurs."""

    def __init__(self, needles: tuple[bytes, ...], *, use_hyperscan: bool = True) -> None:
        self.needles = needles
        self._alternation = re.compile(b"|".join(re.escape(needle) for needle in needles))
        self._every: Callable[[bytes | bytearray | memoryview], list[int]] | None = None
        self._any: Callable[[bytes | bytearray | memoryview], bool] | None = None
        if hyperscan is not None and use_hyperscan:
            self._every = _hyperscan_positions(needles)
            self._any = _hyperscan_any(needles)

    def positions(self, buffer: bytes | bytearray, limit: int) -> list[int]:
        """Every start of every needle in `buffer[:limit]` (overlaps included), in order."""
        if self._every is not None:
            with memoryview(buffer) as view, view[:limit] as searched:
                return self._every(searched)
        hits: list[int] = []
        find = buffer.find
        for needle in self.needles:
            position = find(needle, 0, limit)
            while position >= 0:
                hits.append(position)
                position = find(needle, position + 1, limit)
        hits.sort()
        return hits

    def occurs_in(self, line: bytes | bytearray) -> bool:
        """Whether any needle occurs in `line`."""
        if self._any is not None:
            return self._any(line)
        return self._alternation.search(line) is not None


def _compiled(needles: tuple[bytes, ...], flags: int) -> object:
    database = hyperscan.Database(mode=hyperscan.HS_MODE_BLOCK)
    database.compile(
        # every byte written as \xHH: the needles are literals, whatever they hold
        expressions=[b"".join(b"\\x%02x" % byte for byte in needle) for needle in needles],
        ids=list(range(len(needles))),
        flags=[flags] * len(needles),
    )
    return database


def _hyperscan_positions(
    needles: tuple[bytes, ...],
) -> Callable[[bytes | bytearray | memoryview], list[int]]:
    database = _compiled(needles, 0)
    lengths = [len(needle) for needle in needles]

    def positions(searched: bytes | bytearray | memoryview) -> list[int]:
        starts: list[int] = []
        append = starts.append

        def on_match(index: int, _start: int, end: int, _flags: int, _context: object) -> None:
            append(end - lengths[index])  # Hyperscan reports where a match ends

        database.scan(searched, match_event_handler=on_match)
        starts.sort()
        return starts

    return positions


def _hyperscan_any(needles: tuple[bytes, ...]) -> Callable[[bytes | bytearray | memoryview], bool]:
    database = _compiled(needles, hyperscan.HS_FLAG_SINGLEMATCH)

    def stop(*_match: object) -> bool:
        return True  # the first match answers: stop scanning

    def occurs_in(line: bytes | bytearray | memoryview) -> bool:
        try:
            database.scan(line, match_event_handler=stop)
        except hyperscan.ScanTerminated:
            return True
        return False

    return occurs_in
