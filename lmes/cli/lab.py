"""`lmes lab`: real libvirt hosts on this machine, and guests with a known dirtying rate."""

from __future__ import annotations

import argparse
import time

from lmes.units import format_rate, parse_rate


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "lab",
        help="start/stop libvirt hosts on this machine and create test guests",
        description=__doc__,
    )
    commands = parser.add_subparsers(dest="lab_command", parser_class=type(parser), required=True)

    up = commands.add_parser("up", help="start the lab's hosts (idempotent)")
    up.add_argument("--hosts", type=int, default=None, help="number of hosts (default 2)")
    virt = up.add_mutually_exclusive_group()
    virt.add_argument("--kvm", dest="virt", action="store_const", const="kvm",
                      help="guests under KVM (needs a working /dev/kvm)")  # fmt: skip
    virt.add_argument("--tcg", dest="virt", action="store_const", const="qemu",
                      help="guests under QEMU's TCG emulator")  # fmt: skip
    up.add_argument("--netns", action="store_true", default=None,
                    help="give each host its own network namespace and veth link")  # fmt: skip
    up.set_defaults(func=run_up, virt="auto")

    down = commands.add_parser("down", help="destroy guests and stop the lab's hosts")
    down.set_defaults(func=run_down)

    status = commands.add_parser("status", help="show the lab's hosts and their guests")
    status.set_defaults(func=run_status)

    guest = commands.add_parser("guest", help="create and start a guest that dirties memory")
    guest.add_argument("name")
    guest.add_argument("--memory-mb", type=int, default=256, help="guest memory (default 256)")
    guest.add_argument("--dirty-mb", type=int, default=64, help="dirty set size (default 64)")
    guest.add_argument("--dirty-rate", default="20MiB/s",
                       help="rate the dirty set is rewritten, e.g. 8MiB/s, 20MB/s")  # fmt: skip
    guest.add_argument("--host", default=None, help="lab host to start it on (default: first)")
    guest.add_argument("--disk-mb", type=int, default=0, help="add a local qcow2 disk (MiB)")
    guest.set_defaults(func=run_guest)


def run_up(args: argparse.Namespace) -> int:
    from lmes.executor.lab import lab_up, running_lab

    already_up = running_lab() is not None
    started = time.monotonic()
    lab = lab_up(args.hosts, args.virt, args.netns)
    elapsed_s = time.monotonic() - started
    state = "already up" if already_up else f"up in {elapsed_s:.1f} s"
    print(f"lab {state}: {len(lab.hosts)} hosts, virt {lab.virt_type}, network {lab.network}")
    for host in lab.hosts:
        print(f"  {host.name}  {host.uri}  migration {host.migration_uri}")
    print(f"hosts file: {lab.hosts_file}")
    return 0


def run_down(args: argparse.Namespace) -> int:
    from lmes.executor.lab import lab_down

    stopped = lab_down()
    print(f"lab down: stopped {', '.join(stopped)}" if stopped else "lab was not up")
    return 0


def run_status(args: argparse.Namespace) -> int:
    from lmes.executor.lab import lab_status

    statuses = lab_status()
    if not statuses:
        print("lab is down")
        return 0
    for status in statuses:
        state = "running" if status.running else "STOPPED"
        guests = ", ".join(status.guests) or "no guests"
        print(f"{status.name}  {state}  {status.uri}  {guests}")
    return 0


def run_guest(args: argparse.Namespace) -> int:
    from lmes.executor.lab import create_guest, load_lab

    rate_bytes_per_s = parse_rate(args.dirty_rate)
    lab = load_lab()
    guest = create_guest(
        lab,
        args.name,
        memory_mb=args.memory_mb,
        dirty_mb=args.dirty_mb,
        dirty_rate_bps=rate_bytes_per_s,
        host=args.host,
        disk_mb=args.disk_mb,
    )
    print(
        f"guest {guest.name} running on {guest.host}: {guest.memory_mb} MiB, dirtying "
        f"{guest.dirty_mb} MiB at {format_rate(guest.dirty_rate_bytes_per_s)}"
    )
    print(f"serial log: {guest.serial_log}")
    return 0
