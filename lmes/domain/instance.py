"""The `Instance` record: just enough of a Nova server for the live-migration API checks.

Nova refuses `os-migrateLive` unless vm_state is active or paused, task_state is None and the
server is not locked (409), and it keeps one migration in progress per instance by setting
task_state to `migrating`. The record lives in the store so that two lmes processes on two hosts
cannot start two migrations of one guest.
"""

from __future__ import annotations

from datetime import datetime
from uuid import UUID, uuid5

from eventsourcing.domain import Aggregate

from lmes.domain.errors import InstanceNotMigratable

INSTANCE_NAMESPACE = UUID("0b6b3f3c-2f6e-4f1e-8a0e-3c5d1f7e9a10")

MIGRATABLE_VM_STATES = frozenset({"active", "paused"})
MIGRATING = "migrating"


class Instance(Aggregate):
    """A guest as Nova's API sees it, keyed by its name or uuid."""

    class Registered(Aggregate.Created):
        name: str
        host: str
        vm_state: str

    class StateObserved(Aggregate.Event):
        host: str
        vm_state: str

        def apply(self, aggregate: Instance) -> None:
            aggregate.host = self.host
            aggregate.vm_state = self.vm_state

    class Locked(Aggregate.Event):
        locked: bool

        def apply(self, aggregate: Instance) -> None:
            aggregate.locked = self.locked

    class MigrationBegan(Aggregate.Event):
        migration_id: UUID

        def apply(self, aggregate: Instance) -> None:
            aggregate.task_state = MIGRATING
            aggregate.migration_id = self.migration_id

    class MigrationEnded(Aggregate.Event):
        migration_id: UUID
        host: str

        def apply(self, aggregate: Instance) -> None:
            aggregate.task_state = None
            aggregate.migration_id = None
            aggregate.host = self.host

    def __init__(self, name: str, host: str, vm_state: str) -> None:
        self.name = name
        self.host = host
        self.vm_state = vm_state
        self.task_state: str | None = None
        self.locked = False
        self.migration_id: UUID | None = None

    @classmethod
    def create_id(cls, name: str, **_: object) -> UUID:
        return instance_id_for(name)

    @classmethod
    def register(cls, *, name: str, host: str, vm_state: str, at: datetime) -> Instance:
        return cls._create(
            cls.Registered,
            id=instance_id_for(name),
            timestamp=at,
            name=name,
            host=host,
            vm_state=vm_state,
        )

    def observe(self, *, host: str, vm_state: str, at: datetime) -> None:
        """Record what the hypervisor says, when it differs from what we knew."""
        if (host, vm_state) != (self.host, self.vm_state):
            self.trigger_event(self.StateObserved, timestamp=at, host=host, vm_state=vm_state)

    def lock(self, *, at: datetime) -> None:
        self.trigger_event(self.Locked, timestamp=at, locked=True)

    def unlock(self, *, at: datetime) -> None:
        self.trigger_event(self.Locked, timestamp=at, locked=False)

    def check_migratable(self) -> None:
        """Nova's API checks for `os-migrateLive`; raises with Nova's reason."""
        if self.locked:
            raise InstanceNotMigratable(f"instance {self.name} is locked")
        if self.vm_state not in MIGRATABLE_VM_STATES:
            raise InstanceNotMigratable(
                f"instance {self.name} is in vm_state {self.vm_state}: "
                "only active or paused instances can be live-migrated"
            )
        if self.task_state is not None:
            raise InstanceNotMigratable(
                f"instance {self.name} is in task_state {self.task_state}"
                + (f" (migration {self.migration_id})" if self.migration_id else "")
            )

    def begin_migration(self, migration_id: UUID, *, at: datetime) -> None:
        self.check_migratable()
        self.trigger_event(self.MigrationBegan, timestamp=at, migration_id=migration_id)

    def end_migration(self, migration_id: UUID, *, host: str, at: datetime) -> None:
        """Clear task_state (Nova does it on success and on rollback) and record the host."""
        if self.migration_id != migration_id:
            raise InstanceNotMigratable(
                f"instance {self.name} is not being migrated by {migration_id}"
            )
        self.trigger_event(self.MigrationEnded, timestamp=at, migration_id=migration_id, host=host)


def instance_id_for(name: str) -> UUID:
    return uuid5(INSTANCE_NAMESPACE, name)
