"""Sizes and rates written the way operators write them: `64MiB`, `2GB`, `10Gbit/s`, `8MiB/s`.

Decimal prefixes (k, M, G, T) are powers of 1000 and binary ones (Ki, Mi, Gi, Ti) powers of
1024, as in IEC 80000-13. An upper-case `B` means bytes; `bit` or a lower-case `b` means bits,
so `Mb/s` and `Mbps` are megabits. A plain number is bytes (or bytes per second).
"""

from __future__ import annotations

import math
import re

from lmes.errors import UserError

_PREFIX_FACTORS = {
    "": 1,
    "k": 1000,
    "m": 1000**2,
    "g": 1000**3,
    "t": 1000**4,
    "ki": 1024,
    "mi": 1024**2,
    "gi": 1024**3,
    "ti": 1024**4,
}

_QUANTITY = re.compile(
    r"""^\s*(?P<number>(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?)\s*
    (?P<prefix>[kKmMgGtT]i?)?(?P<unit>bits?|B|b)?
    (?P<per_second>/s|ps)?\s*$""",
    re.VERBOSE,
)

_BYTES_PER_MIB = 1024**2


def _parse(text: str, what: str, example: str) -> tuple[float, bool, bool]:
    """Return (bytes, had a unit, was a per-second quantity), or raise a one-line UserError."""
    match = _QUANTITY.match(text)
    if not match:
        raise UserError(f"{what} {text!r} is not a number with a unit, e.g. {example}")
    value = float(match.group("number"))
    if not math.isfinite(value):
        raise UserError(f"{what} {text!r} is not a finite number")
    prefix, unit = match.group("prefix") or "", match.group("unit") or ""
    if prefix and not unit:
        raise UserError(f"{what} {text!r} needs B (bytes) or bit after {prefix!r}, e.g. {example}")
    in_bits = unit.startswith("bit") or unit == "b"
    factor = _PREFIX_FACTORS[prefix.lower()] / (8 if in_bits else 1)
    return value * factor, bool(unit), bool(match.group("per_second"))


def parse_size(text: str) -> int:
    """Bytes in a size such as `64MiB`, `2GB`, `1.5GiB` or `4096`."""
    size_bytes, _, per_second = _parse(text, "size", "64MiB")
    if per_second:
        raise UserError(f"size {text!r} is a rate; give a size such as 64MiB")
    return round(size_bytes)


def parse_rate(text: str) -> float:
    """Bytes per second in a rate such as `10Gbit/s`, `1.25GB/s`, `8MiB/s` or `500000`."""
    rate_bytes_per_s, had_unit, per_second = _parse(text, "rate", "8MiB/s")
    if had_unit and not per_second:
        raise UserError(f"rate {text!r} needs a time unit, e.g. {text.strip()}/s")
    return rate_bytes_per_s


def format_rate(rate_bytes_per_s: float) -> str:
    """A rate in MiB/s, the unit guests and migrations are tuned in."""
    return f"{rate_bytes_per_s / _BYTES_PER_MIB:g} MiB/s"
