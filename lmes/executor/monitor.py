"""Watching a running migration job the way Nova's `_live_migration_monitor` does.

Every tick (libvirt's events wake it at once; otherwise every 0.5 s, Nova's poll) the monitor
re-reads the migration from the store (so an `lmes abort` or `lmes force-complete` typed in
another process is seen within one tick), reads the job's stats, and then, as Nova: runs the
queued force-complete, applies the timeout rules, walks the downtime ramp, and records progress.
"""

from __future__ import annotations

import contextlib
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from uuid import UUID

from lmes.domain import policy
from lmes.domain.errors import DomainError
from lmes.domain.migration import Migration
from lmes.domain.settings import Settings
from lmes.domain.status import Status
from lmes.executor.hypervisor import (
    EventKind,
    Hypervisor,
    HypervisorError,
    HypervisorEvent,
    JobStats,
    JobType,
    MigrationRequest,
    PowerState,
)
from lmes.store import MigrationStore

# Nova saves the job's stats every 10 monitor iterations (5 s); lmes also records each new pass.
PROGRESS_EVERY_TICKS = 10
TIMEOUT_ACTOR = "timeout action"


class OutcomeKind(StrEnum):
    COMPLETED = "completed"
    CANCELLED = "cancelled"
    FAILED = "failed"
    ERROR = "error"


@dataclass(frozen=True)
class Outcome:
    """How the job ended, and what the rollback must undo."""

    kind: OutcomeKind
    reason: str | None = None
    by: str | None = None
    stats: JobStats | None = None
    guest_paused: bool = False


@dataclass(frozen=True)
class ProgressView:
    """One tick's picture of the migration, for a progress bar."""

    status: str
    elapsed_s: float
    stats: JobStats
    downtime_limit_ms: int | None
    bandwidth_mib_s: float | None


ProgressListener = Callable[[ProgressView], None]


class Recorder:
    """Records one migration's events through `store.change` (retried on concurrent appends)."""

    def __init__(
        self, store: MigrationStore, migration_id: UUID, clock: Callable[[], datetime]
    ) -> None:
        self.store = store
        self.migration_id = migration_id
        self.clock = clock

    def __call__(self, command: Callable[[Migration, datetime], object]) -> Migration:
        return self.store.change(self.migration_id, lambda m: command(m, self.clock()))

    def migration(self) -> Migration:
        return self.store.migration(self.migration_id)


class Operation(threading.Thread):
    """The thread that calls `migrateToURI3`, which returns only when the job has ended."""

    def __init__(self, source: Hypervisor, request: MigrationRequest, wake: threading.Event):
        super().__init__(name=f"migrate-{request.guest}", daemon=True)
        self.source = source
        self.request = request
        self.wake = wake
        self.error: HypervisorError | None = None
        self.finished = threading.Event()

    def run(self) -> None:
        try:
            self.source.migrate(self.request)
        except HypervisorError as exc:
            self.error = exc
        except Exception as exc:  # a bug in the binding must still end the monitor
            self.error = HypervisorError(f"{type(exc).__name__}: {exc}")
        finally:
            self.finished.set()
            self.wake.set()


class Monitor:
    """The monitor loop of one migration, from its start (or a take-over) to the job's end."""

    def __init__(
        self,
        *,
        record: Recorder,
        source: Hypervisor,
        guest: str,
        settings: Settings,
        post_copy_enabled: bool,
        operation: Operation | None,
        wake: threading.Event,
        vif_events: queue.Queue[str],
        waiting_ports: set[str],
        tick_s: float = 0.5,
        on_progress: ProgressListener | None = None,
    ) -> None:
        self.record = record
        self.source = source
        self.guest = guest
        self.settings = settings
        self.post_copy_enabled = post_copy_enabled
        self.operation = operation
        self.wake = wake
        self.vif_events = vif_events
        self.waiting_ports = set(waiting_ports)
        self.tick_s = tick_s
        self.on_progress = on_progress
        self.vif_deadline = (
            time.monotonic() + settings.vif_plugging_timeout if waiting_ports else None
        )
        self.abort_sent_by: str | None = None
        self.vif_failure: str | None = None
        self.force_complete_done = False
        self.timed_out = False
        self.guest_paused = False
        self.downtime_ms: int | None = None
        self.last_iteration: int | None = None
        self.ticks_since_report = 0
        self.watermark_bytes: int | None = None
        self.progress_time_s = time.monotonic()
        self.previous_remaining_bytes = 0
        self.completed_stats: JobStats | None = None

    # ------------------------------------------------------------- the loop

    def run(self) -> Outcome:
        migration = self.record.migration()
        self.downtime_ms = migration.downtime_limit_ms
        self.force_complete_done = migration.status is Status.POST_COPY or bool(migration.paused_at)
        self.guest_paused = bool(migration.paused_at)
        unsubscribe = self.source.subscribe(self._on_event)
        try:
            while True:
                self.wake.wait(self.tick_s)
                self.wake.clear()
                migration = self.record.migration()
                self._vifs(migration)
                if migration.abort_requested_by and not self.abort_sent_by:
                    self._abort(migration.abort_requested_by)
                stats = self.source.job_stats(self.guest)
                if self._job_over(stats):
                    return self._outcome()
                if stats.job_type is JobType.UNBOUNDED:
                    self._unbounded(migration, stats)
        finally:
            unsubscribe()

    def _job_over(self, stats: JobStats) -> bool:
        if self.operation is not None:
            return self.operation.finished.is_set()
        return stats.job_type is not JobType.UNBOUNDED and stats.job_type is not JobType.BOUNDED

    def _unbounded(self, migration: Migration, stats: JobStats) -> None:
        now_s = time.monotonic()
        elapsed_s = migration.elapsed_s(self.record.clock())
        remaining = (stats.memory_remaining_bytes or 0) + (stats.disk_remaining_bytes or 0)
        if policy.advances_progress_watermark(self.watermark_bytes, remaining):
            self.watermark_bytes = remaining
            self.progress_time_s = now_s
        self._run_tasks(migration, elapsed_s)
        self._timeout(migration, elapsed_s, now_s)
        self._auto_post_copy(migration, stats, elapsed_s)
        self._downtime(migration, elapsed_s)
        self._progress(migration, stats, elapsed_s)

    # ------------------------------------------------------------- Nova's steps

    def _run_tasks(self, migration: Migration, elapsed_s: float) -> None:
        """Nova's `run_tasks`: a force-complete switches to post-copy, or pauses the guest."""
        if not migration.force_complete_requested_by or self.force_complete_done:
            return
        self.force_complete_done = True
        tasks = policy.run_tasks(["force-complete"], migration.status.value, self.post_copy_enabled)
        if tasks.switch_to_post_copy:
            self._switch_to_post_copy(elapsed_s)
        elif tasks.pause:
            try:
                self.source.pause(self.guest)
            except HypervisorError:
                return
            self.guest_paused = True
            self.record(
                lambda m, at: m.pause_guest(elapsed_s=elapsed_s, why="force-complete", at=at)
            )

    def _switch_to_post_copy(self, elapsed_s: float) -> None:
        try:
            self.source.start_post_copy(self.guest)
        except HypervisorError:
            return
        self.record(lambda m, at: m.switch_to_post_copy(elapsed_s=elapsed_s, at=at))

    def _timeout(self, migration: Migration, elapsed_s: float, now_s: float) -> None:
        if self.timed_out or migration.status is not Status.RUNNING:
            return
        verdict = policy.timeout_verdict(
            self.settings.release,
            elapsed_s=elapsed_s,
            completion_timeout_s=migration.completion_timeout_s or 0,
            status=migration.status.value,
            timeout_action=self.settings.live_migration_timeout_action,
            now_s=now_s,
            progress_time_s=self.progress_time_s,
            progress_timeout_s=self.settings.live_migration_progress_timeout,
        )
        if verdict is policy.TimeoutVerdict.CONTINUE:
            return
        self.timed_out = True
        action = str(verdict)
        self.record(
            lambda m, at: m.reach_completion_timeout(elapsed_s=elapsed_s, action=action, at=at)
        )
        if verdict is policy.TimeoutVerdict.ABORT:
            self._abort(TIMEOUT_ACTOR)
        elif not migration.force_complete_requested_by:
            self.record(lambda m, at: m.request_force_complete(by=TIMEOUT_ACTOR, at=at))
            self.wake.set()

    def _auto_post_copy(self, migration: Migration, stats: JobStats, elapsed_s: float) -> None:
        remaining = stats.memory_remaining_bytes or 0
        switch = policy.auto_switch_to_postcopy(
            self.settings.release,
            post_copy_enabled=self.post_copy_enabled,
            memory_iteration=stats.iteration or 0,
            current_data_remaining_bytes=remaining,
            previous_data_remaining_bytes=self.previous_remaining_bytes,
            status=migration.status.value,
        )
        self.previous_remaining_bytes = remaining
        if switch and migration.status is Status.RUNNING:
            self.force_complete_done = True
            self._switch_to_post_copy(elapsed_s)

    def _downtime(self, migration: Migration, elapsed_s: float) -> None:
        if migration.status is not Status.RUNNING or not migration.downtime_steps:
            return
        steps = [(int(s), int(ms)) for s, ms in migration.downtime_steps]
        new_ms = policy.update_downtime(self.downtime_ms, steps, elapsed_s)
        if new_ms is None or new_ms == self.downtime_ms:
            return
        step = policy.current_step(steps, elapsed_s)
        index = steps.index(step) if step is not None else None
        # Nova warns "Unable to increase max downtime" on an error and keeps the new value.
        with contextlib.suppress(HypervisorError):
            self.source.set_max_downtime(self.guest, new_ms)
        self.downtime_ms = new_ms
        self.record(
            lambda m, at: m.increase_downtime(new_ms, elapsed_s=elapsed_s, step_index=index, at=at)
        )

    def _progress(self, migration: Migration, stats: JobStats, elapsed_s: float) -> None:
        self.ticks_since_report += 1
        if self.on_progress is not None:
            self.on_progress(
                ProgressView(
                    status=migration.status.value,
                    elapsed_s=elapsed_s,
                    stats=stats,
                    downtime_limit_ms=self.downtime_ms,
                    bandwidth_mib_s=migration.bandwidth_mib_s,
                )
            )
        if stats.memory_total_bytes in (None, 0):
            return
        if (
            stats.iteration == self.last_iteration
            and self.ticks_since_report < PROGRESS_EVERY_TICKS
        ):
            return
        self.last_iteration = stats.iteration
        self.ticks_since_report = 0
        with contextlib.suppress(DomainError):
            self.record(
                lambda m, at: m.report_progress(
                    elapsed_s=elapsed_s,
                    memory_total_bytes=stats.memory_total_bytes,
                    memory_processed_bytes=stats.memory_processed_bytes,
                    memory_remaining_bytes=stats.memory_remaining_bytes,
                    dirty_rate_bytes_s=stats.dirty_rate_bytes_s,
                    iteration=stats.iteration,
                    disk_total_bytes=stats.disk_total_bytes,
                    disk_processed_bytes=stats.disk_processed_bytes,
                    disk_remaining_bytes=stats.disk_remaining_bytes,
                    at=at,
                )
            )

    # ------------------------------------------------------------- VIFs, abort, events

    def _vifs(self, migration: Migration) -> None:
        """Record plugged ports; once all are in, raise the bandwidth (Nova's slow start)."""
        while True:
            try:
                port = self.vif_events.get_nowait()
            except queue.Empty:
                break
            if port not in migration.vifs_plugged:
                with contextlib.suppress(DomainError):
                    self.record(lambda m, at, port=port: m.plug_vif(port, at=at))
            if port in self.waiting_ports:
                self.waiting_ports.discard(port)
                if not self.waiting_ports:
                    self._raise_bandwidth()
        if self.waiting_ports and self.vif_deadline and time.monotonic() > self.vif_deadline:
            missing = ", ".join(sorted(self.waiting_ports))
            self.waiting_ports.clear()
            if self.settings.vif_plugging_is_fatal:
                self.vif_failure = (
                    f"Timeout waiting for VIF plugging events ({missing}), canceling migration"
                )
                self._abort(None)
            else:
                self._raise_bandwidth()

    def _raise_bandwidth(self) -> None:
        bandwidth = self.settings.live_migration_bandwidth
        try:
            self.source.set_max_speed(self.guest, bandwidth)
            self.record(lambda m, at: m.change_bandwidth(bandwidth, at=at))
        except (HypervisorError, DomainError):
            pass

    def _abort(self, by: str | None) -> None:
        """Nova's `live_migration_abort`: cancel libvirt's job (the guest stays on the source)."""
        try:
            self.source.abort_job(self.guest)
        except HypervisorError:
            return
        self.abort_sent_by = by or "executor"

    def _on_event(self, event: HypervisorEvent) -> None:
        if event.guest != self.guest:
            return
        if event.kind is EventKind.JOB_COMPLETED:
            stats = event.detail.get("stats") or {}
            if stats:
                self.completed_stats = JobStats.from_libvirt(stats, JobType.COMPLETED)
        self.wake.set()

    # ------------------------------------------------------------- the end

    def _outcome(self) -> Outcome:
        if self.operation is not None:
            error = self.operation.error
            succeeded = error is None
            reason = None if error is None else str(error)
        else:
            succeeded = self._source_shows_completion()
            reason = None if succeeded else "the migration job ended with the guest on the source"
        if succeeded:
            return Outcome(
                OutcomeKind.COMPLETED, stats=self.completed_stats, guest_paused=self.guest_paused
            )
        if self.vif_failure:
            return Outcome(
                OutcomeKind.ERROR, reason=self.vif_failure, guest_paused=self.guest_paused
            )
        if self.abort_sent_by:
            return Outcome(
                OutcomeKind.CANCELLED,
                reason=reason,
                by=self.abort_sent_by,
                guest_paused=self.guest_paused,
            )
        return Outcome(OutcomeKind.FAILED, reason=reason, guest_paused=self.guest_paused)

    def _source_shows_completion(self) -> bool:
        """Nova's `find_job_type`: a guest gone or shut off on the source has left it."""
        try:
            guest = self.source.guest(self.guest)
        except HypervisorError:
            return False
        return guest is None or guest.power_state is PowerState.SHUTOFF
