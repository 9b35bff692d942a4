"""Plots of migrations with matplotlib: every axis says its unit, every plot has a legend.

Each function draws on `ax=` when given (to compose panels) or on a new figure, and returns the
Figure, so a notebook shows it and `save` writes it. Figures are built without pyplot's global
state, so rendering a report of many migrations leaks nothing.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.patches import Patch
from matplotlib.ticker import MaxNLocator

from lmes.analytics.files import replacing
from lmes.analytics.load import (
    DEFAULT_PERCENTILES,
    Marker,
    copy_seconds,
    downtime_applied,
    only,
    phase_intervals,
    planned_ramp,
    progress,
)

GIB_BYTES = 1024**3
MIB_BYTES = 1024**2
SAVE_FORMATS = ("png", "svg")
# A distribution whose largest value exceeds its p95 this many times is drawn on a log scale.
HEAVY_TAIL_RATIO = 20
# A swept setting with at most this many values gets a tick at each value, and no others.
MAX_LABELLED_TICKS = 12

PHASE_COLOURS = {
    "checks": "#9e9e9e",
    "queued": "#cfcfcf",
    "preparation": "#8fb8de",
    "memory copy": "#1f77b4",
    "paused": "#d62728",
    "post-copy": "#ff7f0e",
    "post-migration": "#2ca02c",
    "rollback": "#8c564b",
}
LANES = ("destination", "source")  # bottom to top

# Units by the suffix of a column name (the project's naming convention), longest first.
UNIT_SUFFIXES = (
    ("_bytes_s", "bytes/s"),
    ("_mib_s", "MiB/s"),
    ("_gbit_s", "Gbit/s"),
    ("_bytes", "bytes"),
    ("_gb", "GiB"),
    ("_ms", "ms"),
    ("_s", "s"),
    ("_rate", "fraction"),
)


# Nova's option names carry no unit suffix; their units, as nova.conf documents them.
OPTION_UNITS = {
    "live_migration_downtime": "ms",
    "live_migration_downtime_steps": "steps",
    "live_migration_downtime_delay": "s/GiB",
    "live_migration_completion_timeout": "s/GiB",
    "live_migration_progress_timeout": "s",
    "live_migration_bandwidth": "MiB/s",
    "max_concurrent_live_migrations": "migrations per host",
}


def axis_label(column: str) -> str:
    """A column name as an axis label with its unit: `total_p95_s` → `total p95 (s)`,
    `live_migration_downtime` → `live_migration_downtime (ms)`."""
    if column in OPTION_UNITS:
        return f"{column} ({OPTION_UNITS[column]})"
    found = _unit_suffix(column)
    if found is None:
        return column.replace("_", " ")
    suffix, unit = found
    stem = column if suffix == "_rate" else column[: -len(suffix)]
    return f"{stem.replace('_', ' ')} ({unit})"


def unit_of(column: str) -> str | None:
    """The unit a column's name ends in (`downtime_ms` → `ms`), None when it names none."""
    found = _unit_suffix(column)
    return found[1] if found else None


def _unit_suffix(column: str) -> tuple[str, str] | None:
    return next(((s, u) for s, u in UNIT_SUFFIXES if column.endswith(s)), None)


def phase_timeline(
    events_frame: pd.DataFrame,
    migration_id: str | None = None,
    *,
    ax: Axes | None = None,
    title: str | None = None,
) -> Figure:
    """A Gantt-like timeline of one migration: its phases on a source and a destination lane,
    with the downtime steps, VIF plugging, timeouts and the end marked."""
    fig, ax = _canvas(ax, (10, 3))
    rows = only(events_frame, migration_id)
    intervals, markers = phase_intervals(rows)
    lane_y = {lane: i for i, lane in enumerate(LANES)}
    for interval in intervals:
        ax.barh(
            lane_y[interval.lane],
            max(interval.duration_s, 1e-9),
            left=interval.start_s,
            height=0.5,
            color=PHASE_COLOURS[interval.phase],
            edgecolor="black",
            linewidth=0.5,
        )
    span = max([i.end_s for i in intervals] + [m.at_s for m in markers] + [1.0])
    for marker, level in zip(markers, _label_levels(markers, span), strict=True):
        y = lane_y[marker.lane]
        ax.plot([marker.at_s] * 2, [y - 0.3, y + 0.3], color="black", linewidth=0.8)
        ax.annotate(
            marker.label,
            (marker.at_s, y + 0.3),
            xytext=(2, 1 + 9 * level),
            textcoords="offset points",
            fontsize=7,
            rotation=20,
            ha="left",
            va="bottom",
        )
    hosts = _hosts(rows)
    ax.set_yticks(
        [lane_y[lane] for lane in LANES],
        [f"{lane}\n{hosts[lane]}" if hosts[lane] else lane for lane in LANES],
    )
    ax.set_ylim(-0.6, len(LANES) + 0.2)
    ax.set_xlim(0, span * 1.08)
    ax.set_xlabel("time since the request (s)")
    used = list(dict.fromkeys(i.phase for i in intervals))
    ax.legend(
        handles=[Patch(facecolor=PHASE_COLOURS[p], edgecolor="black", label=p) for p in used],
        loc="upper left",
        bbox_to_anchor=(1.01, 1.0),
        fontsize=8,
        title="phase",
    )
    ax.set_title(title or f"phases of migration {_short_id(rows)}")
    ax.grid(axis="x", alpha=0.3)
    return fig


def migrations_gantt(
    frame: pd.DataFrame,
    *,
    ax: Axes | None = None,
    title: str = "migrations over time",
) -> Figure:
    """Many migrations at once (an evacuation): one row each, in request order, split into
    waiting (checks and queue), preparation, the copy until the end or the switch to
    post-copy, and post-copy, with the ones that did not complete marked."""
    fig, ax = _canvas(ax, (10, 1.5 + 0.22 * max(len(frame), 1)))
    rows = frame.sort_values("requested_at", kind="stable").reset_index(drop=True)
    origin = rows["requested_at"].min() if len(rows) else None
    segments = (
        ("waiting", ("checks_s", "queue_s"), PHASE_COLOURS["queued"]),
        ("preparation", ("preparation_s",), PHASE_COLOURS["preparation"]),
        ("memory copy", ("copy_s",), PHASE_COLOURS["memory copy"]),
        ("post-copy", ("post_copy_s",), PHASE_COLOURS["post-copy"]),
    )
    for y, row in rows.iterrows():
        left = (row["requested_at"] - origin).total_seconds()
        for _, columns, colour in segments:
            width = sum(float(row[c]) for c in columns if pd.notna(row[c]))
            if width > 0:
                ax.barh(y, width, left=left, height=0.7, color=colour, linewidth=0)
                left += width
        if row["status"] != "completed":
            ax.plot(left, y, marker="x", color="#d62728", markersize=6)
    handles = [Patch(facecolor=colour, label=name) for name, _, colour in segments]
    handles.append(
        ax.plot([], [], marker="x", color="#d62728", linestyle="", label="did not complete")[0]
    )
    ax.legend(handles=handles, fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    ax.set_yticks(range(len(rows)), rows["instance"].tolist(), fontsize=8 if len(rows) <= 20 else 6)
    ax.invert_yaxis()
    ax.set_xlabel("time since the first request (s)")
    ax.set_ylabel("migration (instance)")
    ax.set_title(title)
    ax.grid(axis="x", alpha=0.3)
    return fig


def memory_remaining(
    events_frame: pd.DataFrame,
    migration_id: str | None = None,
    *,
    ax: Axes | None = None,
    title: str | None = None,
) -> Figure:
    """Memory still to copy over the copy's elapsed time, with the downtime limit Nova set
    (and the ramp it planned) on a second axis: where the limit met the remainder, the guest
    could switch over."""
    fig, ax = _canvas(ax, (9, 4))
    rows = only(events_frame, migration_id)
    curve = progress(rows)
    applied = downtime_applied(rows)
    ramp = planned_ramp(rows)
    scale, unit = _byte_scale(curve["memory_remaining_bytes"].max() if len(curve) else 0)
    handles = []
    if len(curve):
        (line,) = ax.plot(
            curve["elapsed_s"],
            curve["memory_remaining_bytes"].astype(float) / scale,
            marker="o",
            markersize=3,
            color="#1f77b4",
            label="memory remaining",
        )
        handles.append(line)
    ax.set_xlabel("time since the memory copy started (s)")
    ax.set_ylabel(f"memory remaining ({unit})")
    ax.set_ylim(bottom=0)
    limit_ax = ax.twinx()
    copy_end_s = copy_seconds(rows)
    end_s = max(
        [0.0, copy_end_s or 0.0]
        + ([float(curve["elapsed_s"].max())] if len(curve) else [])
        + ([float(applied["elapsed_s"].max())] if len(applied) else [])
    )
    if ramp:
        shown = [step for step in ramp if step[0] <= max(end_s, ramp[0][0])]
        xs = [s for s, _ in shown] + [max(end_s, shown[-1][0])]
        ys = [ms for _, ms in shown] + [shown[-1][1]]
        (planned,) = limit_ax.step(
            xs,
            ys,
            where="post",
            color="#7f7f7f",
            linestyle="--",
            linewidth=3,
            alpha=0.6,
            label="planned ramp",
        )
        handles.append(planned)
    if len(applied):
        xs = list(applied["elapsed_s"].astype(float)) + [end_s]
        ys = list(applied["downtime_ms"].astype(float))
        ys.append(ys[-1])
        (limit,) = limit_ax.step(
            xs, ys, where="post", color="#d62728", label="downtime limit applied"
        )
        handles.append(limit)
    if copy_end_s is not None:
        handles.append(
            ax.axvline(copy_end_s, color="black", linestyle=":", label="memory copy ended")
        )
    ax.set_xlim(0, max(end_s, 1.0) * 1.05)
    limit_ax.set_ylabel("max downtime (ms)")
    shown_ms = [line.get_ydata().max() for line in limit_ax.get_lines()]
    limit_ax.set_ylim(0, max(shown_ms + [1.0]) * 1.15)
    ax.legend(handles=handles, loc="upper center", bbox_to_anchor=(0.5, -0.15), ncols=4, fontsize=8)
    ax.set_title(title or f"memory remaining and downtime limit, {_short_id(rows)}")
    ax.grid(alpha=0.3)
    return fig


def phase_bars(
    durations_s: Mapping[str, float],
    *,
    parts_s: Mapping[str, float] | None = None,
    ax: Axes | None = None,
    title: str = "where the time went",
) -> Figure:
    """Seconds spent in each phase, longest at the top, each labelled; `parts_s` are pieces
    of those phases on one host (the destination's or os-brick's own work), drawn paler
    below them so they are not read as time added."""
    parts_s = dict(parts_s or {})
    fig, ax = _canvas(ax, (8, 0.6 + 0.4 * max(len(durations_s) + len(parts_s), 1)))
    ordered = [
        *[(name, value, True) for name, value in sorted(parts_s.items(), key=lambda i: i[1])],
        *[(name, value, False) for name, value in sorted(durations_s.items(), key=lambda i: i[1])],
    ]
    seconds = [float(value) for _, value, _ in ordered]
    bars = ax.barh(
        [name for name, _, _ in ordered],
        seconds,
        color=["#a6c8e6" if part else "#1f77b4" for _, _, part in ordered],
    )
    ax.bar_label(bars, labels=[f"{value:.2f} s" for value in seconds], padding=3, fontsize=8)
    handles = [Patch(color="#1f77b4", label="phase")]
    if parts_s:
        handles.append(Patch(color="#a6c8e6", label="part of a phase, on one host"))
    ax.set_xlabel("duration (s)")
    ax.set_xlim(0, max(seconds + [1.0]) * 1.2)
    ax.legend(handles=handles, fontsize=8, loc="lower right")
    ax.set_title(title)
    ax.grid(axis="x", alpha=0.3)
    return fig


def downtime_ramps(
    ramps: Mapping[str, Sequence[Sequence[float]]],
    *,
    ax: Axes | None = None,
    title: str = "downtime ramps",
) -> Figure:
    """Nova's downtime ramps side by side: the limit in force over the copy's elapsed time."""
    fig, ax = _canvas(ax, (8, 4))
    # Ramps often coincide (a logged ramp and the formula that made it): the earlier ones are
    # drawn wider and paler underneath, so every ramp stays visible.
    count = len(ramps)
    for index, (label, steps) in enumerate(ramps.items()):
        xs = [s for s, _ in steps]
        ys = [ms for _, ms in steps]
        ax.step(
            xs,
            ys,
            where="post",
            marker="o",
            markersize=3,
            linewidth=1.5 + 2.5 * (count - 1 - index),
            alpha=1.0 if index == count - 1 else 0.55,
            label=label,
        )
    ax.set_xlabel("time since the memory copy started (s)")
    ax.set_ylabel("max downtime (ms)")
    ax.set_ylim(bottom=0)
    ax.legend(fontsize=8)
    ax.set_title(title)
    ax.grid(alpha=0.3)
    return fig


def downtime_distribution(
    frame: pd.DataFrame,
    *,
    by: str | None = None,
    ax: Axes | None = None,
    outcome: str = "status",
    percentiles: Sequence[int] = DEFAULT_PERCENTILES,
) -> Figure:
    """How the guest downtime of completed migrations is spread, with its percentiles.

    `outcome` names the column saying `completed` (`status` in the store's frames, `outcome`
    in a simulated sweep's rows)."""
    return _distribution(frame, "downtime_ms", "guest downtime", by, ax, outcome, percentiles)


def total_time_distribution(
    frame: pd.DataFrame,
    *,
    by: str | None = None,
    ax: Axes | None = None,
    outcome: str = "status",
    percentiles: Sequence[int] = DEFAULT_PERCENTILES,
) -> Figure:
    """How long completed migrations took from request to end, with the percentiles."""
    return _distribution(frame, "total_s", "total time", by, ax, outcome, percentiles)


def sweep_heatmap(
    frame: pd.DataFrame,
    x: str,
    y: str,
    value: str,
    *,
    agg: str | Callable[[pd.Series], float] = "median",
    ax: Axes | None = None,
    title: str | None = None,
    fmt: str = "{:.3g}",
    cmap: str = "viridis",
) -> Figure:
    """A sweep over two settings: one cell per (x, y) with `agg` of `value`, annotated."""
    fig, ax = _canvas(ax, (7, 5))
    table = frame.pivot_table(index=y, columns=x, values=value, aggfunc=agg).sort_index()
    table = table.reindex(sorted(table.columns), axis=1)
    data = table.to_numpy(dtype=float)
    image = ax.imshow(data, origin="lower", aspect="auto", cmap=cmap)
    ax.set_xticks(range(len(table.columns)), [_tick(v) for v in table.columns])
    ax.set_yticks(range(len(table.index)), [_tick(v) for v in table.index])
    ax.set_xlabel(axis_label(x))
    ax.set_ylabel(axis_label(y))
    finite = data[np.isfinite(data)]
    middle = (finite.min() + finite.max()) / 2 if finite.size else 0
    for (i, j), cell in np.ndenumerate(data):
        if np.isfinite(cell):
            ax.text(
                j,
                i,
                fmt.format(cell),
                ha="center",
                va="center",
                fontsize=8,
                color="white" if cell < middle else "black",
            )
    bar = fig.colorbar(image, ax=ax)
    agg_name = agg if isinstance(agg, str) else getattr(agg, "__name__", "value")
    bar.set_label(f"{agg_name} {axis_label(value)}")
    ax.set_title(title or f"{agg_name} {axis_label(value)}")
    return fig


def sweep_lines(
    frame: pd.DataFrame,
    x: str,
    value: str,
    *,
    by: str | None = None,
    agg: str | Callable[[pd.Series], float] = "median",
    ax: Axes | None = None,
    title: str | None = None,
) -> Figure:
    """`agg` of `value` against one setting, one line per value of `by`."""
    fig, ax = _canvas(ax, (8, 4))
    groups = [(None, frame)] if by is None else list(frame.groupby(by, sort=True))
    for key, part in groups:
        series = part.groupby(x)[value].agg(agg).sort_index()
        label = axis_label(value) if key is None else f"{axis_label(by)} = {_tick(key)}"
        ax.plot(series.index, series.to_numpy(dtype=float), marker="o", label=label)
    settings = np.sort(frame[x].dropna().unique())
    if len(settings) <= MAX_LABELLED_TICKS and np.issubdtype(settings.dtype, np.number):
        ax.set_xticks(settings, [_tick(v) for v in settings.tolist()])
    ax.set_xlabel(axis_label(x))
    agg_name = agg if isinstance(agg, str) else getattr(agg, "__name__", "value")
    ax.set_ylabel(f"{agg_name} {axis_label(value)}")
    ax.set_ylim(bottom=0)
    ax.legend(fontsize=8)
    ax.set_title(title or f"{agg_name} {axis_label(value)} by {axis_label(x)}")
    ax.grid(alpha=0.3)
    return fig


def prediction_errors(
    frame: pd.DataFrame,
    *,
    label: str = "prediction",
    error: str = "error",
    tolerance: float | None = 0.1,
    ax: Axes | None = None,
    title: str = "prediction error",
) -> Figure:
    """Signed relative errors of predictions (predicted / observed − 1), one bar each, with
    the tolerance band shaded: every error is shown, the large ones too."""
    fig, ax = _canvas(ax, (9, 0.8 + 0.35 * max(len(frame), 1)))
    rows = frame.reset_index(drop=True)
    values = rows[error].astype(float) * 100
    colours = [
        "#2ca02c" if tolerance is not None and abs(v) <= tolerance * 100 else "#d62728"
        for v in values
    ]
    bars = ax.barh(range(len(rows)), values.fillna(0), color=colours)
    ax.bar_label(bars, labels=["n/a" if pd.isna(v) else f"{v:+.1f} %" for v in values], fontsize=8)
    ax.set_yticks(range(len(rows)), rows[label].astype(str).tolist(), fontsize=8)
    ax.invert_yaxis()
    ax.axvline(0, color="black", linewidth=0.8)
    handles = [
        Patch(color="#2ca02c", label="within tolerance"),
        Patch(color="#d62728", label="outside tolerance"),
    ]
    if tolerance is not None:
        handles.append(
            ax.axvspan(
                -tolerance * 100,
                tolerance * 100,
                color="grey",
                alpha=0.15,
                label=f"±{tolerance:.0%} tolerance",
            )
        )
    limit = max([abs(v) for v in values.dropna()] + [(tolerance or 0.1) * 100]) * 1.3
    ax.set_xlim(-limit, limit)
    ax.set_xlabel("error: predicted / observed − 1 (%)")
    ax.legend(handles=handles, fontsize=8, loc="lower right")
    ax.set_title(title)
    ax.grid(axis="x", alpha=0.3)
    return fig


def save(fig: Figure, path: str | Path) -> Path:
    """Write `fig` as PNG or SVG (by the file's suffix), whole or not at all."""
    target = Path(path)
    fmt = target.suffix.lower().lstrip(".")
    if fmt not in SAVE_FORMATS:
        raise ValueError(f"cannot save a plot as {target.name!r}: use a .png or .svg file name")
    with replacing(target, "wb") as out:
        fig.savefig(out, format=fmt, dpi=120 if fmt == "png" else None, bbox_inches="tight")
    return target


# ------------------------------------------------------------------ internals


def _canvas(ax: Axes | None, size: tuple[float, float]) -> tuple[Figure, Axes]:
    if ax is not None:
        return ax.figure, ax  # type: ignore[return-value]
    fig = Figure(figsize=size, layout="constrained")
    return fig, fig.add_subplot()


def _distribution(
    frame: pd.DataFrame,
    column: str,
    what: str,
    by: str | None,
    ax: Axes | None,
    outcome: str,
    percentiles: Sequence[int],
) -> Figure:
    fig, ax = _canvas(ax, (8, 4))
    done = frame[frame[outcome] == "completed"]
    values = pd.to_numeric(done[column], errors="coerce")
    groups = [(None, values.dropna())]
    if by is not None:
        groups = [(key, values[part.index].dropna()) for key, part in done.groupby(by, sort=True)]
    finite = values.dropna()
    bins = np.histogram_bin_edges(finite, bins=30) if len(finite) else 10
    for key, series in groups:
        label = f"{len(series)} completed" if key is None else f"{by} = {_tick(key)}"
        ax.hist(
            series,
            bins=bins,
            histtype="stepfilled" if by is None else "step",
            alpha=0.7,
            label=label,
            linewidth=1.5,
        )
    if by is None and len(finite):
        for p, style in zip(percentiles, ("-", "--", ":", "-."), strict=False):
            mark = float(np.percentile(finite, p))
            ax.axvline(mark, color="black", linestyle=style, label=f"p{p} = {mark:.4g}")
    ax.set_xlabel(f"{what} ({unit_of(column)})")
    ax.set_ylabel("migrations (count)")
    ax.yaxis.set_major_locator(MaxNLocator(integer=True))
    if len(finite) and finite.max() > HEAVY_TAIL_RATIO * max(np.percentile(finite, 95), 1e-9):
        ax.set_yscale("log")  # a few very long ones would otherwise vanish beside the many
        ax.set_ylabel("migrations (count, log scale)")
    ax.legend(fontsize=8)
    ax.set_title(f"{what} of completed migrations")
    ax.grid(alpha=0.3)
    return fig


def _label_levels(markers: Sequence[Marker], span_s: float) -> list[int]:
    """A height for each marker's label, so labels of markers close in time do not overlap."""
    closeness_s = span_s * 0.06
    last_at: dict[tuple[str, int], float] = {}
    levels = []
    for marker in markers:
        level = 0
        while level < 3 and marker.at_s - last_at.get((marker.lane, level), -1e18) < closeness_s:
            level += 1
        last_at[(marker.lane, level)] = marker.at_s
        levels.append(level)
    return levels


def _hosts(rows: pd.DataFrame) -> dict[str, str | None]:
    """The source and destination hosts the events name (a frame of several streams holds NaN
    where a stream's event has no such field)."""
    hosts: dict[str, str | None] = {"source": None, "destination": None}
    for record in rows.to_dict("records"):
        name = record["event"]
        if name == "MigrationRequested":
            hosts["source"] = _text_or_none(record.get("source_host"))
            hosts["destination"] = _text_or_none(record.get("requested_dest"))
        elif name == "DestinationSelected":
            hosts["destination"] = _text_or_none(record.get("host"))
        elif name in ("PreparationStarted", "Completed"):
            host = _text_or_none(record.get("dest_host")) or _text_or_none(record.get("new_host"))
            hosts["destination"] = host or hosts["destination"]
    return hosts


def _text_or_none(value: object) -> str | None:
    return value if isinstance(value, str) and value else None


def _short_id(rows: pd.DataFrame) -> str:
    return str(rows["migration_id"].iloc[0])[:8] if len(rows) else "-"


def _byte_scale(largest: float) -> tuple[float, str]:
    if largest and largest >= GIB_BYTES:
        return GIB_BYTES, "GiB"
    return MIB_BYTES, "MiB"


def _tick(value: object) -> str:
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)
