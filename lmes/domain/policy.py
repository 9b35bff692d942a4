"""Nova's live-migration policy math, release by release, as pure functions.

These are the numbers and decisions Nova's libvirt driver takes while it migrates: how much data
a migration moves (`data_gb`), the downtime ramp it walks up, when it gives up, when it switches to
post-copy and what a force-complete does. The executor, the simulator and the log replayer all take
their decisions from here, so a migration behaves (and is judged) the same way in all three.

Every function reproduces Nova's arithmetic exactly, truncations included, because lmes is checked
against real nova-compute logs: a ramp that is off by one millisecond no longer matches them.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from enum import StrEnum

from lmes.domain.releases import Release

MIB_BYTES = 1024**2
GIB_BYTES = 1024**3

# Nova counts RAM and every copied disk as at least this much when it scales the ramp and timeout.
MINIMUM_DEVICE_GB = 2

# Nova's migration status while the guest runs on the destination during post-copy.
POST_COPY_STATUS = "running (post-copy)"

# A step of the downtime ramp: (seconds after the start at which it applies, max downtime in ms).
DowntimeStep = tuple[int, int]


class RampForm(StrEnum):
    """How a release spaces the downtime values between the first and the last step."""

    NONE = "none"  # before Liberty 12 Nova left the downtime at libvirt's default
    EXPONENTIAL = "exponential"  # Liberty 12 - Newton 14
    LINEAR = "linear"  # Ocata 15 and later


class BelowMinimumHandling(StrEnum):
    """What a release does with a ramp option configured below its minimum."""

    CLAMP = "clamp"  # Liberty 12 - Ocata 15: raised to the minimum in code (Ocata logs a warning)
    REFUSE = "refuse"  # Pike 16 and later: oslo.config's `min=` refuses the value at start-up


class SettingBelowMinimum(ValueError):
    """A release that refuses a value below an option's minimum was given one (Pike 16 on)."""


@dataclass(frozen=True)
class RampMinimums:
    """The smallest downtime, step count and per-GiB delay a release lets the ramp use."""

    downtime_ms: int
    steps: int
    delay_s: int


@dataclass(frozen=True)
class BelowMinimum:
    """One option that a clamping release raises to its minimum, kept so it can be reported."""

    option: str
    value: int
    minimum: int

    def message(self) -> str:
        return (
            f"[libvirt] {self.option} = {self.value} is below the minimum {self.minimum}; "
            f"Nova raises it to {self.minimum}"
        )


@dataclass(frozen=True)
class ReleaseRules:
    """Which of Nova's live-migration rules a release applies.

    Nova's monitor changed over time: a progress timeout (Liberty to Rocky), an automatic
    post-copy switch on slow progress (Newton to Rocky), and from Stein a configurable action on
    completion timeout instead of a plain abort.
    """

    release: Release
    ramp_form: RampForm
    ramp_minimums: RampMinimums | None
    below_minimum: BelowMinimumHandling
    completion_timeout_applies: bool
    progress_timeout_applies: bool
    auto_post_copy_applies: bool
    timeout_action_applies: bool


def rules_for(release: Release) -> ReleaseRules:
    """The rules `release` applies to a live migration."""
    major = release.major
    if major < 12:
        ramp_form = RampForm.NONE
    elif major <= 14:
        ramp_form = RampForm.EXPONENTIAL
    else:
        ramp_form = RampForm.LINEAR
    if major < 12:
        minimums = None
    elif major <= 15:
        minimums = RampMinimums(downtime_ms=100, steps=3, delay_s=10)
    else:
        # Pike moved the minimums into oslo `min=` and lowered the delay's from 10 to 3.
        minimums = RampMinimums(downtime_ms=100, steps=3, delay_s=3)
    return ReleaseRules(
        release=release,
        ramp_form=ramp_form,
        ramp_minimums=minimums,
        below_minimum=BelowMinimumHandling.CLAMP if major <= 15 else BelowMinimumHandling.REFUSE,
        completion_timeout_applies=major >= 12,
        progress_timeout_applies=12 <= major <= 18,
        auto_post_copy_applies=14 <= major <= 18,
        timeout_action_applies=major >= 19,
    )


def data_gb(
    memory_mb: int, disk_sizes_bytes: Iterable[int] = (), *, py2_int_division: bool = False
) -> float:
    """How many GiB Nova counts for a migration (`_live_migration_data_gb`).

    RAM and each disk copied by block migration each count at least 2 GiB. On Python 2 (the
    interpreter of most Newton to Train deployments) the divisions are integer divisions, so a
    3000 MB flavor counts 2 GiB instead of 2.93.
    """
    if memory_mb < 0:
        raise ValueError(f"memory must not be negative, got {memory_mb} MB")
    sizes = list(disk_sizes_bytes)
    if any(size < 0 for size in sizes):
        raise ValueError("disk sizes must not be negative")

    def gib(size_bytes: int) -> float:
        if py2_int_division:
            return size_bytes // GIB_BYTES
        return size_bytes / GIB_BYTES

    ram_gb = max(gib(memory_mb * MIB_BYTES), MINIMUM_DEVICE_GB)
    return ram_gb + sum(max(gib(size), MINIMUM_DEVICE_GB) for size in sizes)


def ramp_below_minimums(
    downtime_ms: int, steps: int, delay_s: int, release: Release
) -> list[BelowMinimum]:
    """The ramp options below the minimums of `release` (empty before Liberty: no ramp)."""
    minimums = rules_for(release).ramp_minimums
    if minimums is None:
        return []
    candidates = (
        ("live_migration_downtime", downtime_ms, minimums.downtime_ms),
        ("live_migration_downtime_steps", steps, minimums.steps),
        ("live_migration_downtime_delay", delay_s, minimums.delay_s),
    )
    return [
        BelowMinimum(option=option, value=value, minimum=minimum)
        for option, value, minimum in candidates
        if value < minimum
    ]


def refusal_message(below: BelowMinimum, release: Release) -> str:
    """Why a refusing release will not start with `below`, in one line."""
    return (
        f"{below.option} = {below.value} is below its minimum {below.minimum}; "
        f"Nova {release} refuses to start with it"
    )


def downtime_steps(
    downtime_ms: int,
    steps: int,
    delay_s: int,
    data_gb: float,
    release: Release,
    *,
    py2_int_division: bool = False,
) -> list[DowntimeStep]:
    """The downtime ramp Nova walks during a migration of `data_gb`: steps + 1 (seconds, ms).

    Liberty to Newton use the exponential form, Ocata on the linear one. Values below the
    minimums are raised to them up to Ocata and raise `SettingBelowMinimum` from Pike on (see
    `ramp_below_minimums` for what was raised). `py2_int_division` reproduces the linear form
    under Python 2, where the last step can fall short of `downtime_ms`; the exponential form
    converts to float itself and is the same on both.
    """
    rules = rules_for(release)
    if rules.ramp_form is RampForm.NONE:
        return []
    below = ramp_below_minimums(downtime_ms, steps, delay_s, release)
    if below and rules.below_minimum is BelowMinimumHandling.REFUSE:
        raise SettingBelowMinimum(refusal_message(below[0], release))
    minimums = rules.ramp_minimums
    assert minimums is not None  # every release with a ramp has minimums
    downtime_ms = max(downtime_ms, minimums.downtime_ms)
    steps = max(steps, minimums.steps)
    delay_s = max(delay_s, minimums.delay_s)
    step_delay_s = int(delay_s * data_gb)
    if rules.ramp_form is RampForm.EXPONENTIAL:
        offset = downtime_ms / float(steps + 1)
        base = (downtime_ms - offset) ** (1 / float(steps))
        return [(int(step_delay_s * i), int(offset + base**i)) for i in range(steps + 1)]
    if py2_int_division:
        base_ms = downtime_ms // steps
        increment_ms = (downtime_ms - base_ms) // steps
    else:
        base_ms = downtime_ms / steps
        increment_ms = (downtime_ms - base_ms) / steps
    return [(int(step_delay_s * i), int(base_ms + increment_ms * i)) for i in range(steps + 1)]


def current_step(steps: Sequence[DowntimeStep], elapsed_s: float) -> DowntimeStep | None:
    """The last step whose mark `elapsed_s` has passed (strictly), as `update_downtime` picks it.

    Because the comparison is strict and the monitor's first look comes after a moment, the
    step at 0 s applies at once.
    """
    passed = [step for step in steps if elapsed_s > step[0]]
    return passed[-1] if passed else None


def update_downtime(
    old_downtime_ms: int | None, steps: Sequence[DowntimeStep], elapsed_s: float
) -> int | None:
    """The max downtime after one monitor pass (Newton 14 on): the current step's, else the old.

    Nova sets a new value on libvirt only when it differs from the old one, and keeps the new
    value even when libvirt refuses it.
    """
    step = current_step(steps, elapsed_s)
    return old_downtime_ms if step is None else step[1]


def advance_ramp(
    release: Release, steps: Sequence[DowntimeStep], index: int | None, elapsed_s: float
) -> int | None:
    """The index of the ramp step in force after one monitor pass (None: none applied yet).

    From Newton 14 the monitor jumps to the latest step passed (`current_step`); Liberty and
    Mitaka took at most one more step per pass (every 0.5 s), so a late monitor catches up
    step by step.
    """
    if release.major >= 14:
        passed = [i for i, step in enumerate(steps) if elapsed_s > step[0]]
        return passed[-1] if passed else index
    following = 0 if index is None else index + 1
    if following < len(steps) and elapsed_s > steps[following][0]:
        return following
    return index


def completion_timeout_s(per_gb_s: int, data_gb: float) -> int:
    """Nova's completion timeout: the per-GiB option scaled by the data (0 turns it off)."""
    return int(per_gb_s * data_gb)


def should_abort(
    now_s: float,
    progress_time_s: float,
    progress_timeout_s: int,
    elapsed_s: float,
    completion_timeout_s: int,
    status: str,
) -> bool:
    """Nova 14-18 `should_abort`: stuck longer than the progress timeout, or past completion."""
    if status == POST_COPY_STATUS:
        return False
    if progress_timeout_s != 0 and now_s - progress_time_s > progress_timeout_s:
        return True
    return completion_timeout_s != 0 and elapsed_s > completion_timeout_s


def should_trigger_timeout_action(elapsed_s: float, completion_timeout_s: int, status: str) -> bool:
    """Nova 19+ `should_trigger_timeout_action`: strictly past a non-zero completion timeout."""
    if not completion_timeout_s or status == POST_COPY_STATUS:
        return False
    return elapsed_s > completion_timeout_s


def should_switch_to_postcopy(
    memory_iteration: int,
    current_data_remaining_bytes: int,
    previous_data_remaining_bytes: int,
    status: str,
) -> bool:
    """Nova 14-18 `should_switch_to_postcopy`: past the first pass, under 10 % progress."""
    if status == POST_COPY_STATUS or previous_data_remaining_bytes <= 0:
        return False
    progress_percent = round(
        (previous_data_remaining_bytes - current_data_remaining_bytes)
        * 100
        / previous_data_remaining_bytes
    )
    return memory_iteration > 1 and progress_percent < 10


def advances_progress_watermark(watermark_bytes: int | None, data_remaining_bytes: int) -> bool:
    """Whether the monitor (14-18) resets its progress clock: a new low (or an unset) watermark."""
    return not watermark_bytes or watermark_bytes > data_remaining_bytes


class TimeoutVerdict(StrEnum):
    """What the monitor does about time on one pass."""

    CONTINUE = "continue"
    ABORT = "abort"
    FORCE_COMPLETE = "force_complete"


def timeout_verdict(
    release: Release,
    *,
    elapsed_s: float,
    completion_timeout_s: int,
    status: str,
    timeout_action: str = "abort",
    now_s: float = 0.0,
    progress_time_s: float = 0.0,
    progress_timeout_s: int = 0,
) -> TimeoutVerdict:
    """The monitor's timeout decision under the rules of `release`.

    Liberty to Rocky abort on the legacy progress timeout or the completion timeout; from Stein
    the completion timeout triggers `timeout_action` (abort or force_complete). Before Liberty
    nothing times out.
    """
    rules = rules_for(release)
    if rules.timeout_action_applies:
        if should_trigger_timeout_action(elapsed_s, completion_timeout_s, status):
            return TimeoutVerdict(timeout_action)
        return TimeoutVerdict.CONTINUE
    if rules.progress_timeout_applies and should_abort(
        now_s, progress_time_s, progress_timeout_s, elapsed_s, completion_timeout_s, status
    ):
        return TimeoutVerdict.ABORT
    return TimeoutVerdict.CONTINUE


def auto_switch_to_postcopy(
    release: Release,
    *,
    post_copy_enabled: bool,
    memory_iteration: int,
    current_data_remaining_bytes: int,
    previous_data_remaining_bytes: int,
    status: str,
) -> bool:
    """Whether the monitor switches to post-copy by itself (only Newton to Rocky, if permitted)."""
    return (
        rules_for(release).auto_post_copy_applies
        and post_copy_enabled
        and should_switch_to_postcopy(
            memory_iteration,
            current_data_remaining_bytes,
            previous_data_remaining_bytes,
            status,
        )
    )


class ForceCompleteEffect(StrEnum):
    """What a force-complete (asked by the API or by the timeout action) does to the guest."""

    ALREADY_POST_COPY = "already_post_copy"  # nothing: Nova only warns
    SWITCH_TO_POST_COPY = "switch_to_post_copy"
    PAUSE = "pause"  # and resume the guest if the migration then fails


def force_complete_effect(status: str, post_copy_enabled: bool) -> ForceCompleteEffect:
    """Nova's `run_tasks` rule for a force-complete: post-copy when permitted, else pause."""
    if status == POST_COPY_STATUS:
        return ForceCompleteEffect.ALREADY_POST_COPY
    if post_copy_enabled:
        return ForceCompleteEffect.SWITCH_TO_POST_COPY
    return ForceCompleteEffect.PAUSE


@dataclass(frozen=True)
class TasksOutcome:
    """What one `run_tasks` pass did: guest actions, tasks left for a failure, the new status."""

    pause: bool
    switch_to_post_copy: bool
    on_failure: tuple[str, ...]
    status: str
    warnings: tuple[str, ...]


def run_tasks(tasks: Iterable[str] | None, status: str, post_copy_enabled: bool) -> TasksOutcome:
    """Nova's `run_tasks`: act on the queued tasks; only 'force-complete' is known."""
    pause = switch = False
    on_failure: list[str] = []
    warnings: list[str] = []
    for task in tasks or ():
        if task != "force-complete":
            warnings.append(f"Unknown migration task '{task}'")
            continue
        effect = force_complete_effect(status, post_copy_enabled)
        if effect is ForceCompleteEffect.ALREADY_POST_COPY:
            warnings.append("Live-migration already switched to post-copy mode.")
        elif effect is ForceCompleteEffect.SWITCH_TO_POST_COPY:
            switch = True
            status = POST_COPY_STATUS
        else:
            pause = True
            on_failure.append("unpause")
    return TasksOutcome(
        pause=pause,
        switch_to_post_copy=switch,
        on_failure=tuple(on_failure),
        status=status,
        warnings=tuple(warnings),
    )


def run_recover_tasks(tasks: Iterable[str], guest_paused: bool) -> bool:
    """Nova's `run_recover_tasks`: whether to resume the guest after a failed migration."""
    return any(task == "unpause" for task in tasks) and guest_paused


class GuestState(StrEnum):
    """What the source host says about the guest once the migration job is gone."""

    ACTIVE = "active"
    INACTIVE = "inactive"
    MISSING = "missing"  # libvirt: VIR_ERR_NO_DOMAIN
    UNKNOWN = "unknown"  # any other libvirt error


class JobOutcome(StrEnum):
    COMPLETED = "completed"
    FAILED = "failed"


def find_job_type(guest: GuestState) -> JobOutcome:
    """Nova's `find_job_type`: a guest still on the source means the migration failed."""
    if guest in (GuestState.INACTIVE, GuestState.MISSING):
        return JobOutcome.COMPLETED
    return JobOutcome.FAILED


def memory_remaining_percent(memory_remaining_bytes: int, memory_total_bytes: int) -> int:
    """The monitor's percentage of memory still to copy (100 before libvirt knows the total)."""
    if memory_total_bytes == 0:
        return 100
    return round(memory_remaining_bytes * 100 / memory_total_bytes)


def instance_progress(remaining_percent: int) -> int:
    """The `instance.progress` Nova saves: the complement of the remaining percentage."""
    return 100 - remaining_percent
