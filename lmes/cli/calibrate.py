"""`lmes calibrate ID`: fit the simulator's guest and link to a stored migration.

Reads the migration's progress reports (replayed or executed), fits the bandwidth, zero pages
and dirty rate that reproduce its copy time, and prints the fit; `--save FILE` writes it as a
workload file for what-if runs: `lmes simulate --workload FILE --live-migration-downtime 1000`.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from lmes.cli.common import add_store_argument, print_json, store_from_args
from lmes.errors import UserError
from lmes.sim.calibrate import CalibrationError, FittedWorkload, calibrate_migration


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "calibrate",
        help="fit bandwidth and dirtying to a stored migration",
        description=__doc__.splitlines()[0],
    )
    parser.add_argument("migration", metavar="ID", help="migration id (or a unique prefix)")
    parser.add_argument(
        "--copy-s", type=float, metavar="S", help="the copy time, when the stream lacks it"
    )
    parser.add_argument("--save", metavar="FILE", help="write the fitted workload (JSON)")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    add_store_argument(parser)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    if args.copy_s is not None and args.copy_s <= 0:
        raise UserError("--copy-s must be positive")
    store = store_from_args(args)
    migration_id = store.resolve(args.migration)
    migration = store.migration(migration_id)
    events = list(store.events.get(migration_id))
    try:
        fitted = calibrate_migration(migration, events, copy_s=args.copy_s)
    except CalibrationError as exc:
        raise UserError(str(exc)) from None
    if args.save:
        path = Path(args.save)
        if not path.parent.exists():
            raise UserError(f"folder {path.parent} does not exist")
        try:
            fitted.save(path)
        except OSError as exc:
            raise UserError(f"cannot write {path}: {exc.strerror or exc}") from None
    if args.json:
        print_json(fitted.as_workload_file())
    else:
        print(render_text(fitted, args.save))
    return 0


def render_text(fitted: FittedWorkload, saved: str | None) -> str:
    rounds = "unknown" if fitted.observed_rounds is None else str(fitted.observed_rounds)
    lines = [
        f"migration       {fitted.migration_id}",
        f"memory          {fitted.memory_bytes / 1024**2:.0f} MiB, "
        f"{fitted.zero_fraction:.1%} zero pages",
        f"bandwidth       {fitted.bandwidth_bytes_s / 1e6:.1f} MB/s",
        f"dirty rate      {fitted.dirty_rate_bytes_s / 1e6:.1f} MB/s",
        f"downtime limit  {fitted.downtime_limit_ms:.0f} ms",
        f"copy time       observed {fitted.observed_copy_s:.2f} s, "
        f"simulated {fitted.simulated_copy_s:.2f} s ({fitted.copy_error:.1%} off)",
        f"rounds          observed {rounds}, simulated {fitted.simulated_rounds}",
    ]
    lines += [f"note            {note}" for note in fitted.notes]
    if saved:
        lines.append(f"saved           {saved}")
    return "\n".join(lines)
