"""Which Nova configuration produced a downtime ramp seen in the logs.

Nova logs the ramp it walks in two ways: the whole list (`Current … steps [(0, 46), …]`, DEBUG,
Newton on) and each step it applies (`Increasing downtime to 46 ms after 0 sec elapsed time`).
Both are the output of `lmes.domain.policy.downtime_steps`; inverting it tells an operator which
era of Nova ran the migration (exponential form up to Newton, linear from Ocata), and which
`live_migration_downtime`, `…_steps` and `…_delay` were configured. Every candidate is checked by
running the policy function forward, so a reported configuration always reproduces the ramp.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import asdict, dataclass
from functools import lru_cache
from typing import Any

from lmes.domain import policy
from lmes.domain.releases import NEWTON, OCATA

GIB_BYTES = 1024**3
DEFAULT_DOWNTIME_MS = 500
DEFAULT_STEPS = 10
DEFAULT_DELAY_S = 75
MAX_STEPS_SEARCHED = 40
MAX_DELAY_SEARCHED_S = 1000

# (form, python 2 integer division) in the order a tie is resolved: the common case first.
_FORMS = (("exponential", False), ("linear", False), ("linear", True))

ERAS = {
    "exponential": "Liberty to Newton (Nova 12-14)",
    "linear": "Ocata or later (Nova 15+)",
}


@dataclass(frozen=True)
class RampFit:
    """A configuration that reproduces the observed ramp, and what it implies."""

    ramp_form: str  # "exponential" or "linear"
    downtime_ms: int
    steps: int
    step_spacing_s: int | None  # int(delay * data_gb); None when no step after the first was seen
    delay_s: int | None
    data_gb: float | None
    py2_int_division: bool
    era: str
    whole_ramp_seen: bool
    ambiguous: bool  # another form or step count reproduces what was seen as well

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    def implied_ramp(self) -> list[tuple[int, int]] | None:
        """The whole ramp Nova computes from this configuration; None while delay or data_gb
        is unknown."""
        if self.delay_s is None or self.data_gb is None:
            return None
        release = NEWTON if self.ramp_form == "exponential" else OCATA
        return policy.downtime_steps(
            self.downtime_ms,
            self.steps,
            self.delay_s,
            self.data_gb,
            release,
            py2_int_division=self.py2_int_division,
        )


def fit_ramp(
    observed: list[tuple[int, int]] | list[list[int]],
    *,
    whole_ramp: bool,
    memory_total_bytes: int | None = None,
    block_migration: bool | None = None,
) -> RampFit | None:
    """The configuration behind `observed` (seconds, ms) steps, or None if none fits.

    `whole_ramp` says `observed` is Nova's full list; otherwise it is the steps applied so far,
    each at its step mark. `memory_total_bytes` (from the progress lines) pins `data_gb` when
    the guest's RAM is all Nova counted (no block migration), which separates the delay from
    the data size in their product, the step spacing.
    """
    return _fit(tuple(map(tuple, observed)), whole_ramp, memory_total_bytes, block_migration)


@lru_cache(maxsize=4096)
def _fit(
    observed: tuple[tuple[int, int], ...],
    whole_ramp: bool,
    memory_total_bytes: int | None,
    block_migration: bool | None,
) -> RampFit | None:
    """`fit_ramp`, remembered: a cloud's migrations share a few ramps and guest sizes, and each
    is fitted when rebuilt and again when diagnosed, so most fits are made once."""
    steps_seen = tuple(sorted({(int(s), int(ms)) for s, ms in observed}))
    if not steps_seen:
        return None
    found = _fit_values(steps_seen, whole_ramp)
    if found is None:
        return None
    (form, py2, downtime_ms, steps, spacing), ambiguous = found
    delay_s, data_gb = split_spacing(spacing, memory_total_bytes, block_migration)
    fit = RampFit(
        ramp_form=form,
        downtime_ms=downtime_ms,
        steps=steps,
        step_spacing_s=spacing,
        delay_s=delay_s,
        data_gb=data_gb,
        py2_int_division=py2,
        era=ERAS[form],
        whole_ramp_seen=whole_ramp,
        ambiguous=ambiguous,
    )
    if delay_s is not None and data_gb is not None and not reproduces(fit, steps_seen):
        return RampFit(**{**asdict(fit), "delay_s": None, "data_gb": None})
    return fit


@lru_cache(maxsize=4096)
def reproduces(fit: RampFit, observed: tuple[tuple[int, int], ...]) -> bool:
    """Whether Nova, configured as `fit` says, walks through every observed step."""
    ramp = fit.implied_ramp()
    if ramp is None:
        return False
    return set(observed) <= set(ramp)


def split_spacing(
    spacing_s: int | None, memory_total_bytes: int | None, block_migration: bool | None
) -> tuple[int | None, float | None]:
    """(delay_s, data_gb) whose product Nova truncated to `spacing_s`.

    With the guest's RAM known and no block migration, data_gb is max(RAM GiB, 2) and the delay
    follows; otherwise the default delay (75 s/GiB) is assumed when it gives a data size Nova
    could count (at least 2 GiB).
    """
    if not spacing_s:
        return None, None
    ram_gb = None
    if memory_total_bytes:
        ram_gb = max(memory_total_bytes / GIB_BYTES, policy.MINIMUM_DEVICE_GB)
    if ram_gb is not None and block_migration is not True:
        if ram_gb == policy.MINIMUM_DEVICE_GB:
            # a whole number of GiB: the one delay whose product is the spacing, if any
            delay, rest = divmod(spacing_s, policy.MINIMUM_DEVICE_GB)
            if not rest and 0 < delay < MAX_DELAY_SEARCHED_S:
                return delay, float(policy.MINIMUM_DEVICE_GB)
        default_gb = spacing_s / DEFAULT_DELAY_S
        # libvirt's total includes a little more than the flavor's RAM
        if ram_gb * 0.9 <= default_gb <= ram_gb * 1.01:
            return DEFAULT_DELAY_S, round(default_gb, 2)
        delay = max(1, round(spacing_s / ram_gb))
        return delay, round(spacing_s / delay, 2)
    default_gb = spacing_s / DEFAULT_DELAY_S
    if default_gb >= policy.MINIMUM_DEVICE_GB:
        return DEFAULT_DELAY_S, round(default_gb, 2)
    return None, None


@lru_cache(maxsize=4096)
def _fit_values(
    observed: tuple[tuple[int, int], ...], whole_ramp: bool
) -> tuple[tuple[str, bool, int, int, int | None], bool] | None:
    """(form, py2, downtime_ms, steps, spacing_s) reproducing the ms values, and ambiguity.

    Of the downtimes that fit with one form and step count, the smallest is the answer unless
    Nova's default fits too, so the others are not tried (each try computes a whole ramp)."""
    matches = []
    for form, py2 in _FORMS:
        for steps, downtimes in _candidates(observed, whole_ramp, form):
            first = _first_fit(observed, whole_ramp, form, py2, steps, downtimes)
            if first is None:
                continue
            matches.append((form, py2, first[0], steps, first[1]))
            if (
                steps == DEFAULT_STEPS
                and first[0] < DEFAULT_DOWNTIME_MS
                and DEFAULT_DOWNTIME_MS in downtimes
            ):
                default = _first_fit(observed, whole_ramp, form, py2, steps, [DEFAULT_DOWNTIME_MS])
                if default is not None:
                    matches.append((form, py2, default[0], steps, default[1]))
    if not matches:
        return None
    defaults = [m for m in matches if (m[2], m[3]) == (DEFAULT_DOWNTIME_MS, DEFAULT_STEPS)]
    best = defaults[0] if defaults else min(matches, key=lambda m: m[3])
    # py2 integer division lets a few downtimes give one ramp: only form and steps count here
    distinct = {(m[0], m[3]) for m in matches}
    return best, len(distinct) > 1


def _first_fit(
    observed: tuple[tuple[int, int], ...],
    whole_ramp: bool,
    form: str,
    py2: bool,
    steps: int,
    downtimes: Iterable[int],
) -> tuple[int, int | None] | None:
    """The first of `downtimes` whose ramp fits `observed`, with the step spacing it implies."""
    for downtime_ms in downtimes:
        spacing = _spacing_if_matches(observed, whole_ramp, form, py2, downtime_ms, steps)
        if spacing is not False:
            return downtime_ms, spacing  # type: ignore[return-value]
    return None


def _candidates(
    observed: tuple[tuple[int, int], ...], whole_ramp: bool, form: str
) -> list[tuple[int, range]]:
    """The step counts worth checking against `observed`, each with its downtimes (ms)."""
    if whole_ramp:
        last_ms = observed[-1][1]
        return [(len(observed) - 1, range(last_ms, last_ms + 3))]
    first_ms = observed[0][1] if observed[0][0] == 0 else None
    groups = []
    for steps in range(3, MAX_STEPS_SEARCHED + 1):
        if first_ms is None:
            low, high = 100, max(ms for _, ms in observed) * 2 + 2
        elif form == "exponential":
            low, high = (first_ms - 1) * (steps + 1), first_ms * (steps + 1) + 1
        else:
            low, high = first_ms * steps, (first_ms + 1) * steps + 1
        groups.append((steps, range(max(low, 100), high)))
    return groups


def _spacing_if_matches(
    observed: tuple[tuple[int, int], ...],
    whole_ramp: bool,
    form: str,
    py2: bool,
    downtime_ms: int,
    steps: int,
) -> int | None | bool:
    """The step spacing implied if the ramp's ms values fit `observed`; False if they do not."""
    release = NEWTON if form == "exponential" else OCATA
    values = [
        ms
        for _, ms in policy.downtime_steps(
            downtime_ms, steps, 10, 1.0, release, py2_int_division=py2
        )
    ]
    if whole_ramp:
        if [ms for _, ms in observed] != values:
            return False
        return observed[1][0] if len(observed) > 1 else None
    spacing: int | None = None
    for mark_s, ms in observed:
        indices = [i for i, value in enumerate(values) if value == ms]
        if not indices:
            return False
        if mark_s == 0:
            if 0 not in indices:
                return False
            continue
        fitting = [i for i in indices if i and mark_s % i == 0]
        if spacing is None:
            if not fitting:
                return False
            spacing = mark_s // fitting[0]
        elif not any(spacing * i == mark_s for i in indices):
            return False
    return spacing
