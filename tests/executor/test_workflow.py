"""Nova's live-migration workflow, step by step, against an in-memory cloud.

These tests cover the decisions (checks, scheduling and retries, queueing, VIF plugging, timeout
actions, force-complete, abort, rollback, recovery); the same workflow against real libvirt
daemons is in `test_lab_migrations.py`.
"""

from __future__ import annotations

import threading
import time

import pytest

from lmes.domain.instance import Instance
from lmes.domain.migration import Migration
from lmes.domain.settings import Settings
from lmes.domain.status import Status
from lmes.errors import UserError
from lmes.executor.hooks import Hooks, LocalNetwork, LocalVolumes, ScriptedNetwork, ScriptedVolumes
from lmes.executor.hypervisor import DiskInfo, PowerState
from lmes.executor.lease import try_lease
from lmes.executor.service import Executor, request_abort, request_force_complete
from lmes.executor.workflow import utc_now
from lmes.store import open_store
from tests.executor.fakes import MIB, FakeCloudState, host_config

pytestmark = pytest.mark.usefixtures("lmes_home")


def names(store, migration_id) -> list[str]:
    return [type(e).__name__ for e in store.all_events() if e.originator_id == migration_id]


def events(store, migration_id, kind: str) -> list:
    return [
        e
        for e in store.all_events()
        if e.originator_id == migration_id and type(e).__name__ == kind
    ]


@pytest.fixture
def cloud() -> FakeCloudState:
    state = FakeCloudState()
    for name in ("a", "b", "c"):
        state.connect(host_config(name))
    return state


@pytest.fixture
def store():
    return open_store("memory:")


def executor_for(cloud, store, hooks: Hooks | None = None, hosts=None) -> Executor:
    configs = hosts or [host_config(name) for name in ("a", "b", "c")]
    return Executor(store, configs, connect=cloud.connect, hooks=hooks, tick_s=0.01)


def settings(**options) -> Settings:
    return Settings.defaults().with_overrides(**options)


def in_background(function):
    result: list = []
    thread = threading.Thread(target=lambda: result.append(function()), daemon=True)
    thread.start()
    return thread, result


def wait_for(condition, timeout_s: float = 10.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached")
        time.sleep(0.01)


# ------------------------------------------------------------------ the happy path


def test_a_completed_migration_walks_novas_steps_and_moves_the_instance(cloud, store):
    cloud.hypervisors["a"].add_guest("web", dirty_rate_bytes_s=1 * MIB)
    migration = executor_for(cloud, store).migrate("web", dest="b", settings=settings())

    assert migration.status is Status.COMPLETED
    assert names(store, migration.id)[:7] == [
        "MigrationRequested",
        "DestinationSelected",
        "MigrationQueued",
        "PreparationStarted",
        "PreparationCompleted",
        "MigrationStarted",
        "DowntimeIncreased",
    ]
    assert names(store, migration.id)[-1] == "Completed"
    assert migration.dest_host == "b" and migration.iterations and migration.bytes_sent
    started = events(store, migration.id, "MigrationStarted")[0]
    assert started.flags == ["live", "peer2peer", "persist_dest", "undefine_source"]
    assert cloud.hypervisors["b"].guest("web").power_state is PowerState.RUNNING
    assert cloud.hypervisors["a"].guest("web") is None
    instance = store.instance("web")
    assert (instance.host, instance.task_state) == ("b", None)


def test_the_first_downtime_step_is_set_on_the_hypervisor(cloud, store):
    cloud.hypervisors["a"].add_guest("web", dirty_rate_bytes_s=1 * MIB)
    migration = executor_for(cloud, store).migrate("web", dest="b", settings=settings())
    first = events(store, migration.id, "DowntimeIncreased")[0]
    assert (first.downtime_ms, first.step_index) == (migration.downtime_steps[0][1], 0)
    assert cloud.hypervisors["a"].max_downtime("web") == first.downtime_ms


def test_post_copy_permitted_replaces_auto_converge_in_the_flags(cloud, store):
    cloud.hypervisors["a"].add_guest("web")
    migration = executor_for(cloud, store).migrate(
        "web",
        dest="b",
        settings=settings(
            live_migration_permit_post_copy=True, live_migration_permit_auto_converge=True
        ),
    )
    flags = events(store, migration.id, "MigrationStarted")[0].flags
    assert "postcopy" in flags and "auto_converge" not in flags


# ------------------------------------------------------------------ API checks


def test_requests_nova_refuses_record_nothing(cloud, store):
    cloud.hypervisors["a"].add_guest("stopped", state=PowerState.SHUTOFF)
    cloud.hypervisors["a"].add_guest("locked")
    executor = executor_for(cloud, store)
    record = Instance.register(name="locked", host="a", vm_state="active", at=utc_now())
    record.lock(at=utc_now())
    store.add(record)
    for instance, dest, words in (
        ("missing", None, "was not found"),
        ("stopped", None, "vm_state stopped"),
        ("locked", None, "locked"),
        ("locked", "nowhere", "not in"),
    ):
        with pytest.raises(UserError, match=words):
            executor.request(instance, dest=dest)
    assert not list(store.migrations())


def test_one_migration_at_a_time_per_instance(cloud, store):
    cloud.hypervisors["a"].add_guest("web")
    executor = executor_for(cloud, store)
    first, lease = executor.request("web", dest="b")
    with pytest.raises(UserError, match="task_state migrating"):
        executor.request("web", dest="c")
    lease.release()
    assert [m.id for m in store.migrations()] == [first.id]


# ------------------------------------------------------------------ conductor checks


@pytest.mark.parametrize(
    ("arrange", "dest", "check"),
    [
        (lambda c: None, "a", "UnableToMigrateToSelf"),
        (lambda c: c.down.add("b"), "b", "ComputeServiceUnavailable"),
        (lambda c: c.incompatible_cpu.add("b"), "b", "InvalidCPUInfo"),
        (lambda c: c.versions.update(b=("QEMU", 6000000)), "b", "DestinationHypervisorTooOld"),
        (lambda c: c.versions.update(b=("Xen", 9000000)), "b", "InvalidHypervisorType"),
    ],
)
def test_each_check_on_a_given_destination_fails_the_migration_in_error(
    cloud, store, arrange, dest, check
):
    cloud.hypervisors["a"].add_guest("web")
    arrange(cloud)
    if "b" in cloud.down:
        cloud.hypervisors.pop("b")
    migration = executor_for(cloud, store).migrate("web", dest=dest, settings=settings())
    assert migration.status is Status.ERROR
    assert migration.failure["check"] == check
    assert store.instance("web").task_state is None
    assert cloud.hypervisors["a"].guest("web").power_state is PowerState.RUNNING


def test_a_destination_without_the_memory_is_refused(cloud, store):
    cloud.hypervisors["a"].add_guest("big", memory_mb=2048)
    hosts = [host_config("a"), host_config("b", memory_mb=1024), host_config("c")]
    cloud.hypervisors["b"].host = hosts[1]
    migration = executor_for(cloud, store, hosts=hosts).migrate("big", dest="b")
    assert migration.status is Status.ERROR
    assert migration.failure["check"] == "MigrationPreCheckError"
    assert "lack of memory" in migration.failure["reason"]


def test_the_scheduler_retries_the_next_host_after_a_failed_precheck(cloud, store):
    cloud.hypervisors["a"].add_guest("web")
    cloud.incompatible_cpu.add("b")
    migration = executor_for(cloud, store).migrate("web", settings=settings())
    assert migration.status is Status.COMPLETED and migration.dest_host == "c"
    rejected = events(store, migration.id, "DestinationRejected")
    assert [(e.host, e.attempt, e.check) for e in rejected] == [("b", 1, "InvalidCPUInfo")]
    assert events(store, migration.id, "DestinationSelected")[0].attempt == 2


def test_running_out_of_retries_fails_and_running_out_of_hosts_errors(cloud, store):
    cloud.hypervisors["a"].add_guest("web")
    cloud.incompatible_cpu.update({"b", "c"})
    executor = executor_for(cloud, store)
    limited = executor.migrate("web", settings=settings(migrate_max_retries=0))
    assert (limited.status, limited.failure["check"]) == (Status.FAILED, "MaxRetriesExceeded")
    unlimited = executor.migrate("web", settings=settings(migrate_max_retries=-1))
    assert (unlimited.status, unlimited.failure["check"]) == (Status.ERROR, "NoValidHost")
    assert len(events(store, unlimited.id, "DestinationRejected")) == 2


# ------------------------------------------------------------------ storage


def test_block_migration_auto_copies_local_disks_when_storage_is_not_shared(cloud, store):
    disk = DiskInfo("vda", "/images/web.qcow2", "qcow2", 1024**3, local=True)
    cloud.hypervisors["a"].add_guest("web", disks=(disk,))
    cloud.hypervisors["a"].files.add(disk.path)
    migration = executor_for(cloud, store).migrate("web", dest="b")
    assert migration.status is Status.COMPLETED
    assert "non_shared_inc" in events(store, migration.id, "MigrationStarted")[0].flags
    assert migration.data_gb == 4.0  # 2 GiB of RAM at least, plus 2 GiB for the disk
    assert disk.path in cloud.hypervisors["b"].files
    assert disk.path not in cloud.hypervisors["a"].files


def test_shared_storage_means_no_block_migration_and_refuses_a_forced_one(cloud, store):
    cloud.shared_storage = True
    disk = DiskInfo("vda", "/images/web.qcow2", "qcow2", 1024**3, local=True)
    cloud.hypervisors["a"].add_guest("web", disks=(disk,))
    executor = executor_for(cloud, store)
    forced = executor.migrate("web", dest="b", block_migration="true")
    assert forced.failure["check"] == "InvalidSharedStorage"
    auto = executor.migrate("web", dest="b", block_migration="auto")
    assert auto.status is Status.COMPLETED
    assert "non_shared_inc" not in events(store, auto.id, "MigrationStarted")[0].flags


# ------------------------------------------------------------------ queue and preparation


def test_a_migration_waits_in_queued_for_the_source_slot_and_can_be_aborted_there(cloud, store):
    cloud.hypervisors["a"].add_guest("web")
    blocker = Migration.request(instance="other", at=utc_now(), origin="executor", source_host="a")
    blocker.select_destination("b", attempt=1, at=utc_now())
    blocker.queue(data_gb=2, downtime_steps=[(0, 50)], completion_timeout_s=10, at=utc_now())
    store.add(blocker)
    held = try_lease(blocker.id)  # its executor is alive
    executor = executor_for(cloud, store)
    migration, lease = executor.request("web", dest="b", settings=settings())
    thread, result = in_background(lambda: executor.execute(migration.id))
    wait_for(lambda: store.migration(migration.id).status is Status.QUEUED)
    time.sleep(0.1)
    assert store.migration(migration.id).status is Status.QUEUED
    request_abort(store, str(migration.id)[:8])
    thread.join(10)
    lease.release()
    held.release()
    assert result[0].status is Status.CANCELLED
    assert "PreparationStarted" not in names(store, migration.id)


def test_a_failed_preparation_cleans_the_destination_and_ends_in_error(cloud, store):
    cloud.hypervisors["a"].add_guest("web")
    hooks = Hooks(network=LocalNetwork(), volumes=ScriptedVolumes(fail_connect=True))
    migration = executor_for(cloud, store, hooks).migrate("web", dest="b")
    assert (migration.status, migration.failure["phase"]) == (Status.ERROR, "preparing")
    assert names(store, migration.id)[-2:] == ["RolledBack", "Failed"]
    assert cloud.hypervisors["a"].guest("web").power_state is PowerState.RUNNING


# ------------------------------------------------------------------ VIF plugging


def test_the_copy_starts_slow_until_the_vifs_are_plugged(cloud, store):
    cloud.hypervisors["a"].add_guest("web", memory_mb=64)
    hooks = Hooks(network=ScriptedNetwork(plug_delay_s=0.3), volumes=LocalVolumes())
    migration = executor_for(cloud, store, hooks).migrate(
        "web",
        dest="b",
        settings=settings(live_migration_wait_for_vif_plug=False, live_migration_bandwidth=500),
    )
    assert migration.status is Status.COMPLETED
    assert events(store, migration.id, "MigrationStarted")[0].bandwidth_mib_s == 1
    order = names(store, migration.id)
    assert order.index("VifPlugged") < order.index("BandwidthChanged") < order.index("Completed")
    assert events(store, migration.id, "BandwidthChanged")[0].bandwidth_mib_s == 500


def test_vifs_never_plugged_abort_the_copy_when_fatal(cloud, store):
    cloud.hypervisors["a"].add_guest("web", memory_mb=256)
    hooks = Hooks(network=ScriptedNetwork(plug_delay_s=None), volumes=LocalVolumes())
    migration = executor_for(cloud, store, hooks).migrate(
        "web",
        dest="b",
        settings=settings(live_migration_wait_for_vif_plug=False, vif_plugging_timeout=1),
    )
    assert migration.status is Status.ERROR
    assert "VIF plugging" in migration.failure["reason"]
    assert cloud.hypervisors["a"].guest("web").power_state is PowerState.RUNNING
    assert cloud.hypervisors["b"].guest("web") is None


def test_waiting_for_vifs_before_the_copy_times_out_in_preparing(cloud, store):
    cloud.hypervisors["a"].add_guest("web")
    hooks = Hooks(network=ScriptedNetwork(plug_delay_s=None), volumes=LocalVolumes())
    migration = executor_for(cloud, store, hooks).migrate(
        "web", dest="b", settings=settings(vif_plugging_timeout=1)
    )
    assert (migration.status, migration.failure["phase"]) == (Status.ERROR, "preparing")


def test_vifs_plugged_in_preparing_let_the_copy_start_at_full_speed(cloud, store):
    cloud.hypervisors["a"].add_guest("web")
    hooks = Hooks(network=ScriptedNetwork(plug_delay_s=0.05), volumes=LocalVolumes())
    migration = executor_for(cloud, store, hooks).migrate(
        "web", dest="b", settings=settings(live_migration_bandwidth=300)
    )
    order = names(store, migration.id)
    assert order.index("VifPlugged") < order.index("PreparationCompleted")
    assert events(store, migration.id, "MigrationStarted")[0].bandwidth_mib_s == 300


# ------------------------------------------------------------------ timeouts, force-complete, abort

HOT = {"memory_mb": 64, "dirty_rate_bytes_s": 400 * MIB}
CAPPED = {"live_migration_bandwidth": 200, "live_migration_completion_timeout": 1}


def test_a_guest_that_cannot_converge_is_aborted_at_the_completion_timeout(cloud, store):
    cloud.hypervisors["a"].add_guest("hot", **HOT)
    migration = executor_for(cloud, store).migrate("hot", dest="b", settings=settings(**CAPPED))
    assert migration.status is Status.CANCELLED and migration.cancelled_by == "timeout action"
    reached = events(store, migration.id, "CompletionTimeoutReached")[0]
    assert reached.action == "abort" and reached.elapsed_s > migration.completion_timeout_s
    assert names(store, migration.id)[-2:] == ["RolledBack", "Cancelled"]
    assert cloud.hypervisors["a"].guest("hot").power_state is PowerState.RUNNING
    assert store.instance("hot").task_state is None


def test_the_force_complete_timeout_action_switches_to_post_copy(cloud, store):
    cloud.hypervisors["a"].add_guest("hot", **HOT)
    migration = executor_for(cloud, store).migrate(
        "hot",
        dest="b",
        settings=settings(
            **CAPPED,
            live_migration_timeout_action="force_complete",
            live_migration_permit_post_copy=True,
        ),
    )
    assert migration.status is Status.COMPLETED
    order = names(store, migration.id)
    assert order.index("ForceCompleteRequested") < order.index("SwitchedToPostCopy")


def test_force_complete_without_post_copy_pauses_the_guest_and_the_destination_runs_it(
    cloud, store
):
    cloud.hypervisors["a"].add_guest("hot", **HOT)
    executor = executor_for(cloud, store)
    migration, lease = executor.request(
        "hot", dest="b", settings=settings(live_migration_bandwidth=200)
    )
    thread, result = in_background(lambda: executor.execute(migration.id))
    wait_for(lambda: store.migration(migration.id).status is Status.RUNNING)
    request_force_complete(store, migration.id)
    thread.join(20)
    lease.release()
    assert result[0].status is Status.COMPLETED
    assert "GuestPaused" in names(store, migration.id)
    assert cloud.hypervisors["b"].guest("hot").power_state is PowerState.RUNNING


def test_an_abort_recorded_in_the_store_cancels_the_running_job(cloud, store):
    cloud.hypervisors["a"].add_guest("hot", **HOT)
    executor = executor_for(cloud, store)
    migration, lease = executor.request(
        "hot", dest="b", settings=settings(live_migration_bandwidth=200)
    )
    thread, result = in_background(lambda: executor.execute(migration.id))
    wait_for(lambda: store.migration(migration.id).status is Status.RUNNING)
    request_abort(store, migration.id, by="api")
    thread.join(20)
    lease.release()
    assert result[0].status is Status.CANCELLED and result[0].cancelled_by == "api"
    assert cloud.hypervisors["a"].guest("hot").power_state is PowerState.RUNNING
    assert cloud.hypervisors["b"].guest("hot") is None


def test_refused_control_requests_say_why(cloud, store):
    cloud.hypervisors["a"].add_guest("web")
    migration = executor_for(cloud, store).migrate("web", dest="b")
    with pytest.raises(UserError, match="completed"):
        request_abort(store, migration.id)
    with pytest.raises(UserError, match="completed"):
        request_force_complete(store, migration.id)
    with pytest.raises(UserError, match="no migration"):
        request_abort(store, "deadbeef")


# ------------------------------------------------------------------ recovery


def test_recovery_completes_a_migration_whose_guest_already_left(cloud, store):
    cloud.hypervisors["a"].add_guest("web")
    executor = executor_for(cloud, store)
    migration, lease = executor.request("web", dest="b")
    lease.release()
    store.change(migration.id, lambda m: _to_running(m, "b"))
    cloud.hypervisors["b"].guests_by_name["web"] = cloud.hypervisors["a"].guests_by_name.pop("web")
    results = executor.recover()
    assert [r.status for r in results] == ["completed"]
    assert store.instance("web").task_state is None and store.instance("web").host == "b"


def test_recovery_rolls_back_a_migration_whose_job_is_gone(cloud, store):
    cloud.hypervisors["a"].add_guest("web")
    executor = executor_for(cloud, store)
    migration, lease = executor.request("web", dest="b")
    lease.release()
    store.change(migration.id, lambda m: _to_running(m, "b"))
    cloud.hypervisors["b"].add_guest("web", state=PowerState.PAUSED)  # a half-built incoming one
    results = executor.recover()
    assert [r.status for r in results] == ["error"]
    assert names(store, migration.id)[-2:] == ["RolledBack", "Failed"]
    assert cloud.hypervisors["b"].guest("web") is None
    assert store.instance("web").task_state is None and store.instance("web").host == "a"


def test_recovery_leaves_migrations_of_live_executors_alone(cloud, store):
    cloud.hypervisors["a"].add_guest("web")
    executor = executor_for(cloud, store)
    migration, lease = executor.request("web", dest="b")
    assert executor.recover() == []
    lease.release()
    assert [r.status for r in executor.recover()] == ["error"]
    assert store.migration(migration.id).failure["phase"] == "checks"


def _to_running(migration: Migration, dest: str) -> None:
    at = utc_now()
    migration.select_destination(dest, attempt=1, at=at)
    migration.queue(data_gb=2, downtime_steps=[(0, 50)], completion_timeout_s=100, at=at)
    migration.start_preparation(dest_host=dest, at=at)
    migration.start(flags=["live", "peer2peer"], bandwidth_mib_s=0, at=at)
