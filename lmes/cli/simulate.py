"""`lmes simulate`: one pre-copy live migration, as QEMU alone or as Nova runs it.

With `--downtime-limit-ms` the job is QEMU's alone (a fixed limit, no Nova phases, `total_s`
is the copy). Otherwise Nova's settings apply (release defaults < --nova-conf < flags): the
downtime ramp, the completion timeout and its action, and Nova's fixed costs around the copy.
The run is stored as a `Migration` stream (origin `sim`) unless `--no-store`.
"""

from __future__ import annotations

import argparse
from datetime import UTC, datetime
from typing import Any

from lmes.cli.common import add_store_argument, format_table, print_json, store_from_args
from lmes.cli.settings_args import add_settings_arguments, settings_from_args
from lmes.domain.settings import OPTIONS
from lmes.errors import UserError
from lmes.sim.experiment import run_spec
from lmes.sim.nova import MigrationResult
from lmes.sim.record import SIM_EPOCH, store_results

ROUND_COLUMNS = ["index", "start_s", "duration_s", "ram_mb", "wire_mb", "dirtied_mb", "throttle"]


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "simulate",
        help="simulate one live migration (pre-copy rounds, Nova's ramp and timeouts)",
        description=__doc__.splitlines()[0],
    )
    guest = parser.add_argument_group("the guest")
    guest.add_argument("--memory-mb", type=float, metavar="MB", help="guest RAM in MiB")
    dirt = guest.add_mutually_exclusive_group()
    dirt.add_argument("--dirty-rate", metavar="RATE", help="constant dirtying, e.g. 200MB/s")
    dirt.add_argument(
        "--working-set",
        metavar="SIZE",
        help="hot set written uniformly (with --write-rate): W(1-exp(-w t/W)) distinct bytes",
    )
    dirt.add_argument(
        "--dirty-curve", metavar="FILE", help="calc-dirty-rate JSON with sampled points"
    )
    dirt.add_argument(
        "--workload", metavar="FILE", help="a workload file (e.g. saved by lmes calibrate)"
    )
    guest.add_argument("--write-rate", metavar="RATE", help="write rate of --working-set")
    guest.add_argument(
        "--zero-pages",
        type=float,
        metavar="FRACTION",
        help="share of zero pages (default 0, or the curve's own)",
    )
    link = parser.add_argument_group("the migration")
    link.add_argument(
        "--bandwidth", metavar="RATE", help="link bandwidth: bytes/s or 10Gbit/s, 1.25GB/s, 1GiB/s"
    )
    link.add_argument(
        "--downtime-limit-ms",
        type=float,
        metavar="MS",
        help="fixed downtime limit: QEMU alone, no Nova phases",
    )
    link.add_argument(
        "--completion-timeout-s",
        type=float,
        metavar="S",
        help="give up after S seconds of copying (overrides Nova's per-GiB timeout)",
    )
    link.add_argument("--auto-converge", action="store_true", help="allow CPU throttling")
    link.add_argument(
        "--post-copy",
        action="store_true",
        help="permit post-copy (QEMU alone: switch after the first pass)",
    )
    link.add_argument("--max-bandwidth", metavar="RATE", help="QEMU's max-bandwidth cap")
    link.add_argument(
        "--page-header-bytes", type=int, default=8, metavar="N", help="wire header per page"
    )
    link.add_argument(
        "--switchover-ms", type=float, default=0.0, metavar="MS", help="fixed cost of resuming"
    )
    link.add_argument(
        "--no-fixed-costs",
        action="store_true",
        help="leave out Nova's checks, pre-live-migration, VIF plugging and post-migration",
    )
    link.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    output = parser.add_argument_group("output")
    output.add_argument("--json", action="store_true", help="print one JSON object")
    output.add_argument("--no-store", action="store_true", help="do not store the run")
    output.add_argument(
        "--start", metavar="TIME", help="virtual start time, ISO 8601 (default 2000-01-01Z)"
    )
    add_store_argument(output)
    add_settings_arguments(parser)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    spec = spec_from_args(args)
    start = parse_start(args.start)
    settings = None if args.downtime_limit_ms is not None else settings_from_args(args)
    result, _ = run_spec(spec, args.seed, keep_commands=not args.no_store, settings=settings)
    report = result.as_dict()
    if not args.no_store:
        store = store_from_args(args)
        (migration_id,) = store_results(
            store, [result], start=start, context={"seed": args.seed, "spec": _jsonable(spec)}
        )
        report["migration_id"] = str(migration_id)
    if args.json:
        print_json(report)
    else:
        print(render_text(result, report.get("migration_id")))
    return 0


def spec_from_args(args: argparse.Namespace) -> dict[str, Any]:
    """The run spec the flags describe (see `lmes.sim.experiment`)."""
    spec: dict[str, Any] = {}
    if args.memory_mb is not None:
        if args.memory_mb <= 0:
            raise UserError("--memory-mb must be positive")
        spec["memory_mb"] = args.memory_mb
    if args.dirty_rate:
        spec["dirty_rate"] = args.dirty_rate
    elif args.working_set:
        if not args.write_rate:
            raise UserError("--working-set needs --write-rate")
        spec["working_set"], spec["write_rate"] = args.working_set, args.write_rate
    elif args.dirty_curve:
        spec["dirty_curve"] = args.dirty_curve
    elif args.workload:
        spec["workload"] = args.workload
    else:
        raise UserError("give one of --dirty-rate, --working-set, --dirty-curve or --workload")
    if args.write_rate and not args.working_set:
        raise UserError("--write-rate goes with --working-set")
    if "memory_mb" not in spec and not (args.dirty_curve or args.workload):
        raise UserError("give --memory-mb")
    if args.zero_pages is not None:
        if not 0.0 <= args.zero_pages < 1.0:
            raise UserError("--zero-pages must be a fraction in [0, 1)")
        spec["zero_pages"] = args.zero_pages
    if args.bandwidth:
        spec["bandwidth"] = args.bandwidth
    elif not args.workload:
        raise UserError("give --bandwidth, e.g. 10Gbit/s")
    if args.completion_timeout_s is not None:
        if args.completion_timeout_s < 0:
            raise UserError("--completion-timeout-s must not be negative")
        spec["completion_timeout_s"] = args.completion_timeout_s
    if args.max_bandwidth:
        spec["max_bandwidth"] = args.max_bandwidth
    if args.page_header_bytes < 0 or args.switchover_ms < 0:
        raise UserError("--page-header-bytes and --switchover-ms must not be negative")
    spec["page_header_bytes"] = args.page_header_bytes
    spec["switchover_ms"] = args.switchover_ms
    spec["auto_converge"] = args.auto_converge
    spec["post_copy"] = args.post_copy
    if args.downtime_limit_ms is not None:
        given = [spec_.name for spec_ in OPTIONS if getattr(args, spec_.name, None) is not None]
        given += [name for name in ("release", "nova_conf") if getattr(args, name, None)]
        if given:
            flags = ", ".join("--" + name.replace("_", "-") for name in given)
            raise UserError(f"--downtime-limit-ms runs QEMU alone; drop the Nova settings {flags}")
        spec["downtime_limit_ms"] = args.downtime_limit_ms
    elif args.no_fixed_costs:
        spec["costs"] = {name: 0 for name in _COST_NAMES}
    return spec


_COST_NAMES = ("checks_s", "pre_live_migration_s", "vif_plug_s", "post_live_migration_s")


def parse_start(text: str | None) -> datetime:
    """The virtual start of a run: an ISO 8601 time (UTC when no zone is given)."""
    if not text:
        return SIM_EPOCH
    try:
        start = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise UserError(f"--start {text!r} is not an ISO 8601 time") from None
    return start if start.tzinfo else start.replace(tzinfo=UTC)


def render_text(result: MigrationResult, migration_id: str | None) -> str:
    """A short report and the table of rounds."""
    downtime = f"{result.downtime_ms:.1f} ms" if result.downtime_ms is not None else "-"
    lines = [
        f"outcome      {result.outcome}" + (f" ({result.reason})" if result.reason else ""),
        f"total        {result.total_s:.3f} s (copy {result.copy_s:.3f} s)",
        f"downtime     {downtime}",
        f"rounds       {result.rounds} (QEMU iterations {result.iterations})",
        f"bytes sent   {result.bytes_sent / 1e6:.1f} MB",
        f"throttle     {result.throttle_pct} %",
    ]
    if result.post_copy:
        lines.append(
            f"post-copy    {result.postcopy_faults:.0f} page faults, "
            f"{result.postcopy_stall_s:.3f} s of guest stalls"
        )
    if migration_id:
        lines.append(f"stored as    {migration_id}")
    rows = [
        {
            "index": r["index"],
            "start_s": r["start_s"],
            "duration_s": r["duration_s"],
            "ram_mb": r["ram_bytes"] / 1e6,
            "wire_mb": r["wire_bytes"] / 1e6,
            "dirtied_mb": r["dirtied_bytes"] / 1e6,
            "throttle": f"{r['throttle_pct']} %"
            + (" (stop-and-copy)" if r["stop_and_copy"] else ""),
        }
        for r in result.round_details[:50]
    ]
    if rows:
        lines += ["", format_table(rows, ROUND_COLUMNS)]
        if len(result.round_details) > 50:
            lines.append(f"... {len(result.round_details) - 50} more rounds (see --json)")
    return "\n".join(lines)


def _jsonable(spec: dict[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in spec.items() if value is not None}
