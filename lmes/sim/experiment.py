"""Running simulations from plain specs: one migration, and grids of them (sweeps).

A *run spec* is a flat dict, so a sweep grid can vary any entry of it:

* the guest: `memory` (or `memory_mb`), `zero_pages`, and one of `dirty_rate`,
  `working_set` + `write_rate`, `dirty_curve` (calc-dirty-rate JSON or file) or `workload`
  (a workload dict or file, e.g. one saved by `lmes calibrate`);
* the network: `bandwidth` (the link the migration runs over);
* QEMU alone: `downtime_limit_ms` (fixed; no Nova phases), `completion_timeout_s`,
  `auto_converge`, `post_copy`, `max_bandwidth`;
* or Nova: `release` and any Nova option by name (`live_migration_downtime`, ...), `costs`
  (Nova's fixed costs: numbers or distributions), `completion_timeout_s` to override Nova's;
* `page_header_bytes`, `switchover_ms`.

Any value may be a distribution (`lmes.sim.distributions`); each run draws its own from a
generator seeded by the sweep's seed and the run's index, so results do not depend on how runs
are spread over processes or machines.
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

from lmes.domain.releases import Release
from lmes.domain.settings import OPTIONS, Settings
from lmes.errors import UserError
from lmes.sim.distributions import resolve
from lmes.sim.nova import MigrationPlan, MigrationResult, NovaCosts, simulate_one
from lmes.sim.precopy import DEFAULT_PAGE_HEADER_BYTES, QemuSettings
from lmes.sim.workload import rate_value, read_json_file, workload_from_dict

_NOVA_OPTIONS = {spec.name for spec in OPTIONS}
_GUEST_KEYS = ("memory", "memory_mb", "zero_pages", "page_size")
_CURVE_KEYS = ("dirty_rate", "working_set", "dirty_curve", "workload")
_RUN_KEYS = (
    "bandwidth",
    "downtime_limit_ms",
    "completion_timeout_s",
    "auto_converge",
    "post_copy",
    "max_bandwidth",
    "page_header_bytes",
    "switchover_ms",
    "write_rate",
    "costs",
    "release",
    "name",
)
RUN_SPEC_KEYS = frozenset((*_GUEST_KEYS, *_CURVE_KEYS, *_RUN_KEYS, *_NOVA_OPTIONS))


def plan_from_spec(
    spec: dict[str, Any],
    rng: np.random.Generator,
    base_dir: Path | None = None,
    settings: Settings | None = None,
) -> tuple[MigrationPlan, float, dict[str, Any]]:
    """The plan, link bandwidth (bytes/s) and drawn values a run spec describes, using `rng`.

    `settings` are the Nova settings to start from (else the release's defaults); the spec's
    Nova options override them.
    """
    unknown = sorted(set(spec) - RUN_SPEC_KEYS)
    if unknown:
        raise UserError(f"unknown run setting(s): {', '.join(unknown)}")
    values = resolve(spec, rng)
    workload_values = _workload_values(values, base_dir)
    try:
        workload = workload_from_dict(workload_values, base_dir)
    except ValueError as exc:
        raise UserError(f"workload: {exc}") from None
    bandwidth = values.get("bandwidth", workload_values.get("bandwidth"))
    if bandwidth is None:
        raise UserError("give the bandwidth the migration runs over (bandwidth, e.g. 10Gbit/s)")
    link_bytes_s = _rate(bandwidth, "bandwidth")
    if link_bytes_s <= 0:
        raise UserError("bandwidth must be positive")
    qemu = QemuSettings(
        max_bandwidth_bytes_s=_rate(values["max_bandwidth"], "max_bandwidth")
        if values.get("max_bandwidth")
        else None,
        page_header_bytes=int(values.get("page_header_bytes", DEFAULT_PAGE_HEADER_BYTES)),
        switchover_s=float(values.get("switchover_ms", 0.0)) / 1000.0,
        auto_converge=bool(values.get("auto_converge", False)),
        post_copy=bool(values.get("post_copy", False)),
    )
    timeout = values.get("completion_timeout_s")
    completion_timeout_s = float(timeout) if timeout is not None else None
    name = str(values.get("name", "sim-vm"))
    if "downtime_limit_ms" in values:
        limit = float(values["downtime_limit_ms"])
        if limit <= 0:
            raise UserError("downtime_limit_ms must be positive")
        nova_given = sorted(set(values) & (_NOVA_OPTIONS | {"release", "costs"}))
        if nova_given:
            names = ", ".join(nova_given)
            raise UserError(f"downtime_limit_ms runs QEMU alone; drop the Nova setting(s) {names}")
        plan = MigrationPlan(
            instance=name,
            workload=workload,
            downtime_limit_ms=limit,
            completion_timeout_s=completion_timeout_s,
            post_copy_after_first_pass=qemu.post_copy,
            qemu=qemu,
        )
        return plan, link_bytes_s, values
    settings = settings_from_values(values, settings)
    if qemu.auto_converge:
        settings = settings.with_overrides(live_migration_permit_auto_converge=True)
    if qemu.post_copy:
        settings = settings.with_overrides(live_migration_permit_post_copy=True)
    try:
        costs = NovaCosts.draw(values.get("costs"), rng)
    except (TypeError, ValueError) as exc:
        raise UserError(f"costs: {exc}") from None
    plan = MigrationPlan(
        instance=name,
        workload=workload,
        settings=settings,
        completion_timeout_s=completion_timeout_s,
        qemu=qemu,
        costs=costs,
    )
    return plan, link_bytes_s, values


def settings_from_values(values: dict[str, Any], base: Settings | None = None) -> Settings:
    """Nova settings from a spec: `base` (or the release's defaults) with the options it names."""
    try:
        if "release" in values or base is None:
            release = Release.parse(values["release"]) if "release" in values else None
            base = Settings.defaults(release)
        overrides = {name: values[name] for name in _NOVA_OPTIONS if name in values}
        return base.with_overrides(**overrides)
    except ValueError as exc:
        raise UserError(str(exc)) from None


def run_spec(
    spec: dict[str, Any],
    seed: int,
    *,
    keep_commands: bool = False,
    base_dir: Path | None = None,
    settings: Settings | None = None,
) -> tuple[MigrationResult, dict[str, Any]]:
    """Simulate the migration a spec describes, with its own seeded generator.

    Returns the result and the spec's values as drawn (distributions replaced by draws), with
    the link bandwidth in bytes/s as `bandwidth_bytes_s`.
    """
    rng = np.random.default_rng(seed)
    plan, link_bytes_s, values = plan_from_spec(spec, rng, base_dir, settings)
    try:
        result = simulate_one(plan, link_bytes_s, keep_commands=keep_commands)
    except ValueError as exc:
        raise UserError(str(exc)) from None
    return result, {**values, "bandwidth_bytes_s": link_bytes_s}


def _workload_values(values: dict[str, Any], base_dir: Path | None) -> dict[str, Any]:
    curves = [key for key in _CURVE_KEYS if key in values]
    if len(curves) != 1:
        raise UserError(
            "give exactly one of dirty_rate, working_set (with write_rate), dirty_curve, workload"
        )
    key = curves[0]
    if key == "workload":
        given = values["workload"]
        if isinstance(given, str):
            path = Path(given)
            if base_dir is not None and not path.is_absolute():
                path = base_dir / path
            given = read_json_file(path, "workload")
            base = path.parent
        else:
            base = base_dir
        if not isinstance(given, dict):
            raise UserError("a workload file must hold a JSON object")
        workload = {k: v for k, v in given.items() if k not in ("fit", "kind")}
        if "dirty_curve" in workload and isinstance(workload["dirty_curve"], str) and base:
            workload["dirty_curve"] = str(base / workload["dirty_curve"])
    elif key == "working_set":
        if "write_rate" not in values:
            raise UserError("working_set needs write_rate (bytes/s or with a unit)")
        workload = {"working_set": {"size": values[key], "write_rate": values["write_rate"]}}
    else:
        workload = {key: values[key]}
    for guest_key in _GUEST_KEYS:
        if guest_key in values:
            workload[guest_key] = values[guest_key]
    if "memory" in values and "memory_mb" in workload:
        del workload["memory_mb"]
    if "memory_mb" in values and "memory" in workload:
        del workload["memory"]
    return workload


def _rate(value: Any, what: str) -> float:
    try:
        return rate_value(value)
    except UserError as exc:
        raise UserError(f"{what}: {exc}") from None


# ---------------------------------------------------------------------------- sweeps


def expand_grid(grid_file: dict[str, Any]) -> list[dict[str, Any]]:
    """The run specs of a grid file: `base` updated by each point of `grid`'s product.

    `grid` maps a spec key to the list of its values; `points` may add explicit specs too.
    Each spec is repeated `repeats` times (Monte-Carlo draws).
    """
    if not isinstance(grid_file, dict):
        raise UserError("a grid file must be a mapping with base, grid, repeats, seed")
    unknown = sorted(set(grid_file) - {"base", "grid", "points", "repeats", "seed"})
    if unknown:
        raise UserError(f"unknown grid field(s): {', '.join(unknown)}")
    base = dict(grid_file.get("base") or {})
    grid = dict(grid_file.get("grid") or {})
    for key, values in grid.items():
        if not isinstance(values, list) or not values:
            raise UserError(f"grid.{key} must be a non-empty list of values")
    keys = list(grid)
    specs = [
        {**base, **dict(zip(keys, combination, strict=True))}
        for combination in itertools.product(*(grid[key] for key in keys))
    ]
    specs += [{**base, **point} for point in grid_file.get("points") or []]
    repeats = int(grid_file.get("repeats", 1))
    if repeats < 1:
        raise UserError("repeats must be at least 1")
    for spec in specs:
        unknown = sorted(set(spec) - RUN_SPEC_KEYS)
        if unknown:
            raise UserError(f"unknown run setting(s): {', '.join(unknown)}")
    return [spec for spec in specs for _ in range(repeats)]


def run_seed(sweep_seed: int, index: int) -> int:
    """The seed of run `index` of a sweep: independent of how runs are distributed."""
    return int(np.random.SeedSequence([sweep_seed, index]).generate_state(1)[0])


def sweep_row(spec: dict[str, Any], index: int, sweep_seed: int, base_dir: str | None) -> dict:
    """One run of a sweep, as a flat table row (the spec's scalar settings and the results)."""
    seed = run_seed(sweep_seed, index)
    result, values = run_spec(spec, seed, base_dir=Path(base_dir) if base_dir else None)
    row: dict[str, Any] = {"run": index, "seed": seed}
    for key, value in values.items():
        row[key] = value if isinstance(value, str | int | float | bool) else str(value)
    row["memory_bytes"] = result.memory_bytes
    summary = result.summary()
    for key in ("instance", "source_host", "dest_host", "requested_s", "ended_s"):
        summary.pop(key)
    row.update(summary)
    return row


def _rows_of_chunk(
    chunk: list[tuple[int, dict[str, Any]]], sweep_seed: int, base_dir: str | None
) -> list[dict[str, Any]]:
    return [sweep_row(spec, index, sweep_seed, base_dir) for index, spec in chunk]


def run_sweep(
    specs: list[dict[str, Any]],
    *,
    seed: int = 0,
    workers: int | None = None,
    dask_scheduler: str | None = None,
    base_dir: Path | None = None,
    on_progress: Callable[[int], None] | None = None,
) -> list[dict[str, Any]]:
    """Every run of a sweep, in run order, on all local cores or on a Dask cluster."""
    indexed = list(enumerate(specs))
    chunks = list(_chunks(indexed, _chunk_size(len(indexed), workers)))
    folder = str(base_dir) if base_dir else None
    if dask_scheduler:
        results = _run_on_dask(chunks, seed, folder, dask_scheduler, on_progress)
    elif (workers or os.cpu_count() or 1) <= 1 or len(chunks) <= 1:
        results = []
        for chunk in chunks:
            results.append(_rows_of_chunk(chunk, seed, folder))
            if on_progress:
                on_progress(len(chunk))
    else:
        with ProcessPoolExecutor(max_workers=workers) as pool:
            futures = [pool.submit(_rows_of_chunk, chunk, seed, folder) for chunk in chunks]
            results = []
            for future, chunk in zip(futures, chunks, strict=True):
                results.append(future.result())
                if on_progress:
                    on_progress(len(chunk))
    return [row for rows in results for row in rows]


def _run_on_dask(
    chunks: list[list[tuple[int, dict[str, Any]]]],
    seed: int,
    folder: str | None,
    scheduler: str,
    on_progress: Callable[[int], None] | None,
) -> list[list[dict[str, Any]]]:
    try:
        from dask.distributed import Client
    except ImportError:
        raise UserError(
            'running on Dask needs dask.distributed: pip install "dask[distributed]"'
        ) from None
    try:
        client = Client(scheduler, timeout="10s")
    except (OSError, TimeoutError, ValueError) as exc:
        raise UserError(f"cannot reach the Dask scheduler {scheduler}: {exc}") from None
    try:
        futures = client.map(_rows_of_chunk, chunks, sweep_seed=seed, base_dir=folder, pure=False)
        results = []
        for future, chunk in zip(futures, chunks, strict=True):
            results.append(future.result())
            if on_progress:
                on_progress(len(chunk))
        return results
    finally:
        client.close()


def _chunk_size(runs: int, workers: int | None) -> int:
    slots = (workers or os.cpu_count() or 1) * 8
    return max(1, min(2000, -(-runs // slots)))


def _chunks(items: list[Any], size: int) -> Iterator[list[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def write_table(rows: Iterable[dict[str, Any]], path: Path) -> None:
    """The rows as CSV or Parquet, chosen by the file's suffix; nothing is left half-written."""
    import pandas as pd

    frame = pd.DataFrame(list(rows))
    suffix = path.suffix.lower()
    if suffix not in (".csv", ".parquet"):
        raise UserError(f"output {path} must end in .csv or .parquet")
    if suffix == ".parquet":
        try:
            import pyarrow  # noqa: F401
        except ImportError:
            raise UserError(
                "writing Parquet needs pyarrow (pip install pyarrow); or write .csv"
            ) from None
    if path.parent and not path.parent.exists():
        raise UserError(f"folder {path.parent} does not exist")
    partial = path.with_name(path.name + ".partial")
    try:
        if suffix == ".csv":
            frame.to_csv(partial, index=False)
        else:
            frame.to_parquet(partial, index=False)
        partial.replace(path)
    except OSError as exc:
        partial.unlink(missing_ok=True)
        raise UserError(f"cannot write {path}: {exc.strerror or exc}") from None
