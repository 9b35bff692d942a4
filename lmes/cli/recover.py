"""`lmes recover`: reconcile the migrations whose executor died with what libvirt says."""

from __future__ import annotations

import argparse
from dataclasses import asdict

from lmes.cli.common import add_store_argument, format_table, print_json, store_from_args
from lmes.cli.hosts import add_hosts_file_argument
from lmes.executor.service import Executor


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser(
        "recover",
        help="finish, roll back or take over migrations whose executor died",
    )
    add_hosts_file_argument(parser)
    add_store_argument(parser)
    parser.add_argument(
        "--abort-running",
        action="store_true",
        help="abort jobs libvirt still runs instead of monitoring them to their end",
    )
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    executor = Executor.from_hosts_file(store_from_args(args), args.hosts_file)
    try:
        results = executor.recover(take_over=not args.abort_running)
    finally:
        executor.close()
    rows = [asdict(result) for result in results]
    if args.json:
        print_json(rows)
    elif rows:
        print(format_table(rows, ["migration_id", "instance", "was", "action", "status"]))
    else:
        print("nothing to recover")
    return 0
