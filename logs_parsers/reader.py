"""Streaming log reading: files, compressed files, folders, standard input → `Record`s.

Memory stays flat whatever the size: files are read in chunks, and only the record being
assembled (capped in continuation lines) is held. Two paths share the line parser and the
record assembly:

* the full path parses every line;
* the relevant path (`only_relevant=True`) reads binary chunks into one reused buffer, finds the
  lines holding one of `RELEVANT_NEEDLES` in one pass (`LineSearch`), and parses only the lines
  around them: the record such a line belongs to (walking back from a traceback line to its
  head), the lines that continue it, and the records after it while Nova's catalogue recognises
  them (the watermark line that follows a progress line). A bare oslo line that can be neither
  is ruled out from its bytes, unparsed, and so are the monitor's unchanged passes
  (`MONITOR_UNCHANGED` and the ramp line before it), found in the same pass. Every other line
  is still counted, as `filtered_lines`.
"""

from __future__ import annotations

import bz2
import gzip
import lzma
import mmap
import os
import re
import sys
import zlib
from collections.abc import Callable, Iterable, Iterator
from datetime import UTC, tzinfo
from functools import partial
from pathlib import Path
from typing import BinaryIO

from logs_parsers.hosts import host_from_mapping, host_from_path
from logs_parsers.line_parser import LineKind, LineParser, ParsedLine, clean_text, service_from_name
from logs_parsers.literal_search import LineSearch
from logs_parsers.nova_catalogue import (
    MARKER_FIRST_WORDS,
    MONITOR_RAMP,
    MONITOR_UNCHANGED,
    RELEVANT_NEEDLES,
    may_be_marker,
    recognise,
)
from logs_parsers.records import FileStats, ReadStats, Record

MAX_CONTINUATION_LINES = 2000
"""Continuation lines kept per record; more are counted and dropped, so that a runaway
multi-line message cannot grow memory."""
_WALK_BACK_LINES = 400
_MAX_LINE_BYTES = 1 << 20
"""Longer lines (binary files without line ends) are read in pieces of this size, each counted
as a line, so that memory stays flat."""
_CHUNK_BYTES = 512 << 10
"""Every pass over a chunk (the scan for needles and line ends, the parsing around hits) runs
while it is in the CPU's cache."""
_STDIN_NAME = "<stdin>"
_Buffer = bytes | bytearray | mmap.mmap
_LINES = LineSearch((RELEVANT_NEEDLES, (MONITOR_UNCHANGED,)))


class LogReader:
    """Reads nova logs of any shape. `stats` accumulates over every call.

    host_by_path: `{path: host}`; a path may be a file or a folder (applies to all below it).
    only_relevant: take the fast relevant path (see the module docstring).
    oslo_timezone: the zone of oslo/JSON times that do not state one (UTC by default).
    keep_plain: on the relevant path, whether to parse a bare oslo line that holds a needle but
        can be no marker and names no instance (`[instance: …]`): such a line can matter only
        through its request id, which the caller may know to be of no interest (periodic
        tasks' lines, for one). By default every such line is parsed.
    """

    def __init__(
        self,
        *,
        host_by_path: dict[str, str] | None = None,
        only_relevant: bool = False,
        oslo_timezone: tzinfo = UTC,
        chunk_bytes: int = _CHUNK_BYTES,
        keep_plain: Callable[[bytes | bytearray], bool] | None = None,
    ) -> None:
        self.stats = ReadStats()
        self._host_by_path = host_by_path or {}
        self._only_relevant = only_relevant
        self._parser = LineParser(oslo_timezone)
        self._chunk_bytes = chunk_bytes
        self._keep_plain = keep_plain

    def read_paths(self, paths: Iterable[str | os.PathLike[str]]) -> Iterator[Record]:
        """Records of every file named or found (folders recursively, in sorted order);
        `-` reads standard input. A missing path raises FileNotFoundError before any read."""
        targets: list[tuple[Path | None, Path | None]] = []
        for raw in paths:
            if str(raw) == "-":
                targets.append((None, None))
                continue
            path = Path(raw)
            if path.is_dir():
                targets.extend(
                    (found, path) for found in sorted(path.rglob("*")) if found.is_file()
                )
            elif path.exists():
                targets.append((path, None))
            else:
                raise FileNotFoundError(f"no such log file or folder: {path}")
        for path, walked_from in targets:
            if path is None:
                yield from self.read_stream(sys.stdin.buffer, _STDIN_NAME)
                continue
            host = host_from_mapping(path, self._host_by_path)
            default_host = host_from_path(path, walked_from)
            with open_maybe_compressed(path) as stream:
                yield from self.read_stream(stream, str(path), host=host, default_host=default_host)

    def read_stream(
        self,
        stream: BinaryIO,
        name: str,
        host: str | None = None,
        default_host: str | None = None,
    ) -> Iterator[Record]:
        """Records of one binary stream (already decompressed); `name` is each record's
        `source`. `host` is set on every record; `default_host` only on records whose lines
        do not name their host."""
        stats = self.stats.for_source(name)
        assembler = _Assembler(name, host, default_host, service_from_name(name), stats)
        try:
            if self._only_relevant:
                yield from self._read_relevant(stream, assembler, stats)
            else:
                for raw in iter(partial(stream.readline, _MAX_LINE_BYTES), b""):
                    stats.bytes_read += len(raw)
                    stats.lines_read += 1
                    yield from assembler.feed(self._parse_raw(raw))
        except (EOFError, OSError, zlib.error, lzma.LZMAError) as error:
            # A compressed file cut short (or unreadable): keep what was read, say why it ended.
            stats.read_error = f"{type(error).__name__}: {error}"
        yield from assembler.flush()

    def _parse_raw(self, raw: bytes | bytearray) -> ParsedLine:
        text, garbage = clean_text(raw)
        return self._parser.parse(text, garbage)

    def _read_relevant(
        self, stream: BinaryIO, assembler: _Assembler, stats: FileStats
    ) -> Iterator[Record]:
        """Read into one reused buffer (fresh multi-megabyte buffers cost page faults) and
        scan it up to its last line end; the partial last line moves to the front, and so does
        a last monitor ramp line, whose fate the line after it decides.

        The buffer is an anonymous memory map, so that it starts on a page boundary like the
        page cache it is copied from: a `bytearray` of this size starts 16 bytes into a page,
        and the kernel's copy into it then runs several times slower (the stores and the loads
        that follow them fall on the same offsets within pages, which the processor takes
        for a dependency between them)."""
        buffer = mmap.mmap(-1, self._chunk_bytes)
        try:
            kept = 0
            while True:
                if kept:
                    with memoryview(buffer) as view:
                        received = stream.readinto(view[kept:]) or 0
                else:  # the buffer itself: a stream may then work in it in place
                    received = stream.readinto(buffer) or 0
                stats.bytes_read += received
                size = kept + received
                if received == 0:
                    if kept:
                        final = buffer[:kept]
                        final += b"" if final.endswith(b"\n") else b"\n"
                        yield from self._scan_buffer(final, len(final), assembler, stats)
                    return
                end = buffer.rfind(b"\n", kept, size) + 1  # the kept part holds no line end
                if end == 0:
                    kept = size
                    if size < len(buffer):
                        continue
                    if size < _MAX_LINE_BYTES:
                        buffer = _grown(buffer)  # a line longer than the buffer
                        continue
                    # No line end in a whole megabyte (binary data): scan it as one line.
                    whole = buffer[:size] + b"\n"
                    yield from self._scan_buffer(whole, len(whole), assembler, stats)
                    kept = 0
                    continue
                end = _before_last_ramp(buffer, end)
                if end == 0:  # a lone ramp line: read on
                    kept = size
                    if size == len(buffer):
                        buffer = _grown(buffer)
                    continue
                yield from self._scan_buffer(buffer, end, assembler, stats)
                kept = size - end
                buffer[:kept] = buffer[end:size]
        finally:
            buffer.close()

    def _scan_buffer(
        self, buffer: _Buffer, limit: int, assembler: _Assembler, stats: FileStats
    ) -> Iterator[Record]:
        """Handle `buffer[:limit]`, whole lines ending with a newline. Every line before
        `cursor` has been counted, so the lines passed over come from the line numbers the
        scan gives (`assembler.line_number - first` is the cursor's line in the buffer)."""
        line_ends, (relevant, unchanged) = _LINES.scan(buffer, limit)
        chatter = _chatter(buffer, unchanged.ends)
        first = assembler.line_number
        cursor = 0
        if assembler.pending is not None:
            cursor = yield from self._follow(buffer, 0, limit, assembler, stats, chatter)
        for end, number in zip(*relevant, strict=True):
            if end <= cursor or end in chatter:
                continue
            line_start = buffer.rfind(b"\n", cursor, end - 1) + 1 or cursor
            if self._keep_plain is not None:
                raw = buffer[line_start:end]
                if _is_plain_unmarked(raw):
                    # a record begins: the one before is whole, and the caller sees it first
                    yield from assembler.flush()
                    if not self._keep_plain(raw):
                        continue  # counted with the lines passed over
            start, parsed, above = self._head_start(buffer, line_start, end, cursor, chatter)
            skipped = first + number - above - assembler.line_number
            if skipped:
                yield from assembler.flush()
                _filtered(skipped, assembler, stats)
            stats.lines_read += 1
            yield from assembler.feed(parsed)
            cursor = yield from self._follow(
                buffer, buffer.find(b"\n", start) + 1, limit, assembler, stats, chatter
            )
        rest = first + line_ends - assembler.line_number
        if rest:
            yield from assembler.flush()
            _filtered(rest, assembler, stats)

    def _head_start(
        self,
        buffer: _Buffer,
        start: int,
        end: int,
        floor: int,
        chatter: frozenset[int],
    ) -> tuple[int, ParsedLine, int]:
        """The line that starts the record a relevant line belongs to, with that line parsed
        and how many lines above the relevant one it is: the line itself, or, for a line inside
        a traceback, the record line above it (the monitor's chatter passed over)."""
        parsed = self._parse_raw(buffer[start:end])
        if parsed.kind is LineKind.HEAD:
            return start, parsed, 0
        above = start
        for walked in range(1, _WALK_BACK_LINES + 1):
            if above <= floor:
                break
            previous = max(buffer.rfind(b"\n", floor, above - 1) + 1, floor)
            if above not in chatter:
                previous_parsed = self._parse_raw(buffer[previous:above])
                if previous_parsed.kind is LineKind.HEAD:
                    return previous, previous_parsed, walked
            above = previous
        return start, parsed, 0

    def _follow(
        self,
        buffer: _Buffer,
        cursor: int,
        limit: int,
        assembler: _Assembler,
        stats: FileStats,
        chatter: frozenset[int],
    ) -> Iterator[Record]:
        """Take the lines after a relevant record: its continuations (past blank lines, other
        programs' lines and the monitor's chatter, as the full path does), and the next records
        while Nova's catalogue recognises them. Stops at the first other record."""
        while cursor < limit:
            end = buffer.find(b"\n", cursor) + 1
            if end in chatter:
                _filtered(1, assembler, stats)
                cursor = end
                continue
            raw = buffer[cursor:end]
            if _is_plain_other_record(raw):
                return cursor
            parsed = self._parse_raw(raw)
            if (
                parsed.kind in (LineKind.HEAD, LineKind.EXCEPTION)
                and not assembler.continues(parsed)
                and recognise(parsed.text) is None
            ):
                return cursor
            stats.lines_read += 1
            yield from assembler.feed(parsed)
            cursor = end
        return cursor


def _filtered(count: int, assembler: _Assembler, stats: FileStats) -> None:
    """Count lines passed over unparsed."""
    stats.filtered_lines += count
    stats.lines_read += count
    assembler.line_number += count


def _chatter(buffer: _Buffer, unchanged: list[int]) -> frozenset[int]:
    """The ends of the monitor's chatter lines: each unchanged-downtime line and the repeated
    ramp line right before it (not the first, `Current None`, which lists the ramp)."""
    if not unchanged:
        return frozenset()
    dropped = set(unchanged)
    rfind = buffer.rfind
    for end in unchanged:
        start = rfind(b"\n", 0, end - 1) + 1
        ramp = buffer.find(MONITOR_RAMP, rfind(b"\n", 0, start - 1) + 1, start)
        after = ramp + len(MONITOR_RAMP)
        if ramp >= 0 and buffer[after : after + 1].isdigit():
            dropped.add(start)
    return frozenset(dropped)


def _grown(buffer: mmap.mmap) -> mmap.mmap:
    """A buffer twice the size holding the same bytes (a new map: growing an anonymous map in
    place is not portable)."""
    grown = mmap.mmap(-1, 2 * len(buffer))
    grown[: len(buffer)] = buffer[:]
    buffer.close()
    return grown


def _before_last_ramp(buffer: _Buffer, end: int) -> int:
    """Where to stop in `buffer[:end]` (whole lines): before the last line if it is a monitor
    ramp line, whose fate the line after it decides (0 when it is the only line)."""
    last = buffer.rfind(b"\n", 0, end - 1) + 1
    return last if buffer.find(MONITOR_RAMP, last, end) >= 0 else end


class _Assembler:
    """Attaches continuation lines to the record before them and counts every line fed."""

    def __init__(
        self,
        source: str,
        host: str | None,
        default_host: str | None,
        service: str | None,
        stats: FileStats,
    ):
        self.source = source
        self.host = host
        self.default_host = default_host
        self.service = service
        self.stats = stats
        self.line_number = 0
        self.pending: Record | None = None

    def continues(self, parsed: ParsedLine) -> bool:
        pending = self.pending
        if pending is None:
            return False
        if parsed.kind is LineKind.EXCEPTION:
            record = parsed.record
            assert record is not None
            return record.logger == pending.logger and (
                record.pid is None or pending.pid is None or record.pid == pending.pid
            )
        if parsed.kind is LineKind.CONTINUATION:
            return parsed.pid is None or pending.pid is None or parsed.pid == pending.pid
        return False

    def feed(self, parsed: ParsedLine) -> Iterator[Record]:
        self.line_number += 1
        kind = parsed.kind
        stats = self.stats
        if kind is LineKind.BLANK:
            stats.blank_lines += 1
        elif kind is LineKind.OTHER_PROGRAM:
            stats.other_program_lines += 1
        elif kind is LineKind.GARBAGE:
            stats.unparseable_lines += 1
        elif self.continues(parsed):
            stats.continuation_lines += 1
            pending = self.pending
            assert pending is not None
            if len(pending.traceback) < MAX_CONTINUATION_LINES:
                pending.traceback.append(parsed.text)
            else:
                stats.dropped_continuation_lines += 1
        elif kind is LineKind.CONTINUATION:
            stats.unparseable_lines += 1
        else:
            yield from self.flush()
            record = parsed.record
            assert record is not None
            record.source = self.source
            record.line_number = self.line_number
            if self.host is not None:
                record.host = self.host
            elif record.host is None:
                record.host = self.default_host
            if record.service is None:
                record.service = self.service
            self.pending = record

    def flush(self) -> Iterator[Record]:
        if self.pending is not None:
            self.stats.records += 1
            yield self.pending
            self.pending = None


_DATED = re.compile(rb"[0-9]{4}-.{5} ", re.S)
_PLAIN_LEVEL = re.compile(rb" (?:DEBUG|INFO|WARNING|AUDIT) ")
_LEVEL_WITHIN_BYTES = 64
_CONTEXT_WITHIN_BYTES = 200
_INSTANCE_TAG = b"[instance: "
_FIRST_WORD = re.compile(rb"\] +([^ \t\r\n]*)")


def _is_plain_other_record(raw: bytes | bytearray) -> bool:
    """True for a whole bare oslo line (its date, a DEBUG/INFO/WARNING/AUDIT level, a request
    context) that can neither continue a traceback nor be a marker: decided without parsing."""
    return _is_plain_record(raw) and not may_be_marker(raw)


def _is_plain_record(raw: bytes | bytearray) -> bool:
    """True for a whole bare oslo line: its date, a DEBUG/INFO/WARNING/AUDIT level, a request
    context."""
    return (
        _DATED.match(raw) is not None
        and _PLAIN_LEVEL.search(raw, 0, _LEVEL_WITHIN_BYTES) is not None
        and raw.find(b" [", 0, _CONTEXT_WITHIN_BYTES) >= 0
    )


def _is_plain_unmarked(raw: bytes | bytearray) -> bool:
    """True for a bare oslo line that names no instance and cannot be a marker: its message
    begins with no word a marker begins with."""
    if _INSTANCE_TAG in raw or not _is_plain_record(raw):
        return False
    first = _first_message_word(raw)
    return first is not None and first not in MARKER_FIRST_WORDS


def _first_message_word(raw: bytes | bytearray) -> bytes | None:
    """The first word after a plain line's request context, or None if the context does not
    close on this line."""
    match = _FIRST_WORD.search(raw, raw.find(b" [", 0, _CONTEXT_WITHIN_BYTES))
    return None if match is None else match.group(1)


def open_maybe_compressed(path: Path) -> BinaryIO:
    """Open by content, not name: gzip, bzip2 and xz are recognised by their magic bytes."""
    with open(path, "rb") as probe:
        magic = probe.read(6)
    if magic.startswith(b"\x1f\x8b"):
        return gzip.open(path, "rb")  # type: ignore[return-value]
    if magic.startswith(b"BZh"):
        return bz2.open(path, "rb")  # type: ignore[return-value]
    if magic.startswith(b"\xfd7zXZ\x00"):
        return lzma.open(path, "rb")  # type: ignore[return-value]
    return open(path, "rb")


def read_paths(
    paths: Iterable[str | os.PathLike[str]],
    host_by_path: dict[str, str] | None = None,
    *,
    only_relevant: bool = False,
    oslo_timezone: tzinfo = UTC,
) -> Iterator[Record]:
    """Records of the given files and folders; use `LogReader` to also get the stats."""
    reader = LogReader(
        host_by_path=host_by_path, only_relevant=only_relevant, oslo_timezone=oslo_timezone
    )
    return reader.read_paths(paths)


def read_stream(
    stream: BinaryIO,
    name: str,
    *,
    host: str | None = None,
    only_relevant: bool = False,
    oslo_timezone: tzinfo = UTC,
) -> Iterator[Record]:
    """Records of one binary stream (`sys.stdin.buffer`, an open file, a `gzip.open` object);
    use `LogReader` to also get the stats."""
    reader = LogReader(only_relevant=only_relevant, oslo_timezone=oslo_timezone)
    return reader.read_stream(stream, name, host=host)
