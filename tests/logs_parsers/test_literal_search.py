"""Both ways of searching for literals give the same answers as plain `bytes.find`."""

from __future__ import annotations

import pytest

from logs_parsers.literal_search import LiteralSearch, hyperscan

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


def expected_positions(buffer: bytes, limit: int) -> list[int]:
    return sorted(
        start
        for needle in NEEDLES
        for start in range(limit - len(needle) + 1)
        if buffer[start : start + len(needle)] == needle
    )


@pytest.mark.parametrize("use_hyperscan", WAYS)
def test_every_needle_is_found_where_it_starts_in_order(use_hyperscan: bool) -> None:
    search = LiteralSearch(NEEDLES, use_hyperscan=use_hyperscan)
    for limit in (len(LOG), LOG.index(b"Live"), LOG.index(b"igratigrat") + 7, 0):
        assert search.positions(bytearray(LOG), limit) == expected_positions(LOG, limit)


@pytest.mark.parametrize("use_hyperscan", WAYS)
def test_a_line_holds_a_needle_or_not(use_hyperscan: bool) -> None:
    search = LiteralSearch(NEEDLES, use_hyperscan=use_hyperscan)
    answers = [search.occurs_in(line) for line in LOG.splitlines(keepends=True)]
    assert answers == [True, True, True, False]
    assert not search.occurs_in(b"")
    assert search.occurs_in(bytearray(b"xa.by"))  # a dot is a dot, not any byte
    assert not search.occurs_in(b"axb")
