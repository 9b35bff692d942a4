"""How a guest dirties its memory: the input that decides whether pre-copy converges.

A workload is a VM's memory size, the share of its pages that are zero (sent as a header only
in the first pass) and a *dirty curve*: how many distinct bytes it dirties in t seconds starting
from a clean bitmap. Pre-copy resends exactly that set after each bitmap sync, so the curve, not
a rate, is what matters: a page written twice in a round is sent once, and the distinct set
saturates (models.md A1). Three curves are offered:

* `ConstantRate`: D·t, the textbook geometric model (and VC-6);
* `WorkingSet`: W·(1 − e^(−w·t/W)), a hot set of W bytes written uniformly at w bytes/s;
* `MeasuredCurve`: points sampled by QEMU's `calc-dirty-rate` (periods in ms, dirty pages among
  the sampled ones), interpolated linearly and extrapolated as the sampled data suggest: back to
  t = 0 along the first segment, forward along the last one until all non-zero memory is dirty.

Workloads can change over time (`Phase`s, on the scenario clock), and auto-converge slows the
guest: a guest running a fraction f of wall time dirties what it would in f·t seconds.
"""

from __future__ import annotations

import bisect
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from lmes.errors import UserError
from lmes.units import parse_rate, parse_size

PAGE_SIZE_BYTES = 4096
MIB_BYTES = 1024**2


class DirtyCurve(Protocol):
    """Distinct bytes a guest dirties in `t_s` seconds of its own running time, from clean."""

    def distinct_bytes(self, t_s: float) -> float: ...

    def as_dict(self) -> dict[str, Any]: ...


@dataclass(frozen=True)
class ConstantRate:
    """Every write lands on a page not yet dirty since the last sync: D·t."""

    rate_bytes_s: float

    def distinct_bytes(self, t_s: float) -> float:
        return self.rate_bytes_s * t_s

    def as_dict(self) -> dict[str, Any]:
        return {"dirty_rate": self.rate_bytes_s}


@dataclass(frozen=True)
class WorkingSet:
    """A hot set of W bytes written uniformly at w bytes/s: W·(1 − e^(−w·t/W))."""

    working_set_bytes: float
    write_rate_bytes_s: float

    def distinct_bytes(self, t_s: float) -> float:
        if self.working_set_bytes <= 0:
            return 0.0
        return self.working_set_bytes * -math.expm1(
            -self.write_rate_bytes_s * t_s / self.working_set_bytes
        )

    def as_dict(self) -> dict[str, Any]:
        return {
            "working_set": {
                "size": self.working_set_bytes,
                "write_rate": self.write_rate_bytes_s,
            }
        }


@dataclass(frozen=True)
class MeasuredCurve:
    """A piecewise-linear curve through measured (seconds, distinct bytes) points.

    The points include the extrapolations: one at t = 0 and, when the last segment still rises,
    one where it reaches `saturation_bytes`; beyond the last point the curve stays flat.
    """

    times_s: tuple[float, ...]
    bytes_at: tuple[float, ...]
    source: dict[str, Any] = field(default_factory=dict, compare=False)

    def distinct_bytes(self, t_s: float) -> float:
        times = self.times_s
        if t_s >= times[-1]:
            return self.bytes_at[-1]
        i = bisect.bisect_right(times, t_s)
        t0, t1 = times[i - 1], times[i]
        b0, b1 = self.bytes_at[i - 1], self.bytes_at[i]
        return b0 + (b1 - b0) * (t_s - t0) / (t1 - t0)

    def as_dict(self) -> dict[str, Any]:
        if self.source:
            return {"dirty_curve": self.source}
        return {"dirty_points": [list(p) for p in zip(self.times_s, self.bytes_at, strict=True)]}


@dataclass(frozen=True)
class Phase:
    """From `start_s` on the scenario clock, the guest dirties memory along `curve`."""

    start_s: float
    curve: DirtyCurve


@dataclass(frozen=True)
class Workload:
    """One VM as the migration sees it."""

    memory_bytes: int
    zero_fraction: float
    phases: tuple[Phase, ...]
    page_size_bytes: int = PAGE_SIZE_BYTES

    def __post_init__(self) -> None:
        if self.memory_bytes <= 0:
            raise ValueError("a VM needs a positive memory size")
        if not 0.0 <= self.zero_fraction < 1.0:
            raise ValueError(f"zero-page share must be in [0, 1), got {self.zero_fraction}")
        if not self.phases or self.phases[0].start_s > 0:
            raise ValueError("a workload needs a phase starting at 0 s")
        if self.page_size_bytes <= 0:
            raise ValueError("page size must be positive")

    @property
    def pages(self) -> int:
        return max(1, self.memory_bytes // self.page_size_bytes)

    @property
    def zero_pages(self) -> float:
        return self.pages * self.zero_fraction

    @property
    def dirtiable_bytes(self) -> float:
        """The bytes that can be dirty at once: all non-zero memory (zero pages stay zero)."""
        return self.memory_bytes * (1.0 - self.zero_fraction)

    def dirty_bytes(self, start_s: float, end_s: float, run_fraction: float = 1.0) -> float:
        """Distinct bytes dirtied between two syncs at `start_s` and `end_s` (scenario clock).

        `run_fraction` is the share of wall time the vCPUs run (1 − throttle). Across a phase
        change the sets dirtied in each phase are combined as independent uniform sets.
        """
        cap = self.dirtiable_bytes
        if end_s <= start_s or run_fraction <= 0.0 or cap <= 0.0:
            return 0.0
        phases = self.phases
        if len(phases) == 1 or start_s >= phases[-1].start_s:
            curve = phases[-1].curve if len(phases) > 1 else phases[0].curve
            return min(cap, curve.distinct_bytes((end_s - start_s) * run_fraction))
        clean_share = 1.0
        for index, phase in enumerate(phases):
            phase_end = phases[index + 1].start_s if index + 1 < len(phases) else math.inf
            overlap = min(end_s, phase_end) - max(start_s, phase.start_s)
            if overlap <= 0:
                continue
            dirtied = min(cap, phase.curve.distinct_bytes(overlap * run_fraction))
            clean_share *= 1.0 - dirtied / cap
        return cap * (1.0 - clean_share)

    def next_phase_after(self, t_s: float) -> float | None:
        """When the dirtying behaviour next changes after `t_s`, if it does."""
        for phase in self.phases:
            if phase.start_s > t_s:
                return phase.start_s
        return None

    def as_dict(self) -> dict[str, Any]:
        """The workload as a JSON-ready dict that `workload_from_dict` reads back."""
        values: dict[str, Any] = {
            "memory": self.memory_bytes,
            "zero_pages": self.zero_fraction,
            "page_size": self.page_size_bytes,
        }
        if len(self.phases) == 1:
            values.update(self.phases[0].curve.as_dict())
        else:
            values["phases"] = [
                {"start_s": phase.start_s, **phase.curve.as_dict()} for phase in self.phases
            ]
        return values


# ------------------------------------------------------------------ calc-dirty-rate curves


def curve_from_calc_dirty_rate(data: dict[str, Any]) -> tuple[MeasuredCurve, float, int, int]:
    """A measured curve from QEMU's `calc-dirty-rate` result, extended with sampled points.

    Returns (curve, zero-page share, page size, memory bytes). Counts of sampled pages are scaled
    by the sampling ratio; `n-zero-pages` is counted among the sampled pages as well.
    """
    try:
        page_size = int(data["page-size"])
        total_pages = int(data["n-total-pages"])
        sampled_pages = int(data["n-sampled-pages"])
        zero_sampled = float(data.get("n-zero-pages", 0))
        periods_ms = [float(p) for p in data["periods"]]
        dirty_sampled = [float(n) for n in data["n-dirty-pages"]]
    except KeyError as exc:
        raise ValueError(f"dirty curve lacks {exc.args[0]!r}") from None
    except (TypeError, ValueError):
        raise ValueError("dirty curve fields must be numbers (and arrays of numbers)") from None
    if page_size <= 0 or total_pages <= 0 or sampled_pages <= 0:
        raise ValueError("page-size, n-total-pages and n-sampled-pages must be positive")
    if not periods_ms or len(periods_ms) != len(dirty_sampled):
        raise ValueError("periods and n-dirty-pages must be non-empty arrays of the same length")
    if any(b <= a for a, b in zip(periods_ms, periods_ms[1:], strict=False)) or periods_ms[0] <= 0:
        raise ValueError("periods must be positive and increasing")
    scale = total_pages / sampled_pages
    zero_pages = min(zero_sampled * scale, float(total_pages))
    saturation_pages = total_pages - zero_pages
    times = [ms / 1000.0 for ms in periods_ms]
    pages = [min(n * scale, saturation_pages) for n in dirty_sampled]
    if len(times) == 1:
        times, pages = [0.0, *times], [0.0, *pages]
    else:
        slope = (pages[1] - pages[0]) / (times[1] - times[0])
        times, pages = [0.0, *times], [max(pages[0] - slope * times[0], 0.0), *pages]
    slope = (pages[-1] - pages[-2]) / (times[-1] - times[-2])
    if slope > 0 and pages[-1] < saturation_pages:
        times.append(times[-1] + (saturation_pages - pages[-1]) / slope)
        pages.append(saturation_pages)
    curve = MeasuredCurve(
        times_s=tuple(times),
        bytes_at=tuple(p * page_size for p in pages),
        source=dict(data),
    )
    return curve, zero_pages / total_pages, page_size, total_pages * page_size


def read_json_file(path: Path | str, what: str) -> Any:
    """The JSON in a file, or a one-line error naming the file."""
    path = Path(path)
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise UserError(f"cannot read {what} {path}: {exc.strerror or exc}") from None
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise UserError(f"{what} {path} is not valid JSON: {exc}") from None


# ------------------------------------------------------------------ workloads from dicts


def workload_from_dict(values: dict[str, Any], base_dir: Path | None = None) -> Workload:
    """A workload from its dict form (scenario files, sweeps, saved fits).

    Keys: `memory` (size; or `memory_mb`), `zero_pages` (share), `page_size`, and one dirtying
    description (`dirty_rate`, `working_set: {size, write_rate}`, `dirty_curve`: a
    calc-dirty-rate dict or a file name), or `phases`: a list of those with `start_s`.
    Sizes and rates take units (`8GiB`, `100MB/s`). Raises ValueError (or UserError) in one line.
    """
    if not isinstance(values, dict):
        raise ValueError("a workload must be a mapping")
    known = {
        "memory",
        "memory_mb",
        "zero_pages",
        "page_size",
        "phases",
        "bandwidth",
        *_CURVE_KEYS,
    }
    unknown = sorted(set(values) - known)
    if unknown:
        raise ValueError(f"unknown workload field(s): {', '.join(unknown)}")
    curve_memory: int | None = None
    curve_zero: float | None = None
    page_size = int(values.get("page_size", PAGE_SIZE_BYTES))
    if "phases" in values:
        if not isinstance(values["phases"], list) or not values["phases"]:
            raise ValueError("phases must be a non-empty list")
        phases = []
        for item in values["phases"]:
            curve, memory, zero, size = _curve_from(item, base_dir)
            phases.append(Phase(float(item.get("start_s", 0.0)), curve))
            curve_memory = curve_memory or memory
            curve_zero = zero if curve_zero is None else curve_zero
            page_size = size or page_size
        phases.sort(key=lambda phase: phase.start_s)
    else:
        curve, curve_memory, curve_zero, size = _curve_from(values, base_dir)
        page_size = size or page_size
        phases = [Phase(0.0, curve)]
    if "memory" in values:
        memory_bytes = size_value(values["memory"])
    elif "memory_mb" in values:
        memory_bytes = int(float(values["memory_mb"]) * MIB_BYTES)
    elif curve_memory:
        memory_bytes = curve_memory
    else:
        raise ValueError("a workload needs its memory size (memory or memory_mb)")
    zero = values.get("zero_pages", curve_zero if curve_zero is not None else 0.0)
    return Workload(
        memory_bytes=memory_bytes,
        zero_fraction=float(zero),
        phases=tuple(phases),
        page_size_bytes=page_size,
    )


_CURVE_KEYS = ("dirty_rate", "working_set", "dirty_curve", "dirty_points")


def _curve_from(
    values: dict[str, Any], base_dir: Path | None
) -> tuple[DirtyCurve, int | None, float | None, int | None]:
    given = [key for key in _CURVE_KEYS if key in values]
    if len(given) != 1:
        raise ValueError(
            "give exactly one of dirty_rate, working_set, dirty_curve (or phases of them)"
        )
    key = given[0]
    if key == "dirty_rate":
        return ConstantRate(rate_value(values[key])), None, None, None
    if key == "working_set":
        spec = values[key]
        if not isinstance(spec, dict) or set(spec) != {"size", "write_rate"}:
            raise ValueError("working_set needs exactly size and write_rate")
        return (
            WorkingSet(size_value(spec["size"]), rate_value(spec["write_rate"])),
            None,
            None,
            None,
        )
    if key == "dirty_points":
        points = sorted((float(t), float(b)) for t, b in values[key])
        if not points or points[0][0] != 0.0:
            points.insert(0, (0.0, 0.0))
        times, amounts = zip(*points, strict=True)
        return MeasuredCurve(tuple(times), tuple(amounts)), None, None, None
    data = values[key]
    if isinstance(data, str):
        path = Path(data)
        if base_dir is not None and not path.is_absolute():
            path = base_dir / path
        data = read_json_file(path, "dirty curve")
    if not isinstance(data, dict):
        raise ValueError("dirty_curve must be a calc-dirty-rate JSON object or a file name")
    curve, zero, page_size, memory = curve_from_calc_dirty_rate(data)
    return curve, memory, zero, page_size


def size_value(value: Any) -> int:
    """Bytes from a file's value: a plain number of bytes, or a size with a unit (`8GiB`)."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        return int(value)
    return parse_size(str(value))


def rate_value(value: Any) -> float:
    """Bytes/s from a file's value: a plain number, or a rate with a unit (`10Gbit/s`)."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    return parse_rate(str(value))
