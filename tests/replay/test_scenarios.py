"""Many migrations in one set of logs: eras, interleaving, repeats, and every way they end."""

from __future__ import annotations

import pytest

from bench.make_nova_logs import write_scenario
from lmes.replay.service import Replay, collect_logs
from lmes.replay.sources import ParallelSources
from tests.replay.conftest import compute_log, planned, replay_folder

A = "0a0a0a0a-1111-4111-8111-000000000001"
B = "0b0b0b0b-2222-4222-8222-000000000002"
C = "0c0c0c0c-3333-4333-8333-000000000003"


def by_request(migrations):
    return {m.diagnosis.request_ids[0]: m.diagnosis for m in migrations}


@pytest.fixture(scope="module")
def interleaved(tmp_path_factory):
    """Newton hosts 01/02 and Wallaby hosts 03/04 migrating at once; instance A twice."""
    folder = tmp_path_factory.mktemp("interleaved")
    write_scenario(
        folder,
        [
            planned(
                "newton",
                instance=A,
                request="req-aaaa0001-0000-4000-8000-000000000001",
                source="compute-01",
                dest="compute-02",
                at_s=0,
            ),
            planned(
                "wallaby",
                instance=B,
                request="req-bbbb0001-0000-4000-8000-000000000001",
                source="compute-03",
                dest="compute-04",
                at_s=2,
            ),
            planned(
                "wallaby",
                instance=C,
                request="req-cccc0001-0000-4000-8000-000000000001",
                source="compute-04",
                dest="compute-03",
                at_s=3,
            ),
            planned(
                "newton",
                instance=A,
                request="req-aaaa0002-0000-4000-8000-000000000002",
                source="compute-02",
                dest="compute-01",
                at_s=400,
            ),
        ],
    )
    return by_request(replay_folder(folder))


def test_each_migration_is_found_once_with_its_own_hosts(interleaved):
    hosts = {r: (d.instance, d.source_host, d.dest_host) for r, d in interleaved.items()}
    assert hosts == {
        "req-aaaa0001-0000-4000-8000-000000000001": (A, "compute-01", "compute-02"),
        "req-bbbb0001-0000-4000-8000-000000000001": (B, "compute-03", "compute-04"),
        "req-cccc0001-0000-4000-8000-000000000001": (C, "compute-04", "compute-03"),
        "req-aaaa0002-0000-4000-8000-000000000002": (A, "compute-02", "compute-01"),
    }
    assert all(d.outcome == "completed" for d in interleaved.values())
    assert len({d.id for d in interleaved.values()}) == 4


def test_the_era_of_each_ramp_is_recognised(interleaved):
    newton = interleaved["req-aaaa0001-0000-4000-8000-000000000001"].inferred
    wallaby = interleaved["req-bbbb0001-0000-4000-8000-000000000001"].inferred
    assert newton["ramp_form"] == "exponential"
    assert wallaby["ramp_form"] == "linear"
    for inferred in (newton, wallaby):
        assert (inferred["downtime_ms"], inferred["steps"], inferred["delay_s"]) == (500, 10, 75)
        assert inferred["data_gb"] == 2.0


def test_the_second_migration_of_an_instance_starts_after_the_first_ends(interleaved):
    first = interleaved["req-aaaa0001-0000-4000-8000-000000000001"]
    second = interleaved["req-aaaa0002-0000-4000-8000-000000000002"]
    assert first.ended_at < second.started_at


def test_a_pre_live_migration_failure_keeps_its_traceback_and_the_network_left_behind(tmp_path):
    write_scenario(
        tmp_path,
        [
            planned(
                "wallaby",
                instance=A,
                request="req-f0000001-0000-4000-8000-000000000001",
                outcome="pre_failed",
                network_cleanup_fails=True,
            ),
        ],
    )
    [migration] = replay_folder(tmp_path)
    d = migration.diagnosis
    assert d.outcome == "error"
    assert d.failure["phase"] == "pre_live_migration"
    assert "Pre live migration failed at compute-02" in d.failure["reason"]
    assert d.failure["traceback"].startswith(
        "nova.exception.VirtualInterfaceCreateException: Virtual Interface creation failed"
    )
    assert any(a.startswith("network clean-up left to the operator") for a in d.anomalies)
    events = [type(e).__name__ for e in migration.replayed.events]
    assert events[-2:] == ["RolledBack", "Failed"]


@pytest.mark.parametrize(("era", "status"), [("newton", "error"), ("wallaby", "failed")])
def test_a_failed_copy_ends_as_its_era_records_it(tmp_path, era, status):
    write_scenario(
        tmp_path,
        [
            planned(
                era,
                instance=A,
                request="req-f0000002-0000-4000-8000-000000000002",
                outcome="failed",
            ),
        ],
    )
    [migration] = replay_folder(tmp_path)
    d = migration.diagnosis
    assert d.outcome == status
    assert d.failure["phase"] == "memory_copy"
    assert d.failure["reason"] == "operation failed: migration out job: unexpectedly failed"


def test_a_completion_timeout_cancels_the_migration_and_says_why(tmp_path):
    write_scenario(
        tmp_path,
        [
            planned(
                "queens",
                instance=B,
                request="req-c0000001-0000-4000-8000-000000000001",
                outcome="cancelled",
                transfer_mib_s=110,
                dirty_mib_s=160,
                completion_timeout_per_gb_s=40,
            ),
        ],
    )
    [migration] = replay_folder(tmp_path)
    d = migration.diagnosis
    assert d.outcome == "cancelled"
    assert "completion timeout (80 s)" in d.failure["reason"]
    assert any(a.startswith("completion timeout") for a in d.anomalies)
    assert any(a.startswith("not converging") for a in d.anomalies)
    assert d.dirty_rate_bytes_s > d.transfer_rate_bytes_s * 0.9


def test_a_post_copy_switch_is_its_own_phase(tmp_path):
    write_scenario(
        tmp_path,
        [
            planned(
                "train",
                instance=C,
                request="req-p0000001-0000-4000-8000-000000000001",
                outcome="post_copy",
                memory_mb=8192,
                transfer_mib_s=110,
                dirty_mib_s=100,
            ),
        ],
    )
    [migration] = replay_folder(tmp_path)
    d = migration.diagnosis
    assert d.outcome == "completed"
    assert d.phases["post_copy"] > 0
    assert any(entry.text == "switched to post-copy" for entry in d.timeline)


def test_logs_that_stop_mid_copy_leave_the_migration_incomplete(tmp_path):
    write_scenario(
        tmp_path,
        [
            planned(
                "wallaby",
                instance=A,
                request="req-i0000001-0000-4000-8000-000000000001",
                outcome="incomplete",
                memory_mb=8192,
                transfer_mib_s=110,
                dirty_mib_s=50,
            ),
        ],
    )
    [migration] = replay_folder(tmp_path)
    d = migration.diagnosis
    assert d.outcome == "incomplete"
    assert d.ended_at is None
    assert d.anomalies[0].startswith(
        "no terminal event: the logs end while the migration is running"
    )


def test_api_and_conductor_logs_join_the_computes_under_the_request_id(tmp_path):
    request = "req-a9000001-0000-4000-8000-000000000001"
    write_scenario(
        tmp_path / "computes",
        [planned("wallaby", instance=B, request=request, at_s=0)],
    )
    user, project = "6c3c0761000f423780b2d1cbf4459dc5", "a899ce15f11740ab864a57b888163d3a"
    context = f"[None {request} {user} {project} - - default default]"
    (tmp_path / "controller").mkdir()
    (tmp_path / "controller" / "nova-api.log").write_text(
        f"2024-05-06 08:59:58.900 301 DEBUG nova.compute.api {context} [instance: {B}] "
        f"Going to try to live migrate instance to another host live_migrate "
        f"/usr/lib/python3.8/site-packages/nova/compute/api.py:5210\n"
    )
    (tmp_path / "controller" / "nova-conductor.log").write_text(
        f"2024-05-06 08:59:59.300 402 DEBUG nova.conductor.tasks.live_migrate {context} "
        f"[instance: {B}] Skipping host: compute-05 because: Unable to migrate {B} to "
        f"compute-05: Lack of memory _find_destination "
        f"/usr/lib/python3.8/site-packages/nova/conductor/tasks/live_migrate.py:560\n"
    )
    [migration] = replay_folder(tmp_path)
    d = migration.diagnosis
    assert d.started_at.isoformat() == "2024-05-06T08:59:58.900000+00:00"
    assert (d.source_host, d.dest_host, d.outcome) == ("compute-01", "compute-02", "completed")
    rejected = migration.replayed.migration.rejected
    assert rejected == [
        {
            "host": "compute-05",
            "check": "conductor",
            "reason": f"Unable to migrate {B} to compute-05: Lack of memory",
        }
    ]
    assert "accepted" not in migration.replayed.migration.context["inferred"]


def test_the_source_log_alone_times_the_destination_by_its_took_line(tmp_path):
    write_scenario(
        tmp_path,
        [planned("wallaby", instance=C, request="req-5a000001-0000-4000-8000-000000000001")],
    )
    [both] = replay_folder(tmp_path)
    [source_only] = replay_folder(tmp_path / "compute-01")
    took = both.replayed.events[4].duration_s  # PreparationCompleted, from "Took … seconds"
    assert source_only.diagnosis.phases["pre_live_migration"] == pytest.approx(took, abs=0.01)
    assert source_only.diagnosis.dest_host == "compute-02"
    assert source_only.diagnosis.outcome == "completed"


def test_worker_processes_find_the_same_migrations(tmp_path):
    write_scenario(
        tmp_path,
        [
            planned(
                "newton",
                instance=A,
                request="req-w0000001-0000-4000-8000-000000000001",
                source="compute-01",
                dest="compute-02",
            ),
            planned(
                "wallaby",
                instance=B,
                request="req-w0000002-0000-4000-8000-000000000002",
                source="compute-03",
                dest="compute-04",
                at_s=1,
            ),
            planned(
                "wallaby",
                instance=C,
                request="req-w0000003-0000-4000-8000-000000000003",
                source="compute-04",
                dest="compute-01",
                at_s=300,
                outcome="failed",
            ),
        ],
        noise_lines_s=2.0,
    )
    alone = replay_folder(tmp_path)
    replay = Replay(collect_logs([str(tmp_path)]), jobs=3, parallel_from_bytes=0)
    assert isinstance(replay.sources, ParallelSources)
    shared = list(replay.migrations())
    assert replay.lines_read == sum(1 for p in tmp_path.rglob("*.log") for _ in p.open("rb"))
    assert [m.diagnosis.as_dict() for m in shared] == [m.diagnosis.as_dict() for m in alone]
    assert len(alone) == 3


def test_a_failed_pre_check_in_the_conductor_ends_in_error(tmp_path):
    request = "req-9c000001-0000-4000-8000-000000000001"
    ctx = f"[None {request} admin admin - - default default]"
    (tmp_path / "controller").mkdir()
    (tmp_path / "controller" / "nova-conductor.log").write_text(
        f"2024-05-06 09:00:00.100 402 DEBUG nova.compute.api {ctx} [instance: {A}] Going to try "
        f"to live migrate instance to compute-09\n"
        f"2024-05-06 09:00:00.900 402 WARNING nova.conductor.tasks.live_migrate {ctx} "
        f"[instance: {A}] Migration pre-check failed: The request does not explicitly request "
        f"live-migratable devices.\n"
    )
    [migration] = replay_folder(tmp_path)
    d = migration.diagnosis
    assert (d.outcome, d.dest_host) == ("error", "compute-09")
    assert d.failure["phase"] == "checks"
    assert d.failure["reason"].startswith("The request does not explicitly request")


def test_newton_s_progress_timeout_cancels_and_is_explained(tmp_path):
    ctx = "[req-5d000001-0000-4000-8000-000000000001 admin admin - - -]"
    vm = f"[instance: {A}]"
    log = compute_log(
        tmp_path,
        "compute-11",
        f"2017-02-01 10:00:00.000 9 DEBUG nova.compute.manager {ctx} live_migration data is "
        f"LibvirtLiveMigrateData(block_migration=False)\n"
        f"2017-02-01 10:00:00.600 9 INFO nova.virt.libvirt.migration {ctx} {vm} Increasing "
        f"downtime to 46 ms after 0 sec elapsed time\n"
        f"2017-02-01 10:00:30.600 9 INFO nova.virt.libvirt.driver {ctx} {vm} Migration running "
        f"for 30 secs, memory 40% remaining; (bytes processed=6000, remaining=4000, total=10000)\n"
        f"2017-02-01 10:03:00.600 9 WARNING nova.virt.libvirt.migration {ctx} {vm} Live "
        f"migration stuck for 150 sec\n"
        f"2017-02-01 10:03:01.100 9 WARNING nova.virt.libvirt.driver {ctx} {vm} Migration "
        f"operation was cancelled\n",
    )
    [migration] = replay_folder(log)
    d = migration.diagnosis
    assert d.outcome == "cancelled"
    assert d.failure["reason"] == "cancelled by progress timeout"
    assert any("progress timeout fired: no progress for 150 s" in a for a in d.anomalies)


def test_an_abort_while_queued_cancels_before_any_preparation(tmp_path):
    ctx = "[None req-6e000001-0000-4000-8000-000000000001 admin admin - - default default]"
    abort = "[None req-6e000002-0000-4000-8000-000000000002 admin admin - - default default]"
    vm = f"[instance: {B}]"
    log = compute_log(
        tmp_path,
        "compute-12",
        f"2024-05-06 09:00:00.000 9 DEBUG nova.compute.manager {ctx} source check data is "
        f"LibvirtLiveMigrateData(block_migration=False,instance_relative_path='{B}')\n"
        f"2024-05-06 09:00:20.000 9 DEBUG nova.compute.api {abort} {vm} Going to cancel live "
        f"migration 42\n"
        f"2024-05-06 09:00:20.300 9 INFO nova.compute.manager {ctx} {vm} Successfully cancelled "
        f"queued live migration.\n",
    )
    [migration] = replay_folder(log)
    d = migration.diagnosis
    assert (d.outcome, d.failure["phase"]) == ("cancelled", "queued")
    assert d.request_ids == ["req-6e000001-0000-4000-8000-000000000001"]


def test_nova_18_s_wait_for_network_vif_plugged_is_a_phase(tmp_path):
    ctx = "[None req-7f000001-0000-4000-8000-000000000001 admin admin - - default default]"
    neutron = "[None req-7f000002-0000-4000-8000-000000000002 neutron service - - default default]"
    vm = f"[instance: {C}]"
    port = "3b1c5a2e-1111-4222-8333-944455556666"
    log = compute_log(
        tmp_path,
        "compute-13",
        f"2024-05-06 09:00:00.000 9 DEBUG nova.compute.manager {ctx} source check data is "
        f"LibvirtLiveMigrateData(block_migration=False,instance_relative_path='{C}')\n"
        f"2024-05-06 09:00:03.000 9 INFO nova.compute.manager {ctx} {vm} Took 2.50 seconds for "
        f"pre_live_migration on destination host compute-14.\n"
        f"2024-05-06 09:00:09.500 9 DEBUG nova.compute.manager {neutron} {vm} Received event "
        f"network-vif-plugged-{port} external_instance_event /usr/lib/nova/compute/manager.py:1\n"
        f"2024-05-06 09:00:09.510 9 DEBUG nova.compute.manager {neutron} {vm} Processing event "
        f"network-vif-plugged-{port} _process_instance_event /usr/lib/nova/compute/manager.py:2\n"
        f"2024-05-06 09:00:09.600 9 DEBUG nova.compute.manager {ctx} {vm} live_migration data is "
        f"LibvirtLiveMigrateData(block_migration=False)\n"
        f"2024-05-06 09:00:09.700 9 DEBUG nova.virt.libvirt.driver {ctx} {vm} Starting "
        f"monitoring of live migration\n"
        f"2024-05-06 09:00:20.000 9 INFO nova.virt.libvirt.driver {ctx} {vm} Migration operation "
        f"has completed\n"
        f"2024-05-06 09:00:21.000 9 INFO nova.compute.manager {ctx} {vm} Migrating instance to "
        f"compute-14 finished successfully.\n",
    )
    [migration] = replay_folder(log)
    d = migration.diagnosis
    assert d.outcome == "completed" and d.dest_host == "compute-14"
    assert d.phases["vif_wait"] == pytest.approx(6.5)
    plugged = [e for e in migration.replayed.events if type(e).__name__ == "VifPlugged"]
    assert [e.port_id for e in plugged] == [port]
    assert d.request_ids == ["req-7f000001-0000-4000-8000-000000000001"]
