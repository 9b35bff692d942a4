"""Reconciling migrations whose executor died, with what libvirt says on both hosts.

An executor can be killed in any phase. The store then holds a migration that is not terminal
and whose lease nobody holds; libvirt holds the truth about the guest. Recovery ends each such
migration the way Nova's compute restart (`_init_instance` → `_reset_live_migration`) would,
but first asks libvirt: a job still running is taken over (libvirt's peer-to-peer job carries on
without its client), a guest already on the destination is a completed migration, and anything
else is rolled back to the source with status `error`. Never a guest on two hosts, never an
instance left `migrating`.
"""

from __future__ import annotations

import queue
import socket
import threading
from collections.abc import Callable
from dataclasses import dataclass
from uuid import UUID

from lmes.domain.migration import Migration
from lmes.domain.settings import Settings
from lmes.domain.status import Origin, Status
from lmes.executor.hooks import HookContext
from lmes.executor.hypervisor import (
    INSTANCES_PATH,
    GuestInfo,
    HostUnreachable,
    HypervisorError,
    JobType,
    MigrationFlag,
    PowerState,
)
from lmes.executor.inventory import instances_in_migration, migration_summaries
from lmes.executor.lease import Lease, try_lease
from lmes.executor.monitor import Monitor, Outcome, OutcomeKind, Recorder
from lmes.executor.workflow import (
    Runtime,
    clean_destination,
    end_instance_migration,
    finish_completed,
    finish_rolled_back,
    instance_dir,
    resume_if_paused,
)

RESTART_REASON = "the executor running this migration died; reset as Nova's compute restart does"


@dataclass(frozen=True)
class Recovered:
    """What recovery did to one migration."""

    migration_id: UUID
    instance: str
    was: str
    action: str
    status: str


def executor_host() -> str:
    return socket.gethostname()


def orphaned(runtime: Runtime, only: UUID | None = None) -> list[Migration]:
    """Executor migrations of this machine that are not terminal and whose executor is gone."""
    found = []
    for summary in migration_summaries(runtime.store):
        if only is not None and summary.id != only:
            continue
        if summary.origin is not Origin.EXECUTOR or summary.status.is_terminal:
            continue
        if summary.context.get("executor_host", executor_host()) != executor_host():
            continue
        found.append(runtime.store.migration(summary.id))
    return found


def recover(
    runtime: Runtime,
    *,
    take_over: bool = True,
    only: UUID | None = None,
    lease: Lease | None = None,
    hand_over: Callable[[Lease], int] | None = None,
) -> list[Recovered]:
    """Reconcile every orphaned migration (those whose lease can be taken); then clear the
    task_state of instances whose migration has ended.

    A job libvirt still runs is monitored here (`take_over`), or given with its lease to a
    background executor (`hand_over`, which returns its pid), or else aborted. `lease` is one
    this process already holds (a background executor taking over its migration).
    """
    results = []
    for migration in orphaned(runtime, only):
        held = lease if lease is not None and lease.migration_id == migration.id else None
        held = held or try_lease(migration.id)
        if held is None:
            continue
        handing = None if hand_over is None else (lambda held=held: hand_over(held))
        try:
            reconciler = Reconciler(runtime, migration.id)
            results.append(reconciler.reconcile(take_over=take_over, hand_over=handing))
        finally:
            if held is not lease:
                held.release()
    release_stuck_instances(runtime)
    return results


def release_stuck_instances(runtime: Runtime) -> None:
    """Clear the task_state of instances whose migration has ended (a crash between the two)."""
    store = runtime.store
    for name, migration_id in instances_in_migration(store).items():
        if not store.has(migration_id):
            continue
        migration = store.migration(migration_id)
        if migration.is_terminal:
            host = migration.dest_host if migration.status is Status.COMPLETED else None
            end_instance_migration(
                store,
                name,
                migration.id,
                host or migration.source_host or "",
                runtime.clock(),
            )


class Reconciler:
    """Brings one orphaned migration to a terminal status consistent with libvirt."""

    def __init__(self, runtime: Runtime, migration_id: UUID) -> None:
        self.runtime = runtime
        self.cloud = runtime.cloud
        self.record = Recorder(runtime.store, migration_id, runtime.clock)
        self.migration = self.record.migration()
        self.settings = Settings.from_dict(self.migration.settings)
        self.instance = self.migration.instance
        self.source_host = self.migration.source_host or ""
        self.dest_host = self.migration.dest_host

    def reconcile(
        self, *, take_over: bool, hand_over: Callable[[], int] | None = None
    ) -> Recovered:
        was = self.migration.status
        if was is Status.ACCEPTED:
            self._fail(phase="checks", cleaned=None)
            action = "failed its checks"
        elif was in (Status.QUEUED, Status.PREPARING):
            cleaned = self._clean_interrupted() if was is Status.PREPARING else []
            self._fail(phase=was.value, cleaned=cleaned)
            action = "rolled back"
        else:
            action = self._reconcile_running(take_over, hand_over)
        migration = self.record.migration()
        if not migration.is_terminal:
            return Recovered(migration.id, self.instance, was.value, action, migration.status.value)
        host = migration.dest_host if migration.status is Status.COMPLETED else self.source_host
        end_instance_migration(
            self.runtime.store,
            self.instance,
            migration.id,
            host or self.source_host,
            self.runtime.clock(),
        )
        return Recovered(migration.id, self.instance, was.value, action, migration.status.value)

    # ------------------------------------------------------------- running

    def _reconcile_running(self, take_over: bool, hand_over: Callable[[], int] | None) -> str:
        source = self.cloud.hypervisor(self.source_host)
        source_guest = source.guest(self.instance)
        job = source.job_stats(self.instance) if source_guest is not None else None
        if job is not None and job.job_type in (JobType.UNBOUNDED, JobType.BOUNDED):
            if hand_over is not None:
                return f"still running: handed over to executor pid {hand_over()}"
            if take_over:
                return self._take_over()
            source.abort_job(self.instance)  # Nova >= 21 aborts the job on compute restart
            self._wait_for_job_end()
            source_guest = source.guest(self.instance)
        dest_guest = self._dest_guest()
        if (
            dest_guest is not None
            and dest_guest.power_state is PowerState.RUNNING
            and (source_guest is None or source_guest.power_state is not PowerState.RUNNING)
        ):
            self._complete()
            return "completed (guest found on the destination)"
        if source_guest is not None and source_guest.power_state in (
            PowerState.RUNNING,
            PowerState.PAUSED,
        ):
            if self.migration.paused_at:
                resume_if_paused(source, self.instance)
            self._fail(phase="running", cleaned=self._clean_interrupted())
            return "rolled back (guest still on the source)"
        self._fail(phase="running", cleaned=[])
        return "failed (guest running on neither host)"

    def _take_over(self) -> str:
        """Monitor the job that libvirt still runs, then end it as the executor would have."""
        wake = threading.Event()
        monitor = Monitor(
            record=self.record,
            source=self.cloud.hypervisor(self.source_host),
            guest=self.instance,
            settings=self.settings,
            post_copy_enabled=MigrationFlag.POSTCOPY.value in self.migration.flags,
            operation=None,
            wake=wake,
            vif_events=queue.Queue(),
            waiting_ports=set(),
            tick_s=self.runtime.tick_s,
        )
        outcome = monitor.run()
        if outcome.kind is OutcomeKind.COMPLETED:
            self._complete(outcome)
            return "taken over, completed"
        finish_rolled_back(
            self.record,
            self.cloud.hypervisor(self.source_host),
            instance=self.instance,
            outcome=outcome,
            clean=self._clean_interrupted,
            settings=self.settings,
        )
        return f"taken over, {outcome.kind.value}"

    def _wait_for_job_end(self) -> None:
        source = self.cloud.hypervisor(self.source_host)
        for _ in range(120):
            if source.job_stats(self.instance).job_type not in (JobType.UNBOUNDED, JobType.BOUNDED):
                return
            threading.Event().wait(self.runtime.tick_s)

    def _complete(self, outcome: Outcome | None = None) -> None:
        assert self.dest_host
        block = MigrationFlag.NON_SHARED_INC.value in self.migration.flags
        finish_completed(
            self.runtime,
            self.record,
            instance=self.instance,
            source_host=self.source_host,
            dest_host=self.dest_host,
            outcome=outcome
            or Outcome(OutcomeKind.COMPLETED, guest_paused=bool(self.migration.paused_at)),
            block_migration=block,
            shared_instance_path=not block and not self._storage_unshared(),
            context=self._context(),
        )

    # ------------------------------------------------------------- rollback

    def _fail(self, *, phase: str, cleaned: list[str] | None) -> None:
        """Nova's `_reset_live_migration`: status `error`, RolledBack first when applicable."""
        if cleaned is not None:
            self.record(lambda m, at: m.roll_back(cleaned=cleaned, at=at))
        self.record(
            lambda m, at: m.fail(phase=phase, reason=RESTART_REASON, status=Status.ERROR, at=at)
        )

    def _clean_interrupted(self) -> list[str]:
        """What an interrupted preparation or copy may have left on the destination: its
        half-built domain, and, when its storage is not the source's, the instance directory
        and disk copies (only while the guest is still on the source)."""
        guest = self.cloud.hypervisor(self.source_host).guest(self.instance)
        if guest is None or not self.dest_host:
            return []
        if not self._storage_unshared():
            return self._clean_destination([], [])
        disks = [disk.path for disk in guest.local_disks]
        return self._clean_destination([instance_dir(guest)], disks)

    def _clean_destination(self, dirs: list[str], disks: list[str]) -> list[str]:
        if not self.dest_host:
            return []
        try:
            return clean_destination(
                self.runtime,
                instance=self.instance,
                source_host=self.source_host,
                dest_host=self.dest_host,
                dirs=dirs,
                disks=disks,
                context=self._context(),
            )
        except (HypervisorError, HostUnreachable):
            return []

    def _storage_unshared(self) -> bool:
        """The shared-storage test again: a file made on the destination, looked for on the
        source."""
        assert self.dest_host
        destination = self.cloud.hypervisor(self.dest_host)
        name = destination.create_check_file(INSTANCES_PATH)
        try:
            return not self.cloud.hypervisor(self.source_host).has_file(INSTANCES_PATH, name)
        finally:
            destination.remove_file(INSTANCES_PATH, name)

    def _dest_guest(self) -> GuestInfo | None:
        if not self.dest_host:
            return None
        try:
            return self.cloud.hypervisor(self.dest_host).guest(self.instance)
        except HostUnreachable:
            return None

    def _context(self) -> HookContext:
        return HookContext(
            migration_id=str(self.migration.id),
            instance=self.instance,
            source_host=self.source_host,
            dest_host=self.dest_host or "",
        )
