"""The `Migration` aggregate: one live migration, whoever produced it.

Its state changes only by applying its events; each command checks Nova's rules first and
raises a `DomainError` (recording nothing) when Nova would refuse. Every event carries, as its
`timestamp`, the time the thing happened: the executor's clock, the log's time for a replay,
the virtual clock of a simulation. Streams record their origin so one analytics layer reads all.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any
from uuid import UUID, uuid4, uuid5

from eventsourcing.domain import Aggregate

from lmes.domain.errors import IllegalTransition
from lmes.domain.status import (
    ABORTABLE,
    ENTERED_FROM,
    FORCE_COMPLETABLE,
    Origin,
    Status,
)

# Namespace for identities derived from what a producer knows (replayed logs, seeded runs),
# so the same input always names the same stream and a second replay creates no duplicate.
MIGRATION_NAMESPACE = UUID("6c0f6f3e-5d37-4d63-9a55-8a2b1d0f4e21")

BLOCK_MIGRATION_CHOICES = ("auto", "true", "false")


def migration_id_for(key: str) -> UUID:
    """The stable identity of the migration a producer identifies by `key`."""
    return uuid5(MIGRATION_NAMESPACE, key)


class Migration(Aggregate):
    """A live migration of one instance from a source host to a destination host."""

    # ---------------------------------------------------------------- events

    class MigrationRequested(Aggregate.Created):
        instance: str
        source_host: str | None
        requested_dest: str | None
        block_migration: str
        settings: dict[str, Any]
        origin: str
        context: dict[str, Any]

    class DestinationSelected(Aggregate.Event):
        host: str
        attempt: int

        def apply(self, aggregate: Migration) -> None:
            aggregate.dest_host = self.host
            aggregate.attempts = max(aggregate.attempts, self.attempt)

    class DestinationRejected(Aggregate.Event):
        host: str
        attempt: int
        check: str
        reason: str

        def apply(self, aggregate: Migration) -> None:
            aggregate.rejected.append(
                {"host": self.host, "check": self.check, "reason": self.reason}
            )
            aggregate.attempts = max(aggregate.attempts, self.attempt)
            if aggregate.dest_host == self.host:
                aggregate.dest_host = None

    class PrecheckFailed(Aggregate.Event):
        check: str
        reason: str
        status: str

        def apply(self, aggregate: Migration) -> None:
            aggregate._enter(Status(self.status), self.timestamp)
            aggregate.failure = {"phase": "checks", "check": self.check, "reason": self.reason}

    class MigrationQueued(Aggregate.Event):
        data_gb: float
        downtime_steps: list[list[int]]
        completion_timeout_s: int

        def apply(self, aggregate: Migration) -> None:
            aggregate._enter(Status.QUEUED, self.timestamp)
            aggregate.data_gb = self.data_gb
            aggregate.downtime_steps = [list(step) for step in self.downtime_steps]
            aggregate.completion_timeout_s = self.completion_timeout_s

    class PreparationStarted(Aggregate.Event):
        dest_host: str | None

        def apply(self, aggregate: Migration) -> None:
            aggregate._enter(Status.PREPARING, self.timestamp)
            if self.dest_host:
                aggregate.dest_host = self.dest_host

    class PreparationCompleted(Aggregate.Event):
        duration_s: float
        details: dict[str, Any]

        def apply(self, aggregate: Migration) -> None:
            aggregate.phase_times["prepared"] = self.timestamp

    class MigrationStarted(Aggregate.Event):
        flags: list[str]
        bandwidth_mib_s: float | None

        def apply(self, aggregate: Migration) -> None:
            aggregate._enter(Status.RUNNING, self.timestamp)
            aggregate.flags = list(self.flags)
            aggregate.bandwidth_mib_s = self.bandwidth_mib_s

    class VifPlugged(Aggregate.Event):
        port_id: str

        def apply(self, aggregate: Migration) -> None:
            aggregate.vifs_plugged.append(self.port_id)
            aggregate.phase_times.setdefault("vif_plugged", self.timestamp)

    class BandwidthChanged(Aggregate.Event):
        bandwidth_mib_s: float

        def apply(self, aggregate: Migration) -> None:
            aggregate.bandwidth_mib_s = self.bandwidth_mib_s

    class DowntimeIncreased(Aggregate.Event):
        downtime_ms: int
        elapsed_s: float
        step_index: int | None

        def apply(self, aggregate: Migration) -> None:
            aggregate.downtime_limit_ms = self.downtime_ms
            aggregate.downtime_applied.append([self.elapsed_s, self.downtime_ms])

    class ProgressReported(Aggregate.Event):
        elapsed_s: float
        memory_total_bytes: int | None
        memory_processed_bytes: int | None
        memory_remaining_bytes: int | None
        dirty_rate_bytes_s: float | None
        iteration: int | None
        disk_total_bytes: int | None
        disk_processed_bytes: int | None
        disk_remaining_bytes: int | None

        def apply(self, aggregate: Migration) -> None:
            aggregate.progress_reports += 1
            aggregate.last_progress = {
                "elapsed_s": self.elapsed_s,
                "memory_total_bytes": self.memory_total_bytes,
                "memory_processed_bytes": self.memory_processed_bytes,
                "memory_remaining_bytes": self.memory_remaining_bytes,
                "iteration": self.iteration,
            }

    class ForceCompleteRequested(Aggregate.Event):
        by: str

        def apply(self, aggregate: Migration) -> None:
            aggregate.force_complete_requested_by = self.by

    class AbortRequested(Aggregate.Event):
        by: str

        def apply(self, aggregate: Migration) -> None:
            aggregate.abort_requested_by = self.by

    class SwitchedToPostCopy(Aggregate.Event):
        elapsed_s: float

        def apply(self, aggregate: Migration) -> None:
            aggregate._enter(Status.POST_COPY, self.timestamp)

    class GuestPaused(Aggregate.Event):
        elapsed_s: float
        why: str

        def apply(self, aggregate: Migration) -> None:
            aggregate.paused_at = self.timestamp

    class CompletionTimeoutReached(Aggregate.Event):
        elapsed_s: float
        action: str

        def apply(self, aggregate: Migration) -> None:
            aggregate.timeout_action = self.action

    class Completed(Aggregate.Event):
        total_s: float | None
        downtime_ms: float | None
        bytes_sent: int | None
        iterations: int | None
        new_host: str | None

        def apply(self, aggregate: Migration) -> None:
            aggregate._enter(Status.COMPLETED, self.timestamp)
            aggregate.total_s = self.total_s
            aggregate.downtime_ms = self.downtime_ms
            aggregate.bytes_sent = self.bytes_sent
            aggregate.iterations = self.iterations
            if self.new_host:
                aggregate.dest_host = self.new_host

    class Failed(Aggregate.Event):
        phase: str
        reason: str
        traceback_summary: str | None
        status: str

        def apply(self, aggregate: Migration) -> None:
            aggregate._enter(Status(self.status), self.timestamp)
            aggregate.failure = {
                "phase": self.phase,
                "reason": self.reason,
                "traceback": self.traceback_summary,
            }

    class Cancelled(Aggregate.Event):
        elapsed_s: float | None
        by: str

        def apply(self, aggregate: Migration) -> None:
            aggregate._enter(Status.CANCELLED, self.timestamp)
            aggregate.cancelled_by = self.by

    class RolledBack(Aggregate.Event):
        cleaned: list[str]

        def apply(self, aggregate: Migration) -> None:
            aggregate.rolled_back = list(self.cleaned)

    # ---------------------------------------------------------------- creation

    def __init__(
        self,
        instance: str,
        source_host: str | None,
        requested_dest: str | None,
        block_migration: str,
        settings: dict[str, Any],
        origin: str,
        context: dict[str, Any],
    ) -> None:
        self.instance = instance
        self.source_host = source_host
        self.requested_dest = requested_dest
        self.dest_host: str | None = None
        self.block_migration = block_migration
        self.settings = dict(settings)
        self.origin = Origin(origin)
        self.context = dict(context)
        self.status = Status.ACCEPTED
        self.requested_at: datetime = self.created_on
        self.phase_times: dict[str, datetime] = {"accepted": self.created_on}
        self.ended_at: datetime | None = None
        self.attempts = 0
        self.rejected: list[dict[str, str]] = []
        self.data_gb: float | None = None
        self.downtime_steps: list[list[int]] = []
        self.completion_timeout_s: int | None = None
        self.flags: list[str] = []
        self.bandwidth_mib_s: float | None = None
        self.vifs_plugged: list[str] = []
        self.downtime_limit_ms: int | None = None
        self.downtime_applied: list[list[float]] = []
        self.progress_reports = 0
        self.last_progress: dict[str, Any] | None = None
        self.force_complete_requested_by: str | None = None
        self.abort_requested_by: str | None = None
        self.paused_at: datetime | None = None
        self.timeout_action: str | None = None
        self.total_s: float | None = None
        self.downtime_ms: float | None = None
        self.bytes_sent: int | None = None
        self.iterations: int | None = None
        self.failure: dict[str, Any] | None = None
        self.cancelled_by: str | None = None
        self.rolled_back: list[str] | None = None

    @classmethod
    def create_id(cls, **_: Any) -> UUID:
        return uuid4()

    @classmethod
    def request(
        cls,
        *,
        instance: str,
        at: datetime,
        origin: Origin | str,
        source_host: str | None = None,
        requested_dest: str | None = None,
        block_migration: str = "auto",
        settings: dict[str, Any] | None = None,
        context: dict[str, Any] | None = None,
        migration_id: UUID | None = None,
    ) -> Migration:
        """A new migration, `accepted` as Nova's conductor records it."""
        if not instance:
            raise IllegalTransition("a migration needs an instance")
        if str(block_migration) not in BLOCK_MIGRATION_CHOICES:
            raise IllegalTransition(
                f"block_migration must be one of {', '.join(BLOCK_MIGRATION_CHOICES)}, "
                f"not {block_migration!r}"
            )
        _require_aware(at)
        return cls._create(
            cls.MigrationRequested,
            id=migration_id or uuid4(),
            timestamp=at,
            instance=instance,
            source_host=source_host,
            requested_dest=requested_dest,
            block_migration=str(block_migration),
            settings=dict(settings or {}),
            origin=str(Origin(origin)),
            context=dict(context or {}),
        )

    # ---------------------------------------------------------------- commands

    def select_destination(self, host: str, *, attempt: int, at: datetime) -> None:
        self._require({Status.ACCEPTED}, "select a destination")
        if host == self.source_host:
            raise IllegalTransition(f"destination {host} is the source host")
        self._trigger(self.DestinationSelected, at, host=host, attempt=attempt)

    def reject_destination(
        self, host: str, *, attempt: int, check: str, reason: str, at: datetime
    ) -> None:
        self._require({Status.ACCEPTED}, "reject a destination")
        self._trigger(
            self.DestinationRejected, at, host=host, attempt=attempt, check=check, reason=reason
        )

    def fail_precheck(
        self, *, check: str, reason: str, at: datetime, retries_exhausted: bool = False
    ) -> None:
        """Conductor checks failed: `error`, or `failed` when the retries ran out."""
        status = Status.FAILED if retries_exhausted else Status.ERROR
        self._require({Status.ACCEPTED}, "fail its checks")
        self._trigger(self.PrecheckFailed, at, check=check, reason=reason, status=str(status))

    def queue(
        self,
        *,
        data_gb: float,
        downtime_steps: list[tuple[int, int]] | list[list[int]],
        completion_timeout_s: int,
        at: datetime,
    ) -> None:
        self._require_entry(Status.QUEUED, "be queued")
        steps = [[int(s), int(ms)] for s, ms in downtime_steps]
        self._trigger(
            self.MigrationQueued,
            at,
            data_gb=float(data_gb),
            downtime_steps=steps,
            completion_timeout_s=int(completion_timeout_s),
        )

    def start_preparation(self, *, at: datetime, dest_host: str | None = None) -> None:
        self._require_entry(Status.PREPARING, "start preparing the destination")
        self._trigger(self.PreparationStarted, at, dest_host=dest_host)

    def complete_preparation(
        self, *, duration_s: float, at: datetime, details: dict[str, Any] | None = None
    ) -> None:
        self._require({Status.PREPARING}, "complete preparation")
        self._trigger(
            self.PreparationCompleted, at, duration_s=float(duration_s), details=dict(details or {})
        )

    def start(
        self, *, at: datetime, flags: list[str] | None = None, bandwidth_mib_s: float | None = None
    ) -> None:
        self._require_entry(Status.RUNNING, "start copying memory")
        self._trigger(
            self.MigrationStarted, at, flags=list(flags or []), bandwidth_mib_s=bandwidth_mib_s
        )

    def plug_vif(self, port_id: str, *, at: datetime) -> None:
        self._require({Status.PREPARING, Status.RUNNING}, "plug a VIF")
        self._trigger(self.VifPlugged, at, port_id=port_id)

    def change_bandwidth(self, bandwidth_mib_s: float, *, at: datetime) -> None:
        self._require({Status.RUNNING, Status.POST_COPY}, "change its bandwidth")
        self._trigger(self.BandwidthChanged, at, bandwidth_mib_s=float(bandwidth_mib_s))

    def increase_downtime(
        self, downtime_ms: int, *, elapsed_s: float, at: datetime, step_index: int | None = None
    ) -> None:
        self._require({Status.RUNNING}, "change its downtime limit")
        self._trigger(
            self.DowntimeIncreased,
            at,
            downtime_ms=int(downtime_ms),
            elapsed_s=float(elapsed_s),
            step_index=step_index,
        )

    def report_progress(
        self,
        *,
        elapsed_s: float,
        at: datetime,
        memory_total_bytes: int | None = None,
        memory_processed_bytes: int | None = None,
        memory_remaining_bytes: int | None = None,
        dirty_rate_bytes_s: float | None = None,
        iteration: int | None = None,
        disk_total_bytes: int | None = None,
        disk_processed_bytes: int | None = None,
        disk_remaining_bytes: int | None = None,
    ) -> None:
        self._require({Status.RUNNING, Status.POST_COPY}, "report progress")
        self._trigger(
            self.ProgressReported,
            at,
            elapsed_s=float(elapsed_s),
            memory_total_bytes=memory_total_bytes,
            memory_processed_bytes=memory_processed_bytes,
            memory_remaining_bytes=memory_remaining_bytes,
            dirty_rate_bytes_s=dirty_rate_bytes_s,
            iteration=iteration,
            disk_total_bytes=disk_total_bytes,
            disk_processed_bytes=disk_processed_bytes,
            disk_remaining_bytes=disk_remaining_bytes,
        )

    def request_force_complete(self, *, by: str, at: datetime) -> None:
        """Nova's force-complete: only a `running` migration (not queued, not post-copy)."""
        self._require(FORCE_COMPLETABLE, "be forced to complete")
        self._trigger(self.ForceCompleteRequested, at, by=by)

    def request_abort(self, *, by: str, at: datetime) -> None:
        """Nova's abort: queued, preparing or running; a post-copy migration cannot go back."""
        self._require(ABORTABLE, "be aborted")
        self._trigger(self.AbortRequested, at, by=by)

    def switch_to_post_copy(self, *, elapsed_s: float, at: datetime) -> None:
        self._require_entry(Status.POST_COPY, "switch to post-copy")
        self._trigger(self.SwitchedToPostCopy, at, elapsed_s=float(elapsed_s))

    def pause_guest(self, *, elapsed_s: float, why: str, at: datetime) -> None:
        self._require({Status.RUNNING, Status.POST_COPY}, "pause its guest")
        self._trigger(self.GuestPaused, at, elapsed_s=float(elapsed_s), why=why)

    def reach_completion_timeout(self, *, elapsed_s: float, action: str, at: datetime) -> None:
        if action not in ("abort", "force_complete"):
            raise IllegalTransition(f"unknown timeout action {action!r}")
        self._require({Status.RUNNING}, "time out")
        self._trigger(self.CompletionTimeoutReached, at, elapsed_s=float(elapsed_s), action=action)

    def complete(
        self,
        *,
        at: datetime,
        total_s: float | None = None,
        downtime_ms: float | None = None,
        bytes_sent: int | None = None,
        iterations: int | None = None,
        new_host: str | None = None,
    ) -> None:
        self._require_entry(Status.COMPLETED, "complete")
        self._trigger(
            self.Completed,
            at,
            total_s=total_s,
            downtime_ms=downtime_ms,
            bytes_sent=bytes_sent,
            iterations=iterations,
            new_host=new_host,
        )

    def fail(
        self,
        *,
        phase: str,
        reason: str,
        at: datetime,
        status: Status | str = Status.FAILED,
        traceback_summary: str | None = None,
    ) -> None:
        """End in `failed` (rollback, Nova >= 22) or `error` (driver exception, <= 21, restart)."""
        status = Status(status)
        if status not in (Status.FAILED, Status.ERROR):
            raise IllegalTransition(f"a failure ends in failed or error, not {status}")
        self._require_entry(status, f"end in {status}")
        self._trigger(
            self.Failed,
            at,
            phase=phase,
            reason=reason,
            traceback_summary=traceback_summary,
            status=str(status),
        )

    def cancel(self, *, by: str, at: datetime, elapsed_s: float | None = None) -> None:
        self._require_entry(Status.CANCELLED, "be cancelled")
        self._trigger(self.Cancelled, at, elapsed_s=elapsed_s, by=by)

    def roll_back(self, *, cleaned: list[str], at: datetime) -> None:
        """Record what was cleaned on the destination; the terminal event follows."""
        self._require(
            {Status.QUEUED, Status.PREPARING, Status.RUNNING, Status.POST_COPY}, "roll back"
        )
        self._trigger(self.RolledBack, at, cleaned=list(cleaned))

    # ---------------------------------------------------------------- queries

    @property
    def is_terminal(self) -> bool:
        return self.status.is_terminal

    def elapsed_s(self, now: datetime) -> float:
        """Seconds since the memory copy started (Nova's `elapsed`), 0 before it started."""
        running = self.phase_times.get(Status.RUNNING.value)
        return max(0.0, (now - running).total_seconds()) if running else 0.0

    # ---------------------------------------------------------------- internals

    def _require(self, allowed: set[Status] | frozenset[Status], what: str) -> None:
        if self.status not in allowed:
            allowed_words = ", ".join(sorted(s.value for s in allowed))
            raise IllegalTransition(
                f"migration {self.id} is {self.status.value}: it cannot {what} "
                f"(only when {allowed_words})"
            )

    def _require_entry(self, target: Status, what: str) -> None:
        self._require(ENTERED_FROM[target], what)

    def _trigger(self, event_class: type[Aggregate.Event], at: datetime, **fields: Any) -> None:
        _require_aware(at)
        self.trigger_event(event_class, timestamp=at, **fields)

    def _enter(self, status: Status, at: datetime) -> None:
        self.status = status
        self.phase_times.setdefault(status.value, at)
        if status.is_terminal:
            self.ended_at = at


def _require_aware(at: datetime) -> None:
    if at.tzinfo is None or at.utcoffset() is None:
        raise IllegalTransition("event times must be timezone-aware (UTC inside lmes)")
