"""Nova's policy math against the vectors from Nova's own tests (tests/data/nova_vectors.json).

Every entry of the vector file becomes one test case: the ones about other parts of lmes (the
REST API's error mapping, the executor's job-info loop) are skipped and say so.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from lmes.domain import policy
from lmes.domain.policy import (
    POST_COPY_STATUS,
    BelowMinimumHandling,
    ForceCompleteEffect,
    GuestState,
    JobOutcome,
    RampForm,
    SettingBelowMinimum,
    TimeoutVerdict,
)
from lmes.domain.releases import Release
from tests.seed import SEED_RAMP

VECTORS_PATH = Path(__file__).resolve().parents[1] / "data" / "nova_vectors.json"
VECTORS = json.loads(VECTORS_PATH.read_text(encoding="utf-8"))

NEWTON = Release.parse("newton")
OCATA = Release.parse("ocata")
PIKE = Release.parse("pike")
ROCKY = Release.parse("rocky")
STEIN = Release.parse("stein")
NEWEST = Release.newest()


# The releases whose code each ramp formula is.
_RELEASE_OF_FORMULA = {"exponential": NEWTON, "linear": NEWEST}


def _cases(group: str) -> list[Any]:
    """The cases of one group, each with a readable test id."""
    entry = VECTORS[group]
    if isinstance(entry, list):
        return [pytest.param(case, id=case["id"]) for case in entry]
    if "cases" in entry:
        return [
            pytest.param(case, id=f"{group}-{index}-{case['test']}")
            for index, case in enumerate(entry["cases"])
        ]
    return [pytest.param(entry, id=group)]


def test_every_group_of_the_vector_file_is_exercised() -> None:
    covered = {
        "_meta",
        "downtime_steps",
        "data_gb",
        "should_abort_newton_to_rocky",
        "should_trigger_timeout_action_stein_plus",
        "should_switch_to_postcopy_newton_to_stein",
        "update_downtime",
        "save_stats",
        "find_job_type",
        "run_tasks",
        "run_recover_tasks",
        "monitor_scenarios",
        "api_error_mapping",
    }
    assert set(VECTORS) == covered


# --- downtime ramps -------------------------------------------------------------------------


def _ramp_release(case: dict[str, Any]) -> Release:
    return _RELEASE_OF_FORMULA[case["formula"].split()[0]]


def _ramp(case: dict[str, Any], release: Release, **flags: bool) -> list[list[int]]:
    given_ = case["input"]
    ramp = policy.downtime_steps(
        given_["live_migration_downtime"],
        given_["live_migration_downtime_steps"],
        given_["live_migration_downtime_delay"],
        given_["data_gb"],
        release,
        **flags,
    )
    return [list(step) for step in ramp]


@pytest.mark.parametrize("case", _cases("downtime_steps"))
def test_downtime_steps_vector(case: dict[str, Any]) -> None:
    release = _ramp_release(case)
    if "expected" in case:
        assert _ramp(case, release) == case["expected"]
    else:
        assert _ramp(case, release) == case["expected_py3"]
        assert _ramp(case, release, py2_int_division=True) == case["expected_py2"]


@pytest.mark.parametrize("release", [Release.parse(name) for name in ("liberty", "mitaka")])
def test_liberty_and_mitaka_use_the_exponential_ramp(release: Release) -> None:
    assert policy.downtime_steps(500, 10, 75, 2, release) == SEED_RAMP


def test_the_seed_ramp_is_newtons_with_defaults_for_2_gib() -> None:
    assert policy.downtime_steps(500, 10, 75, 2, NEWTON) == SEED_RAMP


def test_the_seed_ramp_is_not_the_linear_one() -> None:
    assert policy.downtime_steps(500, 10, 75, 2, OCATA) != SEED_RAMP


def test_the_exponential_ramp_is_the_same_under_python_2() -> None:
    assert policy.downtime_steps(500, 10, 75, 2, NEWTON, py2_int_division=True) == SEED_RAMP


def test_releases_before_liberty_have_no_ramp() -> None:
    assert policy.rules_for(Release.parse("kilo")).ramp_form is RampForm.NONE
    assert policy.downtime_steps(500, 10, 75, 2, Release.parse("kilo")) == []


def test_newton_raises_ramp_values_below_their_minimums() -> None:
    clamped = policy.downtime_steps(50, 1, 5, 2, NEWTON)
    assert clamped == policy.downtime_steps(100, 3, 10, 2, NEWTON)
    below = policy.ramp_below_minimums(50, 1, 5, NEWTON)
    assert [(b.option, b.value, b.minimum) for b in below] == [
        ("live_migration_downtime", 50, 100),
        ("live_migration_downtime_steps", 1, 3),
        ("live_migration_downtime_delay", 5, 10),
    ]
    assert "raises it to 100" in below[0].message()


def test_ocata_clamps_the_linear_ramp_with_a_delay_minimum_of_10() -> None:
    assert policy.rules_for(OCATA).below_minimum is BelowMinimumHandling.CLAMP
    assert policy.downtime_steps(400, 10, 5, 1, OCATA) == policy.downtime_steps(
        400, 10, 10, 1, OCATA
    )


def test_pike_refuses_values_below_the_minimum() -> None:
    assert policy.rules_for(PIKE).below_minimum is BelowMinimumHandling.REFUSE
    with pytest.raises(SettingBelowMinimum, match="live_migration_downtime = 99"):
        policy.downtime_steps(99, 10, 75, 2, PIKE)


def test_pike_lowered_the_delay_minimum_to_3() -> None:
    assert policy.downtime_steps(500, 10, 3, 2, PIKE)[1] == (6, 95)
    with pytest.raises(SettingBelowMinimum, match="live_migration_downtime_delay = 2"):
        policy.downtime_steps(500, 10, 2, 2, PIKE)


_ramp_releases = st.sampled_from([NEWTON, OCATA, PIKE, NEWEST])


@given(
    downtime_ms=st.integers(100, 10_000),
    steps=st.integers(3, 60),
    delay_s=st.integers(10, 600),
    gb=st.floats(2, 4096, allow_nan=False),
    release=_ramp_releases,
    py2=st.booleans(),
)
def test_ramps_have_steps_plus_one_entries_and_rise_in_both_coordinates(
    downtime_ms: int, steps: int, delay_s: int, gb: float, release: Release, py2: bool
) -> None:
    ramp = policy.downtime_steps(downtime_ms, steps, delay_s, gb, release, py2_int_division=py2)
    assert len(ramp) == steps + 1
    assert ramp[0][0] == 0
    assert all(a[0] <= b[0] and a[1] <= b[1] for a, b in zip(ramp, ramp[1:], strict=False))


@given(
    downtime_ms=st.integers(100, 10_000),
    steps=st.integers(3, 60),
    delay_s=st.integers(10, 600),
    gb=st.floats(2, 4096, allow_nan=False),
    release=_ramp_releases,
)
def test_ramps_end_at_the_configured_downtime_up_to_float_truncation(
    downtime_ms: int, steps: int, delay_s: int, gb: float, release: Release
) -> None:
    # Nova truncates a float that can land a hair below the target, so 1 ms short is Nova's.
    ramp = policy.downtime_steps(downtime_ms, steps, delay_s, gb, release)
    assert downtime_ms - 1 <= ramp[-1][1] <= downtime_ms
    assert ramp[-1][0] == int(delay_s * gb) * steps


@given(downtime_ms=st.integers(100, 10_000), steps=st.integers(3, 60))
def test_python_2_linear_ramps_fall_short_by_less_than_one_ms_per_step(
    downtime_ms: int, steps: int
) -> None:
    ramp = policy.downtime_steps(downtime_ms, steps, 75, 2, PIKE, py2_int_division=True)
    assert downtime_ms - steps <= ramp[-1][1] <= downtime_ms


# --- data_gb and the completion timeout -----------------------------------------------------


@pytest.mark.parametrize("case", _cases("data_gb"))
def test_data_gb_vector(case: dict[str, Any]) -> None:
    given_ = case["input"]
    sizes = given_.get("disk_sizes_bytes", [])
    if "expected" in case:
        assert policy.data_gb(given_["flavor_memory_mb"], sizes) == case["expected"]
    else:
        assert policy.data_gb(given_["flavor_memory_mb"], sizes) == case["expected_py3"]
        py2 = policy.data_gb(given_["flavor_memory_mb"], sizes, py2_int_division=True)
        assert py2 == case["expected_py2"]


def test_data_gb_refuses_negative_memory() -> None:
    with pytest.raises(ValueError, match="negative"):
        policy.data_gb(-1)


@given(memory_mb=st.integers(0, 4_000_000), disks=st.lists(st.integers(0, 2**44), max_size=5))
def test_data_gb_counts_at_least_2_gib_per_device(memory_mb: int, disks: list[int]) -> None:
    assert policy.data_gb(memory_mb, disks) >= 2 * (1 + len(disks))


def test_completion_timeout_scales_with_data() -> None:
    assert policy.completion_timeout_s(800, 2) == 1600
    assert policy.completion_timeout_s(800, 2.9296875) == 2343
    assert policy.completion_timeout_s(0, 14) == 0


# --- monitor decisions ----------------------------------------------------------------------


@pytest.mark.parametrize("case", _cases("should_abort_newton_to_rocky"))
def test_should_abort_vector(case: dict[str, Any]) -> None:
    decided = policy.should_abort(
        case["now"],
        case["progress_time"],
        case["progress_timeout"],
        case["elapsed"],
        case["completion_timeout"],
        case["status"],
    )
    assert decided is case["expected"]


@pytest.mark.parametrize("case", _cases("should_trigger_timeout_action_stein_plus"))
def test_should_trigger_timeout_action_vector(case: dict[str, Any]) -> None:
    decided = policy.should_trigger_timeout_action(
        case["elapsed"], case["completion_timeout"], case["status"]
    )
    assert decided is case["expected"]


@pytest.mark.parametrize("case", _cases("should_switch_to_postcopy_newton_to_stein"))
def test_should_switch_to_postcopy_vector(case: dict[str, Any]) -> None:
    decided = policy.should_switch_to_postcopy(
        case["memory_iteration"], case["current"], case["previous"], case["status"]
    )
    assert decided is case["expected"]


@pytest.mark.parametrize("case", _cases("update_downtime"))
def test_update_downtime_vector(case: dict[str, Any]) -> None:
    steps = [tuple(step) for step in case["steps"]]
    new = policy.update_downtime(case["old"], steps, case["elapsed"])
    assert new == case["expected"]
    # Nova calls libvirt only when the value changes; a libvirt error does not undo the change.
    assert (new if new != case["old"] else None) == case["set_called_with"]


def test_the_step_at_zero_seconds_applies_on_the_first_look() -> None:
    assert policy.current_step(SEED_RAMP, 0.5) == (0, 46)
    assert policy.current_step(SEED_RAMP, 0) is None
    assert policy.current_step(SEED_RAMP, 150) == (0, 46)
    assert policy.current_step(SEED_RAMP, 150.5) == (150, 47)
    assert policy.current_step(SEED_RAMP, 99_999) == (1500, 500)


def test_newton_jumps_to_the_latest_passed_step_while_mitaka_takes_one_per_pass() -> None:
    mitaka = Release.parse("mitaka")
    assert policy.advance_ramp(NEWTON, SEED_RAMP, None, 1000) == 6
    assert policy.advance_ramp(NEWTON, SEED_RAMP, 6, 1000) == 6
    assert policy.advance_ramp(NEWTON, SEED_RAMP, None, 0) is None
    assert policy.advance_ramp(mitaka, SEED_RAMP, None, 1000) == 0
    assert policy.advance_ramp(mitaka, SEED_RAMP, 0, 1000.5) == 1
    assert policy.advance_ramp(mitaka, SEED_RAMP, 6, 1000) == 6
    assert policy.advance_ramp(mitaka, SEED_RAMP, 10, 99_999) == 10


@pytest.mark.parametrize("case", _cases("save_stats"))
def test_save_stats_vector(case: dict[str, Any]) -> None:
    assert (
        policy.instance_progress(case["input"]["remaining_percent"])
        == (case["expected"]["instance.progress"])
    )


def test_memory_remaining_percent() -> None:
    assert policy.memory_remaining_percent(524_288_000, 1_073_741_824) == 49
    assert policy.memory_remaining_percent(0, 0) == 100


_JOB_TYPES = {
    "VIR_DOMAIN_JOB_COMPLETED": JobOutcome.COMPLETED,
    "VIR_DOMAIN_JOB_FAILED": JobOutcome.FAILED,
}


def _guest_state(case: dict[str, Any]) -> GuestState:
    if case.get("raises") == "libvirtError VIR_ERR_NO_DOMAIN":
        return GuestState.MISSING
    if "raises" in case:
        return GuestState.UNKNOWN
    return GuestState.ACTIVE if case["guest_is_active"] else GuestState.INACTIVE


@pytest.mark.parametrize("case", _cases("find_job_type"))
def test_find_job_type_vector(case: dict[str, Any]) -> None:
    assert policy.find_job_type(_guest_state(case)) is _JOB_TYPES[case["expected"]]


@pytest.mark.parametrize("case", _cases("run_tasks"))
def test_run_tasks_vector(case: dict[str, Any]) -> None:
    outcome = policy.run_tasks(case["tasks"], case["status"], case["postcopy_enabled"])
    assert outcome.pause is case["pause"]
    assert outcome.switch_to_post_copy is case["postcopy_switch"]
    assert list(outcome.on_failure) == case["on_failure"]
    assert outcome.status == case.get("status_after", case["status"])


def test_run_tasks_warns_about_unknown_tasks_and_repeated_force_completes() -> None:
    outcome = policy.run_tasks(["wibble", "force-complete", "force-complete"], "running", True)
    assert outcome.switch_to_post_copy
    assert outcome.warnings == (
        "Unknown migration task 'wibble'",
        "Live-migration already switched to post-copy mode.",
    )


@pytest.mark.parametrize("case", _cases("run_recover_tasks"))
def test_run_recover_tasks_vector(case: dict[str, Any]) -> None:
    paused = case.get("power_state") == "PAUSED"
    assert policy.run_recover_tasks(case["tasks"], guest_paused=paused) is case["resume_called"]


@pytest.mark.parametrize(
    ("status", "post_copy", "effect"),
    [
        ("running", True, ForceCompleteEffect.SWITCH_TO_POST_COPY),
        ("running", False, ForceCompleteEffect.PAUSE),
        (POST_COPY_STATUS, True, ForceCompleteEffect.ALREADY_POST_COPY),
    ],
)
def test_force_complete_switches_to_post_copy_when_permitted_else_pauses(
    status: str, post_copy: bool, effect: ForceCompleteEffect
) -> None:
    assert policy.force_complete_effect(status, post_copy) is effect


# --- release-dependent rules ----------------------------------------------------------------


def test_which_rules_each_release_applies() -> None:
    table = {
        name: policy.rules_for(Release.parse(name))
        for name in ("kilo", "liberty", "mitaka", "newton", "ocata", "rocky", "stein", "2026.1")
    }
    assert [r.ramp_form.value for r in table.values()] == [
        "none", "exponential", "exponential", "exponential", "linear", "linear", "linear", "linear"
    ]  # fmt: skip
    assert [r.progress_timeout_applies for r in table.values()] == [
        False, True, True, True, True, True, False, False
    ]  # fmt: skip
    assert [r.auto_post_copy_applies for r in table.values()] == [
        False, False, False, True, True, True, False, False
    ]  # fmt: skip
    assert [r.timeout_action_applies for r in table.values()] == [
        False, False, False, False, False, False, True, True
    ]  # fmt: skip


def test_newton_aborts_on_the_progress_timeout() -> None:
    verdict = policy.timeout_verdict(
        NEWTON,
        elapsed_s=240,
        completion_timeout_s=1600,
        status="running",
        now_s=240,
        progress_time_s=80,
        progress_timeout_s=150,
    )
    assert verdict is TimeoutVerdict.ABORT


def test_stein_ignores_the_progress_timeout_and_applies_the_timeout_action() -> None:
    stuck = {"now_s": 240, "progress_time_s": 80, "progress_timeout_s": 150}
    common = {"completion_timeout_s": 200, "status": "running", **stuck}
    assert policy.timeout_verdict(STEIN, elapsed_s=200, **common) is TimeoutVerdict.CONTINUE
    assert (
        policy.timeout_verdict(STEIN, elapsed_s=201, timeout_action="force_complete", **common)
        is TimeoutVerdict.FORCE_COMPLETE
    )
    assert policy.timeout_verdict(STEIN, elapsed_s=201, **common) is TimeoutVerdict.ABORT


def test_rocky_aborts_on_completion_timeout_whatever_the_action() -> None:
    verdict = policy.timeout_verdict(
        ROCKY,
        elapsed_s=201,
        completion_timeout_s=200,
        status="running",
        timeout_action="force_complete",
    )
    assert verdict is TimeoutVerdict.ABORT


def test_automatic_post_copy_only_from_newton_to_rocky_and_only_when_permitted() -> None:
    slow = {
        "memory_iteration": 2,
        "current_data_remaining_bytes": 100,
        "previous_data_remaining_bytes": 105,
        "status": "running",
    }
    assert policy.auto_switch_to_postcopy(NEWTON, post_copy_enabled=True, **slow)
    assert policy.auto_switch_to_postcopy(ROCKY, post_copy_enabled=True, **slow)
    assert not policy.auto_switch_to_postcopy(ROCKY, post_copy_enabled=False, **slow)
    assert not policy.auto_switch_to_postcopy(STEIN, post_copy_enabled=True, **slow)


# --- Nova's monitor scenarios, replayed through the decisions they exercise --------------------

_MONITOR = {case["test"]: case for case in VECTORS["monitor_scenarios"]["cases"]}
# The harness's instance: a 2048 MB flavor without copied disks.
_HARNESS_DATA_GB = 2


def _monitor_downtime(case: dict[str, Any]) -> None:
    steps = [tuple(step) for step in case["downtime_steps"]]
    downtime, calls = None, []
    for elapsed_s in case["elapsed_seen"]:
        new = policy.update_downtime(downtime, steps, elapsed_s)
        if new != downtime:
            calls.append(new)
        downtime = new
    assert calls == [10, 50, 200]


def _first_timeout(case: dict[str, Any], release: Release) -> tuple[float, TimeoutVerdict]:
    timeout_s = policy.completion_timeout_s(
        case["conf"]["live_migration_completion_timeout"], _HARNESS_DATA_GB
    )
    assert timeout_s == case["effective_completion_timeout"]
    for elapsed_s in case["elapsed_seen"]:
        verdict = policy.timeout_verdict(
            release,
            elapsed_s=elapsed_s,
            completion_timeout_s=timeout_s,
            status="running",
            timeout_action=case["conf"].get("live_migration_timeout_action", "abort"),
        )
        if verdict is not TimeoutVerdict.CONTINUE:
            return elapsed_s, verdict
    raise AssertionError("no timeout")


def _monitor_completion(case: dict[str, Any]) -> None:
    assert _first_timeout(case, NEWEST) == (240, TimeoutVerdict.ABORT)


def _monitor_force_complete_postcopy(case: dict[str, Any]) -> None:
    assert _first_timeout(case, NEWEST) == (120, TimeoutVerdict.FORCE_COMPLETE)
    # The queued force-complete runs at the next pass, with post-copy permitted.
    outcome = policy.run_tasks(["force-complete"], "running", case["postcopy_enabled"])
    assert outcome.switch_to_post_copy and outcome.status == POST_COPY_STATUS


def _progress_abort_at(times_s: list[int], remaining: list[int]) -> int | None:
    """The monitor's progress bookkeeping (14-18) over passes at `times_s`; start at 0."""
    watermark, progress_time_s = None, 0
    for now_s, data_remaining in zip(times_s, remaining, strict=False):
        if policy.advances_progress_watermark(watermark, data_remaining):
            watermark, progress_time_s = data_remaining, now_s
        verdict = policy.timeout_verdict(
            NEWTON,
            elapsed_s=now_s,
            completion_timeout_s=policy.completion_timeout_s(1_000_000, _HARNESS_DATA_GB),
            status="running",
            now_s=now_s,
            progress_time_s=progress_time_s,
            progress_timeout_s=150,
        )
        if verdict is TimeoutVerdict.ABORT:
            return now_s
    return None


def _monitor_progress(case: dict[str, Any]) -> None:
    # The harness's UNBOUNDED passes see these clock values (fake_times after NONE).
    assert _progress_abort_at(case["fake_times"][2:], case["data_remaining"]) == 240


def _monitor_progress_zero(case: dict[str, Any]) -> None:
    assert _progress_abort_at([80, 120, 160, 200, 240, 280, 320], case["data_remaining"]) is None


def _force_complete_runs(case: dict[str, Any]) -> policy.TasksOutcome | None:
    """run_tasks runs only on an UNBOUNDED pass after the force-complete was queued."""
    records = case["records"]
    queued_at = records.index("force_complete")
    later = records[queued_at + 1 :]
    if not any(record.startswith("UNBOUNDED") for record in later):
        return None
    return policy.run_tasks(["force-complete"], case["status"], case.get("postcopy_enabled", False))


def _monitor_handle(case: dict[str, Any]) -> None:
    outcome = _force_complete_runs(case)
    pause = bool(outcome and outcome.pause)
    switch = bool(outcome and outcome.switch_to_post_copy)
    expected = case["expected"]
    assert pause is ("pause executed" in expected)
    assert switch is ("postcopy switch executed" in expected)


_MONITOR_CHECKS = {
    "test_live_migration_monitor_downtime": _monitor_downtime,
    "test_live_migration_monitor_completion": _monitor_completion,
    "test_live_migration_monitor_force_complete_postcopy (19.0.0..master)": (
        _monitor_force_complete_postcopy
    ),
    "test_live_migration_monitor_progress (14.0.0..18.x only)": _monitor_progress,
    "test_live_migration_monitor_progress_zero_data_remaining (14.0.0..18.x only)": (
        _monitor_progress_zero
    ),
}


@pytest.mark.parametrize("case", _cases("monitor_scenarios"))
def test_monitor_scenario(case: dict[str, Any]) -> None:
    check = _MONITOR_CHECKS.get(case["test"])
    if check is None and "records" in case and "force_complete" in case["records"]:
        check = _monitor_handle
    if check is None:
        pytest.skip("a job-info loop scenario: exercised by the executor's monitor tests")
    check(case)


def test_api_error_mapping_is_not_policy() -> None:
    pytest.skip("API error mapping belongs to the API layer, not to policy math")
