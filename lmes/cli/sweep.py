"""`lmes sweep GRID -o FILE`: many single-migration simulations, one table row each.

The grid file (JSON or YAML) has a `base` run spec, a `grid` of values to combine, optional
explicit `points`, `repeats` (Monte-Carlo draws) and a `seed`. Runs use every local core, or a
Dask cluster with `--dask SCHEDULER_ADDRESS`. The table is CSV or Parquet, by the output's
suffix. Sweeps do not store their runs.

```yaml
seed: 1
repeats: 20
base: {memory: 8GiB, bandwidth: 10Gbit/s, zero_pages: 0.1,
       dirty_rate: {dist: lognormal, median: 300MB/s, sigma: 0.5}}
grid:
  live_migration_downtime: [100, 500, 1000]
  live_migration_permit_auto_converge: [false, true]
```
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from lmes.cli.common import format_table
from lmes.cli.evacuate import ProgressBar
from lmes.errors import UserError
from lmes.sim.experiment import expand_grid, run_sweep, write_table
from lmes.sim.scenario import read_scenario_file

PREVIEW_COLUMNS = ["run", "outcome", "total_s", "downtime_ms", "rounds", "throttle_pct"]


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "sweep",
        help="simulate a grid of settings x workloads into a CSV or Parquet table",
        description=__doc__.splitlines()[0],
    )
    parser.add_argument("grid", metavar="GRID", help="grid file (JSON or YAML)")
    parser.add_argument(
        "-o", "--output", required=True, metavar="FILE", help="table to write (.csv or .parquet)"
    )
    parser.add_argument("--seed", type=int, help="override the grid's seed")
    parser.add_argument(
        "--workers", type=int, metavar="N", help="local processes (default: every core)"
    )
    parser.add_argument(
        "--dask", metavar="SCHEDULER_ADDRESS", help="run on this Dask cluster instead"
    )
    parser.add_argument(
        "--progress", action="store_true", help="show progress on stderr even when not a TTY"
    )
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    output = Path(args.output)
    if output.suffix.lower() not in (".csv", ".parquet"):
        raise UserError(f"output {output} must end in .csv or .parquet")
    if args.workers is not None and args.workers < 1:
        raise UserError("--workers must be at least 1")
    path = Path(args.grid)
    grid = read_scenario_file(path, "grid")
    specs = expand_grid(grid)
    if not specs:
        raise UserError(f"grid {path} describes no runs")
    seed = args.seed if args.seed is not None else int(grid.get("seed", 0))
    show = args.progress or sys.stderr.isatty()
    bar = ProgressBar(len(specs), "runs", sys.stderr) if show else None
    rows = run_sweep(
        specs,
        seed=seed,
        workers=args.workers,
        dask_scheduler=args.dask,
        base_dir=path.parent,
        on_progress=bar.advance if bar else None,
    )
    if bar:
        bar.close()
    write_table(rows, output)
    converged = sum(1 for row in rows if row["converged"])
    print(f"{len(rows)} runs ({converged} converged) written to {output}")
    print(format_table(rows[:10], PREVIEW_COLUMNS))
    if len(rows) > 10:
        print(f"... {len(rows) - 10} more rows in {output}")
    return 0
