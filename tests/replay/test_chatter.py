"""The monitor's per-pass chatter is cut before parsing, and nothing else is."""

from __future__ import annotations

import io

import pytest

from lmes.replay.chatter import ChatterFilter

PASSES = (
    b"09:00:00.1 DEBUG nova.virt.libvirt.migration [req-1] [instance: a] Current None elapsed 0 "
    b"steps [(0, 50), (150, 95)] update_downtime\n"
    b"09:00:00.1 INFO nova.virt.libvirt.migration [req-1] [instance: a] Increasing downtime to "
    b"50 ms after 0 sec elapsed time\n"
    b"09:00:00.6 DEBUG nova.virt.libvirt.migration [req-1] [instance: a] Current 50 elapsed 0 "
    b"steps [(0, 50), (150, 95)] update_downtime\n"
    b"09:00:00.6 DEBUG nova.virt.libvirt.migration [req-1] [instance: a] Downtime does not need "
    b"to change update_downtime\n"
    b"09:00:01.0 INFO nova.virt.libvirt.driver [req-1] [instance: a] Migration running for 1 "
    b"secs, memory 90% remaining; (bytes processed=1, remaining=9, total=10)\n"
    b"09:02:30.6 DEBUG nova.virt.libvirt.migration [req-1] [instance: a] Current 50 elapsed 150 "
    b"steps [(0, 50), (150, 95)] update_downtime\n"
    b"09:02:30.6 INFO nova.virt.libvirt.migration [req-1] [instance: a] Increasing downtime to "
    b"95 ms after 150 sec elapsed time\n"
)


def filtered(data: bytes, chunk_bytes: int, read_size: int) -> tuple[bytes, int]:
    stream = ChatterFilter(io.BytesIO(data), chunk_bytes=chunk_bytes)
    out = bytearray()
    buffer = bytearray(read_size)
    while size := stream.readinto(buffer):
        out += buffer[:size]
    assert stream.bytes_read == len(data)
    return bytes(out), stream.dropped_lines


def test_the_unchanged_pass_and_its_ramp_line_go_and_every_marker_stays():
    kept, dropped = filtered(PASSES, chunk_bytes=1 << 20, read_size=1 << 16)
    assert dropped == 2
    assert b"Downtime does not need to change" not in kept
    assert b"Current 50 elapsed 0 " not in kept
    for needed in (
        b"Current None",
        b"to 50 ms",
        b"running for 1 secs",
        b"Current 50 elapsed 150",
        b"to 95 ms",
    ):
        assert needed in kept


@pytest.mark.parametrize(("chunk_bytes", "read_size"), [(7, 3), (100, 5000), (333, 64)])
def test_chunks_of_any_size_give_whole_lines_and_lose_no_marker(chunk_bytes, read_size):
    kept, _ = filtered(PASSES * 3, chunk_bytes, read_size)
    assert kept.count(b"Increasing downtime") == 6
    assert kept.count(b"Migration running") == 3
    assert all(line.startswith(b"09:") for line in kept.splitlines())


@pytest.mark.parametrize("read_size", [3, 100, 64 << 10, 1 << 20])
@pytest.mark.parametrize("chunk_bytes", [7, 333, 1 << 20])
def test_every_pass_is_dropped_wherever_the_reads_cut(chunk_bytes, read_size):
    data = PASSES * 500
    kept, dropped = filtered(data, chunk_bytes, read_size)
    assert dropped == 2 * 500
    lines = PASSES.splitlines(keepends=True)
    without_the_unchanged_pass = b"".join(lines[:2] + lines[4:])
    assert kept == without_the_unchanged_pass * 500


def test_a_last_line_without_its_line_end_is_kept():
    kept, dropped = filtered(PASSES + b"09:03 last words", 1 << 20, 1 << 20)
    assert kept.endswith(b"\n09:03 last words")
    assert dropped == 2


@pytest.mark.parametrize("read_size", [64 << 10, 200 << 10])
def test_a_line_longer_than_half_the_buffer_passes_whole(read_size):
    long_line = b"09:01 DEBUG nova.virt.libvirt.driver [req-1] " + b"x" * (100 << 10) + b"\n"
    data = PASSES + long_line + PASSES
    kept, dropped = filtered(data, 1 << 20, read_size)
    assert dropped == 4
    assert long_line in kept
    assert kept.count(b"Increasing downtime") == 4
