"""Log files into one time-ordered stream of sightings, in this process or in several.

Each file is read on its own (by the logs_parsers reader, on its relevant path) and the files
are merged by time, so a migration's lines from every host meet whatever order the files were
named in. Reading and recognising lines is most of a replay's work and each file's share is
independent, so with `jobs > 1` the files are split by host between worker processes, which
send their sightings back in batches; this process merges the workers' streams as it merges
files. Grouping, rebuilding and storing stay here, in one place.
"""

from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import heapq
import multiprocessing
import queue
import re
import sys
import threading
from collections.abc import Callable, Iterator
from datetime import datetime
from operator import attrgetter
from pathlib import Path
from typing import Any

from lmes.errors import UserError
from lmes.replay.clock import WrapperOffsets
from lmes.replay.collection import rare_collections
from lmes.replay.grouping import Sighting
from logs_parsers.nova_catalogue import Marker, recognise
from logs_parsers.reader import LogReader, open_maybe_compressed
from logs_parsers.records import Record

STDIN_NAME = "<stdin>"
MARKED_REQUESTS_KEPT = 100_000
PIPE_BYTES = 1 << 20
# The request id as the line parser reads it: the context's second token if it starts with
# `req-` (after a global request id, `None` or `-`), else its first.
_REQUEST_ID = re.compile(rb"\[(?:[^\s\]]+ )?(req-[^\s\]]+)")
_CONTEXT_WITHIN_BYTES = 240
BATCH = 1024
OUTBOX_BATCHES = 8
_STEPS_LIST_PREFIX = "Current "

_RECORD_VALUES = attrgetter(*(f.name for f in dataclasses.fields(Record)))

# (time, file order, line): how sightings are merged; the order breaks ties deterministically.
Keyed = tuple[datetime, int, int, Sighting]
LogFile = tuple[int, str, str | None]  # (order, path or "-", host)


class LogSources:
    """Reads a set of files in this process.

    A line that is no marker and names no instance can belong to a migration only through its
    request id, once a marker under that id has tied it to one (`Grouper`); Nova logs such a
    marker first on every host a migration touches (the checks). Lines under a request id no
    marker has carried yet in these files (periodic tasks, most of them) are therefore not
    parsed at all."""

    def __init__(self, files: list[LogFile], year: int, chunk_bytes: int) -> None:
        self.files = files
        self.year = year
        self.reader = LogReader(
            only_relevant=True, chunk_bytes=chunk_bytes, keep_plain=self._of_a_marked_request
        )
        self.wrapper_offsets = WrapperOffsets()
        self._marked_requests: dict[bytes, None] = {}
        """Request ids seen on markers, oldest first, at most `MARKED_REQUESTS_KEPT`."""

    @property
    def bytes_read(self) -> int:
        """Bytes taken from the files so far."""
        return self.reader.stats.total.bytes_read

    @property
    def lines_read(self) -> int:
        """Every line read, those passed over unparsed included."""
        return self.reader.stats.total.lines_read

    def sightings(
        self, wants_steps_list: Callable[[Record], bool] | None = None
    ) -> Iterator[Keyed]:
        """Every file's sightings, merged by time. `wants_steps_list` says whether a repeated
        `Current … steps [...]` line is still worth recognising."""
        streams = [
            self._stream(order, path, host, wants_steps_list) for order, path, host in self.files
        ]
        return heapq.merge(*streams)

    def _records(self, path: str, host: str | None) -> Iterator[Record]:
        if path == "-":
            yield from self.reader.read_stream(sys.stdin.buffer, STDIN_NAME)
            return
        with open_maybe_compressed(Path(path)) as stream:
            yield from self.reader.read_stream(stream, path, host=host)

    def _stream(
        self,
        order: int,
        path: str,
        host: str | None,
        wants_steps_list: Callable[[Record], bool] | None,
    ) -> Iterator[Keyed]:
        last_at: datetime | None = None
        for record in self._records(path, host):
            at = self._time_of(record)
            if at is None:
                at = last_at
                if at is None:
                    continue
            last_at = at
            marker = None
            if not (
                wants_steps_list is not None
                and record.message.startswith(_STEPS_LIST_PREFIX)
                and not wants_steps_list(record)
            ):
                marker = recognise(record.message)
            if marker is not None and record.request_id:
                self._mark(record.request_id)
            label = record.host or record.source  # two unnamed files must stay two hosts
            yield at, order, record.line_number, Sighting(at, label, record, marker)

    def _mark(self, request_id: str) -> None:
        marked = self._marked_requests
        key = request_id.encode()
        if key not in marked:
            marked[key] = None
            if len(marked) > MARKED_REQUESTS_KEPT:
                del marked[next(iter(marked))]

    def _of_a_marked_request(self, line: bytes | bytearray) -> bool:
        match = _REQUEST_ID.search(line, 0, _CONTEXT_WITHIN_BYTES)
        return match is not None and match.group(1) in self._marked_requests

    def _time_of(self, record: Record) -> datetime | None:
        host = record.host or record.source
        if record.timestamp is not None:
            if record.wrapper_time_text and record.wrapper_timestamp is None:
                self.wrapper_offsets.observe(host, record.wrapper_time_text, record.timestamp)
            return record.timestamp
        if record.wrapper_time_text:
            return self.wrapper_offsets.place(host, record.wrapper_time_text, self.year)
        return None


class ParallelSources:
    """Reads a set of files in `jobs` worker processes, each a share of the hosts."""

    def __init__(self, files: list[LogFile], year: int, chunk_bytes: int, jobs: int) -> None:
        self.shares = split_by_host(files, jobs)
        self.year = year
        self.chunk_bytes = chunk_bytes
        self.wrapper_offsets = WrapperOffsets()
        self._bytes = [0] * len(self.shares)
        self._lines = [0] * len(self.shares)

    @property
    def bytes_read(self) -> int:
        return sum(self._bytes)

    @property
    def lines_read(self) -> int:
        return sum(self._lines)

    def sightings(
        self, wants_steps_list: Callable[[Record], bool] | None = None
    ) -> Iterator[Keyed]:
        # fork shares this process's pages with the workers and starts them at once; where
        # there is no fork, a fresh interpreter does the same work
        methods = multiprocessing.get_all_start_methods()
        context = multiprocessing.get_context("fork" if "fork" in methods else "spawn")
        workers = []
        try:
            streams = []
            for index, share in enumerate(self.shares):
                receiver, sender = context.Pipe(duplex=False)
                _widen(sender)
                worker = context.Process(
                    target=_serve, args=(share, self.year, self.chunk_bytes, sender), daemon=True
                )
                worker.start()
                sender.close()
                workers.append(worker)
                streams.append(self._receive(index, receiver))
            yield from heapq.merge(*streams)
        finally:
            for worker in workers:
                if worker.is_alive():
                    worker.terminate()
                worker.join()

    def _receive(self, index: int, receiver: Any) -> Iterator[Keyed]:
        with receiver:
            while True:
                try:
                    kind, *payload = receiver.recv()
                except EOFError:
                    raise RuntimeError("a log-reading worker stopped without a word") from None
                if kind == "batch":
                    items, self._bytes[index], offsets = payload
                    self.wrapper_offsets.learn(offsets)
                    for item in items:
                        yield _unpack(item)
                elif kind == "done":
                    self._lines[index], self._bytes[index] = payload
                    return
                else:
                    raise UserError(payload[0])


def _serve(share: list[LogFile], year: int, chunk_bytes: int, sender: Any) -> None:
    """A worker: read a share of the files and send the sightings back in batches.

    A thread sends them, so that reading goes on while the replay is busy rebuilding (a pipe
    holds less than one batch); at most `OUTBOX_BATCHES` wait, so memory stays bounded."""
    sources = LogSources(share, year, chunk_bytes)
    outbox: queue.Queue[tuple[Any, ...] | None] = queue.Queue(maxsize=OUTBOX_BATCHES)
    posting = threading.Thread(target=_post, args=(outbox, sender), daemon=True)
    posting.start()
    try:
        batch: list[tuple[Any, ...]] = []
        with rare_collections():
            for item in sources.sightings():
                batch.append(_pack(item))
                if len(batch) >= BATCH:
                    outbox.put(
                        ("batch", batch, sources.bytes_read, sources.wrapper_offsets.known())
                    )
                    batch = []
        outbox.put(("batch", batch, sources.bytes_read, sources.wrapper_offsets.known()))
        outbox.put(("done", sources.lines_read, sources.bytes_read))
    except OSError as exc:
        outbox.put(("error", f"cannot read {exc.filename or 'the logs'}: {exc.strerror or exc}"))
    finally:
        outbox.put(None)
        posting.join()
        sender.close()


def _post(outbox: queue.Queue[tuple[Any, ...] | None], sender: Any) -> None:
    """Send what the worker puts in `outbox` until None. Once a send fails (the replay stopped
    listening), the pipe is closed, which the replay reads as the worker's end, and the rest is
    dropped, so that the worker never waits on a full outbox."""
    listening = True
    while (message := outbox.get()) is not None:
        if listening:
            try:
                sender.send(message)
            except Exception:
                listening = False
                sender.close()


def _pack(item: Keyed) -> tuple[Any, ...]:
    """A sighting as plain values, every field in order: pickle rebuilds slotted dataclasses
    slowly, tuples fast, and positional arguments rebuild them fastest. A marker goes as a
    plain tuple: pickling a named tuple calls back into Python for each one."""
    at, order, line, sighting = item
    marker = sighting.marker
    return (
        at,
        order,
        line,
        sighting.host,
        _RECORD_VALUES(sighting.record),
        None if marker is None else tuple(marker),
    )


def _unpack(packed: tuple[Any, ...]) -> Keyed:
    at, order, line, host, values, marker = packed
    if marker is not None:
        marker = Marker._make(marker)
    return at, order, line, Sighting(at, host, Record(*values), marker)


def _widen(connection: Any) -> None:
    """Give a pipe room for a whole batch where the system allows (Linux): the replay then
    reads a batch in a few calls, not one per 64 KB, and the worker seldom waits to send."""
    # another system, or a smaller limit: the default size works, a little slower
    with contextlib.suppress(AttributeError, OSError):
        fcntl.fcntl(connection.fileno(), fcntl.F_SETPIPE_SZ, PIPE_BYTES)


def split_by_host(files: list[LogFile], jobs: int) -> list[list[LogFile]]:
    """Shares of about equal size, each host's files (its wrapper clock) in one share."""
    by_host: dict[str, list[LogFile]] = {}
    for file in files:
        by_host.setdefault(file[2] or file[1], []).append(file)
    sizes = {host: sum(_size(path) for _, path, _ in group) for host, group in by_host.items()}
    shares: list[list[LogFile]] = [[] for _ in range(max(1, min(jobs, len(by_host))))]
    loads = [0] * len(shares)
    for host in sorted(by_host, key=lambda h: -sizes[h]):
        lightest = loads.index(min(loads))
        shares[lightest].extend(by_host[host])
        loads[lightest] += sizes[host]
    return [sorted(share) for share in shares if share]


def _size(path: str) -> int:
    try:
        return Path(path).stat().st_size
    except OSError:
        return 0
