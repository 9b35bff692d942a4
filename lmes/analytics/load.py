"""The store as frames a notebook works with: migrations, their events, and what follows from them.

Everything here reads the read models (`lmes.readmodels`), so executed, replayed and simulated
migrations come out in the same columns. On top of the one-row-per-migration summary it adds what
an analysis asks next: the settings and context a producer recorded, whether the guest converged
or was forced over, the mean transfer rate, the phases as intervals on a source and a destination
lane, the progress curve and the downtime ramp actually applied.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import numpy as np
import pandas as pd

from lmes.domain.migration import Migration
from lmes.domain.status import Status
from lmes.readmodels import (
    MIGRATION_COLUMNS,
    event_row,
    event_rows,
    filter_migrations,
    migration_row,
)
from lmes.store import MigrationStore

DERIVED_COLUMNS = [
    "succeeded",
    "post_copy",
    "forced",
    "timeout_action",
    "downtime_steps_applied",
    "bandwidth_mib_s",
    "memory_total_bytes",
    "transfer_rate_bytes_s",
    "block_migration",
    "settings",
    "context",
]

# The events that end a migration, and how the timeline names them.
ENDING_WORDS = {
    "Completed": "completed",
    "Failed": "failed",
    "Cancelled": "cancelled",
    "PrecheckFailed": "precheck failed",
}
TERMINAL_EVENTS = tuple(ENDING_WORDS)
DEFAULT_PERCENTILES = (50, 95, 99)


@dataclass(frozen=True)
class Interval:
    """A stretch of one migration on one lane (`source` or `destination`), in seconds from
    the request."""

    lane: str
    phase: str
    start_s: float
    end_s: float

    @property
    def duration_s(self) -> float:
        return self.end_s - self.start_s


@dataclass(frozen=True)
class Marker:
    """A moment worth pointing at on the timeline (a downtime step, a VIF plugged, a timeout)."""

    lane: str
    label: str
    at_s: float


@dataclass(frozen=True)
class MigrationStream:
    """One migration and its events, oldest first: what the diagnosis and the report read."""

    migration: Migration
    events: list[Any]

    def events_frame(self) -> pd.DataFrame:
        return events_of_rows([event_row(e) for e in self.events])


def migrations(
    store: MigrationStore,
    *,
    ids: Iterable[str] | None = None,
    origin: str | None = None,
    status: str | None = None,
    instance: str | None = None,
    host: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
) -> pd.DataFrame:
    """One row per migration: the read model's columns plus the derived ones.

    `ids` (full ids, as strings or UUIDs) narrows to chosen migrations; the other filters are
    those of `lmes list`.
    """
    wanted = {str(i) for i in ids} if ids is not None else None
    rows = [
        {**migration_row(m), **derived_fields(m)}
        for m in store.migrations()
        if wanted is None or str(m.id) in wanted
    ]
    frame = pd.DataFrame(rows, columns=[*MIGRATION_COLUMNS, *DERIVED_COLUMNS])
    for column in ("requested_at", "ended_at"):
        frame[column] = pd.to_datetime(frame[column], utc=True)
    return filter_migrations(
        frame, origin=origin, status=status, instance=instance, host=host, since=since, until=until
    )


def derived_fields(migration: Migration) -> dict[str, Any]:
    """What the summary row leaves out and analyses need: outcome flags, rates, settings."""
    copy_s = _copy_seconds(migration)
    rate = migration.bytes_sent / copy_s if migration.bytes_sent and copy_s else None
    return {
        "succeeded": migration.status is Status.COMPLETED,
        "post_copy": Status.POST_COPY.value in migration.phase_times,
        "forced": bool(migration.force_complete_requested_by)
        or migration.timeout_action == "force_complete",
        "timeout_action": migration.timeout_action,
        "downtime_steps_applied": len(migration.downtime_applied),
        "bandwidth_mib_s": migration.bandwidth_mib_s,
        "memory_total_bytes": (migration.last_progress or {}).get("memory_total_bytes"),
        "transfer_rate_bytes_s": rate,
        "block_migration": migration.block_migration,
        "settings": dict(migration.settings),
        "context": dict(migration.context),
    }


def events(store: MigrationStore, ids: Iterable[str] | None = None) -> pd.DataFrame:
    """One row per event of the chosen migrations (all when `ids` is None), in stream order,
    with `at_s`: seconds since that migration was requested."""
    return events_of_rows(event_rows(store, None if ids is None else [str(i) for i in ids]))


def events_of_rows(rows: list[dict[str, Any]]) -> pd.DataFrame:
    """Event rows (`lmes.readmodels.event_row`) as a frame, with times as UTC timestamps and
    `at_s` counted from each migration's request."""
    frame = pd.DataFrame(rows) if rows else pd.DataFrame(columns=["migration_id", "version"])
    if "at" not in frame:
        frame["at"] = pd.Series(dtype="datetime64[ns, UTC]")
        frame["event"] = pd.Series(dtype=object)
    frame["at"] = pd.to_datetime(frame["at"], utc=True)
    first = frame.groupby("migration_id")["at"].transform("min")
    frame["at_s"] = (frame["at"] - first).dt.total_seconds()
    return frame


def streams(store: MigrationStore, ids: Iterable[str] | None = None) -> list[MigrationStream]:
    """The chosen migrations (all when `ids` is None) with their events, in one pass over
    the store, oldest request first."""
    wanted = {str(i) for i in ids} if ids is not None else None
    built: dict[str, MigrationStream] = {}
    for event in store.all_events():
        key = str(event.originator_id)
        if wanted is not None and key not in wanted:
            continue
        if isinstance(event, Migration.MigrationRequested) and event.originator_version == 1:
            built[key] = MigrationStream(event.mutate(None), [event])
        elif key in built:
            stream = built[key]
            built[key] = MigrationStream(event.mutate(stream.migration), [*stream.events, event])
    return sorted(built.values(), key=lambda s: s.migration.requested_at)


def only(frame: pd.DataFrame, migration_id: str | None) -> pd.DataFrame:
    """The rows of one migration; with no id, `frame` itself when it holds just one."""
    if migration_id is None:
        chosen = frame["migration_id"].unique() if len(frame) else []
        if len(chosen) != 1:
            raise ValueError(f"events of {len(chosen)} migrations given: name one migration_id")
        return frame
    return frame[frame["migration_id"] == str(migration_id)]


def progress(events_frame: pd.DataFrame, migration_id: str | None = None) -> pd.DataFrame:
    """The progress curve of one migration: seconds since the copy started, memory bytes."""
    rows = only(events_frame, migration_id)
    rows = rows[rows["event"] == "ProgressReported"]
    columns = [
        "at",
        "elapsed_s",
        "memory_total_bytes",
        "memory_processed_bytes",
        "memory_remaining_bytes",
        "dirty_rate_bytes_s",
        "iteration",
    ]
    if rows.empty:
        return pd.DataFrame(columns=columns)
    return rows.reindex(columns=columns).sort_values("elapsed_s").reset_index(drop=True)


def downtime_applied(events_frame: pd.DataFrame, migration_id: str | None = None) -> pd.DataFrame:
    """The downtime limits Nova set, in order: seconds since the copy started and ms."""
    rows = only(events_frame, migration_id)
    rows = rows[rows["event"] == "DowntimeIncreased"]
    if rows.empty:
        return pd.DataFrame(columns=["at", "elapsed_s", "downtime_ms", "step_index"])
    return (
        rows.reindex(columns=["at", "elapsed_s", "downtime_ms", "step_index"])
        .sort_values("elapsed_s")
        .reset_index(drop=True)
    )


def planned_ramp(events_frame: pd.DataFrame, migration_id: str | None = None) -> list[list[int]]:
    """The whole downtime ramp the migration was queued with, as (seconds, ms) steps."""
    rows = only(events_frame, migration_id)
    queued = rows[rows["event"] == "MigrationQueued"]
    if queued.empty:
        return []
    return [[int(s), int(ms)] for s, ms in queued.iloc[0]["downtime_steps"]]


def copy_seconds(events_frame: pd.DataFrame, migration_id: str | None = None) -> float | None:
    """How long one migration's memory copy ran: from `MigrationStarted` to its switch to
    post-copy or pause, its rollback, or the end of the libvirt job (None when it never
    started)."""
    marks = _Milestones.of(only(events_frame, migration_id))
    started = marks.first.get("MigrationStarted")
    if started is None:
        return None
    ended = marks.after("SwitchedToPostCopy", "GuestPaused", "RolledBack", until=marks.job_end_s)
    return ended - started


def phase_intervals(
    events_frame: pd.DataFrame, migration_id: str | None = None
) -> tuple[list[Interval], list[Marker]]:
    """Where one migration's time went, as intervals on a source and a destination lane.

    Source: conductor checks and queueing (the instance still only on its host), the memory
    copy, the switch-over pause and the post-migration work. Destination: preparation
    (`pre_live_migration`), the guest running there during post-copy, and the rollback.
    Markers point at the downtime steps, VIFs plugged, timeouts, force-complete and abort
    requests, and the end.
    """
    rows = only(events_frame, migration_id).sort_values("version")
    marks = _Milestones.of(rows)
    first, job_end = marks.first, marks.job_end_s
    intervals: list[Interval] = []

    def add(lane: str, phase: str, start: float | None, stop: float) -> None:
        if start is not None and stop >= start:
            intervals.append(Interval(lane, phase, start, stop))

    add("source", "checks", first.get("MigrationRequested"), marks.after("MigrationQueued"))
    add("source", "queued", first.get("MigrationQueued"), marks.after("PreparationStarted"))
    add(
        "destination",
        "preparation",
        first.get("PreparationStarted"),
        marks.after("PreparationCompleted", "MigrationStarted"),
    )
    add(
        "source",
        "memory copy",
        first.get("MigrationStarted"),
        marks.after("SwitchedToPostCopy", "GuestPaused", "RolledBack", until=job_end),
    )
    add(
        "source",
        "paused",
        first.get("GuestPaused"),
        marks.after("SwitchedToPostCopy", "RolledBack", until=job_end),
    )
    add(
        "destination",
        "post-copy",
        first.get("SwitchedToPostCopy"),
        marks.after("RolledBack", until=job_end),
    )
    if "Completed" in first and job_end < first["Completed"]:
        add("source", "post-migration", job_end, first["Completed"])
    add("destination", "rollback", first.get("RolledBack"), marks.end_s)
    markers = [_marker(row) for row in rows.to_dict("records")]
    return intervals, [m for m in markers if m is not None]


@dataclass(frozen=True)
class _Milestones:
    """When each kind of event first happened in one stream, in seconds from the request."""

    first: dict[str, float]
    end_s: float  # the terminal event, else the last event seen
    job_end_s: float  # the end of the libvirt job: `Completed.total_s` after the start

    @classmethod
    def of(cls, rows: pd.DataFrame) -> _Milestones:
        first: dict[str, float] = {}
        for name, at_s in zip(rows["event"], rows["at_s"], strict=True):
            first.setdefault(name, float(at_s))
        terminal = next((first[n] for n in TERMINAL_EVENTS if n in first), None)
        end_s = terminal if terminal is not None else float(rows["at_s"].max() or 0.0)
        job_end_s = end_s
        completed = rows[rows["event"] == "Completed"]
        started = first.get("MigrationStarted")
        if len(completed) and started is not None and "total_s" in completed:
            total_s = completed["total_s"].iloc[0]
            if total_s is not None and not pd.isna(total_s):
                job_end_s = min(end_s, started + float(total_s))
        return cls(first, end_s, job_end_s)

    def after(self, *names: str, until: float | None = None) -> float:
        """The first of `names` to happen, else `until`, else the end."""
        found = [self.first[n] for n in names if n in self.first]
        return min(found) if found else (until if until is not None else self.end_s)


def _marker(row: dict[str, Any]) -> Marker | None:
    name, at_s = row["event"], float(row["at_s"])
    if name == "DowntimeIncreased":
        return Marker("source", f"{int(row['downtime_ms'])} ms", at_s)
    if name == "VifPlugged":
        return Marker("destination", "VIF plugged", at_s)
    if name == "CompletionTimeoutReached":
        return Marker("source", f"timeout: {row['action']}", at_s)
    if name == "ForceCompleteRequested":
        return Marker("source", "force-complete", at_s)
    if name == "AbortRequested":
        return Marker("source", "abort", at_s)
    if name in TERMINAL_EVENTS:
        return Marker("destination" if name == "Completed" else "source", ENDING_WORDS[name], at_s)
    return None


def outcome_stats(
    frame: pd.DataFrame,
    by: str | Sequence[str] | None = None,
    *,
    outcome: str = "status",
    percentiles: Sequence[int] = DEFAULT_PERCENTILES,
) -> pd.DataFrame:
    """Success rate, and percentiles of total time and guest downtime, per group.

    `outcome` names the column that says `completed` for a success: `status` in the store's
    frames, `outcome` in a simulated sweep's rows. Percentiles are over the completed
    migrations only: a failed migration has no downtime, and its time is reported by the
    success rate instead.
    """
    names = [] if by is None else [by] if isinstance(by, str) else list(by)
    parts = list(frame.groupby(names, dropna=False, sort=True)) if names else [((), frame)]
    rows = []
    for key, part in parts:
        done = part[part[outcome] == Status.COMPLETED.value]
        row: dict[str, Any] = dict(
            zip(names, key if isinstance(key, tuple) else (key,), strict=True)
        )
        row["migrations"] = len(part)
        row["success_rate"] = len(done) / len(part) if len(part) else np.nan
        for column, stem, unit in (("total_s", "total", "_s"), ("downtime_ms", "downtime", "_ms")):
            values = pd.to_numeric(done[column], errors="coerce").dropna()
            for p in percentiles:
                row[f"{stem}_p{p}{unit}"] = (
                    float(np.percentile(values, p)) if len(values) else np.nan
                )
        rows.append(row)
    return pd.DataFrame(rows)


def expand(frame: pd.DataFrame, column: str, keys: Iterable[str] | None = None) -> pd.DataFrame:
    """`frame` with the dict column `column` (settings, context) spread into columns of its own."""
    spread = pd.json_normalize(frame[column].tolist()).set_index(frame.index)
    if keys is not None:
        spread = spread.reindex(columns=list(keys))
    spread = spread[[c for c in spread.columns if c not in frame.columns]]
    return pd.concat([frame, spread], axis=1)


def _copy_seconds(migration: Migration) -> float | None:
    """The libvirt job's length: `Completed.total_s` where recorded, else start to end."""
    if migration.total_s:
        return migration.total_s
    started = migration.phase_times.get(Status.RUNNING.value)
    if started is None or migration.ended_at is None:
        return None
    return (migration.ended_at - started).total_seconds() or None
