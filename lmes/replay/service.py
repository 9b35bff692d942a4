"""Replaying nova logs: read, group, rebuild, diagnose and (optionally) store, as one stream.

Every file is read on its own and the records are merged in time order (`sources`, in worker
processes when there are several hosts' files), so a migration's lines from the source, the
destination, the conductor and the API meet whatever order the files were named in; records are
grouped incrementally and each migration is handed on once it is settled, so memory stays flat
however large the logs are.

Storing is idempotent: a migration's identity comes from what the logs say (instance and
request id), so a second replay of the same logs adds nothing. When a stream is already stored,
a replay that knows more (the logs have grown) appends the new events, provided the stored ones
are the same beginning; otherwise the stored stream is kept as it is.
"""

from __future__ import annotations

import multiprocessing
import os
import re
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

from lmes.errors import UserError
from lmes.replay.collection import rare_collections
from lmes.replay.grouping import DEFAULT_SETTLE_S, CollectedMigration, Grouper
from lmes.replay.sources import LogSources, ParallelSources, split_by_host
from logs_parsers.hosts import host_from_path

if TYPE_CHECKING:
    from lmes.replay.diagnosis import Diagnosis
    from lmes.replay.events import Replayed
    from lmes.store import MigrationStore

STORE_BATCH = 200
# Read buffers are split between the open files so that many files stay within memory; one is
# at most the size that stays in the CPU's cache while it is scanned.
READ_BUFFER_BUDGET_BYTES = 16 << 20
MIN_CHUNK_BYTES = 256 << 10
MAX_CHUNK_BYTES = 512 << 10
# Below this, starting worker processes costs more than it saves.
PARALLEL_FROM_BYTES = 32 << 20
HEAD_BYTES = 64 << 10
# Below this many migrations left when the logs end, forking a process to share their
# rebuilding costs more than it saves.
SHARED_FINISH_FROM = 64
# The share of them this process finishes itself: the helper's share costs this process a
# fraction of its own (taking its diagnoses in), so this process keeps a little over a third.
HELD_KEPT_HERE = 0.375
_DATED = re.compile(rb"\b(20\d\d)-[01]\d-[0-3]\d[ T][0-2]\d:")


class StoreResult:
    NEW = "new"
    EXTENDED = "extended"
    UNCHANGED = "unchanged"
    KEPT = "kept (the stored stream differs)"
    NOT_STORED = "not stored"


class ReplayedMigration:
    """One migration out of the logs: its stream, its diagnosis, what the store did with it.

    A migration rebuilt in another process (`Replay._finish_held`) comes back as its diagnosis,
    and its stream is rebuilt here when first asked for (rebuilding gives the same stream every
    time): most callers want only the diagnosis, and sending a stream's events between
    processes costs most of what rebuilding it does."""

    __slots__ = ("_replayed", "diagnosis", "stored")

    def __init__(
        self,
        replayed: Replayed | Callable[[], Replayed],
        diagnosis: Diagnosis,
        stored: str = StoreResult.NOT_STORED,
    ) -> None:
        self._replayed = replayed
        self.diagnosis = diagnosis
        self.stored = stored

    @property
    def replayed(self) -> Replayed:
        if callable(self._replayed):
            self._replayed = self._replayed()
        return self._replayed


@dataclass
class ReplayProgress:
    bytes_read: int
    bytes_total: int
    migrations: int


@dataclass
class LogSet:
    """The files to replay, each with the host it belongs to (when known)."""

    files: list[tuple[str, str | None]] = field(default_factory=list)  # (path or "-", host)

    @property
    def total_bytes(self) -> int:
        total = 0
        for path, _ in self.files:
            if path != "-":
                total += os.path.getsize(path)
        return total


def collect_logs(paths: list[str], host_by_path: dict[str, str] | None = None) -> LogSet:
    """Expand folders and check every path is readable, before reading anything.

    Raises `UserError` naming the first path that does not exist or cannot be read.
    """
    host_by_path = {str(Path(p).resolve()): h for p, h in (host_by_path or {}).items()}
    logs = LogSet()
    seen: set[Path] = set()

    def add(file: Path, walked_from: Path | None) -> None:
        if file.resolve() not in seen:  # a file named twice (or inside a folder named) once
            seen.add(file.resolve())
            logs.files.append((str(file), _host(file, host_by_path, walked_from)))

    for raw in paths:
        if raw == "-":
            logs.files.append(("-", None))
            continue
        path = Path(raw)
        if path.is_dir():
            for file in sorted(p for p in path.rglob("*") if p.is_file()):
                add(file, path)
        elif path.is_file():
            add(path, None)
        else:
            raise UserError(f"cannot read {raw}: no such file or folder")
    for file, _ in logs.files:
        if file != "-" and not os.access(file, os.R_OK):
            raise UserError(f"cannot read {file}: permission denied")
    for mapped in host_by_path:
        if not Path(mapped).exists():
            raise UserError(f"cannot read {mapped}: no such file or folder (given with --host)")
    return logs


def _host(path: Path, host_by_path: dict[str, str], walked_from: Path | None) -> str | None:
    resolved = path.resolve()
    for mapped, host in host_by_path.items():
        mapped_path = Path(mapped)
        if resolved == mapped_path or mapped_path in resolved.parents:
            return host
    host = host_from_path(path, walked_from)
    if host is None and walked_from is None:
        # A file named on its own, in a folder named like a host (`node-1/nova-compute.log`).
        folder = path.resolve().parent.name
        if any(c.isdigit() for c in folder):
            return folder
    return host


class Replay:
    """Replays a `LogSet`; iterate `migrations()` for the results.

    `jobs` worker processes read the files (split by host) when there are several hosts' files
    and enough bytes to be worth it; grouping, rebuilding and storing happen in this process.
    """

    def __init__(
        self,
        logs: LogSet,
        *,
        store: MigrationStore | None = None,
        settle_s: float = DEFAULT_SETTLE_S,
        on_progress: Callable[[ReplayProgress], None] | None = None,
        jobs: int = 1,
        parallel_from_bytes: int = PARALLEL_FROM_BYTES,
    ) -> None:
        self.logs = logs
        self.store = store
        self.grouper = Grouper(settle_s)
        self.on_progress = on_progress
        files = [(order, path, host) for order, (path, host) in enumerate(logs.files)]
        chunk = READ_BUFFER_BUDGET_BYTES // max(len(files), 1)
        chunk = max(MIN_CHUNK_BYTES, min(MAX_CHUNK_BYTES, chunk))
        year = year_hint(logs.files)
        parallel = (
            jobs > 1
            and len(split_by_host(files, jobs)) > 1
            and all(path != "-" for _, path, _ in files)
            and logs.total_bytes >= parallel_from_bytes
        )
        self.sources: LogSources | ParallelSources = (
            ParallelSources(files, year, chunk, jobs)
            if parallel
            else LogSources(files, year, chunk)
        )
        self.count = 0
        self._pending: list[Any] = []
        self._pending_ids: set[Any] = set()

    @property
    def bytes_read(self) -> int:
        """Bytes taken from the files so far."""
        return self.sources.bytes_read

    @property
    def lines_read(self) -> int:
        """Every line read so far, those passed over unparsed included."""
        return self.sources.lines_read

    def migrations(self) -> Iterator[ReplayedMigration]:
        """Every migration in the logs, in the order they settle (roughly their start order)."""
        total = self.logs.total_bytes
        with rare_collections():
            keyed = self.sources.sightings(self.grouper.wants_steps_list)
            for seen, (_, _, _, sighting) in enumerate(keyed, start=1):
                if self.on_progress is not None and seen % 2000 == 0:
                    self.on_progress(ReplayProgress(self.bytes_read, total, self.count))
                for collected in self.grouper.add(sighting):
                    yield self._finish(collected)
            yield from self._finish_held(list(self.grouper.flush()))
            self._store_pending()
        if self.on_progress is not None:
            self.on_progress(ReplayProgress(self.bytes_read, total, self.count))

    # -------------------------------------------------------------- results

    def _finish(self, collected: CollectedMigration) -> ReplayedMigration:
        # loaded here, once the log readers are running (see the package docstring)
        from lmes.replay.diagnosis import diagnose

        replayed = self._replayed(collected)
        self.count += 1
        result = ReplayedMigration(
            replayed=replayed, diagnosis=diagnose(replayed.migration, replayed.events)
        )
        if self.store is not None:
            result.stored = self._store(replayed)
        return result

    def _replayed(self, collected: CollectedMigration) -> Replayed:
        from lmes.replay.events import rebuild

        replayed = rebuild(collected)
        self._note_wrapper_skew(replayed)
        return replayed

    def _finish_held(self, held: list[CollectedMigration]) -> Iterator[ReplayedMigration]:
        """The migrations still held when the logs end, in order. Reading is over then, so the
        worker processes' CPUs are idle: without a store, a forked process diagnoses the later
        ones while this one finishes the earlier ones, instead of this one doing it all. This
        one also takes the helper's diagnoses in (and its caller reports on them), so it keeps
        the smaller share (`HELD_KEPT_HERE`)."""
        if (
            not isinstance(self.sources, ParallelSources)
            or self.store is not None
            or len(held) < SHARED_FINISH_FROM
            or "fork" not in multiprocessing.get_all_start_methods()
        ):
            for collected in held:
                yield self._finish(collected)
            return
        split = round(len(held) * HELD_KEPT_HERE)
        context = multiprocessing.get_context("fork")
        receiver, sender = context.Pipe(duplex=False)
        helper = context.Process(
            target=self._diagnose_elsewhere, args=(held[split:], sender), daemon=True
        )
        helper.start()
        sender.close()
        try:
            for collected in held[:split]:
                yield self._finish(collected)
            with receiver:
                for collected in held[split:]:
                    try:
                        diagnosis = receiver.recv()
                    except EOFError:
                        raise RuntimeError("a rebuilding process stopped without a word") from None
                    self.count += 1
                    yield ReplayedMigration(
                        replayed=partial(self._replayed, collected), diagnosis=diagnosis
                    )
        finally:
            if helper.is_alive():
                helper.terminate()
            helper.join()

    def _diagnose_elsewhere(self, held: list[CollectedMigration], sender: Any) -> None:
        from lmes.replay.diagnosis import diagnose

        with sender:
            for collected in held:
                replayed = self._replayed(collected)
                sender.send(diagnose(replayed.migration, replayed.events))

    def _note_wrapper_skew(self, replayed: Replayed) -> None:
        """A syslog clock hours away from oslo's is worth saying, though oslo's time is used."""
        notes = []
        for host in replayed.migration.context.get("hosts", []):
            offset = self.sources.wrapper_offsets.offset_s(host)
            if offset is not None and abs(offset) >= 60:
                notes.append(
                    {
                        "kind": "syslog_clock",
                        "text": f"clock skew: {host}'s syslog clock is "
                        f"{abs(offset) / 3600:.1f} h {'behind' if offset > 0 else 'ahead of'} the "
                        f"oslo.log time on the same lines; the oslo times were used",
                    }
                )
        if notes:
            context = replayed.events[0].context
            context.setdefault("observations", []).extend(notes)
            replayed.migration.context["observations"] = context["observations"]

    def _store(self, replayed: Replayed) -> str:
        store = self.store
        assert store is not None
        migration_id = replayed.migration.id
        if migration_id in self._pending_ids:
            self._store_pending()
        if not store.has(migration_id):
            self._pending.extend(replayed.events)
            self._pending_ids.add(migration_id)
            if len(self._pending_ids) >= STORE_BATCH:
                self._store_pending()
            return StoreResult.NEW
        stored = list(store.repository.event_store.get(migration_id))
        if len(stored) >= len(replayed.events):
            return (
                StoreResult.UNCHANGED if _same_prefix(stored, replayed.events) else StoreResult.KEPT
            )
        if not _same_prefix(stored, replayed.events[: len(stored)]):
            return StoreResult.KEPT
        store.add(*replayed.events[len(stored) :])
        return StoreResult.EXTENDED

    def _store_pending(self) -> None:
        if self._pending and self.store is not None:
            self.store.add(*self._pending)
        self._pending = []
        self._pending_ids = set()


def _same_prefix(stored: list[Any], new: list[Any]) -> bool:
    """Whether two streams begin with the same events (same kinds at the same times)."""
    return all(
        type(a).__name__ == type(b).__name__ and a.timestamp == b.timestamp
        for a, b in zip(stored, new, strict=False)
    )


def year_hint(files: list[tuple[str, str | None]]) -> int:
    """The year to read syslog times in (they omit it): the year the other lines state at the
    head of the files, else the year the newest file was last written."""
    years: Counter[int] = Counter()
    newest = 0.0
    for path, _ in files:
        if path == "-":
            continue
        newest = max(newest, os.path.getmtime(path))
        try:
            with open(path, "rb") as head:
                years.update(int(y) for y in _DATED.findall(head.read(HEAD_BYTES)))
        except OSError:
            continue
    if years:
        return years.most_common(1)[0][0]
    return datetime.fromtimestamp(newest or time.time()).year
