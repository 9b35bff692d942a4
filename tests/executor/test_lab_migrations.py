"""Real live migrations, run by lmes's executor between the lab's libvirt hosts.

Each test creates its own dirtying guest (64 MiB dirty set, bandwidth capped at 16-32 MiB/s so
a copy lasts a few seconds) and checks both what lmes recorded and what libvirt did: where the
guest runs, whether it kept counting, what libvirt's job really had set.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import threading
import time
from pathlib import Path

import pytest

from lmes.domain import policy
from lmes.domain.settings import Settings
from lmes.domain.status import Status
from lmes.executor.hooks import Hooks, LocalVolumes, ScriptedNetwork
from lmes.executor.hypervisor import JobType, PowerState
from lmes.executor.lab import Lab, guest_reports, wait_for_report
from lmes.executor.lab.hosts import load_hosts, render_hosts
from lmes.executor.lease import lease_held
from lmes.executor.service import Executor, request_abort, request_force_complete
from lmes.store import open_store
from tests.conftest import run_lmes
from tests.executor.conftest import MIB

pytestmark = pytest.mark.lab

CONVERGING = {"memory_mb": 128, "dirty_mb": 64, "dirty_rate_bps": 20 * MIB}
NEVER_CONVERGING = {"memory_mb": 128, "dirty_mb": 64, "dirty_rate_bps": 48 * MIB}


@pytest.fixture
def env(lab: Lab, tmp_path: Path, monkeypatch) -> dict[str, str]:
    """A store and a data folder of the test's own; the lab's hosts file as the default."""
    values = {
        "LMES_HOME": str(tmp_path / "home"),
        "LMES_STORE": f"sqlite:///{tmp_path / 'lmes.sqlite'}",
        "LMES_HOSTS": str(lab.hosts_file),
    }
    for name, value in values.items():
        monkeypatch.setenv(name, value)
    return values


@pytest.fixture
def store(env):
    return open_store()


@pytest.fixture
def executor(lab: Lab, store):
    executor = Executor.from_hosts_file(store, lab.hosts_file)
    yield executor
    executor.close()


def settings(**options) -> Settings:
    return Settings.defaults().with_overrides(**options)


def events(store, migration_id, kind: str | None = None) -> list:
    return [
        e
        for e in store.all_events()
        if e.originator_id == migration_id and (kind is None or type(e).__name__ == kind)
    ]


def event_names(store, migration_id) -> list[str]:
    return [type(e).__name__ for e in events(store, migration_id)]


def running_on(executor: Executor, name: str) -> dict[str, PowerState]:
    """The hosts that have the guest, and its state there."""
    found = {}
    for host in executor.cloud.hosts:
        guest = executor.cloud.hypervisor(host.name).guest(name)
        if guest is not None:
            found[host.name] = guest.power_state
    return found


def assert_kept_counting(lab: Lab, name: str, before, host: str) -> None:
    """The guest's counters (kept in its memory) went on from where they were: not restarted,
    not rewound, no page lost."""
    after = wait_for_report(lab, host, name, after_seq=before.seq, timeout_s=20)
    assert after.seq > before.seq
    assert after.total_pages > before.total_pages
    assert after.bad_pages == 0
    assert all(r.seq > 0 and r.bad_pages == 0 for r in guest_reports(lab, host, name))


def start_in_background(executor: Executor, migration_id, on_progress=None):
    result: list = []
    thread = threading.Thread(
        target=lambda: result.append(executor.execute(migration_id, on_progress=on_progress)),
        daemon=True,
    )
    thread.start()
    return thread, result


def wait_for_status(store, migration_id, status: Status, timeout_s: float = 30) -> None:
    deadline = time.monotonic() + timeout_s
    while store.migration(migration_id).status is not status:
        assert time.monotonic() < deadline, f"never reached {status}"
        time.sleep(0.1)


# ------------------------------------------------------------------ completed


def test_a_migration_completes_with_the_policys_downtime_ramp_set_on_libvirt(
    lab, make_guest, executor, store
):
    # 24 MiB/s dirtying a 32 MiB set against 16 MiB/s: a pass leaves most of the set dirty
    # again, so QEMU wants well over a second of downtime; the ramp's first step (1000 ms) is
    # too short and the second (1666 ms, 6 s later) lets it finish.
    guest = make_guest(memory_mb=128, dirty_mb=32, dirty_rate_bps=24 * MIB, host="lab-a")
    before = wait_for_report(lab, "lab-a", guest.name)
    ramp = settings(
        live_migration_bandwidth=16,
        live_migration_downtime=3000,
        live_migration_downtime_steps=3,
        live_migration_downtime_delay=3,
    )
    source = executor.cloud.hypervisor("lab-a")
    seen_on_libvirt: list[tuple[int | None, int | None]] = []

    def watch(view) -> None:
        seen_on_libvirt.append((view.downtime_limit_ms, source.max_downtime(guest.name)))

    migration, lease = executor.request(guest.name, dest="lab-b", settings=ramp)
    try:
        final = executor.execute(migration.id, on_progress=watch)
    finally:
        lease.release()

    assert final.status is Status.COMPLETED, final.failure
    expected = policy.downtime_steps(3000, 3, 3, final.data_gb, ramp.release)
    increased = events(store, final.id, "DowntimeIncreased")
    assert [(e.step_index, e.downtime_ms) for e in increased] == [
        (index, expected[index][1]) for index in range(len(increased))
    ]
    assert len(increased) >= 2
    for event in increased:
        assert event.elapsed_s > expected[event.step_index][0]
    assert {limit for limit, on_libvirt in seen_on_libvirt if limit == on_libvirt} >= {
        expected[0][1],
        expected[1][1],
    }
    assert final.downtime_ms > 0 and final.total_s > 0 and final.bytes_sent > 32 * MIB
    assert final.iterations >= 2
    assert running_on(executor, guest.name) == {"lab-b": PowerState.RUNNING}
    assert executor.cloud.hypervisor("lab-b").guest(guest.name).persistent
    assert store.instance(guest.name).host == "lab-b"
    assert store.instance(guest.name).task_state is None
    assert_kept_counting(lab, guest.name, before, "lab-b")


def test_the_copy_starts_slow_until_the_vifs_are_plugged(lab, make_guest, store):
    guest = make_guest(**CONVERGING, host="lab-a")
    plugged = threading.Event()
    network = ScriptedNetwork(plug_delay_s=0.0, plug_after=plugged)
    executor = Executor.from_hosts_file(
        store, lab.hosts_file, hooks=Hooks(network=network, volumes=LocalVolumes())
    )
    try:
        migration, lease = executor.request(
            guest.name,
            dest="lab-b",
            settings=settings(live_migration_bandwidth=32, live_migration_wait_for_vif_plug=False),
        )
        thread, result = start_in_background(executor, migration.id)
        wait_for_status(store, migration.id, Status.RUNNING)
        rate_before_plug = _copy_rate_bytes_s(lab, guest.name)
        plugged.set()
        thread.join(60)
        lease.release()
    finally:
        executor.close()
    assert result[0].status is Status.COMPLETED, result[0].failure
    assert events(store, migration.id, "MigrationStarted")[0].bandwidth_mib_s == 1
    assert rate_before_plug <= 2 * MIB  # libvirt really copied at Nova's minimum speed
    names = event_names(store, migration.id)
    assert names.index("VifPlugged") < names.index("BandwidthChanged") < names.index("Completed")
    assert events(store, migration.id, "BandwidthChanged")[0].bandwidth_mib_s == 32


def _copy_rate_bytes_s(lab: Lab, name: str) -> float:
    """libvirt's own measure of the copy rate, once it has one, through the test's connection."""
    import libvirt

    connection = libvirt.open(lab.host("lab-a").uri)
    try:
        domain = connection.lookupByName(name)
        for _ in range(200):
            rate = domain.jobStats().get("memory_bps", 0)
            if rate:
                return rate
            time.sleep(0.05)
        raise AssertionError("libvirt never reported a copy rate")
    finally:
        connection.close()


def test_a_block_migration_copies_the_local_disk(lab, make_guest, executor, store):
    guest = make_guest(memory_mb=64, dirty_mb=8, dirty_rate_bps=2 * MIB, host="lab-a", disk_mb=64)
    before = wait_for_report(lab, "lab-a", guest.name)
    image = f"{guest.name}.qcow2"
    images = {h.name: lab.state_dir / h.name / "lib" / "images" / image for h in lab.hosts}

    final = executor.migrate(guest.name, settings=settings(live_migration_bandwidth=32))

    assert final.status is Status.COMPLETED, final.failure
    assert final.dest_host == "lab-b"  # chosen by the scheduler
    assert "non_shared_inc" in events(store, final.id, "MigrationStarted")[0].flags
    assert final.data_gb == 4.0  # RAM and disk each count at least 2 GiB
    prepared = events(store, final.id, "PreparationCompleted")[0].details
    assert prepared["block_migration"] and prepared["disks"]
    assert images["lab-b"].read_bytes()[:4] == b"QFI\xfb"
    assert not images["lab-a"].exists()  # the source was cleaned
    assert running_on(executor, guest.name) == {"lab-b": PowerState.RUNNING}
    assert_kept_counting(lab, guest.name, before, "lab-b")


# ------------------------------------------------------------------ timeouts and force-complete

TIMEOUT_IN_4_S = {"live_migration_bandwidth": 16, "live_migration_completion_timeout": 2}


def test_a_guest_that_cannot_converge_is_aborted_at_the_completion_timeout(
    lab, make_guest, executor, store
):
    guest = make_guest(**NEVER_CONVERGING, host="lab-a")
    before = wait_for_report(lab, "lab-a", guest.name)

    final = executor.migrate(guest.name, dest="lab-b", settings=settings(**TIMEOUT_IN_4_S))

    assert final.status is Status.CANCELLED
    assert final.completion_timeout_s == 4
    reached = events(store, final.id, "CompletionTimeoutReached")[0]
    assert reached.action == "abort" and reached.elapsed_s > 4
    assert event_names(store, final.id)[-2:] == ["RolledBack", "Cancelled"]
    assert running_on(executor, guest.name) == {"lab-a": PowerState.RUNNING}
    assert store.instance(guest.name).task_state is None
    assert_kept_counting(lab, guest.name, before, "lab-a")


def test_the_timeout_action_force_complete_switches_to_post_copy(lab, make_guest, executor, store):
    guest = make_guest(**NEVER_CONVERGING, host="lab-a")
    before = wait_for_report(lab, "lab-a", guest.name)

    final = executor.migrate(
        guest.name,
        dest="lab-b",
        settings=settings(
            **TIMEOUT_IN_4_S,
            live_migration_timeout_action="force_complete",
            live_migration_permit_post_copy=True,
        ),
    )

    assert final.status is Status.COMPLETED, final.failure
    names = event_names(store, final.id)
    assert names.index("CompletionTimeoutReached") < names.index("SwitchedToPostCopy")
    assert "postcopy" in events(store, final.id, "MigrationStarted")[0].flags
    assert running_on(executor, guest.name) == {"lab-b": PowerState.RUNNING}
    assert_kept_counting(lab, guest.name, before, "lab-b")


def test_force_complete_without_post_copy_pauses_the_guest(lab, make_guest, executor, store):
    guest = make_guest(**NEVER_CONVERGING, host="lab-a")
    before = wait_for_report(lab, "lab-a", guest.name)
    migration, lease = executor.request(
        guest.name, dest="lab-b", settings=settings(live_migration_bandwidth=16)
    )
    thread, result = start_in_background(executor, migration.id)
    wait_for_status(store, migration.id, Status.RUNNING)
    time.sleep(1)
    request_force_complete(store, migration.id, by="test")
    thread.join(60)
    lease.release()

    assert result[0].status is Status.COMPLETED, result[0].failure
    assert "GuestPaused" in event_names(store, migration.id)
    assert running_on(executor, guest.name) == {"lab-b": PowerState.RUNNING}
    assert_kept_counting(lab, guest.name, before, "lab-b")


# ------------------------------------------------------------------ abort from another process


def test_lmes_abort_from_another_process_cancels_the_copy(lab, make_guest, executor, store, env):
    guest = make_guest(**NEVER_CONVERGING, host="lab-a")
    migration, lease = executor.request(
        guest.name, dest="lab-b", settings=settings(live_migration_bandwidth=16)
    )
    thread, result = start_in_background(executor, migration.id)
    wait_for_status(store, migration.id, Status.RUNNING)

    aborted = run_lmes("abort", str(migration.id)[:8], env=env)
    thread.join(60)
    lease.release()

    assert aborted.returncode == 0, aborted.stderr
    assert result[0].status is Status.CANCELLED and result[0].cancelled_by == "cli"
    assert running_on(executor, guest.name) == {"lab-a": PowerState.RUNNING}
    again = run_lmes("abort", str(migration.id), env=env)
    assert again.returncode == 2 and again.stderr.count("\n") == 1
    assert "cancelled" in again.stderr


# ------------------------------------------------------------------ conductor checks


def _hosts_file(lab: Lab, tmp_path: Path, **changes) -> Path:
    """The lab's hosts, with some hosts' capacity changed and an unreachable host added."""
    hosts = []
    for host in load_hosts(lab.hosts_file):
        if host.name in changes:
            host = changes[host.name](host)
        hosts.append(host)
    down = hosts[-1].__class__(
        name="lab-down",
        uri=f"qemu:///system?socket={tmp_path}/no-such-socket",
        p2p_uri=f"qemu+unix:///system?socket={tmp_path}/no-such-socket",
        migration_address="127.0.0.1",
        migration_uri="tcp://127.0.0.1",
        capacity=hosts[-1].capacity,
    )
    path = tmp_path / "hosts.toml"
    path.write_text(render_hosts([*hosts, down], {}))
    return path


def test_every_conductor_check_refuses_for_its_reason(lab, make_guest, store, tmp_path):
    from dataclasses import replace

    small = _hosts_file(
        lab,
        tmp_path,
        **{"lab-b": lambda h: replace(h, capacity=replace(h.capacity, memory_mb=64))},
    )
    executor = Executor.from_hosts_file(store, small)
    guest = make_guest(memory_mb=128, dirty_mb=8, dirty_rate_bps=MIB, host="lab-a")
    try:
        outcomes = {
            dest: executor.migrate(guest.name, dest=dest).failure["check"]
            for dest in ("lab-a", "lab-down", "lab-b")
        }
        scheduled = executor.migrate(guest.name)
    finally:
        executor.close()
    assert outcomes == {
        "lab-a": "UnableToMigrateToSelf",
        "lab-down": "ComputeServiceUnavailable",
        "lab-b": "MigrationPreCheckError",
    }
    # No host passes the scheduler's filters: the one up has too little memory.
    assert (scheduled.status, scheduled.failure["check"]) == (Status.ERROR, "NoValidHost")
    for migration in store.migrations():
        assert migration.status is Status.ERROR
        assert event_names(store, migration.id)[-1] == "PrecheckFailed"
    assert running_on(Executor.from_hosts_file(store, lab.hosts_file), guest.name) == {
        "lab-a": PowerState.RUNNING
    }


def test_a_guest_cpu_the_destination_cannot_run_is_refused_by_libvirt(
    lab, make_guest, executor, store
):
    # The guest requires avx512f: QEMU's TCG only warns and starts it on the source, while
    # libvirt's compareHypervisorCPU on the destination answers "incompatible".
    guest = make_guest(memory_mb=64, dirty_mb=8, dirty_rate_bps=MIB, host="lab-a")
    _require_cpu_feature(lab, guest.name, "avx512f")

    final = executor.migrate(guest.name, dest="lab-b")

    assert (final.status, final.failure["check"]) == (Status.ERROR, "InvalidCPUInfo")
    assert "incompatible" in final.failure["reason"]
    retried = executor.migrate(guest.name, settings=settings(migrate_max_retries=0))
    assert (retried.status, retried.failure["check"]) == (Status.FAILED, "MaxRetriesExceeded")
    rejected = events(store, retried.id, "DestinationRejected")
    assert [(e.host, e.check) for e in rejected] == [("lab-b", "InvalidCPUInfo")]


def _require_cpu_feature(lab: Lab, name: str, feature: str) -> None:
    import xml.etree.ElementTree as ET

    import libvirt

    connection = libvirt.open(lab.host("lab-a").uri)
    try:
        domain = connection.lookupByName(name)
        root = ET.fromstring(domain.XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE))
        for defined in root.findall("cpu"):  # libvirt writes its default model in
            root.remove(defined)
        cpu = ET.SubElement(root, "cpu", mode="custom", match="exact", check="none")
        ET.SubElement(cpu, "model", fallback="forbid").text = "qemu64"
        ET.SubElement(cpu, "feature", policy="require", name=feature)
        domain.destroy()
        connection.defineXML(ET.tostring(root, encoding="unicode")).create()
    finally:
        connection.close()


# ------------------------------------------------------------------ crash safety


def test_kill_9_while_running_then_lmes_recover_takes_over(lab, make_guest, store, env):
    # The copy cannot converge: it only ends when a monitor applies the timeout action
    # (post-copy after 8 s), so the job is still running whenever `lmes recover` starts.
    guest = make_guest(**NEVER_CONVERGING, host="lab-a")
    before = wait_for_report(lab, "lab-a", guest.name)
    started = run_lmes(
        "migrate", guest.name, "--dest", "lab-b", "--detach", "--json",
        "--live-migration-bandwidth", "16", "--live-migration-completion-timeout", "4",
        "--live-migration-timeout-action", "force_complete",
        "--live-migration-permit-post-copy", env=env,
    )  # fmt: skip
    assert started.returncode == 0, started.stderr
    detached = json.loads(started.stdout)
    wait_for_job(Executor.from_hosts_file(store, lab.hosts_file), "lab-a", guest.name)
    assert lease_held(_uuid(detached["migration_id"]))  # the background executor holds it
    time.sleep(1)
    os.kill(detached["pid"], signal.SIGKILL)
    time.sleep(0.2)
    assert not lease_held(_uuid(detached["migration_id"]))

    recovered = run_lmes("recover", "--json", env=env)

    assert recovered.returncode == 0, recovered.stderr
    [result] = json.loads(recovered.stdout)
    assert result["was"] == "running" and result["status"] == "completed"
    assert result["action"].startswith("taken over")
    migration = store.migration(_uuid(detached["migration_id"]))
    assert migration.status is Status.COMPLETED and migration.downtime_ms > 0
    assert "SwitchedToPostCopy" in event_names(store, migration.id)
    executor = Executor.from_hosts_file(store, lab.hosts_file)
    assert running_on(executor, guest.name) == {"lab-b": PowerState.RUNNING}
    assert store.instance(guest.name).task_state is None
    assert_kept_counting(lab, guest.name, before, "lab-b")
    assert json.loads(run_lmes("recover", "--json", env=env).stdout) == []


def test_kill_9_while_running_then_the_next_migrate_hands_the_job_over(lab, make_guest, store, env):
    # A copy that never converges keeps libvirt's job running after its executor died; the
    # next `lmes migrate` gives it to a background executor, which obeys an abort.
    guest = make_guest(**NEVER_CONVERGING, host="lab-a")
    other = make_guest(memory_mb=64, dirty_mb=8, dirty_rate_bps=MIB, host="lab-b")
    started = run_lmes(
        "migrate", guest.name, "--dest", "lab-b", "--detach", "--json",
        "--live-migration-bandwidth", "16", env=env,
    )  # fmt: skip
    detached = json.loads(started.stdout)
    migration_id = _uuid(detached["migration_id"])
    executor = Executor.from_hosts_file(store, lab.hosts_file)
    wait_for_job(executor, "lab-a", guest.name)
    os.kill(detached["pid"], signal.SIGKILL)

    moved = run_lmes("migrate", other.name, "--dest", "lab-a", env=env)

    assert moved.returncode == 0, moved.stderr
    assert "handed over to executor pid" in moved.stderr
    assert lease_held(migration_id)
    request_abort(store, migration_id, by="test")
    wait_for_status(store, migration_id, Status.CANCELLED, timeout_s=60)
    assert running_on(executor, guest.name) == {"lab-a": PowerState.RUNNING}
    assert store.instance(guest.name).task_state is None
    executor.close()


def test_kill_9_then_a_dead_job_is_rolled_back_by_the_next_migrate(lab, make_guest, store, env):
    guest = make_guest(**NEVER_CONVERGING, host="lab-a")
    other = make_guest(memory_mb=64, dirty_mb=8, dirty_rate_bps=MIB, host="lab-a")
    started = run_lmes(
        "migrate", guest.name, "--dest", "lab-b", "--detach", "--json",
        "--live-migration-bandwidth", "16", env=env,
    )  # fmt: skip
    detached = json.loads(started.stdout)
    migration_id = _uuid(detached["migration_id"])
    executor = Executor.from_hosts_file(store, lab.hosts_file)
    wait_for_job(executor, "lab-a", guest.name)
    os.kill(detached["pid"], signal.SIGKILL)
    executor.cloud.hypervisor("lab-a").abort_job(guest.name)  # the job dies with the executor
    time.sleep(1)

    moved = run_lmes("migrate", other.name, "--dest", "lab-b", env=env)

    assert moved.returncode == 0, moved.stderr
    assert f"recovered {migration_id}" in moved.stderr
    migration = store.migration(migration_id)
    assert migration.status is Status.ERROR
    assert event_names(store, migration_id)[-2:] == ["RolledBack", "Failed"]
    assert running_on(executor, guest.name) == {"lab-a": PowerState.RUNNING}
    assert store.instance(guest.name).task_state is None
    executor.close()


def wait_for_job(executor: Executor, host: str, name: str, timeout_s: float = 30) -> None:
    """Until libvirt runs the guest's migration job on `host`."""
    deadline = time.monotonic() + timeout_s
    hypervisor = executor.cloud.hypervisor(host)
    while hypervisor.job_stats(name).job_type is not JobType.UNBOUNDED:
        assert time.monotonic() < deadline, "the migration job never started"
        time.sleep(0.05)


def _uuid(text: str):
    from uuid import UUID

    return UUID(text)


# ------------------------------------------------------------------ the command line


def test_lmes_hosts_and_instances_show_the_lab(lab, make_guest, env, store, executor):
    guest = make_guest(memory_mb=64, dirty_mb=8, dirty_rate_bps=MIB, host="lab-b")
    hosts = run_lmes("hosts", "--json", env=env)
    assert hosts.returncode == 0, hosts.stderr
    facts = {f["name"]: f for f in json.loads(hosts.stdout)}
    assert set(facts) == {"lab-a", "lab-b"}
    assert all(f["reachable"] and f["hypervisor_type"] == "QEMU" for f in facts.values())
    assert guest.name in facts["lab-b"]["running_instances"]

    migration, lease = executor.request(guest.name, dest="lab-a")
    listed = json.loads(run_lmes("instances", "--json", env=env).stdout)
    row = next(r for r in listed if r["name"] == guest.name)
    assert (row["host"], row["vm_state"], row["task_state"]) == ("lab-b", "active", "migrating")
    executor.execute(migration.id)
    lease.release()
    listed = json.loads(run_lmes("instances", "--json", env=env).stdout)
    row = next(r for r in listed if r["name"] == guest.name)
    assert (row["host"], row["task_state"]) == ("lab-a", None)


def test_lmes_migrate_prints_the_id_and_final_status(lab, make_guest, env, store):
    guest = make_guest(memory_mb=64, dirty_mb=8, dirty_rate_bps=MIB, host="lab-a")
    done = run_lmes("migrate", guest.name, env=env)
    assert done.returncode == 0, done.stderr
    migration_id, outcome = done.stdout.strip().splitlines()
    assert store.migration(_uuid(migration_id)).status is Status.COMPLETED
    assert outcome.startswith("completed:")
    refused = run_lmes("migrate", "no-such-guest", env=env)
    assert refused.returncode == 2 and refused.stderr.count("\n") == 1
    assert "was not found" in refused.stderr


def test_ctrl_c_without_a_terminal_aborts_the_migration(lab, make_guest, env, store):
    guest = make_guest(**NEVER_CONVERGING, host="lab-a")
    process = subprocess.Popen(
        ["python3", "-m", "lmes.cli", "migrate", guest.name, "--dest", "lab-b",
         "--live-migration-bandwidth", "16"],
        stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env={**os.environ, **env, "PYTHONPATH": str(Path(__file__).resolve().parents[2])},
    )  # fmt: skip
    migration_id = _uuid(process.stdout.readline().strip())
    wait_for_status(store, migration_id, Status.RUNNING)
    process.send_signal(signal.SIGINT)
    out, err = process.communicate(timeout=60)
    assert process.returncode == 1, err
    assert out.strip().startswith("cancelled")
    assert store.migration(migration_id).cancelled_by == "cli (interrupt)"
