"""`lmes abort ID` and `lmes force-complete ID`: requests recorded in the store.

The executor running the migration (in any process) reads them on its next monitor tick, as
Nova's compute manager acts on the API's abort and force-complete casts.
"""

from __future__ import annotations

import argparse

from lmes.cli.common import add_store_argument, store_from_args
from lmes.executor.service import request_abort, request_force_complete


def register(sub: argparse._SubParsersAction) -> None:
    abort = sub.add_parser("abort", help="ask the executor to abort a migration")
    abort.add_argument("id", help="migration id, or an unambiguous prefix of one")
    add_store_argument(abort)
    abort.set_defaults(func=run_abort)

    force = sub.add_parser(
        "force-complete",
        help="ask the executor to force a migration to complete (post-copy, else pause)",
    )
    force.add_argument("id", help="migration id, or an unambiguous prefix of one")
    add_store_argument(force)
    force.set_defaults(func=run_force_complete)


def run_abort(args: argparse.Namespace) -> int:
    migration = request_abort(store_from_args(args), args.id, by="cli")
    print(f"abort requested for {migration.id} ({migration.status.value})")
    return 0


def run_force_complete(args: argparse.Namespace) -> int:
    migration = request_force_complete(store_from_args(args), args.id, by="cli")
    print(f"force-complete requested for {migration.id} ({migration.status.value})")
    return 0
