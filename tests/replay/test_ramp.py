"""From a ramp seen in the logs back to the configuration that produced it."""

from __future__ import annotations

import pytest

from lmes.domain import policy
from lmes.domain.releases import NEWTON, PIKE
from lmes.replay.ramp import fit_ramp

GIB = 1024**3


def test_the_seed_ramp_is_newton_with_the_defaults():
    ramp = policy.downtime_steps(500, 10, 75, 2.0, NEWTON)
    fit = fit_ramp(ramp, whole_ramp=True, memory_total_bytes=554508288)
    assert (fit.ramp_form, fit.downtime_ms, fit.steps, fit.delay_s, fit.data_gb) == (
        "exponential",
        500,
        10,
        75,
        2.0,
    )
    assert not fit.ambiguous


@pytest.mark.parametrize(
    ("downtime_ms", "steps", "delay_s", "memory_gib"),
    [
        (500, 10, 75, 4),
        (300, 5, 40, 8),
        (1000, 20, 30, 16),
        (400, 3, 75, 1),
    ],
)
def test_a_linear_ramp_gives_back_its_settings(downtime_ms, steps, delay_s, memory_gib):
    data_gb = policy.data_gb(memory_gib * 1024)
    ramp = policy.downtime_steps(downtime_ms, steps, delay_s, data_gb, PIKE)
    fit = fit_ramp(ramp, whole_ramp=True, memory_total_bytes=memory_gib * GIB + 17 * 2**20)
    assert fit.ramp_form == "linear"
    assert fit.steps == steps
    assert policy.downtime_steps(fit.downtime_ms, fit.steps, fit.delay_s, fit.data_gb, PIKE) == ramp
    assert (fit.delay_s, fit.data_gb) == (delay_s, data_gb)


def test_the_applied_steps_alone_are_enough_when_they_reach_past_the_first():
    applied = [(0, 50), (150, 95), (450, 185)]  # update_downtime jumps to the latest step
    fit = fit_ramp(applied, whole_ramp=False)
    assert (fit.ramp_form, fit.downtime_ms, fit.steps, fit.step_spacing_s) == (
        "linear",
        500,
        10,
        150,
    )


def test_a_single_first_step_names_the_form_but_not_the_spacing():
    fit = fit_ramp([(0, 46)], whole_ramp=False)
    assert fit.ramp_form == "exponential"
    assert fit.step_spacing_s is None
    assert fit.delay_s is None


def test_values_no_nova_release_produces_fit_nothing():
    assert fit_ramp([(0, 7), (10, 3), (20, 999)], whole_ramp=True) is None
    assert fit_ramp([], whole_ramp=False) is None
