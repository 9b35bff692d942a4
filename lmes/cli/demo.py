"""`lmes demo` (also plain `lmes`): the main job on the bundled examples.

It shows the three producers filling one store: the seed's nova-compute logs replayed, a
simulation of a migration under Nova's defaults, and, where this machine can run libvirt, a
real live migration between two lab hosts. Everything lands in the default store, so
`lmes list`, `lmes show` and the notebooks can be tried right after.
"""

from __future__ import annotations

import argparse
from datetime import UTC, datetime
from pathlib import Path

from lmes.errors import UserError

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def register(sub: argparse._SubParsersAction) -> None:
    demo = sub.add_parser("demo", help="replay, simulate and (with the lab) execute the examples")
    demo.add_argument(
        "--no-lab", action="store_true", help="skip the real migration between lab hosts"
    )
    demo.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from lmes.cli import main

    seed = EXAMPLES / "seed"
    if not seed.is_dir():
        raise UserError(f"the bundled examples are not at {EXAMPLES}: run lmes from its checkout")
    steps = [
        (
            "Replaying the seed's nova-compute logs (Nova Newton, node-1 -> node-3)",
            ["replay", str(seed)],
        ),
        (
            "Simulating a 2 GiB guest dirtying 40 MiB/s over 1 Gbit/s, Nova 2026.1 defaults",
            [
                "simulate",
                "--memory-mb",
                "2048",
                "--dirty-rate",
                "40MiB/s",
                "--bandwidth",
                "1Gbit/s",
            ],
        ),
    ]
    for title, argv in steps:
        _banner(title)
        status = main(argv)
        if status != 0:
            return status
    if not getattr(args, "no_lab", False):
        status = _real_migration(main)
        if status != 0:
            return status
    _banner("The store now holds")
    return main(["list"])


def _real_migration(main) -> int:
    """Bring up the lab (if it isn't), migrate a small dirtying guest, and leave things as found."""
    from lmes.executor.lab import lab_down, lab_up, remove_guest, running_lab

    _banner("Migrating a real guest between two libvirt hosts of the lab")
    already_up = running_lab()
    try:
        lab = already_up or lab_up(virt="tcg")
    except UserError as reason:
        print(f"skipped: this machine cannot run the lab ({reason})")
        return 0
    name = f"demo-{datetime.now(UTC):%Y%m%d-%H%M%S}"
    try:
        status = main(
            [
                "lab",
                "guest",
                name,
                "--memory-mb",
                "128",
                "--dirty-mb",
                "48",
                "--dirty-rate",
                "8MiB/s",
            ]
        )
        if status == 0:
            status = main(["migrate", name, "--live-migration-bandwidth", "32"])
        return status
    finally:
        remove_guest(lab, name)
        if already_up is None:
            lab_down()


def _banner(title: str) -> None:
    print(f"\n== {title}\n", flush=True)
