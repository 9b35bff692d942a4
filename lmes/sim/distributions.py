"""Random values in scenario and sweep files, for Monte-Carlo runs.

Anywhere a number (or a size or rate with units) is expected, a file may give a distribution
instead: `{dist: lognormal, median: 50MB/s, sigma: 0.8}`, `{dist: normal, mean: 2, sd: 0.5}`,
`{dist: uniform, low: 1, high: 3}`, `{dist: choice, values: [2048, 4096], weights: [3, 1]}`,
`{dist: constant, value: 5}`. `resolve` draws every one of them from one seeded generator, so a
run is the same for the same seed.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from lmes.sim.workload import rate_value, size_value

DISTRIBUTIONS = ("constant", "uniform", "normal", "lognormal", "choice")


def is_distribution(value: Any) -> bool:
    return isinstance(value, dict) and "dist" in value


def resolve(spec: Any, rng: np.random.Generator) -> Any:
    """`spec` with every distribution replaced by one draw (nested dicts and lists too)."""
    if is_distribution(spec):
        return draw(spec, rng)
    if isinstance(spec, dict):
        return {key: resolve(value, rng) for key, value in spec.items()}
    if isinstance(spec, list):
        return [resolve(value, rng) for value in spec]
    return spec


def draw(spec: dict[str, Any], rng: np.random.Generator) -> Any:
    """One draw from the distribution `spec`; sizes and rates with units come back in bytes."""
    kind = spec["dist"]
    if kind == "constant":
        return spec["value"]
    if kind == "choice":
        values = list(spec["values"])
        weights = spec.get("weights")
        if not values:
            raise ValueError("a choice needs values")
        if weights is not None:
            weights = np.asarray(weights, dtype=float)
            if len(weights) != len(values) or (weights < 0).any() or weights.sum() <= 0:
                raise ValueError("choice weights must be non-negative, one per value")
            weights = weights / weights.sum()
        return values[int(rng.choice(len(values), p=weights))]
    if kind == "uniform":
        return float(rng.uniform(_number(spec["low"]), _number(spec["high"])))
    if kind == "normal":
        value = rng.normal(_number(spec["mean"]), _number(spec["sd"]))
        return float(max(value, spec.get("min", 0.0)))
    if kind == "lognormal":
        median = _number(spec["median"])
        if median <= 0:
            raise ValueError("a lognormal median must be positive")
        return float(median * np.exp(rng.normal(0.0, _number(spec["sigma"]))))
    raise ValueError(f"unknown distribution {kind!r}: use one of {', '.join(DISTRIBUTIONS)}")


def sample_seconds(spec: Any, rng: np.random.Generator) -> float:
    """A duration in seconds: a number, or a distribution of numbers (never negative)."""
    value = resolve(spec, rng)
    return max(0.0, float(value))


def _number(value: Any) -> float:
    """A distribution parameter: a plain number, or a size or rate written with units."""
    if isinstance(value, str) and value.rstrip().endswith(("/s", "ps")):
        return rate_value(value)
    return float(size_value(value)) if isinstance(value, str) else float(value)
