"""Choosing a destination when none is given, as Nova's scheduler does for a live migration.

The filters drop hosts that are down or lack the guest's memory; the weigher prefers the host
with the most free memory (Nova's RAM weigher), and the name breaks ties so a choice repeats.
"""

from __future__ import annotations

from collections.abc import Collection

from lmes.executor.checks import CheckFailed, check_memory
from lmes.executor.hypervisor import Cloud, GuestInfo, HostFacts


def select_destination(cloud: Cloud, guest: GuestInfo, ignore: Collection[str]) -> HostFacts:
    """The best host for `guest` not in `ignore`; `CheckFailed("NoValidHost")` when none is."""
    candidates = []
    for host in cloud.hosts:
        if host.name == guest.host or host.name in ignore:
            continue
        facts = cloud.facts(host.name)
        if not facts.reachable:
            continue
        try:
            check_memory(guest, facts)
        except CheckFailed:
            continue
        candidates.append(facts)
    if not candidates:
        raise CheckFailed(
            "NoValidHost", f"no valid host was found for {guest.name}: no host passed the filters"
        )
    return min(candidates, key=lambda facts: (-(facts.free_memory_bytes or 0), facts.name))
