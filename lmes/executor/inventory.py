"""What the executor needs to know about every migration, read cheaply from the store.

The queue (how many migrations a source host runs) and recovery (which migrations are not over)
look at all migrations, and a store shared with replays holds many thousands of them. Rebuilding
every aggregate for that costs a second per 50,000 events; reading only the events that change
a status (selected by their topic, in the database) and keeping a small summary does not.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from uuid import UUID

from eventsourcing.utils import get_topic

from lmes.domain.instance import Instance
from lmes.domain.migration import Migration
from lmes.domain.status import Origin, Status
from lmes.store import MigrationStore

PAGE = 1000

_ENTERS: dict[type, Status | None] = {
    Migration.MigrationRequested: Status.ACCEPTED,
    Migration.MigrationQueued: Status.QUEUED,
    Migration.PreparationStarted: Status.PREPARING,
    Migration.MigrationStarted: Status.RUNNING,
    Migration.SwitchedToPostCopy: Status.POST_COPY,
    Migration.Completed: Status.COMPLETED,
    Migration.Cancelled: Status.CANCELLED,
    Migration.Failed: None,  # the event names its status
    Migration.PrecheckFailed: None,
}


@dataclass
class MigrationSummary:
    """A migration's identity, origin, placement and status, without its other events."""

    id: UUID
    instance: str
    origin: Origin
    source_host: str | None
    context: dict[str, Any]
    status: Status = Status.ACCEPTED
    phase_times: dict[str, datetime] = field(default_factory=dict)


def migration_summaries(store: MigrationStore) -> list[MigrationSummary]:
    """Every migration's summary, from the status-changing events only."""
    summaries: dict[UUID, MigrationSummary] = {}
    for event in _events(store, list(_ENTERS)):
        if isinstance(event, Migration.MigrationRequested):
            summaries[event.originator_id] = MigrationSummary(
                id=event.originator_id,
                instance=event.instance,
                origin=Origin(event.origin),
                source_host=event.source_host,
                context=dict(event.context),
            )
        summary = summaries.get(event.originator_id)
        if summary is None:
            continue
        status = _ENTERS[type(event)] or Status(event.status)
        summary.status = status
        summary.phase_times.setdefault(status.value, event.timestamp)
    return list(summaries.values())


def instances_in_migration(store: MigrationStore) -> dict[str, UUID]:
    """Instance name → the migration its task_state `migrating` belongs to."""
    names: dict[UUID, str] = {}
    open_migrations: dict[str, UUID] = {}
    kinds = [Instance.Registered, Instance.MigrationBegan, Instance.MigrationEnded]
    for event in _events(store, kinds):
        if isinstance(event, Instance.Registered):
            names[event.originator_id] = event.name
            continue
        name = names.get(event.originator_id)
        if name is None:
            continue
        if isinstance(event, Instance.MigrationBegan):
            open_migrations[name] = event.migration_id
        else:
            open_migrations.pop(name, None)
    return open_migrations


def _events(store: MigrationStore, kinds: list[type]) -> Iterator[Any]:
    topics = [get_topic(kind) for kind in kinds]
    start = 1
    while True:
        page = store.recorder.select_notifications(start=start, limit=PAGE, topics=topics)
        for notification in page:
            yield store.mapper.to_domain_event(notification)
        if len(page) < PAGE:
            return
        start = page[-1].id + 1
