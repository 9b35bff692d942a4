"""The compiled scan gives the answers plain `bytes` operations give, on logs and on any bytes,
whichever way this processor scans (vectors of 32 or 16 bytes, or the byte loop alone)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from logs_parsers import _linescan
from logs_parsers.literal_search import LineSearch, LinesFound, LiteralSearch

CHOSEN_ON_IMPORT = _linescan.use()


def _ways() -> list[str]:
    chosen = _linescan.use()
    ways = []
    for way in ("avx2", "sse2", "bytes"):
        try:
            _linescan.use(way)
        except ValueError:
            continue
        ways.append(way)
    _linescan.use(chosen)
    return ways


@pytest.fixture(autouse=True, params=_ways())
def way(request: pytest.FixtureRequest) -> Iterator[str]:
    before = _linescan.use(request.param)
    yield request.param
    _linescan.use(before)


NEEDLES = (b"igrat", b" downtime to ", b"Lifecycle Event", b"a.b")
LOG = (
    b"2024-03-04 06:00:49.256 10000 INFO nova.compute.manager [-] Lifecycle Event Paused\n"
    b"2024-03-04 06:00:50.001 10000 DEBUG nova.virt.libvirt.migration [-] Increasing downtime to"
    b" 46 ms after 0 sec elapsed time\n"
    b"2024-03-04 06:00:51.914 10000 INFO nova.compute.manager [-] Live migration migrating"
    b" igratigrat a.b axb\n"
    b"2024-03-04 06:00:52.000 10000 DEBUG oslo_concurrency.lockutils [-] Lock acquired\n"
)
GROUPS = (NEEDLES[:3], (b"a.b",), (b"Lock", b"acquired"))


def expected(
    groups: tuple[tuple[bytes, ...], ...], buffer: bytes, limit: int
) -> tuple[int, list[LinesFound]]:
    """What the scan must say, from `bytes` operations: the line ends in `buffer[:limit]`, and
    per group where each line holding one of its needles ends, and its number."""
    searched = buffer[:limit]
    found = [LinesFound([], []) for _ in groups]
    start = 0
    for number, line in enumerate(searched.split(b"\n")[:-1]):
        start += len(line) + 1
        for group, needles in enumerate(groups):
            if any(needle in line for needle in needles):
                found[group].ends.append(start)
                found[group].numbers.append(number)
    return searched.count(b"\n"), found


def test_each_line_with_a_needle_is_named_once_with_its_end_and_number() -> None:
    search = LineSearch(GROUPS)
    line_ends = [i + 1 for i, byte in enumerate(LOG) if byte == ord("\n")]
    for limit in (len(LOG), line_ends[1], line_ends[0], 0):
        assert search.scan(bytearray(LOG), limit) == expected(GROUPS, LOG, limit)
    # two needles of one group in one line, the same needle twice: the line once
    lines, found = search.scan(b"igrat igrat downtime to \nLock acquired\n", 39)
    assert (lines, found[0]) == (2, LinesFound([25], [0]))


def test_long_buffers_are_scanned_whole_past_every_block_boundary() -> None:
    # needles at every offset from a block boundary, lines of every length around a block
    buffer = b"".join(b"x" * shift + b"igrat" + b"y" * (70 - shift) + b"\n" for shift in range(70))
    buffer += b"Lock acquired" + b"z" * 100 + b"\n\n" * 40 + b"a.b\n"
    for limit in (len(buffer), len(buffer) - 4, len(buffer) // 2 + 1):
        limit = buffer.rfind(b"\n", 0, limit) + 1
        assert LineSearch(GROUPS).scan(buffer, limit) == expected(GROUPS, buffer, limit)


@settings(max_examples=300, deadline=None)
@given(
    pieces=st.lists(
        st.sampled_from([b"igrat", b"igra", b"Lock", b"acquired", b"a.b", b"\n", b" ", b"a", b"t"])
        | st.binary(max_size=40),
        max_size=200,
    ),
)
def test_any_bytes_give_the_answers_of_bytes_operations(pieces: list[bytes]) -> None:
    buffer = b"".join(pieces)
    limit = buffer.rfind(b"\n") + 1
    assert LineSearch(GROUPS).scan(buffer, limit) == expected(GROUPS, buffer, limit)


def test_a_line_holds_a_needle_or_not() -> None:
    search = LiteralSearch(NEEDLES)
    answers = [search.occurs_in(line) for line in LOG.splitlines(keepends=True)]
    assert answers == [True, True, True, False]
    assert not search.occurs_in(b"")
    assert search.occurs_in(bytearray(b"xa.by"))  # a dot is a dot, not any byte
    assert not search.occurs_in(b"axb")
    assert search.occurs_in(b"x" * 100 + b"Lifecycle Event")  # at the very end, past a block


@pytest.mark.parametrize("needles", [(b"",), (b"two\nlines",), ("text",)])
def test_needles_must_be_bytes_of_one_line(needles: tuple[bytes, ...]) -> None:
    with pytest.raises(ValueError):
        LiteralSearch(needles)


@pytest.mark.parametrize("limit", [5, -1])
def test_a_limit_beyond_the_buffer_is_refused(limit: int) -> None:
    with pytest.raises(ValueError, match="beyond"):
        LineSearch(GROUPS).scan(b"abc\n", limit)


def test_the_fastest_way_is_chosen_on_import_and_unknown_ways_are_refused(way: str) -> None:
    assert _ways()[0] == CHOSEN_ON_IMPORT
    assert _linescan.use() == way
    with pytest.raises(ValueError, match="cannot scan by"):
        _linescan.use("abacus")
    assert _linescan.use() == way
