"""The monitor's per-pass chatter is passed over unparsed on the relevant path, wherever the
reads cut, and nothing else is: every marker stays, every line is counted, line numbers are the
file's."""

from __future__ import annotations

import io

import pytest

from logs_parsers import LogReader

PREFIX = b"2024-03-05 09:00:%02d.%03d 7 %s nova.virt.libvirt.migration [req-1 - - - - -] "
INSTANCE = b"[instance: 4b2e6a8c-1d3f-4e5a-9b7c-2d4f6a8c0e1b] "
STEPS = b"steps [(0, 50), (150, 95)] update_downtime /usr/lib/nova/virt/libvirt/migration.py:1\n"


def line(second: int, level: bytes, message: bytes) -> bytes:
    return PREFIX % (second, 100, level) + INSTANCE + message


PASSES = (
    line(0, b"DEBUG", b"Current None elapsed 0 " + STEPS)
    + line(0, b"INFO", b"Increasing downtime to 50 ms after 0 sec elapsed time\n")
    + line(1, b"DEBUG", b"Current 50 elapsed 0 " + STEPS)
    + line(1, b"DEBUG", b"Downtime does not need to change update_downtime migration.py:2\n")
    + line(
        2,
        b"INFO",
        b"Migration running for 1 secs, memory 90% remaining; "
        b"(bytes processed=1, remaining=9, total=10)\n",
    )
    + line(3, b"DEBUG", b"Current 50 elapsed 150 " + STEPS)
    + line(3, b"INFO", b"Increasing downtime to 95 ms after 150 sec elapsed time\n")
)
NOISE = b"2024-03-05 09:00:04.000 7 DEBUG oslo_concurrency.lockutils [-] Lock held\n"


def read(data: bytes, chunk_bytes: int):
    reader = LogReader(only_relevant=True, chunk_bytes=chunk_bytes)
    records = list(reader.read_stream(io.BytesIO(data), "nova-compute.log"))
    return records, reader.stats.total


def test_the_unchanged_pass_and_its_ramp_line_are_passed_over_and_every_marker_stays():
    records, stats = read(PASSES, 1 << 20)
    messages = [r.message for r in records]
    assert not any("does not need to change" in m or "Current 50 elapsed 0 " in m for m in messages)
    for needed in ("Current None", "to 50 ms", "running for 1 secs", "elapsed 150", "to 95 ms"):
        assert sum(needed in m for m in messages) == 1
    assert stats.filtered_lines == 2 and stats.records == 5 and stats.lines_read == 7
    assert [r.line_number for r in records] == [1, 2, 5, 6, 7]


@pytest.mark.parametrize(
    ("chunk_bytes", "repeats"), [(200, 200), (333, 200), (4096, 200), (2 << 20, 5000)]
)
def test_every_pass_is_passed_over_wherever_the_reads_cut(chunk_bytes, repeats):
    data = (PASSES + NOISE) * repeats
    records, stats = read(data, chunk_bytes)
    assert stats.lines_read == data.count(b"\n") == 8 * repeats
    assert stats.filtered_lines == 3 * repeats  # the pass's two lines and the lock line
    assert stats.records == 5 * repeats
    assert sum("Increasing downtime" in r.message for r in records) == 2 * repeats
    assert [r.line_number for r in records[:5]] == [1, 2, 5, 6, 7]
    assert [r.line_number for r in records[-5:]] == [8 * repeats - n for n in (7, 6, 3, 2, 1)]


def test_a_last_ramp_line_is_kept_when_the_file_ends_after_it():
    last = line(5, b"DEBUG", b"Current 95 elapsed 155 " + STEPS).rstrip(b"\n")
    records, stats = read(PASSES + last, 1 << 20)
    assert records[-1].message.startswith("Current 95 elapsed 155")
    assert stats.lines_read == 8 and stats.filtered_lines == 2


def test_chatter_between_a_record_and_its_traceback_leaves_the_traceback_attached():
    failure = (
        b"2024-03-05 09:00:05.000 7 ERROR nova.virt.libvirt.driver [req-1 - - - - -] "
        + INSTANCE
        + b"Live Migration failure: operation failed\n"
    )
    trace = b"2024-03-05 09:00:05.001 7 ERROR nova.virt.libvirt.driver Traceback (most recent)\n"
    chatter = PASSES.splitlines(keepends=True)[2:4]
    records, stats = read(failure + b"".join(chatter) + trace, 1 << 20)
    assert len(records) == 1 and records[0].traceback == ["Traceback (most recent)"], records[
        0
    ].traceback
    assert stats.filtered_lines == 2


def test_streams_read_interleaved_by_one_reader_keep_their_own_counts():
    reader = LogReader(only_relevant=True, chunk_bytes=256 << 10)
    first = (PASSES + NOISE) * 4000
    second = (NOISE * 3 + PASSES) * 3000
    streams = [
        reader.read_stream(io.BytesIO(first), "a/nova-compute.log"),
        reader.read_stream(io.BytesIO(second), "b/nova-compute.log"),
    ]
    while streams:  # one record from each in turn, as the replay merges files by time
        for stream in list(streams):
            if next(stream, None) is None:
                streams.remove(stream)
    counts = {name: stats.lines_read for name, stats in reader.stats.files.items()}
    assert counts == {
        "a/nova-compute.log": first.count(b"\n"),
        "b/nova-compute.log": second.count(b"\n"),
    }


PERIODIC = (
    b"2024-03-05 09:00:06.000 7 DEBUG oslo_service.periodic_task [req-5e1b2c3d-0000-4000-8000-"
    b"000000000001 - - - - -] Running periodic task ComputeManager._cleanup_incomplete_migrations"
    b" run_periodic_tasks /usr/lib/python3/oslo_service/periodic_task.py:210\n"
)


def test_plain_unmarked_lines_without_instance_are_parsed_only_if_the_caller_wants_them():
    data = PASSES + PERIODIC + NOISE
    asked = []

    def keep_plain(line: bytes) -> bool:
        asked.append(bytes(line))
        return False

    reader = LogReader(only_relevant=True, keep_plain=keep_plain)
    records = list(reader.read_stream(io.BytesIO(data), "nova-compute.log"))
    assert asked == [PERIODIC]  # markers and lines naming an instance are never asked about
    assert not any("periodic task" in r.message for r in records)
    assert len(records) == 5 and reader.stats.total.filtered_lines == 4
    kept = list(LogReader(only_relevant=True).read_stream(io.BytesIO(data), "nova-compute.log"))
    assert any("periodic task" in r.message for r in kept)
