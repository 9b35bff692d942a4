"""Searching bytes for several literal strings at once, and counting lines on the way.

The relevant-path reader looks for a few needles in every byte of the logs and needs every
line's number; it also tests the lines it follows for any of a few dozen catalogue fragments.
`bytes.find` makes one pass per needle, a regex alternation tries each fragment at each
position, and `bytes.count` is one more pass for the line ends. The compiled scan
(`_linescan.c`) does it all in one pass over each byte, comparing vectors of bytes.
"""

from __future__ import annotations

from typing import NamedTuple

from logs_parsers._linescan import LineNeedles


class LinesFound(NamedTuple):
    """The lines of one group of needles: where each ends (just past its line end) and its
    number in the buffer (the line ends before it), in order, each line once."""

    ends: list[int]
    numbers: list[int]


class LiteralSearch:
    """Whether any of `needles` (non-empty byte strings without line ends) occurs in a line."""

    def __init__(self, needles: tuple[bytes, ...]) -> None:
        self.needles = needles
        self._needles = LineNeedles((needles,))

    def occurs_in(self, line: bytes | bytearray) -> bool:
        """Whether any needle occurs in `line`."""
        return self._needles.occurs_in(line)


class LineSearch:
    """Which lines hold a needle, for several groups of needles, and how many lines there are,
    in one pass."""

    def __init__(self, groups: tuple[tuple[bytes, ...], ...]) -> None:
        self.groups = groups
        self._needles = LineNeedles(groups)

    def scan(self, buffer: bytes | bytearray, limit: int) -> tuple[int, list[LinesFound]]:
        """The number of line ends in `buffer[:limit]` (whole lines, the last one ending with a
        line end), and for each group the lines holding one of its needles."""
        line_ends, found = self._needles.scan(buffer, limit)
        return line_ends, [LinesFound(ends, numbers) for ends, numbers in found]
