"""`lmes evacuate SCENARIO`: simulate draining a host, a rack, or rolling maintenance.

The scenario file (JSON or YAML; examples in `examples/scenarios/`) describes the cluster, its
guests, Nova's settings and the action. Prints the scenario's figures (makespan, downtime and
total-time percentiles, failures) and stores every migration as a stream unless `--no-store`.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any, TextIO

from lmes.cli.common import add_store_argument, format_table, print_json, store_from_args
from lmes.cli.simulate import parse_start
from lmes.sim.record import store_results
from lmes.sim.scenario import (
    ScenarioResult,
    build_scenario,
    read_scenario_file,
    run_scenario,
)

SUMMARY_COLUMNS = ["figure", "p50", "p95", "p99", "max"]


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "evacuate",
        help="simulate a host or rack evacuation, or rolling maintenance",
        description=__doc__.splitlines()[0],
    )
    parser.add_argument("scenario", metavar="SCENARIO", help="scenario file (JSON or YAML)")
    parser.add_argument("--seed", type=int, help="override the scenario's seed")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument(
        "--progress", action="store_true", help="show progress on stderr even when not a TTY"
    )
    parser.add_argument("--no-store", action="store_true", help="do not store the migrations")
    parser.add_argument(
        "--start", metavar="TIME", help="virtual start time, ISO 8601 (default 2000-01-01Z)"
    )
    add_store_argument(parser)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    path = Path(args.scenario)
    data = read_scenario_file(path)
    if args.seed is not None:
        data["seed"] = args.seed
    start = parse_start(args.start)
    store = None if args.no_store else store_from_args(args)
    scenario = build_scenario(data, base_dir=path.parent, keep_commands=store is not None)
    total = scenario.planned_migrations()
    bar = ProgressBar(total, "migrations", sys.stderr) if _show_progress(args) else None
    on_result = (lambda _result: bar.advance()) if bar else None
    result = run_scenario(scenario, on_result)
    if bar:
        bar.close()
    report: dict[str, Any] = result.as_dict()
    if store is not None:
        ids = store_results(
            store,
            result.migrations,
            start=start,
            context={"scenario": result.name, "seed": result.seed},
        )
        report["migration_ids"] = [str(i) for i in ids]
    if args.json:
        print_json(report)
    else:
        print(render_text(result, stored=store is not None))
    return 0


def render_text(result: ScenarioResult, *, stored: bool) -> str:
    summary = result.summary()
    outcomes = ", ".join(f"{count} {name}" for name, count in summary["outcomes"].items())
    lines = [
        f"scenario     {result.name} (seed {result.seed})",
        f"migrations   {summary['migrations']}: {outcomes or 'none'}",
        f"makespan     {_duration(result.makespan_s)}",
        f"bytes sent   {summary['bytes_sent'] / 1e9:.1f} GB",
        f"throttled    {summary['throttled']}, post-copy {summary['post_copy']}",
    ]
    if result.hosts_not_empty:
        lines.append(f"not drained  {', '.join(result.hosts_not_empty)}")
    if stored:
        lines.append(f"stored       {len(result.migrations)} migrations")
    rows = [
        {"figure": label, **summary[key]}
        for label, key in (
            ("downtime_ms", "downtime_ms"),
            ("total_s", "total_s"),
            ("copy_s", "copy_s"),
            ("queue_wait_s", "queue_wait_s"),
        )
    ]
    lines += ["", format_table(rows, SUMMARY_COLUMNS)]
    failed = [m for m in result.migrations if not m.converged][:20]
    if failed:
        lines += ["", "not completed:"]
        lines += [f"  {m.instance} on {m.source_host}: {m.outcome} ({m.reason})" for m in failed]
    return "\n".join(lines)


def _duration(seconds: float) -> str:
    minutes, secs = divmod(seconds, 60)
    return (
        f"{seconds:.1f} s"
        if seconds < 120
        else f"{seconds:.1f} s ({int(minutes)} min {secs:.0f} s)"
    )


def _show_progress(args: argparse.Namespace) -> bool:
    return bool(args.progress or sys.stderr.isatty())


class ProgressBar:
    """A one-line progress bar on a terminal (redrawn at most ten times a second)."""

    def __init__(self, total: int | None, unit: str, stream: TextIO, width: int = 30) -> None:
        self.total = total
        self.unit = unit
        self.stream = stream
        self.width = width
        self.done = 0
        self.started = time.monotonic()
        self._drawn = 0.0
        self._draw()

    def advance(self, count: int = 1) -> None:
        self.done += count
        now = time.monotonic()
        if now - self._drawn >= 0.1 or self.done == self.total:
            self._draw()

    def close(self) -> None:
        self._draw()
        self.stream.write("\n")
        self.stream.flush()

    def _draw(self) -> None:
        self._drawn = time.monotonic()
        elapsed = self._drawn - self.started
        if self.total is None:
            self.stream.write(f"\r{self.done} {self.unit} {elapsed:.1f} s")
        else:
            share = self.done / self.total if self.total else 1.0
            filled = int(self.width * min(share, 1.0))
            self.stream.write(
                f"\r[{'#' * filled}{'.' * (self.width - filled)}] {self.done}/{self.total} "
                f"{self.unit} {elapsed:.1f} s"
            )
        self.stream.flush()
