"""The executor's façade: what `lmes hosts`, `instances`, `migrate`, `abort`, `force-complete`
and `recover` call.

`Executor.request` is Nova's API step (checks on the instance, the migration recorded as
`accepted` together with the instance's `migrating` task_state); `Executor.execute` runs the
rest. Abort and force-complete are requests written to the store, from any process; the
executor running the migration reads them on its next monitor tick.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from uuid import UUID

from eventsourcing.persistence import IntegrityError

from lmes.domain.errors import DomainError
from lmes.domain.instance import Instance
from lmes.domain.migration import Migration
from lmes.domain.settings import Settings
from lmes.domain.status import Origin
from lmes.errors import UserError
from lmes.executor.hooks import Hooks, local_hooks
from lmes.executor.hypervisor import (
    Cloud,
    Connector,
    GuestInfo,
    HostFacts,
    HostUnreachable,
    PowerState,
    connect_libvirt,
)
from lmes.executor.lab.hosts import HostConfig, load_hosts
from lmes.executor.lease import Lease, try_lease
from lmes.executor.monitor import ProgressListener
from lmes.executor.recovery import Recovered, executor_host, recover
from lmes.executor.workflow import MigrationRun, Runtime, utc_now
from lmes.home import lmes_home
from lmes.store import MigrationStore

MAX_REQUEST_ATTEMPTS = 20


def default_hosts_file() -> Path:
    """`$LMES_HOSTS`, else the lab's `$LMES_HOME/lab/hosts.toml`."""
    given = os.environ.get("LMES_HOSTS")
    if given:
        return Path(given)
    return lmes_home().resolve() / "lab" / "hosts.toml"


@dataclass(frozen=True)
class InstanceRow:
    """An instance as `lmes instances` lists it: libvirt's view plus Nova's task_state."""

    name: str
    uuid: str
    host: str
    vm_state: str
    task_state: str | None
    migration_id: UUID | None
    memory_mb: int


class Executor:
    """Nova's live-migration workflow against the hosts of one hosts file."""

    def __init__(
        self,
        store: MigrationStore,
        hosts: list[HostConfig],
        *,
        hosts_file: Path | None = None,
        connect: Connector = connect_libvirt,
        hooks: Hooks | None = None,
        tick_s: float = 0.5,
        clock: Callable[[], datetime] = utc_now,
    ) -> None:
        self.store = store
        self.hosts_file = hosts_file
        self.cloud = Cloud(hosts, connect)
        self.runtime = Runtime(
            store=store, cloud=self.cloud, hooks=hooks or local_hooks(), tick_s=tick_s, clock=clock
        )

    @classmethod
    def from_hosts_file(
        cls, store: MigrationStore, hosts_file: Path | str | None = None, **options
    ) -> Executor:
        path = Path(hosts_file) if hosts_file else default_hosts_file()
        return cls(store, load_hosts(path), hosts_file=path.resolve(), **options)

    def close(self) -> None:
        self.cloud.close()

    # ------------------------------------------------------------- what is there

    def host_facts(self) -> list[HostFacts]:
        return [self.cloud.facts(host.name) for host in self.cloud.hosts]

    def instances(self) -> list[InstanceRow]:
        rows = []
        for host in self.cloud.hosts:
            try:
                guests = self.cloud.hypervisor(host.name).guests()
            except HostUnreachable:
                continue
            for guest in guests:
                record = self.store.instance(guest.name)
                rows.append(
                    InstanceRow(
                        name=guest.name,
                        uuid=guest.uuid,
                        host=guest.host,
                        vm_state=guest.vm_state,
                        task_state=record.task_state if record else None,
                        migration_id=record.migration_id if record else None,
                        memory_mb=guest.memory_bytes // 1024**2,
                    )
                )
        return sorted(rows, key=lambda row: (row.name, row.host))

    def locate(self, name: str) -> GuestInfo:
        """The host running `name` (Nova: the instance exists); one clear error otherwise."""
        found = self.cloud.find_guest(name)
        for state in (PowerState.RUNNING, PowerState.PAUSED):
            live = [g for g in found if g.power_state is state]
            if len(live) > 1:
                hosts = ", ".join(g.host for g in live)
                raise UserError(f"instance {name} is {state.value} on several hosts ({hosts})")
            if live:
                return live[0]
        if found:
            return found[0]
        raise UserError(f"instance {name} was not found on any host of {self._hosts_label()}")

    # ------------------------------------------------------------- migrating

    def request(
        self,
        instance: str,
        *,
        dest: str | None = None,
        block_migration: str = "auto",
        settings: Settings | None = None,
        context: dict | None = None,
    ) -> tuple[Migration, Lease]:
        """Nova's API step: the instance exists, vm_state active or paused, task_state none,
        not locked, no other migration; then `accepted` and `migrating`, in one transaction.

        Returns the new migration and its lease, held by the caller until it ends.
        """
        if dest is not None and self.cloud.host(dest) is None:
            raise UserError(f"destination host {dest!r} is not in {self._hosts_label()}")
        guest = self.locate(instance)
        settings = settings or Settings.defaults()
        migration_id = uuid.uuid4()
        lease = try_lease(migration_id)
        assert lease is not None  # a fresh id: nobody else can hold it
        full_context = {
            "executor_host": executor_host(),
            "executor_pid": os.getpid(),
            "hosts_file": str(self.hosts_file) if self.hosts_file else None,
            **(context or {}),
        }
        try:
            for _ in range(MAX_REQUEST_ATTEMPTS):
                at = self.runtime.clock()
                record = self.store.instance(instance)
                if record is None:
                    record = Instance.register(
                        name=instance, host=guest.host, vm_state=guest.vm_state, at=at
                    )
                else:
                    record.observe(host=guest.host, vm_state=guest.vm_state, at=at)
                try:
                    record.begin_migration(migration_id, at=at)
                except DomainError as exc:
                    raise UserError(str(exc)) from None
                migration = Migration.request(
                    instance=instance,
                    at=at,
                    origin=Origin.EXECUTOR,
                    source_host=guest.host,
                    requested_dest=dest,
                    block_migration=block_migration,
                    settings=settings.as_dict(),
                    context=full_context,
                    migration_id=migration_id,
                )
                try:
                    self.store.add(migration, record)
                except IntegrityError:
                    continue
                return migration, lease
            raise UserError(f"instance {instance} is changing too fast to start a migration")
        except BaseException:
            lease.release()
            raise

    def execute(
        self, migration_id: UUID, *, on_progress: ProgressListener | None = None
    ) -> Migration:
        """Run an `accepted` migration to its end (the caller holds its lease)."""
        return MigrationRun(self.runtime, migration_id, on_progress).execute()

    def migrate(
        self,
        instance: str,
        *,
        dest: str | None = None,
        block_migration: str = "auto",
        settings: Settings | None = None,
        on_progress: ProgressListener | None = None,
    ) -> Migration:
        """Request and run one migration in this process."""
        migration, lease = self.request(
            instance, dest=dest, block_migration=block_migration, settings=settings
        )
        try:
            return self.execute(migration.id, on_progress=on_progress)
        finally:
            lease.release()

    def recover(
        self,
        *,
        take_over: bool = True,
        only: UUID | None = None,
        lease: Lease | None = None,
        hand_over: Callable[[Lease], int] | None = None,
    ) -> list[Recovered]:
        """Reconcile the migrations whose executor died (see `lmes.executor.recovery`)."""
        return recover(
            self.runtime, take_over=take_over, only=only, lease=lease, hand_over=hand_over
        )

    def _hosts_label(self) -> str:
        return str(self.hosts_file) if self.hosts_file else "the hosts file"


# --------------------------------------------------------------------------- control


def request_abort(store: MigrationStore, migration_id: str | UUID, *, by: str = "cli") -> Migration:
    """Record an abort request (Nova's `DELETE /servers/{id}/migrations/{mid}`)."""
    return _request(store, migration_id, "abort", lambda m, at: m.request_abort(by=by, at=at))


def request_force_complete(
    store: MigrationStore, migration_id: str | UUID, *, by: str = "cli"
) -> Migration:
    """Record a force-complete request (Nova's `force_complete` server-migration action)."""
    return _request(
        store,
        migration_id,
        "force-complete",
        lambda m, at: m.request_force_complete(by=by, at=at),
    )


def _request(
    store: MigrationStore,
    migration_id: str | UUID,
    what: str,
    command: Callable[[Migration, datetime], object],
) -> Migration:
    resolved = store.resolve(migration_id)
    migration = store.migration(resolved)
    if migration.origin is not Origin.EXECUTOR:
        raise UserError(
            f"migration {resolved} was recorded by {migration.origin.value}, not run by the "
            f"executor: there is nothing to {what}"
        )
    try:
        return store.change(resolved, lambda m: command(m, utc_now()))
    except DomainError as exc:
        raise UserError(str(exc)) from None
