"""Nova's API checks on the instance, and one migration in progress at a time."""

from datetime import UTC, datetime
from uuid import uuid4

import pytest

from lmes.domain.errors import InstanceNotMigratable
from lmes.domain.instance import Instance

T0 = datetime(2024, 5, 1, tzinfo=UTC)


def instance(vm_state="active") -> Instance:
    return Instance.register(name="vm-1", host="node-1", vm_state=vm_state, at=T0)


@pytest.mark.parametrize("vm_state", ["active", "paused"])
def test_active_or_paused_instances_may_migrate(vm_state):
    i = instance(vm_state)
    i.begin_migration(uuid4(), at=T0)
    assert i.task_state == "migrating"


@pytest.mark.parametrize("vm_state", ["stopped", "error", "suspended", "shelved_offloaded"])
def test_other_vm_states_are_refused(vm_state):
    with pytest.raises(InstanceNotMigratable, match="only active or paused"):
        instance(vm_state).begin_migration(uuid4(), at=T0)


def test_a_locked_instance_is_refused():
    i = instance()
    i.lock(at=T0)
    with pytest.raises(InstanceNotMigratable, match="locked"):
        i.begin_migration(uuid4(), at=T0)
    i.unlock(at=T0)
    i.begin_migration(uuid4(), at=T0)


def test_one_migration_at_a_time_and_the_host_follows_the_guest():
    i = instance()
    first = uuid4()
    i.begin_migration(first, at=T0)
    before = i.version
    with pytest.raises(InstanceNotMigratable, match="task_state migrating"):
        i.begin_migration(uuid4(), at=T0)
    assert i.version == before
    with pytest.raises(InstanceNotMigratable):
        i.end_migration(uuid4(), host="node-3", at=T0)
    i.end_migration(first, host="node-3", at=T0)
    assert (i.host, i.task_state) == ("node-3", None)
    i.begin_migration(uuid4(), at=T0)


def test_observing_the_same_state_records_nothing():
    i = instance()
    before = i.version
    i.observe(host="node-1", vm_state="active", at=T0)
    assert i.version == before
    i.observe(host="node-1", vm_state="paused", at=T0)
    assert i.vm_state == "paused"
