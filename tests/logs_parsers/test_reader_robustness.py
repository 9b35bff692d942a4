"""Garbage, truncation, compression, folders, standard input, and the relevant fast path:
nothing crashes, every line is counted once, and the fast path finds what the full path finds."""

from __future__ import annotations

import bz2
import gzip
import io
import lzma
import subprocess
import sys
from dataclasses import asdict
from pathlib import Path

import pytest

from logs_parsers import LogReader, read_stream, recognise

DATA = Path(__file__).parent / "data"
REPO = Path(__file__).resolve().parents[2]
NEWTON = DATA / "newton-nova-compute.log"
FIXTURES = sorted(p for p in DATA.iterdir() if p.suffix in (".log", ".txt"))


def balance(stats) -> int:
    return (
        stats.records
        + stats.continuation_lines
        + stats.blank_lines
        + stats.other_program_lines
        + stats.unparseable_lines
        + stats.filtered_lines
    )


def read_bytes(payload: bytes, **options):
    reader = LogReader(**options)
    records = list(reader.read_stream(io.BytesIO(payload), "sample.log"))
    return records, reader.stats.total


GOOD = (
    b"2024-03-05 10:21:31.412 7 INFO nova.compute.manager [-] "
    b"[instance: 4b2e6a8c-1d3f-4e5a-9b7c-2d4f6a8c0e1b] VM Paused (Lifecycle Event)\n"
)


@pytest.mark.parametrize("only_relevant", [False, True])
def test_garbage_nul_bytes_and_undecodable_lines_are_counted_not_fatal(only_relevant):
    payload = (
        b"\x00\x00\x00\x00\n"
        + bytes(range(128, 256))
        + b"\n"
        + b"\x89PNG\r\n\x1a\n"
        + GOOD
        + b"\xff\xfe migration \xff\n"
        + b"2024-03-05 10:21:31.412 7 INFO nova.compute.manager [-] "
        + b"VM Resu\x00med (Lifecycle Event)\n"
    )

    records, stats = read_bytes(payload, only_relevant=only_relevant)

    assert [r.message for r in records] == [
        "VM Paused (Lifecycle Event)",
        "VM Resumed (Lifecycle Event)",
    ]
    assert stats.lines_read == 7  # the PNG signature holds a line end
    assert stats.records == 2
    if only_relevant:
        # the fast path parses only the lines around its hits: the first four never are
        assert stats.filtered_lines == 4 and stats.unparseable_lines == 1
    else:
        assert stats.unparseable_lines == 5
    assert balance(stats) == stats.lines_read


@pytest.mark.parametrize("only_relevant", [False, True])
def test_a_line_cut_in_the_middle_and_a_file_without_final_newline(only_relevant):
    cut = b"2024-03-05 10:21:31.9"
    last = (
        b"2024-03-05 10:21:33.001 7 INFO nova.virt.libvirt.driver [-] "
        b"[instance: 4b2e6a8c-1d3f-4e5a-9b7c-2d4f6a8c0e1b] Migration operation has compl"
    )
    payload = GOOD + cut + b"\n" + cut[:10] + b"\n" + last

    records, stats = read_bytes(payload, only_relevant=only_relevant)

    assert [r.message for r in records] == [
        "VM Paused (Lifecycle Event)",
        "Migration operation has compl",
    ]
    assert records[0].traceback == ["2024-03-05 10:21:31.9", "2024-03-05"]
    assert records[1].line_number == 4
    assert stats.lines_read == 4 and stats.continuation_lines == 2
    assert stats.bytes_read == len(payload)


def test_unprefixed_text_before_any_record_is_unparseable():
    records, stats = read_bytes(b"some banner\n   indented\n\n" + GOOD)

    assert len(records) == 1
    assert (stats.unparseable_lines, stats.blank_lines, stats.records) == (2, 1, 1)


def test_continuation_lines_are_capped_per_record():
    payload = GOOD + b"  File x\n" * 2500

    records, stats = read_bytes(payload)

    assert len(records[0].traceback) == 2000
    assert stats.continuation_lines == 2500 and stats.dropped_continuation_lines == 500


@pytest.mark.parametrize("opener", [gzip.open, bz2.open, lzma.open], ids=["gz", "bz2", "xz"])
def test_compressed_files_are_read_by_content(tmp_path, opener):
    packed = tmp_path / "nova-compute.log.1"
    with opener(packed, "wb") as out:
        out.write(NEWTON.read_bytes())

    reader = LogReader()
    records = list(reader.read_paths([packed]))

    assert len(records) == 10 and records[0].service == "nova-compute"
    assert reader.stats.files[str(packed)].lines_read == 15


def test_folders_are_walked_recursively_in_sorted_order_and_name_the_host(tmp_path):
    for host in ("node-3", "node-1"):
        folder = tmp_path / "case-123" / host / "nova"
        folder.mkdir(parents=True)
        (folder / "nova-compute.log").write_bytes(NEWTON.read_bytes())
    (tmp_path / "case-123" / "node-1" / "nova" / "nova-compute.log.2.gz").write_bytes(
        gzip.compress(GOOD)
    )

    reader = LogReader()
    records = list(reader.read_paths([tmp_path / "case-123", NEWTON]))

    assert [
        Path(name).relative_to(tmp_path).as_posix() for name in list(reader.stats.files)[:3]
    ] == [
        "case-123/node-1/nova/nova-compute.log",
        "case-123/node-1/nova/nova-compute.log.2.gz",
        "case-123/node-3/nova/nova-compute.log",
    ]
    assert [r.host for r in records[:11]] == ["node-1"] * 11
    assert {r.host for r in records[11:21]} == {"node-3"}
    assert {r.host for r in records[21:]} == {None}  # a file given by name: no folder to judge
    assert reader.stats.total.records == 31


def test_a_missing_path_is_reported_before_reading_anything(tmp_path):
    reader = LogReader()
    with pytest.raises(FileNotFoundError, match="no-such.log"):
        list(reader.read_paths([NEWTON, tmp_path / "no-such.log"]))
    assert reader.stats.files == {}


def test_standard_input_is_read_as_a_stream():
    script = (
        "from logs_parsers import LogReader\n"
        "reader = LogReader()\n"
        "records = list(reader.read_paths(['-']))\n"
        "print(len(records), reader.stats.total.lines_read, records[0].source)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script],
        input=NEWTON.read_bytes(),
        capture_output=True,
        cwd=REPO,
        env={"PYTHONPATH": str(REPO)},
        check=True,
    )
    assert done.stdout.decode().split() == ["10", "15", "<stdin>"]


def test_read_stream_takes_any_binary_file_object():
    with NEWTON.open("rb") as stream:
        records = list(read_stream(stream, "newton", host="compute-7"))
    assert {r.host for r in records} == {"compute-7"} and records[0].source == "newton"


def markers(records) -> list[tuple[int, str, list[str]]]:
    found = []
    for record in records:
        marker = recognise(record.message)
        if marker is not None:
            found.append((record.line_number, marker.kind, record.traceback))
    return found


@pytest.mark.parametrize("fixture", FIXTURES, ids=lambda p: p.name)
@pytest.mark.parametrize("chunk_bytes", [1 << 20, 512])
def test_the_relevant_path_finds_every_marker_the_full_path_finds(fixture, chunk_bytes):
    full = LogReader()
    fast = LogReader(only_relevant=True, chunk_bytes=chunk_bytes)

    expected = markers(full.read_paths([fixture]))
    found = markers(fast.read_paths([fixture]))

    assert found == expected
    assert fast.stats.total.lines_read == full.stats.total.lines_read
    assert fast.stats.total.bytes_read == full.stats.total.bytes_read
    assert balance(fast.stats.total) == fast.stats.total.lines_read


def test_the_relevant_path_attaches_tracebacks_and_counts_skipped_lines():
    reader = LogReader(only_relevant=True)

    records = list(reader.read_paths([NEWTON]))

    failed = next(r for r in records if r.message == "Live migration failed.")
    assert len(failed.traceback) == 5
    stats = asdict(reader.stats.total)
    assert stats["filtered_lines"] == 1  # the lock line
    assert stats["records"] == 9 and stats["continuation_lines"] == 5


def test_a_traceback_that_mentions_migration_brings_its_unrelated_head_along():
    payload = (
        b"2016-10-12 09:14:02.402 14120 ERROR oslo_messaging.rpc.server [req-1 - - - - -] "
        b"Exception during message handling\n"
        b"2016-10-12 09:14:02.402 14120 ERROR oslo_messaging.rpc.server Traceback (most recent "
        b"call last):\n"
        b'2016-10-12 09:14:02.402 14120 ERROR oslo_messaging.rpc.server   File "/nova/compute/'
        b'manager.py", line 5300, in live_migration\n'
        b"2016-10-12 09:14:02.402 14120 ERROR oslo_messaging.rpc.server MigrationError: boom\n"
    )

    records, stats = read_bytes(payload, only_relevant=True)

    assert len(records) == 1 and records[0].message == "Exception during message handling"
    assert records[0].traceback[-1] == "MigrationError: boom"
    assert stats.continuation_lines == 3 and stats.filtered_lines == 0


def test_both_paths_attach_a_traceback_interleaved_with_other_programs_and_blank_lines():
    payload = (
        b"Dec 17 00:05:43 node-1 nova-compute[14120]: 2019-12-16 16:05:43.612 14120 ERROR "
        b"nova.compute.manager [req-1 - - - - -] Live migration failed.\n"
        b"Dec 17 00:05:43 node-1 nova-compute[14120]: Traceback (most recent call last):\n"
        b"Dec 17 00:05:43 node-1 libvirtd[2211]: internal error: connection closed\n"
        b"\n"
        b'Dec 17 00:05:43 node-1 nova-compute[14120]:   File "manager.py", line 5440, in '
        b"_do_live_migration\n"
        b"Dec 17 00:05:43 node-1 nova-compute[14120]: libvirtError: connection closed\n"
        b"Dec 17 00:05:44 node-1 nova-compute[14120]: 2019-12-16 16:05:44.000 14120 INFO "
        b"nova.compute.manager [req-2 - - - - -] Unrelated\n"
    )

    for only_relevant in (False, True):
        records, stats = read_bytes(payload, only_relevant=only_relevant)
        failed = records[0]
        assert failed.traceback == [
            "Traceback (most recent call last):",
            '  File "manager.py", line 5440, in _do_live_migration',
            "libvirtError: connection closed",
        ]
        assert (stats.other_program_lines, stats.blank_lines) == (1, 1)
        assert balance(stats) == stats.lines_read == 7


@pytest.mark.parametrize("only_relevant", [False, True])
def test_a_compressed_file_cut_short_keeps_what_was_read_and_says_why(tmp_path, only_relevant):
    whole = gzip.compress(NEWTON.read_bytes() * 50)
    cut = tmp_path / "nova-compute.log.gz"
    cut.write_bytes(whole[: len(whole) // 2])
    reader = LogReader(only_relevant=only_relevant, chunk_bytes=4096)

    records = list(reader.read_paths([cut]))

    stats = reader.stats.files[str(cut)]
    assert stats.read_error.startswith("EOFError")
    assert records and stats.records == len(records)
    assert reader.stats.total.read_error is None  # totals sum the counts only


@pytest.mark.parametrize("chunk_bytes", [4096, 512 << 10])
def test_lines_longer_than_the_read_buffer_are_read_as_the_full_path_reads_them(chunk_bytes):
    # a marker longer than the buffer (which grows for it), then more than a megabyte without a
    # line end (read in pieces of a megabyte, each counted as a line), then a marker again
    long_marker = GOOD[:-1] + b" " + b"x" * (chunk_bytes + 1000) + b"\n"
    binary = bytes([1, 2, 3]) * ((1 << 20) // 3 + 100) + b"\n"
    payload = GOOD + long_marker + binary + GOOD

    records, stats = read_bytes(payload, only_relevant=True, chunk_bytes=chunk_bytes)
    full_records, full_stats = read_bytes(payload)

    assert [(r.line_number, r.message) for r in records] == [
        (r.line_number, r.message) for r in full_records if "Lifecycle" in r.message
    ]
    assert [r.line_number for r in records] == [1, 2, 5]
    assert stats.lines_read == full_stats.lines_read == 5
    assert balance(stats) == stats.lines_read
    assert stats.bytes_read == len(payload)
