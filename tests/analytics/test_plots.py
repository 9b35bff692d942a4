"""Plots: each returns its Figure, draws on a given axes, labels axes with units, saves PNG/SVG."""

from __future__ import annotations

import pandas as pd
import pytest
from matplotlib.figure import Figure

from lmes.analytics import load, plots
from lmes.store import open_store
from tests.analytics.builders import NEWTON_RAMP, completed, failed, post_copy


@pytest.fixture(scope="module")
def recorded():
    store = open_store("memory:")
    store.add(
        completed("vm-a"), completed("vm-d", downtime_ms=90, copy_s=200), failed(), post_copy()
    )
    return load.migrations(store), load.events(store)


def _ids(frame: pd.DataFrame) -> dict[str, str]:
    return dict(zip(frame["instance"], frame["id"], strict=True))


def _labels(fig: Figure) -> list[str]:
    return [label for ax in fig.axes for label in (ax.get_xlabel(), ax.get_ylabel()) if label]


def test_phase_timeline_has_a_lane_per_host_and_a_legend_of_phases(recorded):
    frame, events = recorded
    fig = plots.phase_timeline(events, _ids(frame)["vm-c"])
    ax = fig.axes[0]
    assert ax.get_xlabel() == "time since the request (s)"
    lanes = [t.get_text() for t in ax.get_yticklabels()]
    assert lanes == ["destination\ncompute-5", "source\ncompute-4"]
    legend = [t.get_text() for t in ax.get_legend().get_texts()]
    assert {"memory copy", "post-copy", "preparation"} <= set(legend)


def test_memory_remaining_overlays_the_downtime_limit_on_a_twin_axis(recorded):
    frame, events = recorded
    fig = plots.memory_remaining(events, _ids(frame)["vm-a"])
    memory_ax, limit_ax = fig.axes
    assert memory_ax.get_ylabel() == "memory remaining (GiB)"
    assert memory_ax.get_xlabel() == "time since the memory copy started (s)"
    assert limit_ax.get_ylabel() == "max downtime (ms)"
    legend = [t.get_text() for t in memory_ax.get_legend().get_texts()]
    assert legend == [
        "memory remaining",
        "planned ramp",
        "downtime limit applied",
        "memory copy ended",
    ]


def test_distributions_mark_percentiles_with_units(recorded):
    frame, _ = recorded
    fig = plots.downtime_distribution(frame)
    assert fig.axes[0].get_xlabel() == "guest downtime (ms)"
    legend = [t.get_text() for t in fig.axes[0].get_legend().get_texts()]
    assert [text.split(" =")[0] for text in legend[1:]] == ["p50", "p95", "p99"]
    fig = plots.total_time_distribution(frame, by="origin")
    assert fig.axes[0].get_xlabel() == "total time (s)"
    assert fig.axes[0].get_ylabel() == "migrations (count)"


def test_sweep_plots_label_settings_and_values_with_units():
    sweep = pd.DataFrame(
        {
            "max_concurrent_live_migrations": [1, 1, 2, 2, 4, 4],
            "bandwidth_mib_s": [100, 1000] * 3,
            "makespan_s": [600.0, 200.0, 350.0, 120.0, 300.0, 110.0],
        }
    )
    fig = plots.sweep_heatmap(
        sweep, "max_concurrent_live_migrations", "bandwidth_mib_s", "makespan_s"
    )
    ax = fig.axes[0]
    assert ax.get_ylabel() == "bandwidth (MiB/s)"
    assert "makespan (s)" in fig.axes[1].get_ylabel()
    assert [t.get_text() for t in ax.texts][:3] == ["600", "350", "300"]
    fig = plots.sweep_lines(
        sweep, "max_concurrent_live_migrations", "makespan_s", by="bandwidth_mib_s"
    )
    assert fig.axes[0].get_ylabel() == "median makespan (s)"
    assert len(fig.axes[0].get_legend().get_texts()) == 2


def test_ramps_side_by_side():
    fig = plots.downtime_ramps({"Newton": NEWTON_RAMP, "flat": [(0, 500)]})
    ax = fig.axes[0]
    assert (ax.get_xlabel(), ax.get_ylabel()) == (
        "time since the memory copy started (s)",
        "max downtime (ms)",
    )


def test_migrations_gantt_has_a_row_per_migration_and_marks_failures(recorded):
    frame, _ = recorded
    fig = plots.migrations_gantt(frame)
    ax = fig.axes[0]
    assert [t.get_text() for t in ax.get_yticklabels()] == frame["instance"].tolist()
    assert ax.get_xlabel() == "time since the first request (s)"
    legend = [t.get_text() for t in ax.get_legend().get_texts()]
    assert legend == ["waiting", "preparation", "memory copy", "post-copy", "did not complete"]
    failures = [
        line for line in ax.get_lines() if line.get_marker() == "x" and len(line.get_xdata())
    ]
    assert len(failures) == 1  # vm-b


def test_phase_bars_label_each_phase_in_seconds_and_set_parts_apart():
    fig = plots.phase_bars(
        {"pre_live_migration": 9.3, "memory_copy": 3.1, "checks": 0.1},
        parts_s={"pre_live_migration on node-3": 4.2},
    )
    ax = fig.axes[0]
    assert ax.get_xlabel() == "duration (s)"
    names = [t.get_text() for t in ax.get_yticklabels()]
    assert names[0] == "pre_live_migration on node-3" and names[-1] == "pre_live_migration"
    assert [t.get_text() for t in ax.texts] == ["4.20 s", "0.10 s", "3.10 s", "9.30 s"]
    legend = [t.get_text() for t in ax.get_legend().get_texts()]
    assert legend == ["phase", "part of a phase, on one host"]


def test_prediction_errors_show_every_error_against_the_tolerance():
    errors = pd.DataFrame(
        {"prediction": ["fitted", "naive", "unknown"], "error": [0.02, -0.45, float("nan")]}
    )
    fig = plots.prediction_errors(errors, tolerance=0.1)
    ax = fig.axes[0]
    assert ax.get_xlabel() == "error: predicted / observed − 1 (%)"
    assert [t.get_text() for t in ax.texts] == ["+2.0 %", "-45.0 %", "n/a"]
    assert "±10% tolerance" in [t.get_text() for t in ax.get_legend().get_texts()]
    assert ax.get_xlim()[0] < -45


def test_every_plot_draws_on_the_axes_it_is_given(recorded):
    frame, events = recorded
    grid = Figure(figsize=(12, 8))
    axes = grid.subplots(2, 2)
    vm_a = _ids(frame)["vm-a"]
    assert plots.phase_timeline(events, vm_a, ax=axes[0, 0]) is grid
    assert plots.memory_remaining(events, vm_a, ax=axes[0, 1]) is grid
    assert plots.downtime_distribution(frame, ax=axes[1, 0]) is grid
    assert plots.downtime_ramps({"Newton": NEWTON_RAMP}, ax=axes[1, 1]) is grid
    assert all(ax.has_data() for ax in axes.flat)


def test_save_writes_png_and_svg_and_refuses_other_formats(recorded, tmp_path):
    frame, _ = recorded
    fig = plots.downtime_distribution(frame)
    png = plots.save(fig, tmp_path / "downtime.png")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    svg = plots.save(fig, tmp_path / "downtime.svg")
    assert "<svg" in svg.read_text()
    with pytest.raises(ValueError, match="use a .png or .svg"):
        plots.save(fig, tmp_path / "downtime.jpg")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["downtime.png", "downtime.svg"]


@pytest.mark.parametrize(
    ("column", "label"),
    [
        ("total_p95_s", "total p95 (s)"),
        ("downtime_ms", "downtime (ms)"),
        ("transfer_rate_bytes_s", "transfer rate (bytes/s)"),
        ("success_rate", "success rate (fraction)"),
        ("data_gb", "data (GiB)"),
        ("instance", "instance"),
        ("live_migration_downtime", "live_migration_downtime (ms)"),
        ("max_concurrent_live_migrations", "max_concurrent_live_migrations (migrations per host)"),
    ],
)
def test_axis_labels_carry_the_unit_of_the_column_name(column, label):
    assert plots.axis_label(column) == label
