"""Fitting the model to a migration that really happened (replayed or executed).

From a stream's `ProgressReported` events (memory total / processed / remaining over elapsed
time) and its copy window, find the bandwidth, the share of zero pages and the dirty rate with
which the simulator reproduces the migration's copy time, so that what-if runs start from the
guest as it behaved (`lmes simulate --workload FILE`).

* Bandwidth: the slope of bytes processed over time between progress reports (the median of
  the slopes); without two reports, the bytes sent over the copy time; else the migration's
  bandwidth cap.
* Zero pages: during the first pass libvirt's `remaining` falls by every page scanned while
  `processed` grows only by what went on the wire (a zero page is a header), so their ratio
  gives the share of zero pages.
* Dirty rate: the constant rate whose simulated copy time equals the observed one (bisection;
  the copy time grows with the rate). When even a guest that dirties nothing would take longer
  than observed, the guest must have had more zero pages than the reports showed, and that
  share is fitted instead.
* Working set: when the stream tells how many rounds there were and a constant rate gives
  another number, a saturating working set (size W, write rate w) is fitted instead: for each
  W on a grid, w is bisected to the copy time, and the W whose rounds come closest wins.

The copy window is the libvirt job as every producer records it: from the later of
`MigrationStarted` and `VifPlugged` to `running` + `Completed.total_s` (else `Completed`).
"""

from __future__ import annotations

import json
import math
import statistics
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np

from lmes.domain.migration import Migration
from lmes.sim.nova import MigrationPlan, Outcome, simulate_one
from lmes.sim.precopy import (
    DEFAULT_PAGE_HEADER_BYTES,
    QEMU_DEFAULT_DOWNTIME_LIMIT_MS,
    QemuSettings,
)
from lmes.sim.workload import PAGE_SIZE_BYTES, ConstantRate, Phase, WorkingSet, Workload

MIB_BYTES = 1024**2
WORKLOAD_KIND = "lmes-workload"
_BISECTION_STEPS = 40
_WORKING_SET_GRID = 16
_WORKING_SET_REFINEMENTS = 3
_MAX_ZERO_SHARE = 0.99


class CalibrationError(ValueError):
    """The stream does not hold what a fit needs (one clear line saying what is missing)."""


@dataclass(frozen=True)
class FittedWorkload:
    """A guest and link fitted to one migration, and how well the fit reproduces it."""

    memory_bytes: int
    zero_fraction: float
    bandwidth_bytes_s: float
    dirty_rate_bytes_s: float
    downtime_limit_ms: float
    working_set_bytes: float | None
    observed_copy_s: float
    simulated_copy_s: float
    observed_rounds: int | None
    simulated_rounds: int
    migration_id: str | None = None
    page_size_bytes: int = PAGE_SIZE_BYTES
    page_header_bytes: int = DEFAULT_PAGE_HEADER_BYTES
    notes: tuple[str, ...] = field(default_factory=tuple)

    @property
    def copy_error(self) -> float:
        """Relative error of the simulated copy time."""
        return abs(self.simulated_copy_s - self.observed_copy_s) / self.observed_copy_s

    def workload(self) -> Workload:
        """The fitted guest: a constant rate, or a working set written at that rate."""
        return _workload(
            self.memory_bytes, self.zero_fraction, self.dirty_rate_bytes_s, self.working_set_bytes
        )

    def as_workload_file(self) -> dict[str, Any]:
        """A workload file `lmes simulate --workload` reads (the fit itself kept under `fit`)."""
        return {
            "kind": WORKLOAD_KIND,
            **self.workload().as_dict(),
            "bandwidth": self.bandwidth_bytes_s,
            "fit": {
                key: value
                for key, value in asdict(self).items()
                if key not in ("memory_bytes", "zero_fraction", "page_size_bytes")
            }
            | {"copy_error": self.copy_error},
        }

    def save(self, path: Path | str) -> None:
        """Write the workload file; an existing file is replaced only once the new one is whole."""
        path = Path(path)
        partial = path.with_name(path.name + ".partial")
        partial.write_text(json.dumps(self.as_workload_file(), indent=2) + "\n", encoding="utf-8")
        partial.replace(path)


@dataclass(frozen=True)
class _Observed:
    memory_bytes: int
    copy_s: float
    rounds: int | None
    points: list[
        tuple[float, int | None, int | None, int | None]
    ]  # elapsed, processed, remaining, iteration
    bytes_sent: int | None
    cap_bytes_s: float | None
    downtime_limit_ms: float


def calibrate_migration(
    migration: Migration, events: Iterable[Any], *, copy_s: float | None = None
) -> FittedWorkload:
    """Fit bandwidth and dirtying to a stored migration so that simulating it gives it back.

    `events` are the migration's domain events in order; `copy_s` overrides the copy time read
    from them. Raises `CalibrationError` when the stream lacks what a fit needs.
    """
    observed = _observe(migration, list(events), copy_s)
    header_share = DEFAULT_PAGE_HEADER_BYTES / PAGE_SIZE_BYTES
    notes: list[str] = []
    bandwidth, how = _bandwidth(observed)
    notes.append(f"bandwidth from {how}")
    zero = _zero_share(observed, header_share)

    def copy_time(
        rate: float, zero_share: float, working_set: float | None = None
    ) -> tuple[float, int, bool]:
        workload = _workload(observed.memory_bytes, zero_share, rate, working_set)
        plan = MigrationPlan(
            "calibration",
            workload,
            downtime_limit_ms=observed.downtime_limit_ms,
            qemu=QemuSettings(page_header_bytes=DEFAULT_PAGE_HEADER_BYTES),
        )
        result = simulate_one(plan, bandwidth, keep_commands=False)
        return result.copy_s, result.rounds, result.outcome == Outcome.COMPLETED

    def rate_for(zero_share: float, working_set: float | None) -> float:
        def too_slow(rate: float) -> float:
            seconds, _, converged = copy_time(rate, zero_share, working_set)
            return seconds - target if converged else 1.0

        high = bandwidth
        while too_slow(high) < 0 and high < bandwidth * 1e3:
            high *= 2
        return _bisect(too_slow, 0.0, high)

    target = observed.copy_s
    working_set = None
    idle_s, _, _ = copy_time(0.0, zero)
    if idle_s >= target:
        zero = _bisect(lambda z: target - copy_time(0.0, z)[0], zero, _MAX_ZERO_SHARE)
        rate = 0.0
        notes.append(
            "even an idle guest would copy slower than observed: the zero-page share was fitted"
        )
    else:
        rate = rate_for(zero, None)
    simulated_s, rounds, _ = copy_time(rate, zero)
    samples = _sync_samples(observed)
    if observed.rounds is not None and observed.rounds != rounds and len(samples) >= 2:
        fitted = _fit_working_set(samples, observed.memory_bytes * (1 - zero))
        if fitted is not None:
            size_bytes, write_rate = fitted
            seconds, fitted_rounds, converged = copy_time(write_rate, zero, size_bytes)
            if converged and fitted_rounds == observed.rounds:
                working_set, rate, simulated_s, rounds = (
                    size_bytes,
                    write_rate,
                    seconds,
                    fitted_rounds,
                )
                notes.append("working set fitted to the dirty sets found at each sync")
    if observed.rounds is not None and observed.rounds != rounds and rate > 0:
        best = (abs(rounds - observed.rounds), abs(simulated_s - target) / target)
        sizes = np.geomspace(256 * PAGE_SIZE_BYTES, observed.memory_bytes, _WORKING_SET_GRID)
        for _ in range(_WORKING_SET_REFINEMENTS):
            for size in sizes:
                size_bytes = float(int(size))  # whole bytes, as a workload file holds them
                write_rate = rate_for(zero, size_bytes)
                seconds, fitted_rounds, converged = copy_time(write_rate, zero, size_bytes)
                score = (abs(fitted_rounds - observed.rounds), abs(seconds - target) / target)
                if converged and score < best:
                    best, working_set, rate = score, size_bytes, write_rate
                    simulated_s, rounds = seconds, fitted_rounds
            if working_set is None or best[0] == 0:
                break
            # Look closer around the best size so far: rounds change in steps with the size.
            step = (sizes[1] / sizes[0]) if len(sizes) > 1 else 2.0
            sizes = np.geomspace(working_set / step, working_set * step, _WORKING_SET_GRID)
        if working_set is not None:
            notes.append("a working set fits the observed rounds better than a constant rate")
    if observed.rounds is not None and observed.rounds != rounds:
        notes.append(f"observed {observed.rounds} rounds, the fit gives {rounds}")
    return FittedWorkload(
        memory_bytes=observed.memory_bytes,
        zero_fraction=zero,
        bandwidth_bytes_s=bandwidth,
        dirty_rate_bytes_s=rate,
        downtime_limit_ms=observed.downtime_limit_ms,
        working_set_bytes=working_set,
        observed_copy_s=target,
        simulated_copy_s=simulated_s,
        observed_rounds=observed.rounds,
        simulated_rounds=rounds,
        migration_id=str(migration.id),
        notes=tuple(notes),
    )


def _sync_samples(observed: _Observed) -> list[tuple[float, float]]:
    """(seconds since the previous sync, bytes found dirty) when reports come one per sync.

    A stream that reports exactly once per iteration (the executor at each MIGRATION_ITERATION,
    the simulator) gives the dirty curve directly; Nova's periodic lines do not.
    """
    points = [p for p in observed.points if p[2] is not None and p[3] is not None]
    iterations = [p[3] for p in points]
    if len(points) < 2 or iterations != list(range(iterations[0], iterations[0] + len(points))):
        return []
    samples = []
    for (t0, _, _, _), (t1, _, remaining, _) in zip(points, points[1:], strict=False):
        if t1 > t0:
            samples.append((t1 - t0, float(remaining)))
    return samples


def _fit_working_set(
    samples: list[tuple[float, float]], most_bytes: float
) -> tuple[float, float] | None:
    """The (W, w) of W(1 − e^(−w t/W)) closest to the samples, in relative least squares."""
    largest = max(found for _, found in samples)
    if largest <= 0:
        return None
    best = None
    for size in np.geomspace(largest * 1.0001, max(most_bytes, largest * 1.01), 400):
        rates = [
            -size * math.log1p(-found / size) / seconds for seconds, found in samples if found > 0
        ]
        write_rate = float(np.median(rates))
        error = sum(
            ((size * -math.expm1(-write_rate * seconds / size)) - found) ** 2 / found**2
            for seconds, found in samples
            if found > 0
        )
        if best is None or error < best[0]:
            best = (error, float(int(size)), write_rate)
    return None if best is None else (best[1], best[2])


def _workload(
    memory_bytes: int, zero_share: float, rate: float, working_set: float | None
) -> Workload:
    curve = ConstantRate(rate) if working_set is None else WorkingSet(working_set, rate)
    return Workload(memory_bytes, zero_share, (Phase(0.0, curve),))


def _bisect(function: Any, low: float, high: float) -> float:
    """The point in [low, high] where an increasing `function` crosses zero (or an end)."""
    if function(high) <= 0:
        return high
    if function(low) >= 0:
        return low
    for _ in range(_BISECTION_STEPS):
        middle = (low + high) / 2
        if function(middle) < 0:
            low = middle
        else:
            high = middle
    return (low + high) / 2


def _observe(migration: Migration, events: list[Any], copy_s: float | None) -> _Observed:
    started = vif = completed = None
    total_s = bytes_sent = iterations = None
    cap = None
    limits: list[float] = []
    points = []
    for event in events:
        if isinstance(event, Migration.MigrationStarted):
            started = started or event.timestamp
            cap = event.bandwidth_mib_s * MIB_BYTES if event.bandwidth_mib_s else None
        elif isinstance(event, Migration.VifPlugged):
            vif = vif or event.timestamp
        elif isinstance(event, Migration.DowntimeIncreased):
            limits.append(float(event.downtime_ms))
        elif isinstance(event, Migration.ProgressReported):
            points.append(
                (
                    float(event.elapsed_s),
                    event.memory_processed_bytes,
                    event.memory_remaining_bytes,
                    event.memory_total_bytes,
                    event.iteration,
                )
            )
        elif isinstance(event, Migration.Completed):
            completed = event.timestamp
            total_s, bytes_sent, iterations = event.total_s, event.bytes_sent, event.iterations
    totals = [p[3] for p in points if p[3]]
    memory = max(totals) if totals else migration.context.get("memory_bytes")
    if not memory:
        raise CalibrationError(
            f"migration {migration.id} reports no memory total: nothing to fit it to"
        )
    if copy_s is None:
        copy_s = _copy_seconds(started, vif, completed, total_s)
    if copy_s is None or copy_s <= 0:
        raise CalibrationError(
            f"migration {migration.id} has no completed copy to fit (it must have started "
            "and completed); give the copy time explicitly"
        )
    reported = [p[4] for p in points if p[4]]
    last_iteration = iterations or (max(reported) if reported else None)
    return _Observed(
        memory_bytes=int(memory),
        copy_s=float(copy_s),
        rounds=last_iteration - 1 if last_iteration else None,
        points=[(p[0], p[1], p[2], p[4]) for p in sorted(points)],
        bytes_sent=bytes_sent,
        cap_bytes_s=cap,
        downtime_limit_ms=limits[-1] if limits else _settings_limit(migration),
    )


def _copy_seconds(
    started: datetime | None,
    vif: datetime | None,
    completed: datetime | None,
    total_s: float | None,
) -> float | None:
    if started is None or completed is None:
        return None
    copy_from = vif if vif is not None and vif > started else started
    job_end = started + timedelta(seconds=total_s) if total_s is not None else completed
    return (job_end - copy_from).total_seconds()


def _settings_limit(migration: Migration) -> float:
    settings = migration.settings or {}
    return float(settings.get("live_migration_downtime") or QEMU_DEFAULT_DOWNTIME_LIMIT_MS)


def _bandwidth(observed: _Observed) -> tuple[float, str]:
    slopes = []
    points = [p for p in observed.points if p[1] is not None]
    for (t0, processed0, _, _), (t1, processed1, _, _) in zip(points, points[1:], strict=False):
        if t1 > t0 and processed1 > processed0:
            slopes.append((processed1 - processed0) / (t1 - t0))
    if slopes:
        return statistics.median(slopes), f"{len(slopes)} progress intervals"
    if observed.bytes_sent:
        return observed.bytes_sent / observed.copy_s, "bytes sent over the copy time"
    if observed.cap_bytes_s:
        return observed.cap_bytes_s, "the migration's bandwidth cap"
    return observed.memory_bytes / observed.copy_s, "memory over the copy time (one pass)"


def _zero_share(observed: _Observed, header_share: float) -> float:
    """Zero pages from first-pass reports: what went on the wire per byte scanned."""
    best = None
    for _, processed, remaining, iteration in observed.points:
        if processed is None or remaining is None or (iteration or 1) > 1:
            continue
        scanned = observed.memory_bytes - remaining
        if scanned > 0 and (best is None or scanned > best[0]):
            best = (scanned, processed)
    if best is None:
        return 0.0
    scanned, processed = best
    wire_per_byte = processed / scanned  # (1 - z)(1 + h) + z h = 1 + h - z
    return min(max(1.0 + header_share - wire_per_byte, 0.0), _MAX_ZERO_SHARE)
