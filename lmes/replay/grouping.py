"""Records into migrations: which log lines belong to which live migration.

Nova passes the API request's context through the conductor to both computes, so one request id
usually ties a migration's lines together on every host; but not every line has one (lifecycle
events, traceback lines), not every line names its instance (the destination's
`pre_live_migration data is …`), an abort or force-complete arrives under a request id of its
own, and one instance may be migrated many times in one log. The `Grouper` therefore links
request ids and instances as it goes, parks instance-less lines under their request id until a
migration claims it, and finalises a migration once it is over and the stream has moved on
(`settle_s` of log time, long enough for a host whose clock is hours off to catch up), so that
memory stays bounded however long the logs are.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from logs_parsers.nova_catalogue import Marker
from logs_parsers.records import Record

DEFAULT_SETTLE_S = 6 * 3600.0
SWEEP_EVERY = timedelta(minutes=10)
BUSY_OPEN = 2000
BUSY_SETTLE = timedelta(minutes=30)
# Markers too frequent to keep (every monitor pass) once their information is known.
_CHATTER = frozenset(
    {
        "downtime_unchanged",
        "downtime_no_step",
        "operation_thread_running",
        "migration_not_running_yet",
    }
)
# Markers that begin a migration: seen on an instance whose last migration is over (or under a
# new request id), they open a new one.
OPENING = frozenset(
    {
        "api_accepted",
        "scheduler_selected",
        "host_skipped",
        "check_destination",
        "check_source",
        "pre_live_migration_start",
        "pre_live_migration_driver_start",
        "live_migration_data",
        "monitor_started",
        "migrate_api_invoked",
        "precheck_failed",
        "conductor_failed",
    }
)
# Markers that only ever follow others: never the first sign of a migration.
_FOLLOWERS = frozenset(
    {"lifecycle", "job_state_inferred", "reset_on_startup", "vif_event_received"}
)
# Markers logged under another context than the migration's (lifecycle events are handled
# outside any request, Neutron's events under its own call): their request id, if any, is not
# the migration's.
_UNLINKED = frozenset(
    {
        "lifecycle",
        "vif_event_received",
        "reset_on_startup",
        "force_complete_requested",
        "abort_requested",
    }
)
# Markers after which Nova writes nothing more for the migration on the source.
_ENDING = frozenset(
    {
        "migration_finished",
        "monitor_done",
        "queued_cancelled",
        "precheck_failed",
        "conductor_failed",
        "driver_failed",
        "pre_live_migration_failed",
        "post_dest_failed",
    }
)
_UUID_IN_DATA = re.compile(r"instance_relative_path='?([0-9a-f]{8}-[0-9a-f-]{27})")


@dataclass(slots=True)
class Sighting:
    """A record that belongs to a live migration, the time it happened on its host's clock,
    and the Nova message it stands for (None for lines kept for their details)."""

    at: datetime
    host: str
    record: Record
    marker: Marker | None


@dataclass
class CollectedMigration:
    """Every sighting of one migration, as the logs hold it (not yet ordered across hosts)."""

    instance: str | None
    request_ids: list[str] = field(default_factory=list)
    sightings: list[Sighting] = field(default_factory=list)
    kinds: set[str] = field(default_factory=set)
    last_seen: datetime | None = None
    ended: bool = False

    def add(self, sighting: Sighting) -> None:
        self.sightings.append(sighting)
        if sighting.marker is not None:
            self.kinds.add(sighting.marker.kind)
            if sighting.marker.kind in _ENDING:
                self.ended = True
        if self.last_seen is None or sighting.at > self.last_seen:
            self.last_seen = sighting.at

    @property
    def has_markers(self) -> bool:
        return bool(self.kinds)


class Grouper:
    """Assigns sightings to migrations incrementally and hands back the finished ones."""

    def __init__(self, settle_s: float = DEFAULT_SETTLE_S) -> None:
        self.settle = timedelta(seconds=settle_s)
        self._by_instance: dict[str, CollectedMigration] = {}
        self._by_request: dict[str, CollectedMigration] = {}
        self._parked: dict[str, list[Sighting]] = {}
        self._parked_at: dict[str, datetime] = {}
        self._open: list[CollectedMigration] = []
        self._now: datetime | None = None
        self._next_sweep: datetime | None = None

    def wants_steps_list(self, record: Record) -> bool:
        """Whether a `Current … steps [...]` line still tells something (the first per
        migration does; the hundreds after it repeat it)."""
        migration = self._find(record)
        return migration is None or "downtime_steps_listed" not in migration.kinds

    def add(self, sighting: Sighting) -> Sequence[CollectedMigration]:
        """Take one sighting; return the migrations that are now over and settled (a sequence
        rather than a generator: most sightings settle nothing, and this runs for each)."""
        now = self._now
        if now is None or sighting.at > now:
            now = self._now = sighting.at
        marker = sighting.marker
        kind = marker.kind if marker is not None else None
        if kind in _CHATTER:
            return ()
        record = sighting.record
        instance = record.instance_uuid or _instance_in(marker)
        request_id = record.request_id
        migration = self._by_request.get(request_id) if request_id else None
        if migration is None and instance:
            migration = self._by_instance.get(instance)
            if (
                migration is not None
                and kind in OPENING
                and self._starts_anew(migration, request_id)
            ):
                migration = None
            elif migration is not None and kind is None and migration.ended:
                return ()  # a later, unrelated operation on the same instance
            if migration is None and kind is not None and kind not in _FOLLOWERS:
                migration = self._open_migration(instance)
        if migration is None and not instance and request_id and kind is not None:
            self._park(request_id, sighting)
        if migration is not None:
            if migration.instance is None and instance:
                migration.instance = instance
                self._by_instance[instance] = migration
            migration.add(sighting)
            if (
                request_id
                and kind is not None
                and kind not in _UNLINKED
                and request_id not in migration.request_ids
            ):
                self._link(request_id, migration)
        if self._next_sweep is not None and now < self._next_sweep:
            return ()
        return self._sweep(now)

    def flush(self) -> Iterator[CollectedMigration]:
        """Every migration still held (the logs ended), oldest first."""
        held = sorted(self._open, key=_first_seen)
        self._open.clear()
        self._by_instance.clear()
        self._by_request.clear()
        for migration in held:
            if migration.has_markers:
                yield migration
        self._parked.clear()

    # -------------------------------------------------------------- internals

    def _find(self, record: Record) -> CollectedMigration | None:
        if record.request_id and record.request_id in self._by_request:
            return self._by_request[record.request_id]
        if record.instance_uuid:
            return self._by_instance.get(record.instance_uuid)
        return None

    def _starts_anew(self, migration: CollectedMigration, request_id: str | None) -> bool:
        """An opening marker for an instance with a migration already: a new migration if the
        old one is over, or if it comes under a request id the old one never used."""
        if migration.ended:
            return True
        return bool(
            request_id and migration.request_ids and request_id not in migration.request_ids
        )

    def _open_migration(self, instance: str) -> CollectedMigration:
        migration = CollectedMigration(instance=instance)
        self._by_instance[instance] = migration
        self._open.append(migration)
        return migration

    def _link(self, request_id: str, migration: CollectedMigration) -> None:
        migration.request_ids.append(request_id)
        self._by_request[request_id] = migration
        for parked in self._parked.pop(request_id, []):
            migration.add(parked)
        self._parked_at.pop(request_id, None)

    def _park(self, request_id: str, sighting: Sighting) -> None:
        self._parked.setdefault(request_id, []).append(sighting)
        self._parked_at.setdefault(request_id, sighting.at)

    def _sweep(self, now: datetime) -> list[CollectedMigration]:
        """Every so often (ten minutes of log time), hand back the migrations that are settled."""
        self._next_sweep = now + SWEEP_EVERY
        horizon = now - self.settle
        # Many migrations at once (an evacuation): the ended ones settle sooner, so that memory
        # stays bounded, at the price of less patience for a host whose clock is far off.
        ended_horizon = now - BUSY_SETTLE if len(self._open) > BUSY_OPEN else horizon
        still_open: list[CollectedMigration] = []
        settled: list[CollectedMigration] = []
        for m in self._open:
            last_seen = m.last_seen
            if last_seen is not None and last_seen < (ended_horizon if m.ended else horizon):
                settled.append(m)
            else:
                still_open.append(m)
        if settled:
            self._open = still_open
            for migration in settled:
                self._forget(migration)
            settled.sort(key=_first_seen)
        for request_id in [r for r, at in self._parked_at.items() if at < horizon]:
            self._parked.pop(request_id, None)
            self._parked_at.pop(request_id, None)
        return [migration for migration in settled if migration.has_markers]

    def _forget(self, migration: CollectedMigration) -> None:
        if migration.instance and self._by_instance.get(migration.instance) is migration:
            del self._by_instance[migration.instance]
        for request_id in migration.request_ids:
            if self._by_request.get(request_id) is migration:
                del self._by_request[request_id]


def _first_seen(migration: CollectedMigration) -> datetime:
    return migration.sightings[0].at


def _instance_in(marker: Marker | None) -> str | None:
    """The instance named inside a migrate_data payload (`instance_relative_path='<uuid>'`)."""
    if marker is None or not marker.data:
        return None
    match = _UUID_IN_DATA.search(marker.data)
    return match.group(1) if match else None
