"""The seed's real nova-compute logs of one migration (source node-1, destination node-3)."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from logs_parsers import LogReader, recognise

SEED = Path(__file__).parent / "data" / "seed"
EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "seed"
REQUEST = "req-353f3f0b-522c-44cc-ba00-2f8f22225219"
INSTANCE = "25a38456-409e-45c3-a878-ad63e052edad"

SOURCE_PHASES = [
    "check_source",
    "live_migration_data",
    "vifs_received_continue",
    "monitor_started",
    "downtime_steps_listed",
    "downtime_increased",
    "progress",
    *["downtime_steps_listed", "downtime_unchanged"] * 4,
    "operation_thread_finished",
    "operation_completed",
    "post_live_migration_source",
    "migration_finished",
    "monitor_done",
]
DESTINATION_PHASES = [
    "check_destination",
    "pre_live_migration_start",
    "pre_live_migration_driver_start",
    "creating_instance_dir",
    "connecting_volumes",
    "plugging_vifs",
    "pre_live_migration_driver_done",
    "pre_live_migration_result",
    "post_live_migration_dest",
]


def phases(records, host: str) -> list:
    found = []
    for record in records:
        marker = recognise(record.message)
        if marker is not None and record.host == host:
            found.append((record, marker))
    return found


@pytest.mark.parametrize("only_relevant", [False, True])
def test_the_seed_folder_reads_into_both_hosts_phases(only_relevant):
    reader = LogReader(only_relevant=only_relevant)

    records = list(reader.read_paths([SEED]))

    source = phases(records, "node-1")
    destination = phases(records, "node-3")
    # the relevant path passes over the monitor's unchanged passes (ramp line and verdict)
    chatter = {"downtime_unchanged"} if only_relevant else set()
    expected = [kind for kind in SOURCE_PHASES if kind not in chatter]
    if only_relevant:
        expected = expected[:7] + expected[7 + 4 :]
    assert [marker.kind for _, marker in source] == expected
    assert [marker.kind for _, marker in destination] == DESTINATION_PHASES
    assert {record.pid for record, _ in source} == {14120}
    assert {record.pid for record, _ in destination} == {10895}
    assert {record.request_id for record, _ in source + destination} == {REQUEST}
    total = reader.stats.total
    assert total.lines_read == 134 + 94
    assert total.unparseable_lines == 0 and total.continuation_lines == 0
    if not only_relevant:
        assert total.records == 228


def test_the_seed_numbers():
    records = list(LogReader().read_paths([SEED / "node-1"]))
    markers = {marker.kind: (record, marker) for record, marker in phases(records, None)}

    steps_record, steps = markers["downtime_steps_listed"]
    assert steps.steps[:3] == ((0, 46), (150, 47), (300, 48))
    assert steps.steps[-1] == (1500, 500) and len(steps.steps) == 11
    assert steps_record.function == "update_downtime"
    increased_record, increased = markers["downtime_increased"]
    assert (increased.downtime_ms, increased.elapsed_s) == (46, 0.0)
    assert increased_record.timestamp == datetime(2019, 12, 16, 16, 5, 40, 671000, tzinfo=UTC)
    assert increased_record.instance_uuid == INSTANCE
    _, progress = markers["progress"]
    assert progress.memory_remaining_percent == 98
    assert progress.memory_processed_bytes == 7755671
    assert progress.memory_remaining_bytes == 545390592
    assert progress.memory_total_bytes == 554508288
    assert markers["vifs_received_continue"][1].bandwidth_mib_s == 107
    assert markers["migration_finished"][1].host == "node-3.domain.tld"


def test_the_shipped_example_is_the_seed_split_by_host():
    for host in ("node-1", "node-3"):
        shipped = (EXAMPLES / host / "nova-compute.log").read_bytes()
        assert shipped == (SEED / host / "nova-compute.log").read_bytes()
