"""What happened to one migration, in words an operator can act on.

Computed from the stored events only, so it reads a replayed migration, one already in the store
and one the executor ran alike: the outcome, how long each phase took, the downtime ramp Nova
applied and the configuration it implies, the progress curve with the transfer and dirty rates it
implies, the first error, and the anomalies worth a look.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from lmes.domain.migration import Migration
from lmes.domain.status import Status
from lmes.replay.ramp import RampFit, fit_ramp

MIB_BYTES = 1024**2
INCOMPLETE = "incomplete"
# A migration whose remaining memory has not fallen for this long is not converging.
NOT_CONVERGING_AFTER_S = 30.0
# How long after the last downtime step a migration may still run before the ramp is "exhausted".
RAMP_EXHAUSTED_AFTER_S = 30.0
LONG_VIF_WAIT_S = 30.0
NOTABLE_SKEW_S = 1.0


@dataclass(frozen=True)
class ProgressPoint:
    at: datetime
    elapsed_s: float
    memory_processed_bytes: int | None
    memory_remaining_bytes: int | None
    memory_total_bytes: int | None

    @property
    def remaining_percent(self) -> int | None:
        if self.memory_remaining_bytes is None or not self.memory_total_bytes:
            return None
        return round(self.memory_remaining_bytes * 100 / self.memory_total_bytes)


@dataclass(frozen=True)
class TimelineEntry:
    at: datetime
    text: str
    inferred: bool = False


@dataclass
class Diagnosis:
    """One migration, judged."""

    id: str
    instance: str
    origin: str
    request_ids: list[str]
    source_host: str | None
    dest_host: str | None
    outcome: str
    started_at: datetime
    ended_at: datetime | None
    phases: dict[str, float]
    downtime_steps: list[list[float]]
    planned_ramp: list[list[int]]
    inferred: dict[str, Any]
    progress: list[ProgressPoint]
    transfer_rate_bytes_s: float | None
    dirty_rate_bytes_s: float | None
    failure: dict[str, Any] | None
    anomalies: list[str]
    timeline: list[TimelineEntry] = field(default_factory=list)
    log_files: list[str] = field(default_factory=list)

    @property
    def duration_s(self) -> float | None:
        end = self.ended_at or (self.timeline[-1].at if self.timeline else None)
        return (end - self.started_at).total_seconds() if end else None

    def as_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "instance": self.instance,
            "origin": self.origin,
            "request_ids": list(self.request_ids),
            "source_host": self.source_host,
            "dest_host": self.dest_host,
            "outcome": self.outcome,
            "started_at": _iso(self.started_at),
            "ended_at": _iso(self.ended_at),
            "duration_s": _round(self.duration_s),
            "phases": {name: _round(seconds) for name, seconds in self.phases.items()},
            "downtime_steps": [[_round(s), int(ms)] for s, ms in self.downtime_steps],
            "planned_ramp": [list(step) for step in self.planned_ramp],
            "inferred": self.inferred,
            "progress": [
                {
                    "at": _iso(p.at),
                    "elapsed_s": _round(p.elapsed_s),
                    "memory_remaining_bytes": p.memory_remaining_bytes,
                    "memory_processed_bytes": p.memory_processed_bytes,
                    "memory_total_bytes": p.memory_total_bytes,
                    "remaining_percent": p.remaining_percent,
                }
                for p in self.progress
            ],
            "transfer_rate_bytes_s": _round(self.transfer_rate_bytes_s),
            "dirty_rate_bytes_s": _round(self.dirty_rate_bytes_s),
            "failure": self.failure,
            "anomalies": list(self.anomalies),
            "timeline": [
                {"at": _iso(t.at), "text": t.text, "inferred": t.inferred} for t in self.timeline
            ],
            "log_files": list(self.log_files),
        }


def diagnose(migration: Migration, events: list[Any]) -> Diagnosis:
    """Judge `migration` from its `events` (the stream, oldest first)."""
    context = migration.context or {}
    inferred_steps: dict[str, str] = context.get("inferred", {})
    marks = _Marks.from_events(events)
    outcome = migration.status.value if migration.status.is_terminal else INCOMPLETE
    reports = [e for e in events if type(e) is Migration.ProgressReported]
    progress = [
        ProgressPoint(
            at=e.timestamp,
            elapsed_s=e.elapsed_s,
            memory_processed_bytes=e.memory_processed_bytes,
            memory_remaining_bytes=e.memory_remaining_bytes,
            memory_total_bytes=e.memory_total_bytes,
        )
        for e in reports
    ]
    transfer_rate, dirty_rate = _rates(progress, reports)
    fit = _fit(migration, progress, inferred_steps)
    failure = _failure(migration, marks)
    diagnosis = Diagnosis(
        id=str(migration.id),
        instance=migration.instance,
        origin=migration.origin.value,
        request_ids=list(context.get("request_ids", [])),
        source_host=migration.source_host,
        dest_host=migration.dest_host or migration.requested_dest,
        outcome=outcome,
        started_at=migration.requested_at,
        ended_at=migration.ended_at,
        phases=_phases(marks, context.get("phases"), inferred_steps),
        downtime_steps=[list(step) for step in migration.downtime_applied],
        planned_ramp=[list(step) for step in migration.downtime_steps],
        inferred=_inferred_dict(fit, migration),
        progress=progress,
        transfer_rate_bytes_s=transfer_rate,
        dirty_rate_bytes_s=dirty_rate,
        failure=failure,
        anomalies=[],
        timeline=_timeline(events, reports, inferred_steps),
        log_files=list(context.get("log_files", [])),
    )
    diagnosis.anomalies = _anomalies(migration, diagnosis, marks, context)
    return diagnosis


# ------------------------------------------------------------------ phase marks


@dataclass
class _Marks:
    """The first time each milestone of the stream happened."""

    requested: datetime
    queued: datetime | None = None
    preparing: datetime | None = None
    prepared: datetime | None = None
    preparation_details: dict[str, Any] = field(default_factory=dict)
    started: datetime | None = None
    vif_plugged: datetime | None = None
    paused: datetime | None = None
    post_copy: datetime | None = None
    timeout: Any = None
    rolled_back: Any = None
    terminal: Any = None
    last: datetime | None = None

    @classmethod
    def from_events(cls, events: list[Any]) -> _Marks:
        marks = cls(requested=events[0].timestamp, last=events[-1].timestamp)
        for e in events:
            kind = type(e)
            if kind in _FIRST_TIME_OF:
                name = _FIRST_TIME_OF[kind]
                if getattr(marks, name) is None:
                    setattr(marks, name, e.timestamp)
            elif kind in _LAST_OF:
                setattr(marks, _LAST_OF[kind], e)
            elif kind is Migration.PreparationCompleted:
                marks.prepared = e.timestamp
                marks.preparation_details = dict(e.details or {})
        return marks

    @property
    def job_ended(self) -> datetime | None:
        """When the memory copy (libvirt's job) ended: completion, failure or the logs' end."""
        if isinstance(self.terminal, Migration.Completed) and self.started:
            # total_s is the job's time from the start of the copy; a producer that counts
            # from elsewhere cannot push the job's end past the completion
            if self.terminal.total_s:  # None or 0: not measured
                job_end = self.started + timedelta(seconds=self.terminal.total_s)
                return min(job_end, self.terminal.timestamp)
            return self.terminal.timestamp
        if self.rolled_back is not None:
            return self.rolled_back.timestamp
        if self.terminal is not None:
            return self.terminal.timestamp
        return self.last


# The milestones `_Marks` keeps the first time of, and the events it keeps the last of, by the
# event's class (events are the aggregate's own classes, whoever stored them).
_FIRST_TIME_OF: dict[type, str] = {
    Migration.MigrationQueued: "queued",
    Migration.PreparationStarted: "preparing",
    Migration.MigrationStarted: "started",
    Migration.VifPlugged: "vif_plugged",
    Migration.GuestPaused: "paused",
    Migration.SwitchedToPostCopy: "post_copy",
}
_LAST_OF: dict[type, str] = {
    Migration.CompletionTimeoutReached: "timeout",
    Migration.RolledBack: "rolled_back",
    Migration.Completed: "terminal",
    Migration.Failed: "terminal",
    Migration.Cancelled: "terminal",
    Migration.PrecheckFailed: "terminal",
}

# The steps that bound each phase, to drop a phase the logs never saw (both ends inferred).
_PHASE_BOUNDS = {
    "checks": ("accepted", "queued"),
    "queued": ("queued", "preparing"),
    "pre_live_migration": ("preparing", "prepared"),
}


def _phases(
    marks: _Marks, context_phases: dict[str, float] | None, inferred_steps: dict[str, str]
) -> dict[str, float]:
    phases: dict[str, float] = {}

    def add(name: str, start: datetime | None, end: datetime | None) -> None:
        if start is not None and end is not None and end >= start:
            phases[name] = (end - start).total_seconds()

    first_after_request = marks.queued or marks.preparing or _terminal_time(marks)
    add("checks", marks.requested, first_after_request)
    add("queued", marks.queued, marks.preparing)
    prepared = marks.prepared or marks.started
    add("pre_live_migration", marks.preparing, prepared)
    for name, seconds in marks.preparation_details.get("phases", {}).items():
        phases[name] = float(seconds)
    for name, seconds in (context_phases or {}).items():
        phases[name] = float(seconds)
    if marks.vif_plugged is not None:
        if marks.started and marks.vif_plugged >= marks.started:
            wait_from = marks.started
        else:
            wait_from = marks.prepared or marks.preparing
        add("vif_wait", wait_from, marks.vif_plugged)
    if marks.started is not None:
        copy_from = marks.started
        if marks.vif_plugged and marks.vif_plugged > marks.started:
            copy_from = marks.vif_plugged
        switch = marks.post_copy or marks.paused
        job_end = marks.job_ended
        if switch is not None and job_end is not None and switch <= job_end:
            add("memory_copy", copy_from, switch)
            add("post_copy" if marks.post_copy else "switchover", switch, job_end)
        else:
            add("memory_copy", copy_from, job_end)
        if isinstance(marks.terminal, Migration.Completed):
            add("post_migration", job_end, marks.terminal.timestamp)
    if (
        marks.rolled_back is not None
        and marks.terminal is not None
        and "rolled_back" not in inferred_steps
    ):
        add("rollback", marks.rolled_back.timestamp, marks.terminal.timestamp)
    for name, bounds in _PHASE_BOUNDS.items():
        if phases.get(name) == 0 and any(step in inferred_steps for step in bounds):
            del phases[name]
    return phases


def _terminal_time(marks: _Marks) -> datetime | None:
    return marks.terminal.timestamp if marks.terminal is not None else None


# ------------------------------------------------------------------ rates and ramp


def _rates(progress: list[ProgressPoint], reports: list[Any]) -> tuple[float | None, float | None]:
    """Average bytes sent per second and bytes dirtied per second over the progress reports.

    Between two reports the guest dirtied what was sent minus what the remainder fell by.
    Wall-clock times are used: Nova's "running for N secs" counted loop passes until Wallaby.
    """
    libvirt_dirty = [e.dirty_rate_bytes_s for e in reports if e.dirty_rate_bytes_s is not None]
    points = [
        p
        for p in progress
        if p.memory_processed_bytes is not None and p.memory_remaining_bytes is not None
    ]
    transfer = dirty = None
    if len(points) >= 2:
        first, last = points[0], points[-1]
        seconds = (last.at - first.at).total_seconds()
        if seconds > 0:
            sent = last.memory_processed_bytes - first.memory_processed_bytes  # type: ignore[operator]
            fell = first.memory_remaining_bytes - last.memory_remaining_bytes  # type: ignore[operator]
            transfer = max(sent, 0) / seconds
            dirty = max(sent - fell, 0) / seconds
    if libvirt_dirty:
        dirty = sum(libvirt_dirty) / len(libvirt_dirty)
    return transfer, dirty


def _fit(
    migration: Migration, progress: list[ProgressPoint], inferred_steps: dict[str, str]
) -> RampFit | None:
    totals = [p.memory_total_bytes for p in progress if p.memory_total_bytes]
    block = {"true": True, "false": False}.get(migration.block_migration)
    memory_total = max(totals) if totals else None
    if migration.downtime_steps and "downtime_steps" not in inferred_steps:
        fit = fit_ramp(
            migration.downtime_steps,
            whole_ramp=True,
            memory_total_bytes=memory_total,
            block_migration=block,
        )
        if fit is not None:
            return fit
    applied = [(int(s), int(ms)) for s, ms in migration.downtime_applied]
    if not applied:
        return None
    return fit_ramp(
        applied, whole_ramp=False, memory_total_bytes=memory_total, block_migration=block
    )


def _inferred_dict(fit: RampFit | None, migration: Migration) -> dict[str, Any]:
    """The configuration the ramp implies; all None (but data_gb, if queued) without a ramp."""
    if fit is None:
        return {
            "ramp_form": None,
            "era": None,
            "data_gb": migration.data_gb,
            "downtime_ms": None,
            "steps": None,
            "delay_s": None,
            "step_spacing_s": None,
            "py2_int_division": None,
            "whole_ramp_seen": False,
            "ambiguous": False,
        }
    return {
        "ramp_form": fit.ramp_form,
        "era": fit.era,
        "data_gb": fit.data_gb,
        "downtime_ms": fit.downtime_ms,
        "steps": fit.steps,
        "delay_s": fit.delay_s,
        "step_spacing_s": fit.step_spacing_s,
        "py2_int_division": fit.py2_int_division,
        "whole_ramp_seen": fit.whole_ramp_seen,
        "ambiguous": fit.ambiguous,
    }


# ------------------------------------------------------------------ failure and anomalies


def _failure(migration: Migration, marks: _Marks) -> dict[str, Any] | None:
    if migration.failure:
        failure = dict(migration.failure)
        failure.setdefault("traceback", None)
        return failure
    if migration.status is Status.CANCELLED:
        by = getattr(migration, "cancelled_by", None) or "unknown"
        reason = f"cancelled by {by}"
        if marks.timeout is not None:
            reason = (
                f"cancelled: Nova's completion timeout ({migration.completion_timeout_s} s) "
                f"ran out after {marks.timeout.elapsed_s:.0f} s of copying"
            )
        phase = (
            "memory_copy"
            if marks.started
            else "pre_live_migration"
            if marks.preparing
            else "queued"
        )
        return {"phase": phase, "reason": reason, "traceback": None}
    return None


def _anomalies(
    migration: Migration, diagnosis: Diagnosis, marks: _Marks, context: dict[str, Any]
) -> list[str]:
    found: list[str] = []
    if diagnosis.outcome == INCOMPLETE:
        found.append(
            f"no terminal event: the logs end while the migration is {migration.status.value} "
            f"(last seen {_iso(marks.last)}); {_WHERE_TO_LOOK[migration.status]}"
        )
    not_converging = _not_converging(diagnosis)
    if not_converging:
        found.append(not_converging)
    exhausted = _ramp_exhausted(migration, diagnosis, marks)
    if exhausted:
        found.append(exhausted)
    if marks.timeout is not None:
        found.append(
            f"completion timeout: the migration was still copying after "
            f"{marks.timeout.elapsed_s:.0f} s, past Nova's limit of "
            f"{migration.completion_timeout_s} s (live_migration_completion_timeout x data_gb); "
            f"Nova's action was {marks.timeout.action}. Raise the timeout, allow post-copy or "
            f"use force-complete for guests that dirty memory this fast"
        )
    vif_wait = diagnosis.phases.get("vif_wait")
    if vif_wait is not None and vif_wait > LONG_VIF_WAIT_S:
        found.append(
            f"waiting for network-vif-plugged took {vif_wait:.0f} s: check the Neutron agent on "
            f"{diagnosis.dest_host or 'the destination'}"
        )
    for observation in context.get("observations", []):
        found.append(observation["text"])
    for host, offset_s in sorted(context.get("clock_offsets_s", {}).items()):
        if abs(offset_s) >= NOTABLE_SKEW_S:
            direction = "ahead of" if offset_s < 0 else "behind"
            found.append(
                f"clock skew: {host}'s log clock is {_duration_words(abs(offset_s))} {direction} "
                f"the reference host's; its times were corrected by {offset_s:+.1f} s"
            )
    return found


# Where the missing end of an incomplete migration is likely logged, by the status it stopped in.
_WHERE_TO_LOOK = {
    Status.ACCEPTED: "the logs stop after the checks: a failed pre-check is logged by "
    "nova-conductor, replay its log too",
    Status.QUEUED: "it waits for a free slot (max_concurrent_live_migrations) or the logs were "
    "cut short",
    Status.PREPARING: "the destination's pre_live_migration never answered: check the "
    "destination's nova-compute log, and the RPC timeout",
    Status.RUNNING: "check whether the logs were cut short or nova-compute restarted",
    Status.POST_COPY: "check whether the logs were cut short or nova-compute restarted",
}


def _not_converging(diagnosis: Diagnosis) -> str | None:
    points = [p for p in diagnosis.progress if p.memory_remaining_bytes is not None]
    if len(points) < 3:
        return None
    span_s = (points[-1].at - points[0].at).total_seconds()
    if span_s < NOT_CONVERGING_AFTER_S:
        return None
    best_at = min(points, key=lambda p: (p.memory_remaining_bytes, p.at))
    stalled_s = (points[-1].at - best_at.at).total_seconds()
    if stalled_s < NOT_CONVERGING_AFTER_S:
        return None
    rates = ""
    if diagnosis.transfer_rate_bytes_s and diagnosis.dirty_rate_bytes_s is not None:
        rates = (
            f"; the guest dirties about {diagnosis.dirty_rate_bytes_s / MIB_BYTES:.0f} MiB/s "
            f"while {diagnosis.transfer_rate_bytes_s / MIB_BYTES:.0f} MiB/s are sent"
        )
    remaining = points[-1].memory_remaining_bytes or 0
    return (
        f"not converging: remaining memory has not fallen for {stalled_s:.0f} s "
        f"({remaining / MIB_BYTES:.0f} MiB still to copy){rates}. Consider force-complete, "
        f"post-copy or auto-converge, more bandwidth, or migrating when the guest is quieter"
    )


def _ramp_exhausted(migration: Migration, diagnosis: Diagnosis, marks: _Marks) -> str | None:
    ramp = migration.downtime_steps
    applied = migration.downtime_applied
    if not ramp or not applied:
        return None
    last_step_s, last_ms = ramp[-1]
    if int(applied[-1][1]) != int(last_ms) or len(ramp) < 2:
        return None
    reached_at = marks.started + timedelta(seconds=last_step_s) if marks.started else None
    job_end = marks.job_ended
    if (
        diagnosis.outcome == Status.COMPLETED.value
        and reached_at
        and job_end
        and (job_end - reached_at).total_seconds() < RAMP_EXHAUSTED_AFTER_S
    ):
        return None
    return (
        f"downtime ramp exhausted: Nova reached its largest allowed downtime ({last_ms} ms, "
        f"step {len(ramp) - 1} at {last_step_s} s) and the memory copy still did not converge; "
        f"raise live_migration_downtime or reduce the guest's dirty rate"
    )


# ------------------------------------------------------------------ timeline


def _timeline(
    events: list[Any], reports: list[Any], inferred_steps: dict[str, str]
) -> list[TimelineEntry]:
    """One entry per event; of the progress reports, only the first and the last."""
    entries: list[TimelineEntry] = []
    first, last = (reports[0], reports[-1]) if reports else (None, None)
    for e in events:
        described = _DESCRIPTIONS.get(type(e))
        if described is None or (
            type(e) is Migration.ProgressReported and e is not first and e is not last
        ):
            continue
        describe, step = described
        entries.append(TimelineEntry(e.timestamp, describe(e), inferred=step in inferred_steps))
    return entries


def _progress_text(e: Any) -> str:
    if e.memory_remaining_bytes is not None and e.memory_total_bytes:
        pct = round(e.memory_remaining_bytes * 100 / e.memory_total_bytes)
        return f"progress: {pct}% of memory remaining after {e.elapsed_s:.0f} s"
    return f"progress report after {e.elapsed_s:.0f} s"


# Per event class: a short sentence for the event, and the step name used to mark it inferred.
_DESCRIPTIONS: dict[type, tuple[Callable[[Any], str], str]] = {
    Migration.MigrationRequested: (
        lambda e: (
            f"live migration of {e.instance} requested"
            + (f" to {e.requested_dest}" if e.requested_dest else "")
        ),
        "accepted",
    ),
    Migration.DestinationSelected: (
        lambda e: f"destination {e.host} selected (attempt {e.attempt})",
        "destination",
    ),
    Migration.DestinationRejected: (
        lambda e: f"destination {e.host} rejected: {e.reason}",
        "rejected",
    ),
    Migration.PrecheckFailed: (lambda e: f"checks failed ({e.check}): {e.reason}", "precheck"),
    Migration.MigrationQueued: (lambda e: "queued on the source", "queued"),
    Migration.PreparationStarted: (
        lambda e: "pre-live-migration started" + (f" on {e.dest_host}" if e.dest_host else ""),
        "preparing",
    ),
    Migration.PreparationCompleted: (
        lambda e: f"pre-live-migration done ({e.duration_s:.2f} s)",
        "prepared",
    ),
    Migration.MigrationStarted: (lambda e: "memory copy started", "running"),
    Migration.VifPlugged: (
        lambda e: f"VIF {e.port_id} plugged on the destination",
        "vif_plugged",
    ),
    Migration.BandwidthChanged: (
        lambda e: f"bandwidth set to {e.bandwidth_mib_s:g} MiB/s",
        "bandwidth",
    ),
    Migration.DowntimeIncreased: (
        lambda e: f"max downtime {e.downtime_ms} ms (step at {e.elapsed_s:.0f} s)",
        "downtime",
    ),
    Migration.ProgressReported: (_progress_text, "progress"),
    Migration.ForceCompleteRequested: (
        lambda e: f"force-complete requested by {e.by}",
        "force_complete",
    ),
    Migration.AbortRequested: (lambda e: f"abort requested by {e.by}", "abort"),
    Migration.SwitchedToPostCopy: (lambda e: "switched to post-copy", "post_copy"),
    Migration.GuestPaused: (lambda e: f"guest paused ({e.why})", "paused"),
    Migration.CompletionTimeoutReached: (
        lambda e: f"completion timeout reached after {e.elapsed_s:.0f} s ({e.action})",
        "timeout",
    ),
    Migration.Completed: (lambda e: "completed", "completed"),
    Migration.Failed: (lambda e: f"{e.status} in {e.phase}: {e.reason}", "failed"),
    Migration.Cancelled: (lambda e: f"cancelled by {e.by}", "cancelled"),
    Migration.RolledBack: (
        lambda e: (
            "rolled back (cleaned: "
            + (", ".join(e.cleaned) if e.cleaned else "nothing recorded")
            + ")"
        ),
        "rolled_back",
    ),
}


# ------------------------------------------------------------------ formatting helpers


def _iso(at: datetime | None) -> str | None:
    return at.isoformat() if at is not None else None


def _round(value: float | None) -> float | None:
    return round(value, 3) if value is not None else None


def _duration_words(seconds: float) -> str:
    if seconds >= 3600:
        return f"{seconds / 3600:.1f} h"
    if seconds >= 60:
        return f"{seconds / 60:.1f} min"
    return f"{seconds:.1f} s"
