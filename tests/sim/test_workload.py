"""Workloads: dirty curves, calc-dirty-rate data, phases, throttling, distributions."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

from lmes.errors import UserError
from lmes.sim.distributions import resolve
from lmes.sim.nova import MigrationPlan, simulate_one
from lmes.sim.precopy import QemuSettings
from lmes.sim.workload import (
    ConstantRate,
    Phase,
    WorkingSet,
    Workload,
    curve_from_calc_dirty_rate,
    workload_from_dict,
)

REPO = Path(__file__).resolve().parents[2]
CURVE_FILE = REPO / "examples" / "workloads" / "calc-dirty-rate.json"
GIB = 1024**3


def test_a_working_set_saturates_at_its_size():
    curve = WorkingSet(working_set_bytes=1e9, write_rate_bytes_s=1e8)

    assert curve.distinct_bytes(0.0) == 0.0
    assert curve.distinct_bytes(1.0) == pytest.approx(1e9 * (1 - math.exp(-0.1)))
    assert curve.distinct_bytes(1e4) == pytest.approx(1e9)
    # At first nearly every write lands on a clean page.
    assert curve.distinct_bytes(0.001) == pytest.approx(1e5, rel=1e-3)


def test_calc_dirty_rate_points_are_scaled_by_the_sampling_ratio():
    data = json.loads(CURVE_FILE.read_text())
    curve, zero, page, memory = curve_from_calc_dirty_rate(data)
    scale = data["n-total-pages"] / data["n-sampled-pages"]

    assert memory == 8 * GIB and page == 4096
    assert zero == pytest.approx(data["n-zero-pages"] / data["n-sampled-pages"])
    for period_ms, dirty in zip(data["periods"], data["n-dirty-pages"], strict=True):
        assert curve.distinct_bytes(period_ms / 1000) == pytest.approx(dirty * scale * page)
    # Between two points: linear.
    middle = curve.distinct_bytes(0.75)
    assert middle == pytest.approx((74 + 126) / 2 * scale * page)


def test_calc_dirty_rate_curve_is_extrapolated_both_ways():
    data = {
        "page-size": 4096,
        "n-total-pages": 1000,
        "n-sampled-pages": 100,
        "n-zero-pages": 10,
        "periods": [1000, 2000],
        "n-dirty-pages": [20, 30],
    }
    curve, zero, _, _ = curve_from_calc_dirty_rate(data)
    page = 4096

    # Back to 0 along the first segment: 200 pages at 1 s, 300 at 2 s -> 100 at 0.
    assert curve.distinct_bytes(0.0) == pytest.approx(100 * page)
    # Forward along the last one until all non-zero pages (1000 - 100) are dirty.
    assert curve.distinct_bytes(5.0) == pytest.approx(600 * page)
    assert curve.distinct_bytes(8.0) == pytest.approx(900 * page)
    assert curve.distinct_bytes(100.0) == pytest.approx(900 * page)
    assert zero == pytest.approx(0.1)


def gudkov_reference_ms(data: dict, bandwidth: float, downtime_ms: float) -> float | None:
    """The iteration loop of Gudkov's predictor (qemu-devel, 2023), written from its description:
    each pass sends what the curve says was dirtied during the previous one; a pass that fits in
    the downtime is the last. Headers are 8 bytes a page; zero pages only in the first pass."""
    curve, zero, page, memory = curve_from_calc_dirty_rate(data)
    pages = memory / page
    normal, zeros = pages * (1 - zero), pages * zero
    total_ms = 0.0
    while total_ms < 3600e3:
        pass_ms = (normal * (page + 8) + zeros * 8) * 1000 / bandwidth
        total_ms += pass_ms
        if pass_ms <= downtime_ms:
            return total_ms
        normal, zeros = curve.distinct_bytes(pass_ms / 1000) / page, 0.0
    return None


@pytest.mark.parametrize(
    ("gbps", "downtime_ms"), [(10, 500), (10, 125), (25, 250), (40, 1000), (5, 5000)]
)
def test_a_measured_curve_migrates_as_the_calc_dirty_rate_predictor_says(gbps, downtime_ms):
    data = json.loads(CURVE_FILE.read_text())
    bandwidth = gbps * 1024**3 / 8
    expected_ms = gudkov_reference_ms(data, bandwidth, downtime_ms)
    workload = workload_from_dict({"dirty_curve": data})
    plan = MigrationPlan("vm", workload, downtime_limit_ms=downtime_ms, qemu=QemuSettings())

    result = simulate_one(plan, bandwidth)

    assert expected_ms is not None
    assert result.converged
    assert result.copy_s * 1000 == pytest.approx(expected_ms, rel=0.01)


def test_phases_change_the_dirtying_over_time():
    quiet, busy = ConstantRate(1e6), ConstantRate(100e6)
    workload = Workload(8 * GIB, 0.0, (Phase(0.0, quiet), Phase(10.0, busy)))

    assert workload.dirty_bytes(0.0, 5.0) == pytest.approx(5e6)
    assert workload.dirty_bytes(20.0, 25.0) == pytest.approx(500e6)
    across = workload.dirty_bytes(5.0, 15.0)
    cap = 8 * GIB
    assert across == pytest.approx(cap * (1 - (1 - 5e6 / cap) * (1 - 500e6 / cap)))
    assert workload.next_phase_after(3.0) == 10.0


def test_a_throttled_guest_dirties_as_if_its_clock_ran_slower():
    workload = Workload(8 * GIB, 0.0, (Phase(0.0, WorkingSet(1e9, 2e8)),))

    assert workload.dirty_bytes(0.0, 10.0, run_fraction=0.3) == pytest.approx(
        workload.dirty_bytes(0.0, 3.0)
    )


def test_dirtying_never_exceeds_the_non_zero_memory():
    workload = Workload(1 * GIB, 0.25, (Phase(0.0, ConstantRate(10e9)),))

    assert workload.dirty_bytes(0.0, 100.0) == pytest.approx(0.75 * GIB)


def test_workloads_read_from_dicts_with_units():
    workload = workload_from_dict(
        {
            "memory": "16GiB",
            "zero_pages": 0.2,
            "phases": [
                {"start_s": 0, "dirty_rate": "50MB/s"},
                {"start_s": 60, "working_set": {"size": "2GiB", "write_rate": "1GB/s"}},
            ],
        }
    )

    assert workload.memory_bytes == 16 * GIB
    assert workload.phases[0].curve == ConstantRate(50e6)
    assert workload.phases[1].curve == WorkingSet(2 * GIB, 1e9)
    assert workload_from_dict(workload.as_dict()) == workload


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"memory": "8GiB"}, "exactly one of"),
        ({"memory": "8GiB", "dirty_rate": "1GB/s", "working_set": {}}, "exactly one of"),
        ({"dirty_rate": "1GB/s"}, "memory size"),
        ({"memory": "8GiB", "dirty_rate": "1GB/s", "colour": "red"}, "unknown workload field"),
        ({"memory": "8GiB", "working_set": {"size": "1GiB"}}, "size and write_rate"),
    ],
)
def test_bad_workloads_are_refused_in_one_line(values, message):
    with pytest.raises(ValueError, match=message):
        workload_from_dict(values)


def test_a_rate_without_a_time_unit_is_a_user_error():
    with pytest.raises(UserError, match="time unit"):
        workload_from_dict({"memory": "8GiB", "dirty_rate": "100MB"})


def test_distributions_are_drawn_from_the_seed():
    spec = {
        "memory_mb": {"dist": "choice", "values": [2048, 4096]},
        "dirty_rate": {"dist": "lognormal", "median": "100MB/s", "sigma": 0.5},
        "zero_pages": {"dist": "uniform", "low": 0.1, "high": 0.2},
        "nested": [{"dist": "normal", "mean": 2, "sd": 1}],
    }

    first = resolve(spec, np.random.default_rng(9))
    again = resolve(spec, np.random.default_rng(9))

    assert first == again
    assert first["memory_mb"] in (2048, 4096)
    assert 0.1 <= first["zero_pages"] <= 0.2
    assert first["dirty_rate"] > 0
    assert first["nested"][0] >= 0.0
