"""One live migration, step by step as Nova runs it (the seed's steps 2 to 14).

`accepted` → conductor checks (or the scheduler with retries) → `queued` until the source host
has a free slot → `preparing` the destination (instance directory, disks, volumes, VIFs) →
`running`: libvirt's peer-to-peer migration under the monitor → post-migration (`completed`) or
rollback (`cancelled`, `failed`, `error`). Every step is recorded as it happens.
"""

from __future__ import annotations

import contextlib
import queue
import threading
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from uuid import UUID

from lmes.domain import policy
from lmes.domain.instance import instance_id_for
from lmes.domain.migration import Migration
from lmes.domain.settings import Settings
from lmes.domain.status import Origin, Status
from lmes.executor.checks import (
    CheckFailed,
    LiveMigrateData,
    check_can_live_migrate,
    check_destination,
    check_hypervisor_compatible,
    check_source_up,
)
from lmes.executor.hooks import HookContext, HookFailed, Hooks
from lmes.executor.hypervisor import (
    INSTANCES_PATH,
    MIN_MIGRATION_SPEED_MIB_S,
    Cloud,
    GuestInfo,
    HostFacts,
    HostUnreachable,
    Hypervisor,
    HypervisorError,
    MigrationFlag,
    MigrationRequest,
    PowerState,
)
from lmes.executor.inventory import migration_summaries
from lmes.executor.monitor import (
    Monitor,
    Operation,
    Outcome,
    OutcomeKind,
    ProgressListener,
    Recorder,
)
from lmes.executor.scheduler import select_destination
from lmes.store import MigrationStore

MIB_BYTES = 1024**2
# Nova 22 (Victoria) changed a rollback's default status from `error` to `failed`.
ROLLBACK_FAILED_SINCE_MAJOR = 22
IN_PROGRESS = (Status.QUEUED, Status.PREPARING, Status.RUNNING, Status.POST_COPY)


def utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass
class Runtime:
    """What every migration run needs: the store, the hosts, the plug-ins, the clock."""

    store: MigrationStore
    cloud: Cloud
    hooks: Hooks
    tick_s: float = 0.5
    clock: Callable[[], datetime] = utc_now


@dataclass
class Preparation:
    """What preparing the destination created, so a rollback removes exactly that."""

    created_dirs: list[str] = field(default_factory=list)
    created_disks: list[str] = field(default_factory=list)
    ports: list[str] = field(default_factory=list)
    volumes: list[str] = field(default_factory=list)


class PreparationFailed(Exception):
    pass


def instance_dir(guest: GuestInfo) -> str:
    """The guest's directory under the host's instances path, named by its UUID as Nova's."""
    return f"{INSTANCES_PATH}/{guest.uuid}"


def rollback_status(settings: Settings) -> Status:
    if settings.release.major >= ROLLBACK_FAILED_SINCE_MAJOR:
        return Status.FAILED
    return Status.ERROR


def migration_flags(settings: Settings, block_migration: bool) -> tuple[MigrationFlag, ...]:
    """Nova's `_prepare_migration_flags`: auto-converge only when post-copy is not permitted."""
    flags = [
        MigrationFlag.LIVE,
        MigrationFlag.PEER2PEER,
        MigrationFlag.PERSIST_DEST,
        MigrationFlag.UNDEFINE_SOURCE,
    ]
    if block_migration:
        flags.append(MigrationFlag.NON_SHARED_INC)
    if settings.live_migration_permit_post_copy:
        flags.append(MigrationFlag.POSTCOPY)
    elif settings.live_migration_permit_auto_converge:
        flags.append(MigrationFlag.AUTO_CONVERGE)
    return tuple(flags)


def end_instance_migration(
    store: MigrationStore, name: str, migration_id: UUID, host: str, at: datetime
) -> None:
    """Clear the instance's task_state (and set its host); a no-op if it was already cleared."""
    instance_id = instance_id_for(name)
    if not store.has(instance_id):
        return
    if store.instance(name).migration_id != migration_id:
        return
    store.change(instance_id, lambda i: i.end_migration(migration_id, host=host, at=at))


class MigrationRun:
    """Runs one `accepted` migration to its end."""

    def __init__(
        self, runtime: Runtime, migration_id: UUID, on_progress: ProgressListener | None = None
    ) -> None:
        self.runtime = runtime
        self.on_progress = on_progress
        self.cloud = runtime.cloud
        self.record = Recorder(runtime.store, migration_id, runtime.clock)
        self.migration_id = migration_id
        migration = self.record.migration()
        self.settings = Settings.from_dict(migration.settings)
        self.instance = migration.instance
        self.source_host = migration.source_host or ""
        self.dest_host: str | None = None
        self.guest: GuestInfo | None = None
        self.data: LiveMigrateData | None = None
        self.preparation = Preparation()
        self.wake = threading.Event()
        self.vif_events: queue.Queue[str] = queue.Queue()

    # ------------------------------------------------------------- the whole run

    def execute(self) -> Migration:
        phase = "checks"
        try:
            if not self._conductor():
                return self._end(self.source_host)
            phase = "queued"
            self._queue()
            if not self._wait_for_slot():
                return self._end(self.source_host)
            phase = "preparing"
            if not self._prepare():
                return self._end(self.source_host)
            phase = "running"
            outcome = self._run()
            if outcome.kind is OutcomeKind.COMPLETED:
                self._post_migration(outcome)
                return self._end(self.dest_host or self.source_host)
            self._roll_back(outcome)
            return self._end(self.source_host)
        except Exception as exc:
            self._fail_unexpectedly(phase, exc)
            return self._end(self.source_host)

    def _end(self, host: str) -> Migration:
        migration = self.record.migration()
        if migration.is_terminal:
            end_instance_migration(
                self.runtime.store, self.instance, self.migration_id, host, self.runtime.clock()
            )
        return migration

    # ------------------------------------------------------------- conductor

    def _conductor(self) -> bool:
        """Nova's conductor: source up, then the given destination or the scheduler's choice."""
        migration = self.record.migration()
        try:
            self.guest = self._source_guest()
            source_facts = check_source_up(self.cloud, self.guest)
        except CheckFailed as failed:
            self._fail_precheck(failed)
            return False
        if migration.requested_dest:
            try:
                check_destination(self.cloud, self.guest, source_facts, migration.requested_dest)
                self.data = check_can_live_migrate(
                    self.cloud, self.guest, migration.requested_dest, migration.block_migration
                )
            except CheckFailed as failed:
                self._fail_precheck(failed)
                return False
            self.dest_host = migration.requested_dest
            self.record(lambda m, at: m.select_destination(m.requested_dest, attempt=1, at=at))
            return True
        return self._schedule(migration, source_facts)

    def _schedule(self, migration: Migration, source_facts: HostFacts) -> bool:
        assert self.guest is not None
        attempted: list[str] = []
        max_retries = self.settings.migrate_max_retries
        while True:
            if max_retries != -1 and len(attempted) > max_retries:
                reason = (
                    f"exceeded max scheduling retries {max_retries} for instance "
                    f"{self.instance} during live migration"
                )
                self._fail_precheck(CheckFailed("MaxRetriesExceeded", reason), exhausted=True)
                return False
            try:
                candidate = select_destination(self.cloud, self.guest, attempted)
            except CheckFailed as failed:
                self._fail_precheck(failed)
                return False
            attempt = len(attempted) + 1
            try:
                check_hypervisor_compatible(source_facts, candidate)
                data = check_can_live_migrate(
                    self.cloud, self.guest, candidate.name, migration.block_migration
                )
            except CheckFailed as failed:
                attempted.append(candidate.name)
                self.record(
                    lambda m, at, host=candidate.name, f=failed, n=attempt: m.reject_destination(
                        host, attempt=n, check=f.check, reason=f.reason, at=at
                    )
                )
                continue
            self.data = data
            self.dest_host = candidate.name
            self.record(
                lambda m, at, host=candidate.name, n=attempt: m.select_destination(
                    host, attempt=n, at=at
                )
            )
            return True

    def _source_guest(self) -> GuestInfo:
        try:
            guest = self.cloud.hypervisor(self.source_host).guest(self.instance)
        except HostUnreachable as exc:
            raise CheckFailed("ComputeServiceUnavailable", str(exc)) from None
        if guest is None:
            raise CheckFailed(
                "InstanceNotFound", f"instance {self.instance} is not on {self.source_host}"
            )
        return guest

    def _fail_precheck(self, failed: CheckFailed, exhausted: bool = False) -> None:
        self.record(
            lambda m, at: m.fail_precheck(
                check=failed.check, reason=failed.reason, retries_exhausted=exhausted, at=at
            )
        )

    # ------------------------------------------------------------- queued

    def _queue(self) -> None:
        assert self.guest is not None and self.data is not None
        settings = self.settings
        disks = (
            [d.capacity_bytes for d in self.guest.local_disks] if self.data.block_migration else []
        )
        data_gb = policy.data_gb(self.guest.memory_bytes // MIB_BYTES, disks)
        steps = policy.downtime_steps(
            settings.live_migration_downtime,
            settings.live_migration_downtime_steps,
            settings.live_migration_downtime_delay,
            data_gb,
            settings.release,
        )
        timeout_s = policy.completion_timeout_s(settings.live_migration_completion_timeout, data_gb)
        self.record(
            lambda m, at: m.queue(
                data_gb=data_gb, downtime_steps=steps, completion_timeout_s=timeout_s, at=at
            )
        )

    def _wait_for_slot(self) -> bool:
        """Wait in `queued` until fewer than `max_concurrent_live_migrations` of the source's
        earlier migrations are in progress (counted in the store, so across processes)."""
        while True:
            migration = self.record.migration()
            if migration.abort_requested_by:
                self._cancel_before_start(migration.abort_requested_by)
                return False
            if self._has_slot(migration):
                return True
            time.sleep(self.runtime.tick_s)

    def _has_slot(self, migration: Migration) -> bool:
        limit = self.settings.max_concurrent_live_migrations
        if limit <= 0:
            return True
        ahead = [
            m
            for m in migration_summaries(self.runtime.store)
            if m.origin is Origin.EXECUTOR
            and m.source_host == migration.source_host
            and m.status in IN_PROGRESS
        ]
        ahead.sort(key=lambda m: (m.phase_times[Status.QUEUED.value], str(m.id)))
        position = [m.id for m in ahead].index(migration.id)
        return position < limit

    # ------------------------------------------------------------- preparing

    def _hook_context(self) -> HookContext:
        return HookContext(
            migration_id=str(self.migration_id),
            instance=self.instance,
            source_host=self.source_host,
            dest_host=self.dest_host or "",
        )

    def _prepare(self) -> bool:
        """Nova's `pre_live_migration` on the destination; on failure, clean it and stop."""
        assert self.guest is not None and self.data is not None and self.dest_host
        guest, data = self.guest, self.data
        self.record(lambda m, at: m.start_preparation(dest_host=self.dest_host, at=at))
        started = time.monotonic()
        prep = self.preparation
        context = self._hook_context()
        try:
            destination = self.cloud.hypervisor(self.dest_host)
            prep.volumes = self.runtime.hooks.volumes.connect_volumes(context)
            if not data.is_shared_instance_path and destination.make_dir(instance_dir(guest)):
                prep.created_dirs.append(instance_dir(guest))
            if data.block_migration:
                for disk in guest.local_disks:
                    if destination.create_disk(disk):
                        prep.created_disks.append(disk.path)
            prep.ports = self.runtime.hooks.network.plug_vifs(context, self._on_vif_plugged)
            if not self._wait_for_vifs_before_start():
                return False
        except (HookFailed, HypervisorError, HostUnreachable, PreparationFailed) as exc:
            reason = str(exc)
            cleaned = self._clean_destination()
            self.record(lambda m, at: m.roll_back(cleaned=cleaned, at=at))
            self.record(
                lambda m, at: m.fail(phase="preparing", reason=reason, status=Status.ERROR, at=at)
            )
            return False
        migration = self.record.migration()
        if migration.abort_requested_by:
            self._cancel_before_start(migration.abort_requested_by)
            return False
        details = {
            "instance_dir": prep.created_dirs,
            "disks": prep.created_disks,
            "ports": prep.ports,
            "volumes": prep.volumes,
            "block_migration": data.block_migration,
            "shared_instance_path": data.is_shared_instance_path,
        }
        duration = time.monotonic() - started
        self.record(
            lambda m, at: m.complete_preparation(duration_s=duration, details=details, at=at)
        )
        return True

    def _on_vif_plugged(self, port: str) -> None:
        self.vif_events.put(port)
        self.wake.set()

    def _wait_for_vifs_before_start(self) -> bool:
        """Rocky's `live_migration_wait_for_vif_plug`: wait in `preparing` for the ports."""
        settings = self.settings
        if not (
            self.preparation.ports
            and settings.live_migration_wait_for_vif_plug
            and settings.vif_plugging_timeout > 0
        ):
            return True
        waiting = set(self.preparation.ports)
        deadline = time.monotonic() + settings.vif_plugging_timeout
        while waiting:
            self._record_plugged_ports(waiting)
            if not waiting:
                break
            migration = self.record.migration()
            if migration.abort_requested_by:
                return True  # the caller cancels
            if time.monotonic() > deadline:
                if settings.vif_plugging_is_fatal:
                    raise PreparationFailed(
                        f"timed out waiting for events: network-vif-plugged "
                        f"{', '.join(sorted(waiting))}"
                    )
                return True
            self.wake.wait(self.runtime.tick_s)
            self.wake.clear()
        return True

    def _record_plugged_ports(self, waiting: set[str]) -> None:
        while True:
            try:
                port = self.vif_events.get_nowait()
            except queue.Empty:
                return
            waiting.discard(port)
            self.record(lambda m, at, port=port: m.plug_vif(port, at=at))

    def _cancel_before_start(self, by: str) -> None:
        cleaned = self._clean_destination()
        self.record(lambda m, at: m.roll_back(cleaned=cleaned, at=at))
        self.record(lambda m, at: m.cancel(by=by, at=at))

    # ------------------------------------------------------------- running

    def _run(self) -> Outcome:
        assert self.guest is not None and self.data is not None and self.dest_host
        settings = self.settings
        source = self.cloud.hypervisor(self.source_host)
        destination = self.cloud.host(self.dest_host)
        assert destination is not None
        plugged = set(self.record.migration().vifs_plugged)
        waiting = set()
        if settings.vif_plugging_timeout > 0:
            waiting = set(self.preparation.ports) - plugged
        bandwidth = MIN_MIGRATION_SPEED_MIB_S if waiting else settings.live_migration_bandwidth
        flags = migration_flags(settings, self.data.block_migration)
        request = MigrationRequest(
            guest=self.instance,
            destination=destination,
            flags=flags,
            bandwidth_mib_s=bandwidth,
            disk_targets=tuple(d.target for d in self.guest.local_disks)
            if self.data.block_migration
            else (),
        )
        self.record(
            lambda m, at: m.start(flags=[str(f) for f in flags], bandwidth_mib_s=bandwidth, at=at)
        )
        operation = Operation(source, request, self.wake)
        monitor = Monitor(
            record=self.record,
            source=source,
            guest=self.instance,
            settings=settings,
            post_copy_enabled=MigrationFlag.POSTCOPY in flags,
            operation=operation,
            wake=self.wake,
            vif_events=self.vif_events,
            waiting_ports=waiting,
            tick_s=self.runtime.tick_s,
            on_progress=self.on_progress,
        )
        operation.start()
        return monitor.run()

    # ------------------------------------------------------------- the end

    def _post_migration(self, outcome: Outcome) -> None:
        assert self.dest_host
        finish_completed(
            self.runtime,
            self.record,
            instance=self.instance,
            source_host=self.source_host,
            dest_host=self.dest_host,
            outcome=outcome,
            block_migration=bool(self.data and self.data.block_migration),
            shared_instance_path=bool(self.data and self.data.is_shared_instance_path),
            context=self._hook_context(),
        )

    def _roll_back(self, outcome: Outcome) -> None:
        """Nova's `_rollback_live_migration`: resume a guest we paused, clean the destination."""
        finish_rolled_back(
            self.record,
            self.cloud.hypervisor(self.source_host),
            instance=self.instance,
            outcome=outcome,
            clean=self._clean_destination,
            settings=self.settings,
        )

    def _clean_destination(self) -> list[str]:
        """Remove what this migration put on the destination; never the guest's only copy."""
        if not self.dest_host:
            return []
        return clean_destination(
            self.runtime,
            instance=self.instance,
            source_host=self.source_host,
            dest_host=self.dest_host,
            dirs=self.preparation.created_dirs,
            disks=self.preparation.created_disks,
            context=self._hook_context(),
        )

    def _fail_unexpectedly(self, phase: str, exc: Exception) -> None:
        """Anything unforeseen ends the migration in `error`, as Nova's `_do_live_migration`."""
        summary = "".join(traceback.format_exception_only(type(exc), exc)).strip()
        migration = self.record.migration()
        if migration.is_terminal:
            return
        if migration.status is Status.ACCEPTED:
            self.record(
                lambda m, at: m.fail(phase=phase, reason=summary, status=Status.ERROR, at=at)
            )
            return
        if migration.status is Status.RUNNING:
            with contextlib.suppress(HypervisorError, HostUnreachable):
                self.cloud.hypervisor(self.source_host).abort_job(self.instance)
        try:
            cleaned = self._clean_destination()
        except (HypervisorError, HostUnreachable):
            cleaned = []
        self.record(lambda m, at: m.roll_back(cleaned=cleaned, at=at))
        self.record(
            lambda m, at: m.fail(
                phase=phase, reason=summary, status=Status.ERROR, traceback_summary=summary, at=at
            )
        )


# --------------------------------------------------------------------------- shared endings


def finish_rolled_back(
    record: Recorder,
    source: Hypervisor,
    *,
    instance: str,
    outcome: Outcome,
    clean: Callable[[], list[str]],
    settings: Settings,
) -> None:
    """End a job that did not complete: resume a guest force-complete paused, clean the
    destination, record RolledBack, then `cancelled` or the release's rollback status."""
    if outcome.guest_paused:
        resume_if_paused(source, instance)
    cleaned = clean()
    record(lambda m, at: m.roll_back(cleaned=cleaned, at=at))
    if outcome.kind is OutcomeKind.CANCELLED:
        by = outcome.by or "executor"
        record(lambda m, at: m.cancel(by=by, elapsed_s=m.elapsed_s(at), at=at))
        return
    status = Status.ERROR if outcome.kind is OutcomeKind.ERROR else rollback_status(settings)
    reason = outcome.reason or "the migration job failed"
    record(lambda m, at: m.fail(phase="running", reason=reason, status=status, at=at))


def resume_if_paused(hypervisor: Hypervisor, name: str) -> bool:
    """Nova's `run_recover_tasks` 'unpause': resume the guest if it is still paused."""
    guest = hypervisor.guest(name)
    if guest is not None and guest.power_state is PowerState.PAUSED:
        hypervisor.resume(name)
        return True
    return False


def clean_destination(
    runtime: Runtime,
    *,
    instance: str,
    source_host: str,
    dest_host: str,
    dirs: list[str],
    disks: list[str],
    context: HookContext,
) -> list[str]:
    """Nova's `rollback_live_migration_at_destination`: the half-built domain, the files made
    for the migration, the ports and volumes. The destination's domain is removed only while
    the guest still exists on the source."""
    cleaned: list[str] = []
    destination = runtime.cloud.hypervisor(dest_host)
    source_guest = runtime.cloud.hypervisor(source_host).guest(instance)
    dest_guest = destination.guest(instance)
    if dest_guest is not None and source_guest is not None:
        destination.destroy(instance)
        destination.undefine(instance)
        cleaned.append(f"domain {instance} on {dest_host}")
    for path in disks:
        parent, _, name = path.rpartition("/")
        if destination.remove_file(parent, name):
            cleaned.append(f"disk {path} on {dest_host}")
    for path in dirs:
        destination.remove_dir(path)
        cleaned.append(f"instance directory {path} on {dest_host}")
    runtime.hooks.network.unplug_vifs(context, dest_host)
    runtime.hooks.volumes.disconnect_volumes(context, dest_host)
    return cleaned


def _clean_source(
    runtime: Runtime,
    instance: str,
    source_host: str,
    dest_guest: GuestInfo | None,
    block_migration: bool,
) -> None:
    """The source's copy of the domain (if libvirt left one) and of copied disks."""
    source = runtime.cloud.hypervisor(source_host)
    source_guest = source.guest(instance)
    if source_guest is not None and source_guest.power_state is not PowerState.RUNNING:
        source.destroy(instance)  # a copy paused at the switch-over, or shut off
        source.undefine(instance)
    if block_migration and dest_guest is not None:
        for disk in dest_guest.local_disks:
            parent, _, name = disk.path.rpartition("/")
            source.remove_file(parent, name)


def finish_completed(
    runtime: Runtime,
    record: Recorder,
    *,
    instance: str,
    source_host: str,
    dest_host: str,
    outcome: Outcome,
    block_migration: bool,
    shared_instance_path: bool,
    context: HookContext,
) -> None:
    """Nova's `_post_live_migration`: the guest running on the destination, the source cleaned,
    and libvirt's measured time, downtime and bytes recorded in `Completed`.

    The guest has already moved, so a cleanup step that fails (a host gone, a file locked) does
    not stop the others or the `Completed` record.
    """
    destination = runtime.cloud.hypervisor(dest_host)
    stats = outcome.stats or destination.completed_job_stats(instance)
    if outcome.guest_paused:  # paused by a force-complete: it was running before
        resume_if_paused(destination, instance)
    dest_guest = destination.guest(instance)
    with contextlib.suppress(HypervisorError, HostUnreachable):
        _clean_source(runtime, instance, source_host, dest_guest, block_migration)
    if not shared_instance_path and dest_guest is not None:
        with contextlib.suppress(HypervisorError, HostUnreachable):
            runtime.cloud.hypervisor(source_host).remove_dir(instance_dir(dest_guest))
    with contextlib.suppress(HookFailed):
        runtime.hooks.network.unplug_vifs(context, source_host)
    with contextlib.suppress(HookFailed):
        runtime.hooks.volumes.disconnect_volumes(context, source_host)
    total_s = None if stats is None or stats.elapsed_ms is None else stats.elapsed_ms / 1000
    bytes_sent = None
    if stats is not None:
        bytes_sent = stats.data_processed_bytes
        if bytes_sent is None and stats.memory_processed_bytes is not None:
            bytes_sent = stats.memory_processed_bytes + (stats.disk_processed_bytes or 0)
    record(
        lambda m, at: m.complete(
            total_s=total_s if total_s is not None else m.elapsed_s(at),
            downtime_ms=None if stats is None else stats.downtime_ms,
            bytes_sent=bytes_sent,
            iterations=None if stats is None else stats.iteration,
            new_host=dest_host,
            at=at,
        )
    )
