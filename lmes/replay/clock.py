"""Putting every host's log lines on one clock.

Hosts' clocks disagree: a syslog prefix written in local time hours away from oslo.log's UTC
time, or a compute node whose NTP drifted. Two kinds of evidence fix that:

* a line that carries both a wrapper (syslog) time and an oslo time gives that host's wrapper
  offset directly (`WrapperOffsets`), so lines with only the wrapper time can be placed;
* Nova's RPC calls order events across hosts (`Precedence`): the destination's
  pre_live_migration starts after the source asked for it and ends before the source reports
  how long it took; the post-migration at the destination follows "Migration operation has
  completed" on the source. Each pair bounds the offset between two hosts, and the smallest
  correction inside all bounds is taken (`estimate_offsets`).
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from typing import NamedTuple

# Corrections smaller than this are clock noise and RPC latency, not skew.
NEGLIGIBLE_SKEW_S = 0.5
_MONTHS = {
    m: i
    for i, m in enumerate(
        ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"), 1
    )
}


class Precedence(NamedTuple):
    """`before` (on `before_host`'s clock) happened no later than `after` (on `after_host`'s).

    A named tuple: immutable, and four are made for every migration rebuilt."""

    before_host: str
    before: datetime
    after_host: str
    after: datetime


def estimate_offsets(precedences: Iterable[Precedence], reference: str | None) -> dict[str, float]:
    """Seconds to add to each host's times to put them on `reference`'s clock.

    For each other host the precedences give a lower and an upper bound on its offset; the
    value inside the bounds closest to zero is taken (no correction when the clocks agree
    within what the evidence can tell). Hosts linked only through another host are corrected
    through it.
    """
    bounds: dict[tuple[str, str], list[float]] = {}
    for p in precedences:
        if p.before_host == p.after_host:
            continue
        # offset(after) - offset(before) >= before - after
        gap = (p.before - p.after).total_seconds()
        key = (p.before_host, p.after_host)
        low_high = bounds.setdefault(key, [-math.inf, math.inf])
        low_high[0] = max(low_high[0], gap)
        reverse = bounds.setdefault((p.after_host, p.before_host), [-math.inf, math.inf])
        reverse[1] = min(reverse[1], -gap)
    hosts = {h for pair in bounds for h in pair}
    if not hosts:
        return {}
    reference = reference if reference in hosts else sorted(hosts)[0]
    offsets = {reference: 0.0}
    frontier = [reference]
    edges = sorted(bounds.items())
    while frontier:
        base = frontier.pop()
        for (a, b), (low, high) in edges:
            if a != base or b in offsets:
                continue
            offsets[b] = offsets[a] + _closest_to_zero(low, high)
            frontier.append(b)
    return {h: (0.0 if abs(o) < NEGLIGIBLE_SKEW_S else o) for h, o in offsets.items()}


def _closest_to_zero(low: float, high: float) -> float:
    if low > high:  # contradictory evidence (clock jumped): split the difference
        return (low + high) / 2
    if low > 0:
        return low
    if high < 0:
        return high
    return 0.0


class WrapperOffsets:
    """Per host, how far the syslog prefix time is from the oslo time on the same line."""

    def __init__(self) -> None:
        self._offsets: dict[str, float] = {}
        self._years: dict[str, int] = {}

    def observe(self, host: str, wrapper_time_text: str | None, oslo: datetime | None) -> None:
        """Learn from a line with both times (the first such line per host is enough)."""
        if oslo is None or wrapper_time_text is None or host in self._offsets:
            return
        naive = parse_syslog_time(wrapper_time_text, oslo.year)
        if naive is not None:
            self._offsets[host] = (oslo - naive).total_seconds()
            self._years[host] = oslo.year

    def place(self, host: str, wrapper_time_text: str | None, year: int) -> datetime | None:
        """The UTC time of a line that only has its syslog prefix time."""
        naive = parse_syslog_time(wrapper_time_text, self._years.get(host, year))
        if naive is None:
            return None
        return naive + timedelta(seconds=self._offsets.get(host, 0.0))

    def offset_s(self, host: str) -> float | None:
        return self._offsets.get(host)

    def known(self) -> dict[str, tuple[float, int]]:
        """What was learnt, per host (offset, year), to hand to another process."""
        return {host: (offset, self._years[host]) for host, offset in self._offsets.items()}

    def learn(self, known: dict[str, tuple[float, int]]) -> None:
        for host, (offset, year) in known.items():
            self._offsets.setdefault(host, offset)
            self._years.setdefault(host, year)


def parse_syslog_time(text: str | None, year: int) -> datetime | None:
    """`Dec 16 12:05:28` in `year`, read as UTC (its zone is corrected by the offsets)."""
    if not text:
        return None
    parts = text.split()
    if len(parts) != 3 or parts[0] not in _MONTHS:
        return None
    try:
        hour, minute, second = (int(x) for x in parts[2].split(":"))
        return datetime(year, _MONTHS[parts[0]], int(parts[1]), hour, minute, second, tzinfo=UTC)
    except ValueError:
        return None
