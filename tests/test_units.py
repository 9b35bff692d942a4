"""Sizes and rates as operators write them."""

from __future__ import annotations

import pytest

from lmes.errors import UserError
from lmes.units import format_rate, parse_rate, parse_size


@pytest.mark.parametrize(
    ("text", "bytes_per_s"),
    [
        ("10Gbit/s", 1.25e9),
        ("1.25GB/s", 1.25e9),
        ("1GiB/s", 1024**3),
        ("8MiB/s", 8 * 1024**2),
        ("20MB/s", 20e6),
        ("100Mbps", 12.5e6),
        ("100Mb/s", 12.5e6),
        ("500000", 500000),
        (" 8 MiB/s ", 8 * 1024**2),
        ("1e3B/s", 1000),
    ],
)
def test_rates_are_bytes_per_second(text, bytes_per_s):
    assert parse_rate(text) == pytest.approx(bytes_per_s)


@pytest.mark.parametrize(
    ("text", "size_bytes"),
    [
        ("64MiB", 64 * 1024**2),
        ("2GB", 2 * 10**9),
        ("4096", 4096),
        ("1.5KiB", 1536),
        ("1TiB", 2**40),
    ],
)
def test_sizes_are_bytes(text, size_bytes):
    assert parse_size(text) == size_bytes


@pytest.mark.parametrize(
    ("parse", "text", "message"),
    [
        (parse_rate, "8MiB", "needs a time unit"),
        (parse_rate, "fast", "is not a number with a unit"),
        (parse_rate, "-1MiB/s", "is not a number with a unit"),
        (parse_rate, "1e999B/s", "not a finite number"),
        (parse_size, "64M", "needs B (bytes) or bit"),
        (parse_size, "64MiB/s", "is a rate"),
        (parse_size, "", "is not a number with a unit"),
    ],
)
def test_malformed_quantities_are_refused_in_one_line(parse, text, message):
    with pytest.raises(UserError, match=message.replace("(", r"\(").replace(")", r"\)")):
        parse(text)


def test_rates_are_shown_in_mib_per_second():
    assert format_rate(20 * 1024**2) == "20 MiB/s"
