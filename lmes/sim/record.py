"""Turning a simulated migration into an ordinary `Migration` stream (origin `sim`).

The simulator keeps, for each migration, the domain commands its run implies on the simulation
clock: one progress report per round, one downtime increase per ramp step applied, the timeout
and its action, the ending. Here they are applied to a new aggregate with virtual times counted
from a fixed epoch (or the `start` a user gives), so the same analytics read simulated, executed
and replayed migrations alike.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID

from lmes.domain.migration import Migration
from lmes.domain.status import Origin
from lmes.sim.nova import MigrationResult

# Virtual time zero of simulations that are not given a start.
SIM_EPOCH = datetime(2000, 1, 1, tzinfo=UTC)

# Records are written to the store this many migrations per transaction.
STORE_BATCH = 200


def migration_stream(
    result: MigrationResult,
    *,
    start: datetime = SIM_EPOCH,
    context: dict[str, Any] | None = None,
    migration_id: UUID | None = None,
) -> Migration:
    """A `Migration` aggregate holding the run's events, not yet saved."""
    at = _clock(start)
    migration = Migration.request(
        instance=result.instance,
        at=at(result.requested_s),
        origin=Origin.SIM,
        source_host=result.source_host,
        requested_dest=None,
        block_migration="false",
        settings=result.settings,
        context={
            "outcome": result.outcome,
            "memory_bytes": result.memory_bytes,
            "copy_s": result.copy_s,
            **(context or {}),
        },
        migration_id=migration_id,
    )
    for at_s, name, fields in sorted(result.commands, key=lambda command: command[0]):
        fields = dict(fields)
        args = fields.pop("_args", [])
        getattr(migration, name)(*args, at=at(at_s), **fields)
    return migration


def store_results(
    store: Any,
    results: Iterable[MigrationResult],
    *,
    start: datetime = SIM_EPOCH,
    context: dict[str, Any] | None = None,
) -> list[UUID]:
    """Save the runs as streams, `STORE_BATCH` migrations per transaction; returns their ids."""
    ids: list[UUID] = []
    batch: list[Migration] = []
    for result in results:
        migration = migration_stream(result, start=start, context=context)
        batch.append(migration)
        ids.append(migration.id)
        if len(batch) >= STORE_BATCH:
            store.add(*batch)
            batch = []
    if batch:
        store.add(*batch)
    return ids


def _clock(start: datetime):
    if start.tzinfo is None or start.utcoffset() is None:
        raise ValueError("the start of a simulation must be timezone-aware")
    start = start.astimezone(UTC)

    def at(seconds: float) -> datetime:
        return start + timedelta(seconds=seconds)

    return at
