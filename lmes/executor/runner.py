"""The executor as a background process: `lmes migrate --detach`, and take-overs by recovery.

The parent hands its lease (an open, locked file) to the child, so the migration is never
without a live holder between the two processes. The child writes its log next to the lease.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from uuid import UUID

from lmes.executor.lease import Lease, adopt_lease, lease_dir

ACTIONS = ("execute", "take-over")


def spawn_runner(
    action: str, migration_id: UUID, lease: Lease, *, store_url: str, hosts_file: str | None
) -> int:
    """Start the background executor for `migration_id`; returns its pid. The parent may
    release its copy of the lease afterwards: the child's copy keeps the lock."""
    descriptor = lease.inheritable()
    command = [
        sys.executable,
        "-m",
        "lmes.executor.runner",
        action,
        str(migration_id),
        "--lease-fd",
        str(descriptor),
        "--store",
        store_url,
    ]
    if hosts_file:
        command += ["--hosts-file", hosts_file]
    log_path = lease_dir() / f"{migration_id}.log"
    with open(log_path, "ab") as log, open(os.devnull, "rb") as nothing:
        process = subprocess.Popen(
            command,
            stdin=nothing,
            stdout=log,
            stderr=log,
            pass_fds=(descriptor,),
            start_new_session=True,
            env={**os.environ, "PYTHONPATH": _python_path()},
        )
    return process.pid


def _python_path() -> str:
    """Make the child import this same lmes, installed or run from a checkout."""
    here = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    existing = os.environ.get("PYTHONPATH")
    return here if not existing else f"{here}{os.pathsep}{existing}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m lmes.executor.runner")
    parser.add_argument("action", choices=ACTIONS)
    parser.add_argument("migration_id", type=UUID)
    parser.add_argument("--lease-fd", type=int, required=True)
    parser.add_argument("--store", required=True)
    parser.add_argument("--hosts-file")
    args = parser.parse_args(argv)

    from lmes.executor.service import Executor
    from lmes.store import open_store

    lease = adopt_lease(args.migration_id, args.lease_fd)
    store = open_store(args.store)
    executor = Executor.from_hosts_file(store, args.hosts_file)
    try:
        if args.action == "execute":
            migration = executor.execute(args.migration_id)
            print(f"{migration.id} {migration.status.value}", flush=True)
        else:
            for result in executor.recover(only=args.migration_id, lease=lease):
                print(f"{result.migration_id} {result.action}: {result.status}", flush=True)
    finally:
        lease.release()
        executor.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
