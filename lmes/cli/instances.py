"""`lmes instances`: the guests found on the hosts, with Nova's vm_state and task_state."""

from __future__ import annotations

import argparse
from dataclasses import asdict

from lmes.cli.common import add_store_argument, format_table, print_json, store_from_args
from lmes.cli.hosts import add_hosts_file_argument
from lmes.executor.service import Executor


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser("instances", help="guests on the hosts, with vm_state and task_state")
    add_hosts_file_argument(parser)
    add_store_argument(parser)
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    executor = Executor.from_hosts_file(store_from_args(args), args.hosts_file)
    try:
        rows = executor.instances()
    finally:
        executor.close()
    if args.json:
        print_json([asdict(row) for row in rows])
        return 0
    columns = ["name", "host", "vm_state", "task_state", "memory_mb", "migration_id"]
    print(format_table([asdict(row) for row in rows], columns))
    return 0
