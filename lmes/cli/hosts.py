"""`lmes hosts`: each host of the hosts file, whether it is reachable, and what it runs."""

from __future__ import annotations

import argparse
from dataclasses import asdict

from lmes.cli.common import format_table, print_json
from lmes.executor.service import Executor, default_hosts_file
from lmes.store import open_store

MIB_BYTES = 1024**2


def add_hosts_file_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--hosts-file",
        metavar="FILE",
        help="hosts file (TOML; default: $LMES_HOSTS, else $LMES_HOME/lab/hosts.toml)",
    )


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser("hosts", help="the libvirt hosts lmes migrates between")
    add_hosts_file_argument(parser)
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    executor = Executor.from_hosts_file(open_store("memory:"), args.hosts_file)
    try:
        facts = executor.host_facts()
    finally:
        executor.close()
    if args.json:
        print_json([asdict(f) for f in facts])
        return 0
    rows = [
        {
            "host": f.name,
            "state": "up" if f.reachable else "down",
            "hypervisor": f"{f.hypervisor_type} {_version(f.hypervisor_version)}"
            if f.reachable
            else None,
            "cpu": f.cpu_model,
            "free_memory_mb": None
            if f.free_memory_bytes is None
            else f.free_memory_bytes // MIB_BYTES,
            "instances": ", ".join(f.running_instances) if f.reachable else f.error,
        }
        for f in facts
    ]
    print(f"hosts file: {executor.hosts_file or default_hosts_file()}")
    print(format_table(rows, list(rows[0]) if rows else ["host"]))
    return 0


def _version(number: int | None) -> str:
    """libvirt's version integers (major * 1,000,000 + minor * 1,000 + release) as text."""
    if number is None:
        return "?"
    return f"{number // 1_000_000}.{number // 1000 % 1000}.{number % 1000}"
