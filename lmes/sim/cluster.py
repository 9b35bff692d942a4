"""Many migrations at once: hosts, their NICs and fabric, Nova's queues and scheduler.

Each host has a NIC (one link per direction); hosts sit in racks whose uplinks (one per
direction) join a core of its own capacity. A migration's flow crosses the source NIC out and,
between racks, the source rack's uplink, the core and the destination rack's downlink, then the
destination NIC in. Concurrent flows share every link max-min fairly (`lmes.sim.network`).

Nova's rules for many migrations: each source host runs at most `max_concurrent_live_migrations`
at once (0 = unlimited), the rest wait queued in request order; the scheduler places an evacuated
VM on an enabled host with room for it (RAM and vCPUs), claiming the room at once as Nova's
placement does, and gives it back if the migration does not complete.
"""

from __future__ import annotations

from collections.abc import Callable, Generator
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import simpy

from lmes.domain.settings import Settings
from lmes.sim.network import Network
from lmes.sim.nova import MigrationPlan, MigrationResult, NovaMigration, Outcome

PLACEMENT_POLICIES = ("spread", "pack")


@dataclass
class VM:
    """A guest in the cluster and the plan to migrate it."""

    name: str
    host: str
    vcpus: int
    plan: MigrationPlan

    @property
    def memory_bytes(self) -> int:
        return self.plan.workload.memory_bytes


@dataclass
class Host:
    """A compute host: its capacity, what it holds and whether it takes new guests."""

    name: str
    rack: str
    memory_bytes: int
    vcpus: int
    nic_bytes_s: float
    used_memory_bytes: int = 0
    used_vcpus: int = 0
    enabled: bool = True
    vms: dict[str, VM] = field(default_factory=dict)

    def fits(self, vm: VM) -> bool:
        return (
            self.memory_bytes - self.used_memory_bytes >= vm.memory_bytes
            and self.vcpus - self.used_vcpus >= vm.vcpus
        )

    def claim(self, vm: VM) -> None:
        self.used_memory_bytes += vm.memory_bytes
        self.used_vcpus += vm.vcpus

    def release(self, vm: VM) -> None:
        self.used_memory_bytes -= vm.memory_bytes
        self.used_vcpus -= vm.vcpus


@dataclass(frozen=True)
class Fabric:
    """Capacities between racks (bytes/s); None means that tier never limits."""

    rack_uplink_bytes_s: float | None = None
    core_bytes_s: float | None = None


class Cluster:
    """Hosts, VMs and the network of one scenario, on one SimPy clock."""

    def __init__(
        self,
        hosts: list[Host],
        fabric: Fabric,
        settings: Settings,
        *,
        placement: str = "spread",
        keep_commands: bool = True,
    ) -> None:
        if placement not in PLACEMENT_POLICIES:
            raise ValueError(f"placement must be one of {', '.join(PLACEMENT_POLICIES)}")
        self.env = simpy.Environment()
        self.network = Network(self.env)
        self.hosts = {host.name: host for host in hosts}
        if len(self.hosts) != len(hosts):
            raise ValueError("host names must be unique")
        self.fabric = fabric
        self.settings = settings
        self.placement = placement
        self.keep_commands = keep_commands
        self.results: list[MigrationResult] = []
        self.on_result: Callable[[MigrationResult], None] | None = None
        self._slots: dict[str, simpy.Resource] = {}
        self._ordered = sorted(hosts, key=lambda host: host.name)
        self._index = {host.name: i for i, host in enumerate(self._ordered)}
        self._free_memory = np.array([h.memory_bytes for h in self._ordered], dtype=np.int64)
        self._free_vcpus = np.array([h.vcpus for h in self._ordered], dtype=np.int64)
        self._enabled = np.array([h.enabled for h in self._ordered], dtype=bool)
        self._preferred = np.zeros(len(self._ordered), dtype=bool)
        racks = sorted({host.rack for host in hosts})
        for host in hosts:
            self.network.add_link(f"{host.name}:out", host.nic_bytes_s)
            self.network.add_link(f"{host.name}:in", host.nic_bytes_s)
        if fabric.rack_uplink_bytes_s:
            for rack in racks:
                self.network.add_link(f"{rack}:up", fabric.rack_uplink_bytes_s)
                self.network.add_link(f"{rack}:down", fabric.rack_uplink_bytes_s)
        if fabric.core_bytes_s:
            self.network.add_link("core", fabric.core_bytes_s)

    def add_vm(self, vm: VM) -> None:
        host = self.hosts.get(vm.host)
        if host is None:
            raise ValueError(f"VM {vm.name} is on unknown host {vm.host}")
        host.vms[vm.name] = vm
        self._claim(host, vm)

    @property
    def vm_count(self) -> int:
        return sum(len(host.vms) for host in self.hosts.values())

    # ------------------------------------------------------------------ moving guests

    def path(self, source: Host, dest: Host) -> list[str]:
        path = [f"{source.name}:out"]
        if source.rack != dest.rack:
            if self.fabric.rack_uplink_bytes_s:
                path.append(f"{source.rack}:up")
            if self.fabric.core_bytes_s:
                path.append("core")
            if self.fabric.rack_uplink_bytes_s:
                path.append(f"{dest.rack}:down")
        path.append(f"{dest.name}:in")
        return path

    def choose_destination(self, vm: VM, source: Host) -> Host | None:
        """Nova's scheduler, simplified: enabled hosts with room, spread or packed by RAM.

        Ties go to the host first by name, so a run is the same for the same seed.
        """
        free_memory = self._free_memory
        fits = self._enabled & (free_memory >= vm.memory_bytes) & (self._free_vcpus >= vm.vcpus)
        fits[self._index[source.name]] = False
        if not fits.any():
            return None
        preferred = fits & self._preferred
        if preferred.any():
            fits = preferred
        if self.placement == "spread":
            choice = int(np.argmax(np.where(fits, free_memory, -1)))
        else:
            choice = int(np.argmin(np.where(fits, free_memory, np.iinfo(np.int64).max)))
        return self._ordered[choice]

    def prefer(self, host: Host) -> None:
        """Place guests on this host before any other (e.g. hosts already maintained)."""
        self._preferred[self._index[host.name]] = True

    def set_enabled(self, host: Host, enabled: bool) -> None:
        host.enabled = enabled
        self._enabled[self._index[host.name]] = enabled

    def _claim(self, host: Host, vm: VM) -> None:
        host.claim(vm)
        self._sync(host)

    def _release(self, host: Host, vm: VM) -> None:
        host.release(vm)
        self._sync(host)

    def _sync(self, host: Host) -> None:
        index = self._index[host.name]
        self._free_memory[index] = host.memory_bytes - host.used_memory_bytes
        self._free_vcpus[index] = host.vcpus - host.used_vcpus

    def evacuate(self, host_name: str) -> Generator[simpy.Event, Any, list[MigrationResult]]:
        """Live-migrate every guest off a host (it takes no new ones); wait for them all."""
        env = self.env
        source = self.hosts[host_name]
        self.set_enabled(source, False)
        processes = []
        for vm in list(source.vms.values()):
            processes.append(env.process(self._migrate(vm, source)))
        if processes:
            yield simpy.AllOf(env, processes)
        return [process.value for process in processes]

    def _migrate(self, vm: VM, source: Host) -> Generator[simpy.Event, Any, MigrationResult]:
        env = self.env
        dest = self.choose_destination(vm, source)
        if dest is None:
            result = unschedulable(vm, source.name, env.now, self.settings, self.keep_commands)
            self._finish(result)
            return result
        self._claim(dest, vm)
        migration = NovaMigration(
            env,
            self.network,
            vm.plan,
            path=self.path(source, dest),
            source_host=source.name,
            dest_host=dest.name,
            slots=self._slots_of(source),
            keep_commands=self.keep_commands,
        )
        result = yield env.process(migration.run())
        if result.outcome == Outcome.COMPLETED:
            del source.vms[vm.name]
            self._release(source, vm)
            vm.host = dest.name
            dest.vms[vm.name] = vm
        else:
            self._release(dest, vm)
        self._finish(result)
        return result

    def _slots_of(self, host: Host) -> simpy.Resource | None:
        limit = self.settings.max_concurrent_live_migrations
        if limit <= 0:
            return None
        if host.name not in self._slots:
            self._slots[host.name] = simpy.Resource(self.env, capacity=limit)
        return self._slots[host.name]

    def _finish(self, result: MigrationResult) -> None:
        self.results.append(result)
        if self.on_result is not None:
            self.on_result(result)


def unschedulable(
    vm: VM, source: str, at_s: float, settings: Settings, keep_commands: bool
) -> MigrationResult:
    """A migration the scheduler found no host for: Nova's NoValidHost, status `error`."""
    result = MigrationResult(
        instance=vm.name,
        source_host=source,
        dest_host=None,
        outcome=Outcome.ERROR,
        requested_s=at_s,
        ended_s=at_s,
        total_s=0.0,
        memory_bytes=vm.memory_bytes,
        reason="No valid host was found",
        settings=settings.as_dict(),
    )
    if keep_commands:
        result.commands.append(
            (at_s, "fail_precheck", {"check": "scheduler", "reason": result.reason})
        )
    return result
