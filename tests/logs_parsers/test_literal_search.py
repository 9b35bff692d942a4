"""Both ways of searching for literals give the same answers as plain `bytes.find`."""

from __future__ import annotations

import pytest

from logs_parsers.literal_search import LineSearch, LiteralSearch, hyperscan

NEEDLES = (b"igrat", b" downtime to ", b"Lifecycle Event", b"a.b")
LOG = (
    b"2024-03-04 06:00:49.256 10000 INFO nova.compute.manager [-] Lifecycle Event Paused\n"
    b"2024-03-04 06:00:50.001 10000 DEBUG nova.virt.libvirt.migration [-] Increasing downtime to"
    b" 46 ms after 0 sec elapsed time\n"
    b"2024-03-04 06:00:51.914 10000 INFO nova.compute.manager [-] Live migration migrating"
    b" igratigrat a.b axb\n"
    b"2024-03-04 06:00:52.000 10000 DEBUG oslo_concurrency.lockutils [-] Lock acquired\n"
)
WAYS = [False] + ([True] if hyperscan is not None else [])


GROUPS = (NEEDLES[:3], (b"a.b",), (b"Lock", b"acquired"))


def expected_line_ends(buffer: bytes, limit: int) -> list[list[int]]:
    """Per group, where each whole line of `buffer[:limit]` holding one of its needles ends."""
    found: list[list[int]] = [[] for _ in GROUPS]
    start = 0
    for line in buffer[:limit].splitlines(keepends=True):
        start += len(line)
        for group, needles in enumerate(GROUPS):
            if any(needle in line for needle in needles):
                found[group].append(start)
    return found


@pytest.mark.parametrize("use_hyperscan", WAYS)
def test_each_line_with_a_needle_is_named_once_by_its_end(use_hyperscan: bool) -> None:
    search = LineSearch(GROUPS, use_hyperscan=use_hyperscan)
    line_ends = [i + 1 for i, byte in enumerate(LOG) if byte == ord("\n")]
    for limit in (len(LOG), line_ends[1], line_ends[0], 0):
        assert search.line_ends(bytearray(LOG), limit) == expected_line_ends(LOG, limit)
    # two needles of one group in one line, the same needle twice: the line once
    assert search.line_ends(b"igrat igrat downtime to \nLock acquired\n", 39)[0] == [25]


@pytest.mark.parametrize("use_hyperscan", WAYS)
def test_a_line_holds_a_needle_or_not(use_hyperscan: bool) -> None:
    search = LiteralSearch(NEEDLES, use_hyperscan=use_hyperscan)
    answers = [search.occurs_in(line) for line in LOG.splitlines(keepends=True)]
    assert answers == [True, True, True, False]
    assert not search.occurs_in(b"")
    assert search.occurs_in(bytearray(b"xa.by"))  # a dot is a dot, not any byte
    assert not search.occurs_in(b"axb")
