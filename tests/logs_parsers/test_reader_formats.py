"""Every shape a nova log arrives in reads into the same records."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest

from logs_parsers import LogReader, parse_host_mapping, read_paths, recognise

DATA = Path(__file__).parent / "data"
SEED_INSTANCE = "25a38456-409e-45c3-a878-ad63e052edad"
SEED_REQUEST = "req-353f3f0b-522c-44cc-ba00-2f8f22225219"


def read(name: str, **options) -> tuple[list, object]:
    reader = LogReader(**options)
    records = list(reader.read_paths([DATA / name]))
    return records, reader.stats.total


def test_essex_lines_have_no_pid_nor_milliseconds_and_trace_lines_attach():
    records, stats = read("essex-nova-compute.log")

    assert [r.line_number for r in records] == [1, 2, 3, 9, 10, 11, 12]
    first = records[0]
    assert first.timestamp == datetime(2012, 3, 1, 12, 0, 0, tzinfo=UTC)
    assert first.time_text == "2012-03-01 12:00:00"
    assert first.pid is None and first.request_id is None and first.user is None
    assert first.function == "_get_power_state"
    assert first.message == "Checking state of instance-0000002a from (pid=2112)"
    assert records[1].level == "AUDIT"
    assert records[1].request_id == "req-4f8e1c2a-6b3d-4e5f-8a9b-0c1d2e3f4a5b"
    assert records[1].user == "3c9f7a1e2d4b4c6e8f0a1b2c3d4e5f6a"
    assert records[1].project == "8a7b6c5d4e3f4a2b1c0d9e8f7a6b5c4d"
    failed = records[2]
    assert recognise(failed.message).kind == "pre_live_migration_failed"
    assert failed.traceback[0] == "Traceback (most recent call last):"
    assert failed.traceback[3].startswith("RemoteError: Remote error")
    assert len(failed.traceback) == 5
    assert records[3].user is None and records[3].project is None  # `[req-x None None]`
    assert stats.lines_read == 12 and stats.records == 7 and stats.continuation_lines == 5


def test_newton_context_instance_and_exception_prefixed_traceback():
    records, stats = read("newton-nova-compute.log")

    monitor = records[0]
    assert monitor.pid == 14120
    assert monitor.timestamp == datetime(2016, 10, 12, 9, 13, 40, 551000, tzinfo=UTC)
    assert monitor.request_id == "req-0a7e5b1c-9d2f-4e83-b6a4-1c3d5e7f9b2a"
    assert monitor.global_request_id is None
    assert monitor.user == "6c3c0761000f423780b2d1cbf4459dc5"
    assert monitor.project == "a899ce15f11740ab864a57b888163d3a"
    assert monitor.instance_uuid == "7d1c5e0a-3b9f-4c61-8a52-9e0f4b6d2a17"
    assert monitor.logger == "nova.virt.libvirt.driver"
    assert monitor.service == "nova-compute"
    assert monitor.message == "Starting monitoring of live migration"
    assert monitor.function == "_live_migration"
    lock = records[5]
    assert lock.request_id == "req-5e6f7a8b-9c0d-4e1f-a2b3-c4d5e6f7a8b9" and lock.user is None
    driver_failed = records[8]
    assert driver_failed.message == "Live migration failed."
    assert driver_failed.traceback[0] == "Traceback (most recent call last):"
    assert driver_failed.traceback[-2].startswith("libvirtError: operation failed")
    assert (stats.records, stats.continuation_lines, stats.lines_read) == (10, 5, 15)


def test_recent_context_with_global_request_id_and_plain_traceback_lines():
    records, stats = read("modern-nova-compute.log")

    assert records[0].global_request_id is None  # `[None req-... ]`
    assert records[0].request_id == "req-2b8c4d6e-8f0a-4c2e-9b4d-6f8a0c2e4b6d"
    assert records[0].project == "9e8d7c6b5a4f43218f7e6d5c4b3a2f1e"
    assert records[1].global_request_id == "req-0f1e2d3c-4b5a-4697-8877-665544332211"
    assert records[1].request_id == "req-2b8c4d6e-8f0a-4c2e-9b4d-6f8a0c2e4b6d"
    periodic = records[4]
    assert periodic.user is None and periodic.project is None
    assert periodic.message == "Running periodic task ComputeManager._poll_unconfirmed_resizes"
    assert records[5].request_id is None and records[5].message == "VM Paused (Lifecycle Event)"
    monitor_error = records[6]
    assert monitor_error.traceback == [
        "Traceback (most recent call last):",
        '  File "/usr/lib/python3.9/site-packages/nova/virt/libvirt/driver.py", line 10529, '
        "in _live_migration",
        "    self._live_migration_monitor(context, instance, guest, dest,",
        "libvirt.libvirtError: Requested operation is not valid: domain is not running",
    ]
    assert records[7].line_number == 13
    assert (stats.records, stats.continuation_lines, stats.blank_lines) == (8, 4, 1)


def test_syslog_prefix_keeps_both_clocks_decodes_escapes_and_skips_other_programs():
    records, stats = read("syslog-messages.log")

    downtime = records[0]
    assert downtime.host == "node-1" and downtime.service == "nova-compute"
    assert downtime.wrapper_time_text == "Dec 17 00:05:40"  # local clock, 8 h ahead, no year
    assert downtime.wrapper_timestamp is None
    assert downtime.timestamp == datetime(2019, 12, 16, 16, 5, 40, 671000, tzinfo=UTC)
    assert downtime.message == "Increasing downtime to 46 ms after 0 sec elapsed time"
    assert records[1].service == "nova-compute"  # from `nova_compute[14120]`
    coloured = records[2]
    assert coloured.level == "ERROR" and coloured.request_id == SEED_REQUEST
    assert coloured.instance_uuid == SEED_INSTANCE
    assert coloured.message == "Post live migration at destination node-3.domain.tld failed"
    assert coloured.traceback[1].startswith('\t  File "/usr/lib/python2.7')  # `#011` is a tab
    assert stats.other_program_lines == 4  # libvirtd, kernel, systemd, virqemud
    assert (stats.records, stats.continuation_lines, stats.lines_read) == (4, 3, 11)


def test_grep_prefixes_with_and_without_line_numbers_name_the_host_from_the_path():
    records, stats = read("grep-r-output.txt")

    assert [r.message[:30] for r in records[:3]] == [
        "Migration operation has comple",
        "_post_live_migration() is star",
        "Post operation of migration st",
    ]
    assert records[0].host is None and records[0].service == "nova-compute"
    assert records[2].host == "node-3" and records[2].pid == 10895
    assert stats.records == 4 and stats.unparseable_lines == 0


def test_sosreport_folder_takes_the_host_from_its_hostname_file():
    records, stats = read("sosreport-node-3-2019-12-16-kqzvtbr")

    assert {r.host for r in records} == {"node-3.domain.tld"}
    assert [recognise(r.message).kind for r in records] == [
        "creating_instance_dir",
        "plugging_vifs",
    ]
    assert records[0].function == "pre_live_migration"
    assert stats.unparseable_lines == 1  # the `hostname` file itself is read and counted


def test_kubectl_logs_with_prefix_and_or_timestamps():
    records, stats = read("kubectl-logs.txt")

    paused, resumed, completed, post = records
    assert paused.service == "nova-compute"
    assert paused.wrapper_time_text == "2024-03-05T10:21:31.412345678Z"
    assert paused.wrapper_timestamp == datetime(2024, 3, 5, 10, 21, 31, 412345, tzinfo=UTC)
    assert paused.timestamp == datetime(2024, 3, 5, 10, 21, 31, 412000, tzinfo=UTC)
    assert recognise(resumed.message).state == "Resumed"
    assert completed.wrapper_time_text is None and completed.pid == 7
    assert post.time_text is None and post.timestamp == post.wrapper_timestamp
    assert post.request_id == "req-2b8c4d6e-8f0a-4c2e-9b4d-6f8a0c2e4b6d"
    assert stats.records == 4


def test_json_formatter_lines():
    records, stats = read("json-formatter.log")

    downtime, failure, cancelled = records
    assert downtime.line_format == "json"
    assert downtime.timestamp == datetime.fromtimestamp(1709634072.731, UTC)
    assert downtime.host == "compute-0.example.org"
    assert downtime.logger == "nova.virt.libvirt.migration" and downtime.level == "INFO"
    assert downtime.request_id == "req-2b8c4d6e-8f0a-4c2e-9b4d-6f8a0c2e4b6d"
    assert downtime.global_request_id == "req-0f1e2d3c-4b5a-4697-8877-665544332211"
    assert downtime.user == "1f2e3d4c5b6a47988a7b6c5d4e3f2a1b"
    assert downtime.instance_uuid == "4b2e6a8c-1d3f-4e5a-9b7c-2d4f6a8c0e1b"
    assert downtime.function == "update_downtime" and downtime.pid == 7
    assert failure.instance_uuid == "4b2e6a8c-1d3f-4e5a-9b7c-2d4f6a8c0e1b"  # from `extra`
    assert failure.traceback[0] == "Traceback (most recent call last):"
    assert len(failure.traceback) == 3
    assert cancelled.timestamp == datetime(2024, 3, 5, 10, 22, 1, 250000, tzinfo=UTC)
    assert cancelled.traceback[-1] == "ValueError: boom"
    assert stats.records == 3


def test_oslo_times_in_a_given_zone_are_converted_to_utc():
    plus_eight = timezone(timedelta(hours=8))
    records, _ = read("newton-nova-compute.log", oslo_timezone=plus_eight)

    assert records[0].timestamp == datetime(2016, 10, 12, 1, 13, 40, 551000, tzinfo=UTC)
    assert records[0].time_text == "2016-10-12 09:13:40.551"


def test_user_host_mapping_wins_over_everything_else(tmp_path):
    mapping = {str(DATA / "syslog-messages.log"): "compute-a"}

    records = list(read_paths([DATA / "syslog-messages.log"], host_by_path=mapping))

    assert {r.host for r in records} == {"compute-a"}


def test_journald_devstack_lines_without_oslo_time_and_with_the_pid_suffix():
    records, stats = read("journald-devstack.log")

    monitor, downtime = records
    assert monitor.host == "devstack-1" and monitor.service == "nova-compute"
    assert monitor.wrapper_time_text == "Mar 05 10:21:07.004512"
    assert monitor.timestamp is None and monitor.time_text is None
    assert monitor.level == "DEBUG" and monitor.pid == 81234
    assert monitor.request_id == "req-2b8c4d6e-8f0a-4c2e-9b4d-6f8a0c2e4b6d"
    assert monitor.message == "Starting monitoring of live migration"
    assert monitor.function == "_live_migration"
    assert recognise(downtime.message).downtime_ms == 50
    assert stats.other_program_lines == 1


def test_host_mapping_arguments_are_host_equals_path():
    assert parse_host_mapping(["node-1=logs/a.log", "node-3=logs/b"]) == {
        "logs/a.log": "node-1",
        "logs/b": "node-3",
    }
    with pytest.raises(ValueError, match="HOST=PATH"):
        parse_host_mapping(["logs/a.log"])
