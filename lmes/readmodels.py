"""Read models: the store as pandas DataFrames, one row per migration and one row per event.

Both are folded from one pass over the store's log, so executed, replayed and simulated
migrations come out in the same columns and the notebooks need to know nothing else.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any

import pandas as pd

from lmes.domain.migration import Migration
from lmes.domain.status import Status
from lmes.store import MigrationStore

# Phases of a migration as an operator names them, each from one status mark to the next.
PHASES: tuple[tuple[str, str, tuple[str, ...]], ...] = (
    ("checks_s", "accepted", ("queued",)),
    ("queue_s", "queued", ("preparing",)),
    ("preparation_s", "preparing", ("running",)),
    ("copy_s", "running", ("running (post-copy)", "completed", "failed", "error", "cancelled")),
    ("post_copy_s", "running (post-copy)", ("completed", "failed", "error", "cancelled")),
)

MIGRATION_COLUMNS = [
    "id",
    "origin",
    "instance",
    "source_host",
    "dest_host",
    "status",
    "requested_at",
    "ended_at",
    "total_s",
    *[name for name, _, _ in PHASES],
    "downtime_ms",
    "downtime_limit_ms",
    "bytes_sent",
    "iterations",
    "data_gb",
    "completion_timeout_s",
    "converged",
    "failure_phase",
    "failure_reason",
    "events",
]

EVENT_BASE_COLUMNS = ["migration_id", "version", "event", "at"]
_EVENT_SKIP = {"originator_id", "originator_version", "timestamp", "originator_topic"}


def migration_row(migration: Migration, event_count: int | None = None) -> dict[str, Any]:
    """One migration's summary: hosts, outcome, phase durations, downtime, bytes."""
    marks = migration.phase_times
    row: dict[str, Any] = {
        "id": str(migration.id),
        "origin": migration.origin.value,
        "instance": migration.instance,
        "source_host": migration.source_host,
        "dest_host": migration.dest_host,
        "status": migration.status.value,
        "requested_at": migration.requested_at,
        "ended_at": migration.ended_at,
        "total_s": _seconds(migration.requested_at, migration.ended_at),
    }
    for name, start, ends in PHASES:
        begin = marks.get(start)
        end = next((marks[e] for e in ends if e in marks), None)
        row[name] = _seconds(begin, end)
    row.update(
        downtime_ms=migration.downtime_ms,
        downtime_limit_ms=migration.downtime_limit_ms,
        bytes_sent=migration.bytes_sent,
        iterations=migration.iterations,
        data_gb=migration.data_gb,
        completion_timeout_s=migration.completion_timeout_s,
        converged=_converged(migration),
        failure_phase=(migration.failure or {}).get("phase"),
        failure_reason=(migration.failure or {}).get("reason"),
        events=event_count if event_count is not None else migration.version,
    )
    return row


def event_row(event: Any) -> dict[str, Any]:
    """One event: its stream, position, name, when it happened, and its own fields."""
    row: dict[str, Any] = {
        "migration_id": str(event.originator_id),
        "version": event.originator_version,
        "event": type(event).__name__,
        "at": event.timestamp,
    }
    for key, value in vars(event).items():
        if key not in _EVENT_SKIP:
            row[key] = value
    return row


def migrations_frame(
    store: MigrationStore,
    *,
    origin: str | None = None,
    status: str | None = None,
    instance: str | None = None,
    host: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
) -> pd.DataFrame:
    """One row per migration, filtered as `lmes list` and the notebooks filter."""
    rows = [migration_row(m) for m in store.migrations()]
    frame = pd.DataFrame(rows, columns=MIGRATION_COLUMNS)
    return filter_migrations(
        frame, origin=origin, status=status, instance=instance, host=host, since=since, until=until
    )


def filter_migrations(
    frame: pd.DataFrame,
    *,
    origin: str | None = None,
    status: str | None = None,
    instance: str | None = None,
    host: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
) -> pd.DataFrame:
    mask = pd.Series(True, index=frame.index)
    if origin:
        mask &= frame["origin"] == origin
    if status:
        mask &= frame["status"] == status
    if instance:
        mask &= frame["instance"] == instance
    if host:
        mask &= (frame["source_host"] == host) | (frame["dest_host"] == host)
    if since is not None:
        mask &= frame["requested_at"] >= since
    if until is not None:
        mask &= frame["requested_at"] <= until
    return frame[mask].sort_values("requested_at", kind="stable").reset_index(drop=True)


def event_rows(store: MigrationStore, migration_ids: Iterable[str] | None = None) -> list[dict]:
    """Migration events as plain rows (each with only its own fields), in stream order."""
    wanted = set(migration_ids) if migration_ids is not None else None
    streams: set[str] = set()
    rows = []
    for event in store.all_events():
        stream = str(event.originator_id)
        if isinstance(event, Migration.MigrationRequested):
            streams.add(stream)
        if stream in streams and (wanted is None or stream in wanted):
            rows.append(event_row(event))
    rows.sort(key=lambda r: (r["migration_id"], r["version"]))
    return rows


def events_frame(store: MigrationStore, migration_ids: Iterable[str] | None = None) -> pd.DataFrame:
    """One row per migration event, in stream order; `migration_ids` narrows it."""
    rows = event_rows(store, migration_ids)
    return pd.DataFrame(rows) if rows else pd.DataFrame(columns=EVENT_BASE_COLUMNS)


def _seconds(start: datetime | None, end: datetime | None) -> float | None:
    if start is None or end is None:
        return None
    return (end - start).total_seconds()


def _converged(migration: Migration) -> bool | None:
    """Did pre-copy reach switch-over on its own? Unknown until the migration ended."""
    if not migration.is_terminal:
        return None
    forced = migration.force_complete_requested_by or migration.timeout_action
    return migration.status is Status.COMPLETED and not forced
