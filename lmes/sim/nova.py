"""Nova's work around one live migration, on the simulation clock.

The conductor's checks, the source host's queue (`max_concurrent_live_migrations`), the
destination's pre-live-migration and VIF plugging, then the monitored copy: the downtime ramp
walked step by step, the completion timeout with its action (abort, or force-complete: post-copy
when permitted, else pause the guest), the Newton-Rocky progress timeout and automatic post-copy
switch, and finally post-migration. Every decision comes from `lmes.domain.policy`, so the
simulator judges a migration exactly as the executor and the replayer do.

Without Nova settings (`plan.settings is None`) the migration is a raw QEMU job: no phases, a
fixed downtime limit, and `total_s` is the job alone.

Each run keeps the domain commands it implies, in order and on the simulation clock
(`MigrationResult.commands`); `lmes.sim.record` turns them into a `Migration` stream.
"""

from __future__ import annotations

from collections.abc import Generator
from dataclasses import dataclass, field, replace
from functools import lru_cache
from typing import Any

import numpy as np
import simpy

from lmes.domain import policy
from lmes.domain.settings import Settings
from lmes.domain.status import Status
from lmes.sim.distributions import sample_seconds
from lmes.sim.network import Network
from lmes.sim.precopy import JobOutcome, PrecopyJob, QemuSettings, RoundRecord, SyncInfo
from lmes.sim.workload import Workload

MIB_BYTES = 1024**2

# Rough medians of Nova's fixed costs, from the seed's nova-compute log (checks ~0.4 s, pre-live-
# migration ~9 s with a slow volume driver, VIF plugging ~2.6 s, post-migration ~4.4 s).
DEFAULT_COSTS: dict[str, Any] = {
    "checks_s": {"dist": "lognormal", "median": 0.5, "sigma": 0.3},
    "pre_live_migration_s": {"dist": "lognormal", "median": 3.0, "sigma": 0.5},
    "vif_plug_s": {"dist": "lognormal", "median": 1.5, "sigma": 0.5},
    "post_live_migration_s": {"dist": "lognormal", "median": 3.0, "sigma": 0.4},
}


class Outcome:
    """How a simulated migration ended (statuses where Nova has one)."""

    COMPLETED = "completed"
    CANCELLED = "cancelled"
    ERROR = "error"
    NOT_CONVERGED = "not_converged"


@dataclass(frozen=True)
class NovaCosts:
    """Seconds Nova spends around the copy, drawn once per migration."""

    checks_s: float = 0.0
    pre_live_migration_s: float = 0.0
    vif_plug_s: float = 0.0
    post_live_migration_s: float = 0.0

    @classmethod
    def draw(cls, spec: dict[str, Any] | None, rng: np.random.Generator) -> NovaCosts:
        """Costs from numbers or distributions (missing ones take `DEFAULT_COSTS`)."""
        merged = {**DEFAULT_COSTS, **(spec or {})}
        unknown = set(merged) - set(DEFAULT_COSTS)
        if unknown:
            raise ValueError(f"unknown Nova cost(s): {', '.join(sorted(unknown))}")
        return cls(**{name: sample_seconds(merged[name], rng) for name in sorted(DEFAULT_COSTS)})


@dataclass(frozen=True)
class MigrationPlan:
    """One migration to simulate: the guest, Nova's settings (or none) and QEMU's knobs."""

    instance: str
    workload: Workload
    settings: Settings | None = None
    downtime_limit_ms: float | None = None
    completion_timeout_s: float | None = None
    post_copy_after_first_pass: bool = False
    qemu: QemuSettings = field(default_factory=QemuSettings)
    costs: NovaCosts = field(default_factory=NovaCosts)

    @property
    def raw(self) -> bool:
        return self.settings is None


@dataclass
class MigrationResult:
    """Everything one simulated migration produced."""

    instance: str
    source_host: str | None
    dest_host: str | None
    outcome: str
    requested_s: float
    ended_s: float
    total_s: float
    copy_started_s: float | None = None
    copy_s: float = 0.0
    queue_wait_s: float = 0.0
    downtime_ms: float | None = None
    bytes_sent: float = 0.0
    rounds: int = 0
    iterations: int = 0
    throttle_pct: int = 0
    throttle_steps: list[tuple[float, int]] = field(default_factory=list)
    post_copy: bool = False
    guest_paused: bool = False
    postcopy_faults: float = 0.0
    postcopy_stall_s: float = 0.0
    memory_bytes: int = 0
    data_gb: float = 0.0
    downtime_steps: list[tuple[int, int]] = field(default_factory=list)
    completion_timeout_s: float = 0.0
    reason: str = ""
    round_records: list[RoundRecord] = field(default_factory=list)
    commands: list[tuple[float, str, dict[str, Any]]] = field(default_factory=list)
    settings: dict[str, Any] = field(default_factory=dict)

    @property
    def converged(self) -> bool:
        return self.outcome == Outcome.COMPLETED

    @property
    def round_details(self) -> list[dict[str, Any]]:
        """Each pass (the stop-and-copy last), as JSON-ready dicts."""
        return [record.as_dict() for record in self.round_records]

    def summary(self) -> dict[str, Any]:
        """The per-migration row of a scenario or sweep."""
        return {
            "instance": self.instance,
            "source_host": self.source_host,
            "dest_host": self.dest_host,
            "outcome": self.outcome,
            "converged": self.converged,
            "requested_s": self.requested_s,
            "ended_s": self.ended_s,
            "total_s": self.total_s,
            "copy_s": self.copy_s,
            "queue_wait_s": self.queue_wait_s,
            "downtime_ms": self.downtime_ms,
            "bytes_sent": self.bytes_sent,
            "rounds": self.rounds,
            "iterations": self.iterations,
            "throttle_pct": self.throttle_pct,
            "post_copy": self.post_copy,
            "guest_paused": self.guest_paused,
        }

    def as_dict(self) -> dict[str, Any]:
        """The full report of `lmes simulate --json`."""
        return {
            **self.summary(),
            "reason": self.reason,
            "memory_bytes": self.memory_bytes,
            "data_gb": self.data_gb,
            "downtime_steps": [list(step) for step in self.downtime_steps],
            "completion_timeout_s": self.completion_timeout_s,
            "throttle_steps": [list(step) for step in self.throttle_steps],
            "postcopy_faults": self.postcopy_faults,
            "postcopy_stall_s": self.postcopy_stall_s,
            "rounds_detail": self.round_details,
        }


class NovaMigration:
    """One migration's life on the simulation clock; run `env.process(m.run())`."""

    def __init__(
        self,
        env: simpy.Environment,
        network: Network,
        plan: MigrationPlan,
        *,
        path: list[str],
        source_host: str | None = None,
        dest_host: str | None = None,
        slots: simpy.Resource | None = None,
        keep_commands: bool = True,
    ) -> None:
        self.env = env
        self.network = network
        self.plan = plan
        self.path = path
        self.slots = slots
        self.keep_commands = keep_commands
        workload = plan.workload
        settings = plan.settings
        self.data_gb = policy.data_gb(int(workload.memory_bytes // MIB_BYTES))
        if settings is None:
            self.steps: list[tuple[int, int]] = []
            self.completion_timeout_s = float(plan.completion_timeout_s or 0.0)
            self.timeout_action = "abort"
            self.rules: policy.ReleaseRules | None = None
        else:
            self.rules, steps = _nova_numbers(settings, self.data_gb)
            self.steps = list(steps)
            if plan.completion_timeout_s is not None:
                self.completion_timeout_s = float(plan.completion_timeout_s)
            elif self.rules.completion_timeout_applies:
                self.completion_timeout_s = float(
                    policy.completion_timeout_s(
                        settings.live_migration_completion_timeout, self.data_gb
                    )
                )
            else:
                self.completion_timeout_s = 0.0
            self.timeout_action = (
                settings.live_migration_timeout_action
                if self.rules.timeout_action_applies
                else "abort"
            )
        self.result = MigrationResult(
            instance=plan.instance,
            source_host=source_host,
            dest_host=dest_host,
            outcome=Outcome.COMPLETED,
            requested_s=env.now,
            ended_s=env.now,
            total_s=0.0,
            memory_bytes=workload.memory_bytes,
            data_gb=self.data_gb,
            downtime_steps=list(self.steps),
            completion_timeout_s=self.completion_timeout_s,
            settings=settings.as_dict() if settings is not None else {},
        )
        self.job: PrecopyJob | None = None
        self._copy_start = 0.0
        self._running_at = 0.0
        self._steps_left = 0
        self._timeout_armed = False
        self._progress_armed = False
        self._status = Status.ACCEPTED
        self._watermark: float | None = None
        self._progress_generation = 0
        self._previous_pending: float | None = None

    # ------------------------------------------------------------------ the workflow

    def run(self) -> Generator[simpy.Event, Any, MigrationResult]:
        env = self.env
        plan = self.plan
        result = self.result
        costs = plan.costs
        if result.dest_host is not None:
            self._command("select_destination", host=result.dest_host, attempt=1)
        if costs.checks_s:
            yield env.timeout(costs.checks_s)
        self._command(
            "queue",
            data_gb=self.data_gb,
            downtime_steps=[list(step) for step in self.steps],
            completion_timeout_s=int(self.completion_timeout_s),
        )
        queued_at = env.now
        request = None
        if self.slots is not None:
            request = self.slots.request()
            yield request
        result.queue_wait_s = env.now - queued_at
        try:
            yield from self._prepare_and_copy()
        finally:
            if request is not None:
                self.slots.release(request)
        return result

    def _prepare_and_copy(self) -> Generator[simpy.Event, Any, None]:
        env = self.env
        plan = self.plan
        costs = plan.costs
        result = self.result
        qemu = self._qemu_settings()
        settings = plan.settings
        # Nova waits for the destination's VIFs only where the release and settings say so.
        vif_wait_s = (
            costs.vif_plug_s if settings and settings.live_migration_wait_for_vif_plug else 0.0
        )
        # Pre-live-migration and VIF plugging are plain waits: one event covers both.
        prepared_at = env.now + costs.pre_live_migration_s
        self._command("start_preparation", dest_host=result.dest_host)
        self._command_at(prepared_at, "complete_preparation", duration_s=costs.pre_live_migration_s)
        self._command_at(
            prepared_at,
            "start",
            flags=self._flags(qemu),
            bandwidth_mib_s=qemu.max_bandwidth_bytes_s / MIB_BYTES
            if qemu.max_bandwidth_bytes_s
            else None,
        )
        if not plan.raw:
            self._command_at(prepared_at + vif_wait_s, "plug_vif", f"{plan.instance}-port")
        if costs.pre_live_migration_s or vif_wait_s:
            yield env.timeout(costs.pre_live_migration_s + vif_wait_s)
        self._status = Status.RUNNING
        self._running_at = prepared_at
        flow = self.network.open(self.path, qemu.max_bandwidth_bytes_s)
        job = PrecopyJob(
            env,
            plan.workload,
            flow,
            qemu,
            on_sync=self._on_sync,
            controls_pending=self._controls_pending,
        )
        self.job = job
        self._copy_start = result.copy_started_s = env.now
        if self.steps:
            self._steps_left = len(self.steps)
            self._apply_step(job, 0)
        elif plan.raw and plan.downtime_limit_ms is not None:
            job.set_downtime_limit(plan.downtime_limit_ms)
        if self.completion_timeout_s > 0:
            self._timeout_armed = True
            self._after(self.completion_timeout_s, lambda _: self._completion_timeout(job))
        yield from job.run()  # inline: the job needs no process of its own
        flow.close()
        self._record_job(job)
        if result.outcome == Outcome.COMPLETED and costs.post_live_migration_s:
            yield env.timeout(costs.post_live_migration_s)
        self._conclude(job)

    # ------------------------------------------------------------------ the monitor

    def _after(self, delay_s: float, callback: Any) -> None:
        """Call `callback` `delay_s` from now (a timer, not a process: it costs one event)."""
        timer = self.env.timeout(max(0.0, delay_s))
        timer.callbacks.append(callback)

    def _apply_step(self, job: PrecopyJob, index: int) -> None:
        """Nova's `update_downtime` at a step's mark; the next step is set up as a timer."""
        if job.finished or job.in_post_copy:
            self._steps_left = 0
            return
        mark_s, downtime_ms = self.steps[index]
        self._steps_left = len(self.steps) - index - 1
        if index == 0 or downtime_ms != job.downtime_limit_ms:
            job.set_downtime_limit(downtime_ms)
            self._command(
                "increase_downtime", downtime_ms, elapsed_s=float(mark_s), step_index=index
            )
        if index + 1 < len(self.steps):
            wait = self._copy_start + self.steps[index + 1][0] - self.env.now
            self._after(wait, lambda _: self._apply_step(job, index + 1))

    def _completion_timeout(self, job: PrecopyJob) -> None:
        self._timeout_armed = False
        if job.finished or job.in_post_copy:
            return
        elapsed = self.env.now - self._copy_start
        self._command("reach_completion_timeout", elapsed_s=elapsed, action=self.timeout_action)
        if self.timeout_action == "abort":
            self._command("request_abort", by="timeout")
            job.abort()
            return
        self._command("request_force_complete", by="timeout")
        self._force_complete(job, "force-complete on completion timeout")

    def _force_complete(self, job: PrecopyJob, why: str) -> None:
        settings = self.plan.settings
        permitted = bool(settings and settings.live_migration_permit_post_copy)
        effect = policy.force_complete_effect(str(self._status), permitted)
        if effect is policy.ForceCompleteEffect.SWITCH_TO_POST_COPY:
            job.start_post_copy()
        elif effect is policy.ForceCompleteEffect.PAUSE and job.result.paused_at_s is None:
            job.pause_guest()
            self._command("pause_guest", elapsed_s=self.env.now - self._copy_start, why=why)

    def _on_sync(self, sync: SyncInfo) -> None:
        job = self.job
        assert job is not None
        if self.keep_commands:
            self._command(
                "report_progress",
                elapsed_s=sync.elapsed_s,
                memory_total_bytes=int(self.plan.workload.memory_bytes),
                memory_processed_bytes=int(sync.processed_bytes),
                memory_remaining_bytes=int(sync.pending_bytes),
                dirty_rate_bytes_s=sync.dirty_rate_bytes_s,
                iteration=sync.iteration,
            )
        if self.plan.post_copy_after_first_pass and sync.iteration == 2:
            job.start_post_copy()
            return
        settings = self.plan.settings
        rules = self.rules
        if settings is None or rules is None:
            return
        previous = self._previous_pending
        self._previous_pending = sync.pending_bytes
        if (
            rules.auto_post_copy_applies
            and previous is not None
            and policy.auto_switch_to_postcopy(
                settings.release,
                post_copy_enabled=settings.live_migration_permit_post_copy,
                memory_iteration=sync.iteration,
                current_data_remaining_bytes=int(sync.pending_bytes),
                previous_data_remaining_bytes=int(previous),
                status=str(self._status),
            )
        ):
            job.start_post_copy()
            return
        timeout_s = settings.live_migration_progress_timeout
        if (
            self.rules.progress_timeout_applies
            and timeout_s
            and policy.advances_progress_watermark(self._watermark, int(sync.pending_bytes))
        ):
            self._watermark = sync.pending_bytes
            self._progress_generation += 1
            self._progress_armed = True
            generation = self._progress_generation
            self._after(timeout_s, lambda _: self._progress_timeout(job, generation))

    def _progress_timeout(self, job: PrecopyJob, generation: int) -> None:
        if generation != self._progress_generation or job.finished or job.in_post_copy:
            return
        self._progress_armed = False
        self._command("request_abort", by="progress timeout")
        job.abort()

    def _controls_pending(self) -> bool:
        return self._steps_left > 0 or self._timeout_armed or self._progress_armed

    # ------------------------------------------------------------------ results

    def _qemu_settings(self) -> QemuSettings:
        plan = self.plan
        return _job_settings(plan.qemu, plan.settings, plan.downtime_limit_ms)

    def _flags(self, qemu: QemuSettings) -> list[str]:
        flags = ["live", "peer2peer", "undefine_source", "persist_dest"]
        if qemu.auto_converge:
            flags.append("auto_converge")
        if qemu.post_copy or self.plan.post_copy_after_first_pass:
            flags.append("postcopy")
        return flags

    def _record_job(self, job: PrecopyJob) -> None:
        result = self.result
        outcome = job.result
        result.copy_s = outcome.duration_s
        result.bytes_sent = outcome.wire_bytes
        result.rounds = outcome.precopy_rounds
        result.iterations = outcome.iterations
        result.throttle_pct = outcome.throttle_pct
        result.throttle_steps = outcome.throttle_steps
        result.round_records = outcome.rounds
        result.post_copy = outcome.post_copy_at_s is not None
        result.guest_paused = outcome.paused_at_s is not None
        result.postcopy_faults = outcome.postcopy_faults
        result.postcopy_stall_s = outcome.postcopy_stall_s
        result.reason = outcome.reason
        if outcome.post_copy_at_s is not None:
            self._command_at(
                outcome.post_copy_at_s,
                "switch_to_post_copy",
                elapsed_s=outcome.post_copy_at_s - self._copy_start,
            )
            self._status = Status.POST_COPY
        if outcome.outcome is JobOutcome.COMPLETED:
            result.outcome = Outcome.COMPLETED
            result.downtime_ms = outcome.downtime_s * 1000.0
        elif outcome.outcome is JobOutcome.CANCELLED:
            result.outcome = Outcome.CANCELLED
        else:
            result.outcome = Outcome.NOT_CONVERGED

    def _conclude(self, job: PrecopyJob) -> None:
        env = self.env
        result = self.result
        result.ended_s = env.now
        result.total_s = job.result.duration_s if self.plan.raw else env.now - result.requested_s
        if result.outcome == Outcome.COMPLETED:
            # As every producer records it: the libvirt job, from `running` to its end.
            self._command(
                "complete",
                total_s=job.result.ended_s - self._running_at,
                downtime_ms=result.downtime_ms,
                bytes_sent=int(result.bytes_sent),
                iterations=result.iterations,
                new_host=result.dest_host,
            )
        elif result.outcome == Outcome.CANCELLED:
            self._command("roll_back", cleaned=["instance files", "volume connections", "vifs"])
            self._command("cancel", by="timeout", elapsed_s=env.now - self._copy_start)

    def _command(self, name: str, *args: Any, **kwargs: Any) -> None:
        self._command_at(self.env.now, name, *args, **kwargs)

    def _command_at(self, at_s: float, name: str, *args: Any, **kwargs: Any) -> None:
        if self.keep_commands:
            if args:
                kwargs["_args"] = list(args)
            self.result.commands.append((at_s, name, kwargs))


@lru_cache(maxsize=1024)
def _nova_numbers(
    settings: Settings, data_gb: float
) -> tuple[policy.ReleaseRules, tuple[tuple[int, int], ...]]:
    """The release's rules and the downtime ramp (the same for every guest of one size)."""
    steps = policy.downtime_steps(
        settings.live_migration_downtime,
        settings.live_migration_downtime_steps,
        settings.live_migration_downtime_delay,
        data_gb,
        settings.release,
    )
    return policy.rules_for(settings.release), tuple(steps)


@lru_cache(maxsize=1024)
def _job_settings(
    qemu: QemuSettings, settings: Settings | None, downtime_limit_ms: float | None
) -> QemuSettings:
    """QEMU's parameters as Nova sets them (cap, post-copy, auto-converge), or as given."""
    if settings is None:
        if downtime_limit_ms is None:
            return qemu
        return replace(qemu, downtime_limit_ms=downtime_limit_ms)
    cap = settings.live_migration_bandwidth * MIB_BYTES or qemu.max_bandwidth_bytes_s
    post_copy = settings.live_migration_permit_post_copy
    return replace(
        qemu,
        max_bandwidth_bytes_s=cap or None,
        post_copy=post_copy,
        auto_converge=settings.live_migration_permit_auto_converge and not post_copy,
    )


def simulate_one(
    plan: MigrationPlan,
    link_bytes_s: float,
    *,
    keep_commands: bool = True,
) -> MigrationResult:
    """One migration alone on a link of `link_bytes_s` (the `lmes simulate` case)."""
    env = simpy.Environment()
    network = Network(env)
    network.add_link("link", link_bytes_s)
    migration = NovaMigration(env, network, plan, path=["link"], keep_commands=keep_commands)
    process = env.process(migration.run())
    env.run(process)
    return migration.result
