"""Nova's live-migration checks: the conductor's, then the destination's and the source's.

Each failed check raises `CheckFailed` named after the exception Nova raises for it, so an
operator reading lmes's `DestinationRejected` / `PrecheckFailed` events sees Nova's words.
"""

from __future__ import annotations

from dataclasses import dataclass

from lmes.executor.hypervisor import (
    INSTANCES_PATH,
    Cloud,
    GuestInfo,
    HostFacts,
    HostUnreachable,
    HypervisorError,
)

MIB_BYTES = 1024**2


class CheckFailed(Exception):
    """A check refused the migration; `check` is Nova's exception name."""

    def __init__(self, check: str, reason: str) -> None:
        super().__init__(reason)
        self.check = check
        self.reason = reason


@dataclass(frozen=True)
class LiveMigrateData:
    """What the destination and source checks learnt (Nova's `LibvirtLiveMigrateData`)."""

    block_migration: bool
    is_shared_instance_path: bool
    is_shared_block_storage: bool
    disk_available_bytes: int


def check_source_up(cloud: Cloud, guest: GuestInfo) -> HostFacts:
    facts = cloud.facts(guest.host)
    if not facts.reachable:
        raise CheckFailed(
            "ComputeServiceUnavailable", f"source host {guest.host} is down: {facts.error}"
        )
    return facts


def check_destination(cloud: Cloud, guest: GuestInfo, source: HostFacts, dest: str) -> HostFacts:
    """The conductor's checks of a destination: not the source, up, memory, hypervisor."""
    if dest == guest.host:
        raise CheckFailed(
            "UnableToMigrateToSelf",
            f"unable to migrate instance {guest.name} to current host ({dest})",
        )
    facts = cloud.facts(dest)
    if not facts.reachable:
        raise CheckFailed("ComputeServiceUnavailable", f"compute service of {dest} is unavailable")
    check_memory(guest, facts)
    check_hypervisor_compatible(source, facts)
    return facts


def check_memory(guest: GuestInfo, dest: HostFacts) -> None:
    available_mb = (dest.free_memory_bytes or 0) // MIB_BYTES
    needed_mb = guest.memory_bytes // MIB_BYTES
    if not needed_mb or available_mb <= needed_mb:
        raise CheckFailed(
            "MigrationPreCheckError",
            f"unable to migrate {guest.name} to {dest.name}: lack of memory "
            f"(host:{available_mb} <= instance:{needed_mb})",
        )


def check_hypervisor_compatible(source: HostFacts, dest: HostFacts) -> None:
    if source.hypervisor_type != dest.hypervisor_type:
        raise CheckFailed(
            "InvalidHypervisorType",
            f"destination {dest.name} runs {dest.hypervisor_type}, "
            f"the source runs {source.hypervisor_type}",
        )
    if (source.hypervisor_version or 0) > (dest.hypervisor_version or 0):
        raise CheckFailed(
            "DestinationHypervisorTooOld",
            f"destination {dest.name} runs hypervisor version {dest.hypervisor_version}, "
            f"older than the source's {source.hypervisor_version}",
        )


def check_can_live_migrate(
    cloud: Cloud, guest: GuestInfo, dest: str, block_migration: str
) -> LiveMigrateData:
    """The destination's check (CPU, shared-storage test file) then the source's (storage,
    block migration decision, disk room), and the test file cleaned up in every case."""
    try:
        destination = cloud.hypervisor(dest)
        source = cloud.hypervisor(guest.host)
    except HostUnreachable as exc:
        raise CheckFailed("ComputeServiceUnavailable", str(exc)) from None
    try:
        problem = destination.cpu_incompatibility(guest, source.host_cpu_xml())
        if problem:
            raise CheckFailed("InvalidCPUInfo", problem)
        check_file = destination.create_check_file(INSTANCES_PATH)
        try:
            shared_path = source.has_file(INSTANCES_PATH, check_file)
        finally:
            destination.remove_file(INSTANCES_PATH, check_file)
        disk_available = destination.free_disk_bytes(INSTANCES_PATH)
    except HypervisorError as exc:
        raise CheckFailed("MigrationPreCheckError", f"checks on {dest} failed: {exc}") from None
    # A guest without local disks has nothing to copy: Nova counts it as shared block storage.
    shared_block = not guest.local_disks
    shared = shared_path or shared_block
    block = not shared if block_migration == "auto" else block_migration == "true"
    if block and shared_path:
        raise CheckFailed(
            "InvalidSharedStorage",
            f"{guest.host} and {dest} share the instance path: block migration cannot be used",
        )
    if not block and not shared:
        raise CheckFailed(
            "InvalidSharedStorage",
            f"{guest.name} is not on shared storage: live migration without block migration "
            "needs shared storage or no local disks",
        )
    if block:
        needed = sum(disk.capacity_bytes for disk in guest.local_disks)
        if disk_available < needed:
            raise CheckFailed(
                "MigrationPreCheckError",
                f"unable to migrate {guest.name}: disk of instance is too large "
                f"(available on destination host:{disk_available // MIB_BYTES} MiB "
                f"< need:{needed // MIB_BYTES} MiB)",
            )
    return LiveMigrateData(
        block_migration=block,
        is_shared_instance_path=shared_path,
        is_shared_block_storage=shared_block,
        disk_available_bytes=disk_available,
    )
