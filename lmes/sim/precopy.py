"""One QEMU pre-copy migration job, as a SimPy process over a network flow.

The control law is QEMU's (models.md A3), in rounds: a bitmap sync starts a round and fixes the
set to send; the round sends that set at the flow's share of the network; the sync at its end
finds what the guest dirtied meanwhile (the workload's distinct-bytes curve, slowed by any
auto-converge throttle). At each sync QEMU switches over when the pending RAM is below
`threshold = bandwidth × downtime limit`, the bandwidth being the one measured while sending.
The stop-and-copy then runs with the guest paused and, as measured in the lab, without the
migration's bandwidth cap. The first pass sends zero pages as a header only; every page on the
wire carries a header (8 bytes by default, as QEMU's legacy stream and Gudkov's predictor).

Dirtying and sending are integrated per round, never per page or per tick: a round is one
flow transfer, and the only other events are the controls a Nova monitor applies (downtime
limit, pause, post-copy switch, abort), which may arrive mid-round.

Rounds are counted as in models.md (VC-6): `rounds` are the pre-copy passes after the first full
pass, the last one being the stop-and-copy; `iterations` is QEMU's sync count (first pass
included), what libvirt reports as `memory_iteration`.
"""

from __future__ import annotations

from collections.abc import Callable, Generator
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

import simpy

from lmes.sim.network import Flow
from lmes.sim.workload import Workload

QEMU_DEFAULT_DOWNTIME_LIMIT_MS = 300
DEFAULT_PAGE_HEADER_BYTES = 8
# A pending set that changes by less than this share between syncs has stopped moving.
_STATIONARY = 1e-9
# Bounds that end a run which would otherwise go on for ever (QEMU has no round cap).
MAX_ROUNDS = 200_000


class JobOutcome(StrEnum):
    COMPLETED = "completed"
    CANCELLED = "cancelled"
    NOT_CONVERGED = "not_converged"


@dataclass(frozen=True)
class QemuSettings:
    """The migration parameters QEMU uses (defaults are QEMU's, from migration/options.c)."""

    downtime_limit_ms: float = QEMU_DEFAULT_DOWNTIME_LIMIT_MS
    max_bandwidth_bytes_s: float | None = None
    page_header_bytes: int = DEFAULT_PAGE_HEADER_BYTES
    auto_converge: bool = False
    throttle_initial_pct: int = 20
    throttle_increment_pct: int = 10
    throttle_max_pct: int = 99
    throttle_trigger_pct: int = 50
    post_copy: bool = False
    switchover_s: float = 0.0
    postcopy_fault_latency_s: float = 0.0005


@dataclass(slots=True)
class RoundRecord:
    """One pass over the pending set; `index` 0 is the first full pass."""

    index: int
    start_s: float
    end_s: float
    ram_bytes: float
    wire_bytes: float
    dirtied_bytes: float
    threshold_bytes: float
    throttle_pct: int
    downtime_limit_ms: float
    final: bool = False

    def as_dict(self) -> dict[str, Any]:
        return {
            "index": self.index,
            "start_s": self.start_s,
            "duration_s": self.end_s - self.start_s,
            "ram_bytes": self.ram_bytes,
            "wire_bytes": self.wire_bytes,
            "dirtied_bytes": self.dirtied_bytes,
            "threshold_bytes": self.threshold_bytes,
            "throttle_pct": self.throttle_pct,
            "downtime_limit_ms": self.downtime_limit_ms,
            "stop_and_copy": self.final,
        }


@dataclass(slots=True)
class SyncInfo:
    """What a bitmap sync found, as a monitor polling the job would see it."""

    at_s: float
    elapsed_s: float
    iteration: int
    pending_bytes: float
    processed_bytes: float
    dirty_rate_bytes_s: float


@dataclass
class JobResult:
    outcome: JobOutcome = JobOutcome.COMPLETED
    started_s: float = 0.0
    ended_s: float = 0.0
    downtime_s: float = 0.0
    wire_bytes: float = 0.0
    rounds: list[RoundRecord] = field(default_factory=list)
    iterations: int = 0
    throttle_pct: int = 0
    throttle_steps: list[tuple[float, int]] = field(default_factory=list)
    post_copy_at_s: float | None = None
    postcopy_faults: float = 0.0
    postcopy_stall_s: float = 0.0
    paused_at_s: float | None = None
    reason: str = ""

    @property
    def duration_s(self) -> float:
        return self.ended_s - self.started_s

    @property
    def converged(self) -> bool:
        return self.outcome is JobOutcome.COMPLETED

    @property
    def precopy_rounds(self) -> int:
        """Passes after the first full one (the stop-and-copy included), as in VC-6."""
        return max(0, len(self.rounds) - 1)


class _Control(StrEnum):
    ABORT = "abort"
    POST_COPY = "post_copy"


class PrecopyJob:
    """A QEMU migration job for one guest; run it with `env.process(job.run())` (or inline).

    `on_sync` is called at every bitmap sync (Nova's monitor polls the job then);
    `controls_pending` says whether something outside the job may still change its course
    (a ramp step not yet applied, an armed timeout), so that a run that can never converge
    is reported as such instead of looping.
    """

    def __init__(
        self,
        env: simpy.Environment,
        workload: Workload,
        flow: Flow,
        qemu: QemuSettings,
        *,
        on_sync: Callable[[SyncInfo], None] | None = None,
        controls_pending: Callable[[], bool] | None = None,
    ) -> None:
        self.env = env
        self.workload = workload
        self.flow = flow
        self.qemu = qemu
        self.downtime_limit_ms = float(qemu.downtime_limit_ms)
        self.on_sync = on_sync
        self.controls_pending = controls_pending or (lambda: False)
        self.result = JobResult()
        self.started = False
        self.finished = False
        self.in_post_copy = False
        self._pending_control: _Control | None = None
        self._switching = False
        self._unsent_wire = 0.0
        self._throttle_pct = 0
        self._paused_at: float | None = None

    # ------------------------------------------------------------ controls (Nova's monitor)

    def set_downtime_limit(self, downtime_ms: float) -> None:
        """`migrate-set-parameters downtime-limit`: used from the next sync on."""
        self.downtime_limit_ms = float(downtime_ms)

    def pause_guest(self) -> None:
        """The guest stops (Nova's force-complete without post-copy): it dirties nothing more."""
        if self._paused_at is None and not self.finished:
            self._paused_at = self.env.now
            self.result.paused_at_s = self.env.now

    def start_post_copy(self) -> None:
        """`migrate-start-postcopy`: switch at once, the guest continuing on the destination."""
        self._interrupt(_Control.POST_COPY)

    def abort(self) -> None:
        """`abortJob`: stop sending; the guest stays on the source."""
        self._interrupt(_Control.ABORT)

    def _interrupt(self, control: _Control) -> None:
        """Stop the round in progress now; the job acts on `control` when it wakes."""
        if self.finished or self.in_post_copy or self._switching or not self.started:
            return
        if self._pending_control is None:
            self._pending_control = control
            self._unsent_wire = self.flow.interrupt_send()

    # ------------------------------------------------------------ the job

    def run(self) -> Generator[simpy.Event, Any, JobResult]:
        env = self.env
        workload = self.workload
        result = self.result
        qemu = self.qemu
        page = workload.page_size_bytes
        header_share = qemu.page_header_bytes / page
        result.started_s = start = last_sync = env.now
        self.started = True
        self.flow.set_cap(qemu.max_bandwidth_bytes_s)
        pending = float(workload.memory_bytes)  # the setup sync marks every page dirty
        first_pass = True
        iteration = 1
        previous_pending = -1.0
        period_start = start
        period_wire_mark = 0.0
        period_dirty = 0.0
        high_count = 0
        result.iterations = iteration
        while self._pending_control is None:
            rate = self.flow.rate_bytes_s
            threshold = rate * self.downtime_limit_ms / 1000.0
            if pending < threshold:
                yield from self._stop_and_copy(pending, first_pass, threshold, header_share)
                return result
            if self._stuck(pending, previous_pending):
                self._finish(JobOutcome.NOT_CONVERGED, "the pending set no longer shrinks")
                return result
            if len(result.rounds) >= MAX_ROUNDS:
                self._finish(JobOutcome.NOT_CONVERGED, f"{MAX_ROUNDS} rounds")
                return result
            round_wire = self._wire_bytes(pending, first_pass, header_share)
            round_start = env.now
            yield self.flow.send(round_wire)
            now = env.now
            if self._pending_control is not None:
                result.wire_bytes += max(0.0, round_wire - self._unsent_wire)
                break
            result.wire_bytes += round_wire
            dirtied = self._dirtied(last_sync, now)
            result.rounds.append(
                RoundRecord(
                    index=len(result.rounds),
                    start_s=round_start - start,
                    end_s=now - start,
                    ram_bytes=pending,
                    wire_bytes=round_wire,
                    dirtied_bytes=dirtied,
                    threshold_bytes=threshold,
                    throttle_pct=self._throttle_pct,
                    downtime_limit_ms=self.downtime_limit_ms,
                )
            )
            iteration += 1
            result.iterations = iteration
            period_dirty += dirtied
            if qemu.auto_converge and now - period_start >= 1.0:
                period_wire = result.wire_bytes - period_wire_mark
                if period_dirty > period_wire * qemu.throttle_trigger_pct / 100.0:
                    high_count += 1
                    if high_count >= 2:
                        high_count = 0
                        self._throttle_down(now)
                period_start, period_wire_mark, period_dirty = now, result.wire_bytes, 0.0
            previous_pending, pending = pending, dirtied
            last_sync = now
            first_pass = False
            if self.on_sync is not None:
                self.on_sync(
                    SyncInfo(
                        at_s=now,
                        elapsed_s=now - start,
                        iteration=iteration,
                        pending_bytes=pending,
                        processed_bytes=result.wire_bytes,
                        dirty_rate_bytes_s=dirtied / (now - round_start)
                        if now > round_start
                        else 0.0,
                    )
                )
        if self._pending_control is _Control.ABORT:
            self._finish(JobOutcome.CANCELLED, "aborted")
            return result
        left_ram = self._unsent_wire / (1.0 + header_share)
        dirtied = self._dirtied(last_sync, env.now)
        cap = workload.dirtiable_bytes
        union = left_ram + dirtied - (left_ram * dirtied / cap if cap > 0 else 0.0)
        yield from self._post_copy(union, header_share)
        return result

    # ------------------------------------------------------------ endings

    def _stop_and_copy(
        self, pending: float, first_pass: bool, threshold: float, header_share: float
    ) -> Generator[simpy.Event, Any, None]:
        env = self.env
        result = self.result
        start = result.started_s
        self._switching = True
        if self._paused_at is None:
            self._paused_at = env.now
        self.flow.set_cap(None)  # QEMU does not rate-limit the completion stage
        wire = self._wire_bytes(pending, first_pass, header_share)
        round_start = env.now
        yield self.flow.send(wire)
        result.wire_bytes += wire
        result.rounds.append(
            RoundRecord(
                index=len(result.rounds),
                start_s=round_start - start,
                end_s=env.now - start,
                ram_bytes=pending,
                wire_bytes=wire,
                dirtied_bytes=0.0,
                threshold_bytes=threshold,
                throttle_pct=self._throttle_pct,
                downtime_limit_ms=self.downtime_limit_ms,
                final=True,
            )
        )
        yield env.timeout(self.qemu.switchover_s)
        result.downtime_s = env.now - self._paused_at
        self._finish(JobOutcome.COMPLETED, "switched over")

    def _post_copy(self, pending: float, header_share: float) -> Generator[simpy.Event, Any, None]:
        env = self.env
        result = self.result
        qemu = self.qemu
        self.in_post_copy = True
        result.post_copy_at_s = env.now
        paused_from = self._paused_at if self._paused_at is not None else env.now
        yield env.timeout(qemu.switchover_s)
        result.downtime_s = env.now - paused_from
        self.flow.set_cap(None)  # max-postcopy-bandwidth is unlimited by default
        wire = pending * (1.0 + header_share)
        stream_start = env.now
        if wire > 0:
            yield self.flow.send(wire)
        result.wire_bytes += wire
        stream_s = env.now - stream_start
        page = self.workload.page_size_bytes
        touched = self.workload.dirty_bytes(stream_start, env.now) / page
        # Pages the guest touches before they arrive fault; on average half the set is missing.
        result.postcopy_faults = 0.5 * min(pending / page, touched)
        rate = wire / stream_s if stream_s > 0 else self.flow.upper_bound
        result.postcopy_stall_s = result.postcopy_faults * (
            qemu.postcopy_fault_latency_s + page / max(rate, 1.0)
        )
        self._finish(JobOutcome.COMPLETED, "post-copy finished")

    def _finish(self, outcome: JobOutcome, reason: str) -> None:
        self.finished = True
        self.result.outcome = outcome
        self.result.reason = reason
        self.result.ended_s = self.env.now
        self.result.throttle_pct = self._throttle_pct

    # ------------------------------------------------------------ pieces

    def _wire_bytes(self, pending: float, first_pass: bool, header_share: float) -> float:
        if not first_pass:
            return pending * (1.0 + header_share)
        workload = self.workload
        zero_bytes = pending * workload.zero_fraction
        return (pending - zero_bytes) * (1.0 + header_share) + zero_bytes * header_share

    def _dirtied(self, since: float, now: float) -> float:
        until = now if self._paused_at is None else min(now, self._paused_at)
        return self.workload.dirty_bytes(since, until, 1.0 - self._throttle_pct / 100.0)

    def _throttle_down(self, now: float) -> None:
        qemu = self.qemu
        if self._throttle_pct == 0:
            pct = qemu.throttle_initial_pct
        else:
            pct = min(self._throttle_pct + qemu.throttle_increment_pct, qemu.throttle_max_pct)
        if pct != self._throttle_pct:
            self._throttle_pct = pct
            self.result.throttle_steps.append((now - self.result.started_s, pct))

    def _stuck(self, pending: float, previous_pending: float) -> bool:
        """True when nothing can ever bring the pending set under the threshold."""
        if previous_pending < 0 or self._paused_at is not None:
            return False
        if pending < previous_pending * (1.0 - _STATIONARY):
            return False
        qemu = self.qemu
        if qemu.auto_converge and self._throttle_pct < qemu.throttle_max_pct:
            return False
        if self.workload.next_phase_after(self.env.now) is not None:
            return False
        if self.flow.rate_bytes_s < self.flow.upper_bound * (1.0 - 1e-9):
            return False
        return not self.controls_pending()
