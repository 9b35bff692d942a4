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
    """Whether any of `needles` (non-empty byte strings) occurs in a line."""

    def __init__(self, needles: tuple[bytes, ...], *, use_hyperscan: bool = True) -> None:
        self.needles = needles
        self._alternation = re.compile(b"|".join(re.escape(needle) for needle in needles))
        self._any: Callable[[bytes | bytearray | memoryview], bool] | None = None
        if hyperscan is not None and use_hyperscan:
            self._any = _hyperscan_any(needles)

    def occurs_in(self, line: bytes | bytearray) -> bool:
        """Whether any needle occurs in `line`."""
        if self._any is not None:
            return self._any(line)
        return self._alternation.search(line) is not None


class LineSearch:
    """Which lines hold a needle, for several groups of needles in one pass.

    Lines are named by where they end (the offset just past their line end), so that a line
    with several needles of a group is named once."""

    def __init__(
        self, groups: tuple[tuple[bytes, ...], ...], *, use_hyperscan: bool = True
    ) -> None:
        self.groups = groups
        self._scan: Callable[[memoryview], list[list[int]]] | None = None
        if hyperscan is not None and use_hyperscan:
            self._scan = _hyperscan_line_ends(groups)

    def line_ends(self, buffer: bytes | bytearray, limit: int) -> list[list[int]]:
        """For each group, the ends of the lines of `buffer[:limit]` (whole lines, the last
        one ending with a line end) that hold one of its needles, in order."""
        if self._scan is not None:
            with memoryview(buffer) as view, view[:limit] as searched:
                return self._scan(searched)
        found = []
        find = buffer.find
        for needles in self.groups:
            ends: set[int] = set()
            for needle in needles:
                position = find(needle, 0, limit)
                while position >= 0:
                    end = find(b"\n", position, limit) + 1 or limit
                    ends.add(end)
                    position = find(needle, end, limit)
            found.append(sorted(ends))
        return found


def _escaped(needle: bytes) -> bytes:
    """A needle as a Hyperscan expression: a literal whatever it holds (each byte in hex)."""
    return b"".join(b"\\x%02x" % byte for byte in needle)


def _compiled(expressions: list[bytes], flags: int) -> object:
    database = hyperscan.Database(mode=hyperscan.HS_MODE_BLOCK)
    database.compile(
        expressions=expressions,
        ids=list(range(len(expressions))),
        flags=[flags] * len(expressions),
    )
    return database


def _hyperscan_line_ends(
    groups: tuple[tuple[bytes, ...], ...],
) -> Callable[[memoryview], list[list[int]]]:
    # A match runs from a needle to its line end; Hyperscan reports an expression's match at
    # one end offset once, so each line comes once per group however many needles it holds.
    database = _compiled(
        [b"(?:" + b"|".join(map(_escaped, needles)) + b")[^\\n]*\\n" for needles in groups], 0
    )

    def line_ends(searched: memoryview) -> list[list[int]]:
        found: list[list[int]] = [[] for _ in groups]
        appends = [ends.append for ends in found]

        def on_match(group: int, _start: int, end: int, _flags: int, _context: object) -> None:
            appends[group](end)

        database.scan(searched, match_event_handler=on_match)
        for ends in found:
            ends.sort()
        return found

    return line_ends


def _hyperscan_any(needles: tuple[bytes, ...]) -> Callable[[bytes | bytearray | memoryview], bool]:
    database = _compiled([_escaped(needle) for needle in needles], hyperscan.HS_FLAG_SINGLEMATCH)
    found = [False]

    def on_match(*_match: object) -> None:
        found[0] = True  # scanning a line on costs less than stopping (an exception)

    def occurs_in(line: bytes | bytearray | memoryview) -> bool:
        found[0] = False
        database.scan(line, match_event_handler=on_match)
        return found[0]

    return occurs_in
