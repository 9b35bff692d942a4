"""One collected migration into a `Migration` stream, through the aggregate's own commands.

The logs say less than the status machine needs: Newton logs no "queued" line, a source-only log
has no destination's pre_live_migration, and a log that starts mid-copy has no checks. Each
missing step is recorded anyway, at the best-known time, and named in the stream's context
(`context["inferred"]`: step → why), so the status machine stays Nova's and an operator can
tell what the logs said from what lmes concluded.

Times are first put on one clock (`clock.estimate_offsets`, from the RPC order between source
and destination), then the migration is rebuilt in Nova's order: request, destination, queue,
preparation, start, the monitor's downtime steps and progress, and the outcome.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from lmes.domain import policy
from lmes.domain.errors import DomainError
from lmes.domain.migration import Migration, migration_id_for
from lmes.domain.status import Origin, Status
from lmes.replay.clock import Precedence, estimate_offsets
from lmes.replay.grouping import CollectedMigration, Sighting
from lmes.replay.ramp import fit_ramp

SOURCE_KINDS = frozenset(
    {
        "check_source",
        "live_migration_data",
        "monitor_started",
        "migrate_api_invoked",
        "migrate_api_completed",
        "operation_thread_finished",
        "downtime_increased",
        "downtime_increase_failed",
        "downtime_steps_listed",
        "progress",
        "watermark",
        "stuck",
        "completion_timeout",
        "postcopy_switch",
        "postcopy_switch_failed",
        "operation_completed",
        "operation_aborted",
        "operation_cancelled",
        "live_migration_failure",
        "driver_failed",
        "monitor_done",
        "monitor_error",
        "post_live_migration_source",
        "migration_finished",
        "pre_live_migration_took",
        "pre_live_migration_failed",
        "vif_plug_timeout",
        "vif_events_timeout",
        "vifs_received_continue",
        "rollback_network_cleanup_failed",
        "queued_cancelled",
        "queued_cancel_failed",
        "rollback",
        "job_state_inferred",
        "job_type_fixed",
        "abort_failed",
        "pause_failed",
    }
)
DEST_KINDS = frozenset(
    {
        "check_destination",
        "pre_live_migration_start",
        "pre_live_migration_driver_start",
        "creating_instance_dir",
        "checking_images",
        "connecting_volumes",
        "plugging_vifs",
        "plug_vifs_retry",
        "pre_live_migration_driver_done",
        "pre_live_migration_result",
        "post_live_migration_dest",
        "post_dest_failed",
    }
)
# Blocking calls worth a phase of their own: os-brick's trace of a call that returned.
_SLOW_CALL = re.compile(r"<== (?P<call>[\w.]+): return \((?P<ms>\d+)ms\)")
_PORT_EVENT = "network-vif-plugged"
_PORT = re.compile(_PORT_EVENT + r"[-', u]+(?P<port>[0-9a-f]{8}-[0-9a-f-]{27})")
SLOW_CALL_MS = 1000
# The monitor's lines that add to a running migration's stream.
_MONITORED = frozenset(
    {
        "downtime_increased",
        "progress",
        "force_complete_requested",
        "abort_requested",
        "completion_timeout",
        "postcopy_switch",
        "lifecycle",
    }
)


@dataclass
class Replayed:
    """A rebuilt migration, its events (oldest first) and how it was identified."""

    migration: Migration
    events: list[Any]
    key: str


@dataclass
class _Facts:
    """What the sightings of one migration say, on one clock, indexed once by marker kind (the
    rebuilding asks about kinds dozens of times)."""

    sightings: list[tuple[datetime, Sighting]]
    source: str | None  # the source's clock: its host, or its file when the host is unknown
    dest: str | None
    offsets: dict[str, float]
    source_name: str | None = None  # the source's host name, when the logs tell it
    dest_name: str | None = None
    by_kind: dict[str, list[tuple[datetime, Sighting]]] = field(default_factory=dict)
    first: dict[str, tuple[datetime, Sighting]] = field(default_factory=dict)
    last: dict[str, tuple[datetime, Sighting]] = field(default_factory=dict)
    hosts: list[str] = field(default_factory=list)  # the hosts' names the lines carry, sorted
    log_files: list[str] = field(default_factory=list)  # sorted

    def at(self, *kinds: str) -> datetime | None:
        earliest = None
        for kind in kinds:
            seen = self.first.get(kind)
            if seen is not None and (earliest is None or seen[0] < earliest):
                earliest = seen[0]
        return earliest

    def latest(self, *kinds: str) -> datetime | None:
        latest = None
        for kind in kinds:
            seen = self.last.get(kind)
            if seen is not None and (latest is None or seen[0] > latest):
                latest = seen[0]
        return latest

    def marker(self, kind: str) -> Any:
        seen = self.first.get(kind)
        return seen[1].marker if seen is not None else None

    def sighting(self, kind: str) -> Sighting | None:
        seen = self.first.get(kind)
        return seen[1] if seen is not None else None

    def all(self, kind: str) -> list[tuple[datetime, Sighting]]:
        """Every sighting of `kind`, in order."""
        return self.by_kind.get(kind, [])


def migration_key(collected: CollectedMigration) -> str:
    """What names this migration whatever part of its logs is replayed: the instance and the
    request id Nova ran it under (the earliest-linked one), else its first source-side time."""
    if collected.request_ids:
        return f"nova-live-migration:{collected.instance}:{collected.request_ids[0]}"
    first = min(s.at for s in collected.sightings)
    return f"nova-live-migration:{collected.instance}:{first:%Y-%m-%dT%H:%M:%S}"


def rebuild(collected: CollectedMigration) -> Replayed:
    """The `Migration` the sightings describe, with its events."""
    facts = _facts(collected)
    key = migration_key(collected)
    builder = _Builder(collected, facts, migration_id_for(key))
    try:
        builder.run()
    except DomainError as refused:
        # Logs can go on in ways Nova's status machine does not (two copies of a log, a
        # vendor patch): keep the migration as far as it was consistent, and say so.
        builder.observations.append(
            _observation(
                "impossible_transition",
                f"the logs go on in a way Nova's statuses do not allow ({refused}); the "
                f"migration is kept as far as the logs were consistent",
            )
        )
        builder.finish_context()
    events = builder.migration.collect_events()
    return Replayed(migration=builder.migration, events=events, key=key)


# ------------------------------------------------------------------------- facts


def _facts(collected: CollectedMigration) -> _Facts:
    sightings = collected.sightings
    by_kind, on_source, on_dest = _index(sightings)
    source = _most_seen(on_source, exclude=None)
    dest = _most_seen(on_dest, exclude=source)
    offsets = estimate_offsets(_precedences(by_kind, source, dest), source)
    shifts = {host: timedelta(seconds=offset) for host, offset in offsets.items() if offset}
    placed = [(s.at + shifts[s.host], s) if s.host in shifts else (s.at, s) for s in sightings]
    placed.sort(key=_placement)
    placed_by_kind: dict[str, list[tuple[datetime, Sighting]]] = {}
    for pair in placed:
        marker = pair[1].marker
        if marker is not None:
            same = placed_by_kind.get(marker.kind)
            if same is None:
                placed_by_kind[marker.kind] = [pair]
            else:
                same.append(pair)
    record_hosts = {s.record.host for s in sightings}
    return _Facts(
        sightings=placed,
        source=source,
        dest=dest,
        offsets=offsets,
        source_name=source if source in record_hosts else None,
        dest_name=dest if dest in record_hosts else None,
        by_kind=placed_by_kind,
        first={kind: pairs[0] for kind, pairs in placed_by_kind.items()},
        last={kind: pairs[-1] for kind, pairs in placed_by_kind.items()},
        hosts=sorted(host for host in record_hosts if host),
        log_files=sorted({s.record.source for s in sightings}),
    )


def _index(
    sightings: list[Sighting],
) -> tuple[dict[str, list[Sighting]], dict[str, int], dict[str, int]]:
    """In one pass: the sightings by marker kind (on their own clocks), and per host how many
    source-side and destination-side markers it logged (hosts in the order first seen)."""
    by_kind: dict[str, list[Sighting]] = {}
    on_source: dict[str, int] = {}
    on_dest: dict[str, int] = {}
    for s in sightings:
        marker = s.marker
        if marker is None:
            continue
        kind = marker.kind
        same = by_kind.get(kind)
        if same is None:
            by_kind[kind] = [s]
        else:
            same.append(s)
        if s.host:
            if kind in SOURCE_KINDS:
                on_source[s.host] = on_source.get(s.host, 0) + 1
            elif kind in DEST_KINDS:
                on_dest[s.host] = on_dest.get(s.host, 0) + 1
    return by_kind, on_source, on_dest


def _most_seen(counts: dict[str, int], exclude: str | None) -> str | None:
    """The host with the most markers; of equal ones, the first seen."""
    best = None
    for host, count in counts.items():
        if host != exclude and (best is None or count > counts[best]):
            best = host
    return best


def _placement(pair: tuple[datetime, Sighting]) -> tuple[datetime, int]:
    return pair[0], pair[1].record.line_number


def _precedences(
    by_kind: dict[str, list[Sighting]], source: str | None, dest: str | None
) -> list[Precedence]:
    """The cross-host order Nova's RPC calls guarantee, as pairs of raw times."""
    if not source or not dest:
        return []

    def seen(
        host: str, *kinds: str, pick: Callable[[list[datetime]], datetime] = min
    ) -> datetime | None:
        times = [s.at for kind in kinds for s in by_kind.get(kind, ()) if s.host == host]
        return pick(times) if times else None

    checked = seen(source, "check_source")
    pairs = [
        (dest, seen(dest, "check_destination"), source, checked),
        (source, checked, dest, seen(dest, "pre_live_migration_start")),
        (
            dest,
            seen(dest, "pre_live_migration_result", pick=max),
            source,
            seen(
                source,
                "pre_live_migration_took",
                "live_migration_data",
                "monitor_started",
                "migrate_api_invoked",
            ),
        ),
        (source, seen(source, "operation_completed"), dest, seen(dest, "post_live_migration_dest")),
    ]
    return [
        Precedence(before_host=bh, before=bt, after_host=ah, after=at)
        for bh, bt, ah, at in pairs
        if bt is not None and at is not None
    ]


# ------------------------------------------------------------------------- building


class _Builder:
    """Walks Nova's workflow over the facts, issuing the aggregate's commands."""

    def __init__(self, collected: CollectedMigration, facts: _Facts, migration_id: Any) -> None:
        self.collected = collected
        self.facts = facts
        self.migration_id = migration_id
        self.inferred: dict[str, str] = {}
        self.observations: list[dict[str, str]] = []
        self.migration: Migration = None  # type: ignore[assignment]
        self.block_migration = self._block_migration()

    # -------------------------------------------------------------- the walk

    def run(self) -> None:
        f = self.facts
        ramp, ramp_logged, data_gb = self._ramp()
        started_at = self._start_time()
        self._observe()
        self._request()
        if self._checks():
            return
        prepare_at = self._prepare_time(started_at)
        has_progress = started_at is not None or self._outcome_after_start()
        if prepare_at is None and not has_progress and not self._ends_before_start():
            self.finish_context()
            return
        queue_at = f.at("check_source") or prepare_at or started_at or f.sightings[0][0]
        if "check_source" not in f.first:
            self.inferred["queued"] = (
                "the logs show no checks on the source; queued when first seen"
            )
        else:
            self.inferred["queued"] = "Nova logs no 'queued' line; queued when the checks ended"
        timeout_marker = f.marker("completion_timeout")
        completion_timeout_s = (
            int(timeout_marker.elapsed_s)
            if timeout_marker is not None and timeout_marker.elapsed_s is not None
            else policy.completion_timeout_s(800, data_gb)
        )
        if timeout_marker is None:
            self.inferred["completion_timeout_s"] = "not logged; Nova's default 800 s per GiB"
        if not ramp_logged:
            self.inferred["downtime_steps"] = (
                "the ramp was not listed; rebuilt from the steps applied"
                if ramp
                else "no downtime step was logged"
            )
        self.migration.queue(
            data_gb=data_gb,
            downtime_steps=ramp,
            completion_timeout_s=completion_timeout_s,
            at=_not_before(queue_at, self.migration),
        )
        if self._cancelled_while_queued():
            return
        took = f.marker("pre_live_migration_took")
        if prepare_at is None and took is not None and took.duration_s is not None:
            prepare_at = max(
                f.at("pre_live_migration_took") - timedelta(seconds=took.duration_s), queue_at
            )
            self.inferred["preparing"] = "from the source's 'Took … seconds for pre_live_migration'"
        elif prepare_at is None:
            prepare_at = started_at or queue_at
            self.inferred["preparing"] = "no pre-live-migration line; preparing when first running"
        elif "pre_live_migration_start" not in f.first:
            self.inferred["preparing"] = "the destination's log is missing; from the source's lines"
        self.migration.start_preparation(
            at=_not_before(prepare_at, self.migration), dest_host=f.dest_name
        )
        self._vif_plugged(before=started_at)
        if self._prepare_failed():
            return
        self._prepared(started_at)
        self._port_event_awaited(started_at)
        if started_at is None:
            if not self._outcome_after_start():
                self.finish_context()
                return
            started_at = self._first_monitor_time() or self.migration.phase_times["prepared"]
            self.inferred["running"] = (
                "no line marks the start of the copy; from the first monitor line"
            )
        self.migration.start(
            at=_not_before(started_at, self.migration), bandwidth_mib_s=self._bandwidth()
        )
        self._vif_plugged(before=None)
        self._monitor(ramp)
        self._outcome()

    # -------------------------------------------------------------- steps

    def _request(self) -> None:
        f = self.facts
        api = f.marker("api_accepted")
        requested_dest = api.host if api is not None else None
        first_at = f.sightings[0][0]
        if api is None:
            self.inferred["accepted"] = "the API's log is missing; requested when first seen"
        self.migration = Migration.request(
            instance=self.collected.instance or "unknown",
            at=first_at,
            origin=Origin.REPLAY,
            source_host=f.source_name,
            requested_dest=self._host_name(requested_dest) if requested_dest else None,
            block_migration=self.block_migration,
            context={},
            migration_id=self.migration_id,
        )
        dest = f.dest_name or self._named_dest()
        if dest and dest != f.source_name:
            for attempt, (at, sighting) in enumerate(f.all("host_skipped"), start=1):
                marker = sighting.marker
                self.migration.reject_destination(
                    self._host_name(marker.host or "unknown"),
                    attempt=attempt,
                    check="conductor",
                    reason=marker.reason or "",
                    at=at,
                )
            attempt = len(f.all("host_skipped")) + 1
            at = f.at("check_destination", "scheduler_selected") or first_at
            if not f.at("check_destination", "scheduler_selected"):
                self.inferred["destination"] = "no check on the destination was logged"
            self.migration.select_destination(
                dest, attempt=attempt, at=_not_before(at, self.migration)
            )

    def _checks(self) -> bool:
        """A failure in the conductor's checks ends the migration before the source acts."""
        f = self.facts
        for kind in ("precheck_failed", "conductor_failed"):
            marker = f.marker(kind)
            if marker is not None and not f.at("live_migration_data", "monitor_started"):
                at = f.at(kind)
                self.migration.fail_precheck(
                    check="conductor",
                    reason=marker.reason or _message(f.sighting(kind)),
                    at=_not_before(at, self.migration),
                )
                self.finish_context()
                return True
        return False

    def _prepare_time(self, started_at: datetime | None) -> datetime | None:
        """When the source set `preparing`: its first pre-live-migration work, or the
        destination's pre_live_migration, whichever is seen first."""
        f = self.facts
        candidates = [f.at("pre_live_migration_start", "pre_live_migration_driver_start")]
        checked = f.at("check_source")
        for at, sighting in f.sightings:
            if sighting.host != f.source or sighting.marker is not None:
                continue
            if checked is not None and at < checked:
                continue
            if started_at is not None and at >= started_at:
                break
            record = sighting.record
            if record.function == "_do_live_migration" or "pre_live_migration" in record.message:
                candidates.append(at)
                break
        found = [c for c in candidates if c is not None]
        return min(found) if found else None

    def _prepare_failed(self) -> bool:
        f = self.facts
        for kind in ("pre_live_migration_failed", "vif_plug_timeout", "vif_events_timeout"):
            if kind not in f.first:
                continue
            if kind == "vif_events_timeout" and f.at("live_migration_data", "monitor_started"):
                continue  # a warning only: Nova went on without the events
            at, sighting = f.first[kind]
            self._roll_back(at)
            self.migration.fail(
                phase="pre_live_migration",
                reason=_reason(sighting),
                status=Status.ERROR,
                traceback_summary=_traceback_summary(sighting),
                at=self._end_time(at),
            )
            self.finish_context()
            return True
        return False

    def _prepared(self, started_at: datetime | None) -> None:
        f = self.facts
        took = f.marker("pre_live_migration_took")
        dest_start = f.at("pre_live_migration_start")
        dest_end = f.latest("pre_live_migration_result")
        at = f.at("pre_live_migration_took") or dest_end
        if at is None:
            at = started_at or self._first_monitor_time() or self.migration.phase_times["preparing"]
            self.inferred["prepared"] = "no end of pre-live-migration was logged"
        preparing = self.migration.phase_times["preparing"]
        at = _not_before(at, self.migration)
        phases: dict[str, float] = {}
        if dest_start is not None and dest_end is not None and dest_end >= dest_start:
            phases[f"pre_live_migration on {f.dest_name or 'the destination'}"] = (
                dest_end - dest_start
            ).total_seconds()
        duration_s = took.duration_s if took is not None else (at - preparing).total_seconds()
        self.migration.complete_preparation(
            duration_s=duration_s, at=at, details={"phases": phases}
        )

    def _vif_plugged(self, before: datetime | None) -> None:
        """Record the VIF plugging at the time Nova learnt of it, once, in the right status."""
        f = self.facts
        if self.migration.vifs_plugged:
            return
        at = f.at("vifs_received_continue")
        if at is None:
            return
        if before is None or at < before:
            self._plug_vif(at)

    def _port_event_awaited(self, started_at: datetime | None) -> None:
        """Nova 18+ waits on the source for Neutron's network-vif-plugged before it starts the
        copy: the first such event the source received once preparing, before the start, marks
        the end of that wait (its time, once the preparation is over: the wait begins then)."""
        f = self.facts
        if self.migration.vifs_plugged or started_at is None:
            return
        preparing = self.migration.phase_times[Status.PREPARING.value]
        for at, sighting in f.all("vif_event_received"):
            if sighting.host == f.source and preparing <= at < started_at:
                self._plug_vif(at)
                return

    def _plug_vif(self, at: datetime) -> None:
        self.migration.plug_vif(self._port_id() or "unknown", at=_not_before(at, self.migration))

    def _monitor(self, ramp: list[tuple[int, int]]) -> None:
        f = self.facts
        migration = self.migration
        started = migration.phase_times[Status.RUNNING.value]
        timeout_action = self._timeout_action()
        # none of these lines ends the migration: only its outcome, after them, does
        for at, sighting in f.sightings:
            marker = sighting.marker
            if marker is None or marker.kind not in _MONITORED or at < started:
                continue
            kind = marker.kind
            status = migration.status
            try:
                if kind == "downtime_increased" and status is Status.RUNNING:
                    mark = int(marker.elapsed_s or 0)
                    index = _index_of(ramp, (mark, marker.downtime_ms))
                    migration.increase_downtime(
                        marker.downtime_ms, elapsed_s=mark, step_index=index, at=at
                    )
                elif kind == "progress":
                    migration.report_progress(
                        elapsed_s=marker.elapsed_s or 0.0,
                        memory_total_bytes=marker.memory_total_bytes,
                        memory_processed_bytes=marker.memory_processed_bytes,
                        memory_remaining_bytes=marker.memory_remaining_bytes,
                        disk_total_bytes=marker.disk_total_bytes,
                        disk_processed_bytes=marker.disk_processed_bytes,
                        disk_remaining_bytes=marker.disk_remaining_bytes,
                        at=at,
                    )
                elif kind == "force_complete_requested" and status is Status.RUNNING:
                    migration.request_force_complete(by="api", at=at)
                elif kind == "abort_requested" and status is Status.RUNNING:
                    migration.request_abort(by="api", at=at)
                elif kind == "completion_timeout" and status is Status.RUNNING:
                    migration.reach_completion_timeout(
                        elapsed_s=(at - started).total_seconds(), action=timeout_action, at=at
                    )
                elif kind == "postcopy_switch" and status is Status.RUNNING:
                    migration.switch_to_post_copy(elapsed_s=(at - started).total_seconds(), at=at)
                elif (
                    kind == "lifecycle"
                    and marker.state == "Paused"
                    and sighting.host == f.source
                    and migration.paused_at is None
                    and status in (Status.RUNNING, Status.POST_COPY)
                ):
                    why = (
                        "force-complete" if migration.force_complete_requested_by else "switchover"
                    )
                    migration.pause_guest(elapsed_s=(at - started).total_seconds(), why=why, at=at)
            except DomainError:
                continue  # a line Nova logs in a status lmes has already left: nothing to add

    def _outcome(self) -> None:
        f = self.facts
        started = self.migration.phase_times[Status.RUNNING.value]
        job_done = f.at("operation_completed")
        finished = f.at("migration_finished")
        failure_kind = next(
            (
                k
                for k in (
                    "live_migration_failure",
                    "operation_aborted",
                    "driver_failed",
                    "monitor_error",
                )
                if k in f.first
            ),
            None,
        )
        if job_done is not None or finished is not None:
            if failure_kind is not None and f.at(failure_kind) <= (job_done or finished):
                self.observations.append(
                    _observation(
                        "error_then_post",
                        f"an error was logged ({_reason(f.sighting(failure_kind))}) and Nova "
                        f"then ran the post-migration instead of a rollback: check that the "
                        f"guest really runs on {f.dest_name or 'the destination'} and that the "
                        f"source is clean",
                    )
                )
            end = finished or f.latest(
                "post_live_migration_source",
                "post_live_migration_dest",
                "monitor_done",
                "operation_completed",
            )
            if finished is None:
                self.inferred["completed"] = (
                    "no 'finished successfully' line; completed at the last post-migration line"
                )
            total_s = (job_done - started).total_seconds() if job_done else None
            self.migration.complete(
                at=_not_before(end, self.migration),
                total_s=max(total_s, 0.0) if total_s is not None else None,
                new_host=f.dest_name or self._named_dest(),
            )
        elif "operation_cancelled" in f.first or "queued_cancelled" in f.first:
            at = f.at("operation_cancelled", "queued_cancelled")
            self._roll_back(at)
            by = (
                "api"
                if "abort_requested" in f.first
                else (
                    "completion timeout"
                    if "completion_timeout" in f.first
                    else ("progress timeout" if "stuck" in f.first else "libvirt")
                )
            )
            self.migration.cancel(
                by=by, at=self._end_time(at), elapsed_s=(at - started).total_seconds()
            )
        elif failure_kind is not None:
            at, sighting = f.first[failure_kind]
            # libvirt's job failed: the monitor rolls back. The driver or the monitor raised:
            # Nova sets `error` at once, "too late to rollback".
            job_failed = "operation_aborted" in f.first or (
                failure_kind == "live_migration_failure"
                and not ({"driver_failed", "monitor_error"} & f.first.keys())
            )
            if job_failed:
                self._roll_back(f.at("operation_aborted") or at)
            status = self._rollback_status() if job_failed else Status.ERROR
            reason_sighting = f.sighting("live_migration_failure") or sighting
            self.migration.fail(
                phase=self._phase_now(),
                reason=_reason(reason_sighting),
                status=status,
                traceback_summary=_traceback_summary(sighting)
                or _traceback_summary(reason_sighting)
                or _traceback_summary(f.sighting("driver_failed")),
                at=self._end_time(at),
            )
        elif "post_dest_failed" in f.first:
            at, sighting = f.first["post_dest_failed"]
            self.migration.fail(
                phase="post_migration",
                reason=_reason(sighting),
                status=Status.ERROR,
                traceback_summary=_traceback_summary(sighting),
                at=at,
            )
        elif "reset_on_startup" in f.first:
            at = f.at("reset_on_startup")
            self.migration.fail(
                phase=self._phase_now(),
                status=Status.ERROR,
                at=_not_before(at, self.migration),
                reason="nova-compute restarted during the migration and reset it",
            )
        self.finish_context()

    # -------------------------------------------------------------- pieces

    def _roll_back(self, at: datetime) -> None:
        f = self.facts
        cleaned = ["destination instance", "volume connections"]
        failed = f.sighting("rollback_network_cleanup_failed")
        if failed is None:
            cleaned.append("network")
        else:
            where = self._host_name(failed.marker.host) if failed.marker.host else f.dest_name
            self.observations.append(
                _observation(
                    "network_cleanup_failed",
                    f"network clean-up left to the operator: Nova could not clean up the "
                    f"ports on {where} during the rollback "
                    f"({failed.marker.reason or 'no reason logged'}); check the ports' "
                    f"bindings in Neutron",
                )
            )
        self.inferred.setdefault("rolled_back", "Nova logs no line when its rollback ends")
        self.migration.roll_back(cleaned=cleaned, at=_not_before(at, self.migration))

    def _end_time(self, at: datetime) -> datetime:
        """The end of a failed or cancelled migration: the source's last line about it."""
        f = self.facts
        end = (
            f.latest(
                "monitor_done",
                "rollback_network_cleanup_failed",
                "operation_aborted",
                "operation_cancelled",
            )
            or at
        )
        return _not_before(max(end, at), self.migration)

    def _rollback_status(self) -> Status:
        """Nova's rollback wrote `error` up to Ussuri (21) and `failed` from Victoria (22)."""
        f = self.facts
        progress = f.marker("progress")
        old_ramp = self._ramp_form() == "exponential"
        old_progress = progress is not None and progress.disk_total_bytes is None
        return Status.ERROR if (old_ramp or old_progress) else Status.FAILED

    def _phase_now(self) -> str:
        status = self.migration.status
        if status in (Status.RUNNING, Status.POST_COPY):
            return "memory_copy"
        if status is Status.PREPARING:
            return "pre_live_migration"
        return status.value

    def _timeout_action(self) -> str:
        f = self.facts
        timeout = f.at("completion_timeout")
        if timeout is None:
            return "abort"
        switched = f.at("postcopy_switch")
        if switched is not None and switched >= timeout and "operation_cancelled" not in f.first:
            return "force_complete"
        return "abort"

    def _cancelled_while_queued(self) -> bool:
        f = self.facts
        if "queued_cancelled" in f.first and "pre_live_migration_start" not in f.first:
            self.migration.cancel(
                by="api", at=_not_before(f.at("queued_cancelled"), self.migration)
            )
            self.finish_context()
            return True
        return False

    def _start_time(self) -> datetime | None:
        return self.facts.at("live_migration_data", "migrate_api_invoked", "monitor_started")

    def _first_monitor_time(self) -> datetime | None:
        return self.facts.at(
            "downtime_steps_listed",
            "downtime_increased",
            "progress",
            "operation_thread_finished",
            "operation_completed",
        )

    def _outcome_after_start(self) -> bool:
        return any(
            k in self.facts.first
            for k in (
                "downtime_steps_listed",
                "downtime_increased",
                "progress",
                "operation_completed",
                "operation_aborted",
                "operation_cancelled",
                "live_migration_failure",
                "migration_finished",
                "post_live_migration_source",
                "post_live_migration_dest",
            )
        )

    def _ends_before_start(self) -> bool:
        return any(
            k in self.facts.first
            for k in ("pre_live_migration_failed", "vif_plug_timeout", "queued_cancelled")
        )

    def _ramp(self) -> tuple[list[tuple[int, int]], bool, float]:
        """The ramp Nova computed (listed, or rebuilt from the applied steps), and data_gb."""
        f = self.facts
        listed = f.marker("downtime_steps_listed")
        memory_total = self._memory_total()
        block = {"true": True, "false": False}.get(self.block_migration)
        if listed is not None and listed.steps:
            ramp = [tuple(step) for step in listed.steps]
            fit = fit_ramp(
                ramp, whole_ramp=True, memory_total_bytes=memory_total, block_migration=block
            )
            return ramp, True, _data_gb(fit, memory_total)  # type: ignore[return-value]
        applied = [
            (int(s.marker.elapsed_s or 0), int(s.marker.downtime_ms))
            for _, s in f.all("downtime_increased")
            if s.marker.downtime_ms is not None
        ]
        fit = (
            fit_ramp(
                applied, whole_ramp=False, memory_total_bytes=memory_total, block_migration=block
            )
            if applied
            else None
        )
        ramp = fit.implied_ramp() if fit is not None else None
        if ramp is not None:
            return ramp, False, fit.data_gb
        return sorted(set(applied)), False, _data_gb(fit, memory_total)

    def _ramp_form(self) -> str | None:
        first = self.facts.marker("downtime_increased")
        if first is None or first.downtime_ms is None:
            return None
        fit = fit_ramp([(0, first.downtime_ms)], whole_ramp=False)
        return fit.ramp_form if fit is not None else None

    def _memory_total(self) -> int | None:
        totals = [
            s.marker.memory_total_bytes
            for _, s in self.facts.all("progress")
            if s.marker.memory_total_bytes
        ]
        return max(totals) if totals else None

    def _block_migration(self) -> str:
        for kind in ("live_migration_data", "check_source", "pre_live_migration_start"):
            marker = self.facts.marker(kind)
            if marker is not None and marker.data:
                if "block_migration=True" in marker.data:
                    return "true"
                if "block_migration=False" in marker.data:
                    return "false"
        return "auto"

    def _bandwidth(self) -> float | None:
        marker = self.facts.marker("vifs_received_continue")
        return float(marker.bandwidth_mib_s) if marker and marker.bandwidth_mib_s else None

    def _port_id(self) -> str | None:
        for _, sighting in self.facts.sightings:
            message = sighting.record.message
            match = _PORT.search(message) if _PORT_EVENT in message else None
            if match:
                return match.group("port")
        return None

    def _named_dest(self) -> str | None:
        for kind in (
            "migration_finished",
            "pre_live_migration_took",
            "pre_live_migration_failed",
            "vif_plug_timeout",
            "scheduler_selected",
            "api_accepted",
        ):
            marker = self.facts.marker(kind)
            if marker is not None and marker.host:
                return self._host_name(marker.host)
        return None

    def _host_name(self, named: str) -> str:
        """Nova's name for a host (`node-3.domain.tld`) as the logs' host is known (`node-3`)."""
        hosts = self.facts.hosts
        if named in hosts:
            return named
        short = named.split(".")[0]
        for host in hosts:
            if short == host.split(".")[0]:
                return host
        return named

    def _observe(self) -> None:
        f = self.facts
        if "stuck" in f.first:
            marker = f.marker("stuck")
            self.observations.append(
                _observation(
                    "stuck",
                    f"Nova's progress timeout fired: no progress for {marker.duration_s:.0f} s "
                    f"(live_migration_progress_timeout, unreliable before Pike and removed in "
                    f"Stein)",
                )
            )
        if "downtime_increase_failed" in f.first:
            self.observations.append(
                _observation(
                    "downtime_refused",
                    "libvirt refused a new max downtime: "
                    + _reason(f.sighting("downtime_increase_failed")),
                )
            )
        if "monitor_error" in f.first:
            self.observations.append(
                _observation(
                    "monitor_error",
                    f"Nova's monitor failed: {_reason(f.sighting('monitor_error'))}; the guest "
                    f"may run on both hosts (split brain) if the job was not aborted",
                )
            )
        if "reset_on_startup" in f.first:
            self.observations.append(
                _observation(
                    "restart",
                    "nova-compute restarted while the migration was in progress",
                )
            )

    def _slow_calls(self) -> dict[str, float]:
        """Blocking calls of a second or more (os-brick's volume work, for one), by name."""
        calls: dict[str, float] = {}
        for _, sighting in self.facts.sightings:
            if sighting.marker is not None or "<== " not in sighting.record.message:
                continue
            match = _SLOW_CALL.search(sighting.record.message)
            if match is None or int(match.group("ms")) < SLOW_CALL_MS:
                continue
            logger = sighting.record.logger or ""
            library = "os-brick " if logger.startswith("os_brick") else ""
            host = sighting.record.host or "the host of " + sighting.record.source
            name = f"{library}{match.group('call')} on {host}"
            calls[name] = calls.get(name, 0.0) + int(match.group("ms")) / 1000
        return calls

    def finish_context(self) -> None:
        """Write what the logs could not say into the stream's first event's context."""
        context = {
            "request_ids": list(self.collected.request_ids),
            "log_files": list(self.facts.log_files),
            "hosts": list(self.facts.hosts),
            "inferred": dict(self.inferred),
            "observations": list(self.observations),
            "clock_offsets_s": {h: o for h, o in self.facts.offsets.items() if o},
            "phases": self._slow_calls(),
        }
        self.migration.context.update(context)
        self.migration.pending_events[0].context.update(context)


# ------------------------------------------------------------------------- helpers


def _not_before(at: datetime, migration: Migration) -> datetime:
    """Keep a stream's times in order when two hosts' lines disagree by a few milliseconds."""
    events = migration.pending_events
    latest = events[-1].timestamp if events else None
    return latest if latest is not None and at < latest else at


def _index_of(ramp: list[tuple[int, int]], step: tuple[int, int | None]) -> int | None:
    for index, candidate in enumerate(ramp):
        if tuple(candidate) == step:
            return index
    return None


def _data_gb(fit: Any, memory_total: int | None) -> float:
    if fit is not None and fit.data_gb is not None:
        return fit.data_gb
    if memory_total:
        return round(max(memory_total / policy.GIB_BYTES, policy.MINIMUM_DEVICE_GB), 2)
    return float(policy.MINIMUM_DEVICE_GB)


def _message(sighting: Sighting | None) -> str:
    return sighting.record.message.strip() if sighting is not None else ""


def _reason(sighting: Sighting | None) -> str:
    if sighting is None:
        return ""
    marker = sighting.marker
    if marker is not None and marker.reason:
        return marker.reason.strip()
    exception = _exception_line(sighting)
    message = sighting.record.message.strip()
    return f"{message} {exception}".strip() if exception and exception not in message else message


def _exception_line(sighting: Sighting) -> str | None:
    lines = [line.strip() for line in sighting.record.traceback if line.strip()]
    return lines[-1] if lines else None


def _traceback_summary(sighting: Sighting | None) -> str | None:
    """The exception and the innermost frame: what an operator pastes into a bug report."""
    if sighting is None or not sighting.record.traceback:
        return None
    lines = [line.strip() for line in sighting.record.traceback if line.strip()]
    frames = [line for line in lines if line.startswith("File ")]
    exception = lines[-1]
    return f"{exception} (at {frames[-1]})" if frames else exception


def _observation(kind: str, text: str) -> dict[str, str]:
    return {"kind": kind, "text": text}
