"""`lmes replay`: rebuild every live migration in nova logs, store it and say what happened.

Reads nova-compute (and conductor, API) logs of any shape, files or folders or `-` for standard
input, merges them in time order, and prints one report per migration: the phases and their
durations, the downtime ramp and the configuration it implies, the progress, the first error
and the anomalies. Each migration is stored as an event stream (origin `replay`) unless
`--no-store`; replaying the same logs again adds nothing.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from typing import Any

from lmes.errors import UserError
from lmes.replay.service import Replay, ReplayProgress, StoreResult, collect_logs
from logs_parsers.hosts import parse_host_mapping

PROGRESS_BAR_FROM_BYTES = 64 << 20
BAR_WIDTH = 30
MAX_JOBS = 4


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "replay",
        help="rebuild and diagnose the live migrations in nova logs",
        description=__doc__.splitlines()[0],
    )
    parser.add_argument(
        "paths",
        nargs="+",
        metavar="PATH",
        help="log file, folder (read recursively) or - for standard input",
    )
    parser.add_argument(
        "--host",
        action="append",
        default=[],
        metavar="NAME=PATH",
        help="the host a file or folder belongs to (repeatable)",
    )
    parser.add_argument(
        "--json", action="store_true", help="print a JSON list, one object per migration"
    )
    parser.add_argument(
        "--no-store", action="store_true", help="diagnose only; write nothing to the store"
    )
    parser.add_argument(
        "--jobs",
        type=int,
        default=default_jobs(),
        metavar="N",
        help="worker processes reading the logs (default: one per CPU, at most 4)",
    )
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    try:
        mapping = parse_host_mapping(args.host)
    except ValueError as exc:
        raise UserError(str(exc)) from None
    for path in mapping:
        if path not in args.paths and not any(
            path.startswith(p.rstrip("/") + "/") for p in args.paths
        ):
            args.paths.append(path)
    logs = collect_logs(args.paths, {path: host for path, host in mapping.items()})
    # the store and the text report are loaded when asked for: a replay forks its log readers
    # first and loads the rest while they read (see lmes.replay)
    store = None
    if not args.no_store:
        from lmes.store import open_store

        store = open_store()
    show_bar = sys.stderr.isatty() and logs.total_bytes >= PROGRESS_BAR_FROM_BYTES
    if args.jobs < 1:
        raise UserError(f"--jobs must be at least 1, not {args.jobs}")
    replay = Replay(logs, store=store, on_progress=_draw_bar if show_bar else None, jobs=args.jobs)
    out = sys.stdout
    count = 0
    try:
        if args.json:
            out.write("[")
        else:
            from lmes.replay.report import render
        for result in replay.migrations():
            if args.json:
                entry: dict[str, Any] = result.diagnosis.as_dict()
                entry["stored"] = result.stored
                out.write(("\n" if count == 0 else ",\n") + json.dumps(entry))
            else:
                stored = None if result.stored == StoreResult.NOT_STORED else result.stored
                out.write(("" if count == 0 else "\n") + render(result.diagnosis, stored) + "\n")
            count += 1
    except OSError as exc:
        raise UserError(
            f"cannot read {exc.filename or 'the logs'}: {exc.strerror or exc}"
        ) from None
    finally:
        if show_bar:
            sys.stderr.write("\n")
    if args.json:
        out.write("\n]\n" if count else "]\n")
    elif count == 0:
        lines = replay.lines_read
        out.write(f"No live migration found in {lines} lines of {len(logs.files)} file(s).\n")
    return 0


def default_jobs() -> int:
    """Reading is most of the work and each host's files are independent: one worker per CPU
    (this process mostly waits for them), at most four (the merge keeps up with about that)."""
    return max(1, min(MAX_JOBS, os.cpu_count() or 1))


def _draw_bar(progress: ReplayProgress) -> None:
    total = max(progress.bytes_total, 1)
    done = min(progress.bytes_read / total, 1.0)
    filled = int(done * BAR_WIDTH)
    sys.stderr.write(
        f"\r[{'#' * filled}{'.' * (BAR_WIDTH - filled)}] {done:4.0%} "
        f"{progress.bytes_read >> 20} MiB, {progress.migrations} migrations"
    )
    sys.stderr.flush()
