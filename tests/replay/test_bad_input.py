"""Garbage, truncated files and logs without migrations: an answer, never a traceback."""

from __future__ import annotations

import random

from tests.replay.conftest import SEED, compute_log, replay_folder

SOURCE_LOG = SEED / "node-1" / "nova-compute.log"


def test_binary_garbage_holds_no_migration(tmp_path):
    garbage = tmp_path / "garbage.log"
    garbage.write_bytes(random.Random(3).randbytes(200_000))
    assert replay_folder(garbage) == []


def test_lines_that_only_look_like_nova_are_skipped(tmp_path):
    log = tmp_path / "odd.log"
    log.write_text(
        "2019-12-16 16:05:28.175 10895 DEBUG\n"
        "2019-12-16 16:05:28.175 10895 INFO nova.compute.manager [req-x - - - - -] [instance: \n"
        "Increasing downtime to many ms after a while\n"
        "2019-13-45 99:99:99.999 1 INFO nova.virt.libvirt.migration Migration running for\n"
        "\x00\x00\x00 Migration operation has completed\n"
        "2019-12-16 16:05:41.099 14120 INFO nova.virt.libvirt.driver [req-y - - - - -] "
        "Migration running for 0 secs, memory 98% remaining; "
        "(bytes processed=x, remaining=, total=)\n"
    )
    migrations = replay_folder(log)
    assert all(m.diagnosis.outcome == "incomplete" for m in migrations)


def test_a_log_cut_in_the_middle_of_the_copy_gives_an_incomplete_migration(tmp_path):
    text = SOURCE_LOG.read_text()
    cut = text.index("Migration running for 0 secs") + 40  # inside a line, like a full disk
    truncated = tmp_path / "node-1" / "nova-compute.log"
    truncated.parent.mkdir()
    truncated.write_text(text[:cut])
    [migration] = replay_folder(truncated)
    d = migration.diagnosis
    assert d.outcome == "incomplete"
    assert d.source_host == "node-1"
    assert d.downtime_steps == [[0.0, 46]]
    assert d.anomalies[0].startswith("no terminal event")


def test_only_the_source_log_still_rebuilds_the_whole_migration(tmp_path):
    [migration] = replay_folder(SOURCE_LOG)
    d = migration.diagnosis
    assert d.outcome == "completed"
    assert (d.source_host, d.dest_host) == ("node-1", "node-3.domain.tld")
    inferred = migration.replayed.migration.context["inferred"]
    assert "preparing" not in inferred or "destination" in inferred["preparing"]
    assert "queued" in inferred


def test_a_log_without_live_migration_gives_nothing(tmp_path):
    log = tmp_path / "quiet.log"
    log.write_text(
        "2024-05-06 09:00:00.000 1234 DEBUG oslo_service.periodic_task [req-1 - - - - -] "
        "Running periodic task ComputeManager._poll_rebooting_instances run_periodic_tasks "
        "/usr/lib/python3/site-packages/oslo_service/periodic_task.py:210\n" * 50
    )
    assert replay_folder(log) == []


def test_a_monitor_that_raised_leaves_an_error_without_rollback(tmp_path):
    """Nova >= 24 aborts the job and sets `error` at once: "too late to rollback"."""
    ctx = "[None req-5b2e0c1d-1f2a-4b3c-8d4e-5f6a7b8c9d0e admin admin - - default default]"
    vm = "[instance: 1f2e3d4c-5b6a-4978-8a9b-0c1d2e3f4a5b]"
    log = compute_log(
        tmp_path,
        "compute-07",
        f"2024-03-05 10:21:07.004 7 DEBUG nova.compute.manager {ctx} {vm} live_migration data "
        f"is LibvirtLiveMigrateData(block_migration=False) _do_live_migration "
        f"/usr/lib/python3.9/site-packages/nova/compute/manager.py:8571\n"
        f"2024-03-05 10:21:12.731 7 INFO nova.virt.libvirt.driver {ctx} {vm} Migration running "
        f"for 5 secs, memory 61% remaining (bytes processed=1712914432, remaining=2684354560, "
        f"total=4311744512); disk 0% remaining (bytes processed=0, remaining=0, total=0).\n"
        f"2024-03-05 10:21:31.977 7 WARNING nova.virt.libvirt.driver {ctx} {vm} Error monitoring "
        f"migration: Requested operation is not valid: domain is not running\n"
        f"Traceback (most recent call last):\n"
        f'  File "/usr/lib/python3.9/site-packages/nova/virt/libvirt/driver.py", line 10529, '
        f"in _live_migration\n"
        f"libvirt.libvirtError: Requested operation is not valid: domain is not running\n",
    )
    [migration] = replay_folder(log)
    d = migration.diagnosis
    assert (d.outcome, d.source_host) == ("error", "compute-07")
    assert d.failure["traceback"].startswith("libvirt.libvirtError: Requested operation")
    assert "RolledBack" not in [type(e).__name__ for e in migration.replayed.events]
    assert any("split brain" in a for a in d.anomalies)


def test_logs_that_break_nova_s_statuses_keep_what_was_consistent(tmp_path):
    ctx = "[None req-6c3f1d2e-1f2a-4b3c-8d4e-5f6a7b8c9d0e admin admin - - default default]"
    vm = "[instance: 2a3b4c5d-6e7f-4a8b-9c0d-1e2f3a4b5c6d]"
    log = compute_log(
        tmp_path,
        "compute-08",
        f"2024-03-05 10:21:07.004 7 DEBUG nova.compute.manager {ctx} {vm} live_migration data "
        f"is LibvirtLiveMigrateData(block_migration=False)\n"
        f"2024-03-05 10:21:20.100 7 INFO nova.virt.libvirt.migration {ctx} {vm} Switching to "
        f"post-copy migration mode\n"
        f"2024-03-05 10:21:25.100 7 WARNING nova.virt.libvirt.driver {ctx} {vm} Migration "
        f"operation was cancelled\n",
    )
    [migration] = replay_folder(log)
    d = migration.diagnosis
    assert d.outcome == "incomplete"
    assert migration.replayed.migration.status.value == "running (post-copy)"
    assert any("statuses do not allow" in a for a in d.anomalies)


def test_a_file_named_twice_is_read_once():
    [once] = replay_folder([SOURCE_LOG, SOURCE_LOG, SEED])
    assert len(once.replayed.events) == len(replay_folder(SEED)[0].replayed.events)
