"""`lmes migrate INSTANCE`: a real live migration, the way Nova runs it.

In the foreground it shows a progress bar on stderr and prints the migration id and its final
status; Ctrl-C offers to abort (aborts at once when stdin is not a terminal). `--detach` runs
the executor in a background process and prints the id. Before starting, migrations whose
executor died are reconciled (jobs libvirt still runs are handed to a background executor).
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading
import time
from typing import TextIO

from lmes.cli.common import add_store_argument, print_json, store_from_args
from lmes.cli.hosts import add_hosts_file_argument
from lmes.cli.settings_args import add_settings_arguments, settings_from_args
from lmes.domain.migration import BLOCK_MIGRATION_CHOICES, Migration
from lmes.domain.status import Status
from lmes.errors import UserError
from lmes.executor.lease import Lease
from lmes.executor.monitor import ProgressView
from lmes.executor.runner import spawn_runner
from lmes.executor.service import Executor, request_abort

MIB_BYTES = 1024**2
BAR_WIDTH = 24


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser("migrate", help="live-migrate an instance as Nova does")
    parser.add_argument("instance", help="the guest's name (a libvirt domain on one of the hosts)")
    parser.add_argument("--dest", metavar="HOST", help="destination host (default: scheduler)")
    parser.add_argument(
        "--block-migration",
        choices=BLOCK_MIGRATION_CHOICES,
        default="auto",
        help="copy local disks (auto: when the hosts do not share instance storage)",
    )
    parser.add_argument(
        "--detach", action="store_true", help="run in the background; print the migration id"
    )
    parser.add_argument("--json", action="store_true", help="print the outcome as JSON")
    add_hosts_file_argument(parser)
    add_store_argument(parser)
    add_settings_arguments(parser)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    settings = settings_from_args(args)
    store = store_from_args(args)
    executor = Executor.from_hosts_file(store, args.hosts_file)
    hosts_file = str(executor.hosts_file) if executor.hosts_file else None

    def hand_over(lease: Lease) -> int:
        pid = spawn_runner(
            "take-over", lease.migration_id, lease, store_url=store.url, hosts_file=hosts_file
        )
        lease.hand_off()
        return pid

    try:
        for result in executor.recover(hand_over=hand_over):
            print(
                f"recovered {result.migration_id} ({result.instance}): {result.action}",
                file=sys.stderr,
            )
        migration, lease = executor.request(
            args.instance,
            dest=args.dest,
            block_migration=args.block_migration,
            settings=settings,
        )
        if args.detach:
            try:
                pid = spawn_runner(
                    "execute", migration.id, lease, store_url=store.url, hosts_file=hosts_file
                )
            except BaseException:
                lease.release()
                raise
            lease.hand_off()
            if args.json:
                print_json({"migration_id": migration.id, "status": "accepted", "pid": pid})
            else:
                print(migration.id)
            return 0
        if not args.json:
            print(migration.id, flush=True)
        try:
            final = _run_in_foreground(executor, store, migration)
        finally:
            lease.release()
    finally:
        executor.close()
    _print_outcome(final, args.json)
    return 0 if final.status is Status.COMPLETED else 1


def _run_in_foreground(executor: Executor, store, migration: Migration) -> Migration:
    """Run the migration in a worker thread, so Ctrl-C in the main thread can ask to abort."""
    bar = ProgressBar(sys.stderr)
    result: list[Migration] = []
    failure: list[BaseException] = []

    def work() -> None:
        try:
            result.append(executor.execute(migration.id, on_progress=bar.show))
        except BaseException as exc:  # re-raised in the main thread
            failure.append(exc)

    interrupted = threading.Event()
    previous = signal.signal(signal.SIGINT, lambda _signum, _frame: interrupted.set())
    worker = threading.Thread(target=work, name="executor", daemon=True)
    worker.start()
    try:
        while worker.is_alive():
            worker.join(0.2)
            if interrupted.is_set():
                interrupted.clear()
                bar.clear()
                if _confirm_abort():
                    _ask_abort(store, migration)
    finally:
        signal.signal(signal.SIGINT, previous)
    bar.clear()
    if failure:
        raise failure[0]
    return result[0]


def _confirm_abort() -> bool:
    if not sys.stdin.isatty():
        return True
    try:
        answer = input("\nabort this migration? [y/N] ")
    except (EOFError, KeyboardInterrupt):
        return True
    return answer.strip().lower() in ("y", "yes")


def _ask_abort(store, migration: Migration) -> None:
    try:
        request_abort(store, migration.id, by="cli (interrupt)")
        print("abort requested", file=sys.stderr)
    except UserError as exc:
        print(f"cannot abort: {exc}", file=sys.stderr)


def _print_outcome(migration: Migration, as_json: bool) -> None:
    if as_json:
        print_json(
            {
                "migration_id": migration.id,
                "status": migration.status.value,
                "instance": migration.instance,
                "source_host": migration.source_host,
                "dest_host": migration.dest_host,
                "total_s": migration.total_s,
                "downtime_ms": migration.downtime_ms,
                "bytes_sent": migration.bytes_sent,
                "iterations": migration.iterations,
                "failure": migration.failure,
            }
        )
        return
    if migration.status is Status.COMPLETED:
        detail = (
            f"{migration.instance} now on {migration.dest_host}"
            + (f", {migration.total_s:.1f} s" if migration.total_s is not None else "")
            + (f", downtime {migration.downtime_ms:.0f} ms" if migration.downtime_ms else "")
        )
    elif migration.failure:
        detail = f"{migration.failure.get('check') or migration.failure.get('phase')}: " + str(
            migration.failure.get("reason")
        )
    else:
        detail = f"{migration.instance} still on {migration.source_host}"
    print(f"{migration.status.value}: {detail}")


class ProgressBar:
    """One line on stderr: memory remaining, iteration, downtime limit, elapsed time.

    On a terminal the line is redrawn in place; otherwise a line is written per new iteration.
    """

    def __init__(self, stream: TextIO) -> None:
        self.stream = stream
        self.live = stream.isatty()
        self.last_line = ""
        self.last_iteration: int | None = None
        self.last_written_s = 0.0

    def show(self, view: ProgressView) -> None:
        stats = view.stats
        total = stats.memory_total_bytes or 0
        remaining = stats.memory_remaining_bytes or 0
        done = 0.0 if not total else 1 - remaining / total
        filled = int(done * BAR_WIDTH)
        line = (
            f"[{'#' * filled}{'-' * (BAR_WIDTH - filled)}] {view.status} "
            f"{remaining / MIB_BYTES:7.1f} MiB left | iteration {stats.iteration or 0} | "
            f"downtime limit {view.downtime_limit_ms or '-'} ms | {view.elapsed_s:5.1f} s"
        )
        if self.live:
            self.stream.write("\r" + line.ljust(len(self.last_line)))
            self.stream.flush()
        elif stats.iteration != self.last_iteration or time.monotonic() - self.last_written_s > 5:
            self.stream.write(line + "\n")
            self.stream.flush()
            self.last_written_s = time.monotonic()
        self.last_iteration = stats.iteration
        self.last_line = line

    def clear(self) -> None:
        if self.live and self.last_line:
            self.stream.write("\r" + " " * len(self.last_line) + "\r")
            self.stream.flush()
            self.last_line = ""
