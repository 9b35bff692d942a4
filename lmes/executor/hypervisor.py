"""The hypervisor as the executor sees it: a small protocol, and its libvirt implementation.

The workflow speaks only to `Hypervisor` (one host) so that its logic runs against a fake in
unit tests and against real libvirt daemons in the lab and in production. Everything libvirt
specific (flags, job-stat keys, error codes, storage pools, events) stays in this module, and
libvirt-python is imported only when a libvirt host is opened.
"""

from __future__ import annotations

import contextlib
import hashlib
import threading
import uuid
import xml.etree.ElementTree as ET
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from enum import IntEnum, StrEnum
from pathlib import PurePosixPath
from typing import Any, Protocol

from lmes.executor.lab.hosts import HostConfig

MIB_BYTES = 1024**2

# Where a host keeps its instances' directories, as Nova's `instances_path` (a host-side path).
INSTANCES_PATH = "/var/lib/libvirt/lmes/instances"

# Nova starts a migration at this speed (MiB/s) while it waits for the destination's VIFs.
MIN_MIGRATION_SPEED_MIB_S = 1


class HostUnreachable(Exception):
    """The host's hypervisor cannot be reached (Nova: the compute service is down)."""


class HypervisorError(Exception):
    """A hypervisor call failed; `aborted` says whether it was a migration cancelled on request."""

    def __init__(self, message: str, *, code: int | None = None, aborted: bool = False) -> None:
        super().__init__(message)
        self.code = code
        self.aborted = aborted


class JobType(IntEnum):
    """libvirt's `virDomainJobType`, which Nova's monitor switches on."""

    NONE = 0
    BOUNDED = 1
    UNBOUNDED = 2
    COMPLETED = 3
    FAILED = 4
    CANCELLED = 5


class PowerState(StrEnum):
    RUNNING = "running"
    PAUSED = "paused"
    SHUTOFF = "shutoff"
    CRASHED = "crashed"
    SUSPENDED = "suspended"
    OTHER = "other"


# Nova's vm_state for each power state of a guest.
VM_STATES = {
    PowerState.RUNNING: "active",
    PowerState.PAUSED: "paused",
    PowerState.SHUTOFF: "stopped",
    PowerState.CRASHED: "error",
    PowerState.SUSPENDED: "suspended",
    PowerState.OTHER: "building",
}


class MigrationFlag(StrEnum):
    """The `VIR_MIGRATE_*` flags Nova combines, by their libvirt names."""

    LIVE = "live"
    PEER2PEER = "peer2peer"
    PERSIST_DEST = "persist_dest"
    UNDEFINE_SOURCE = "undefine_source"
    NON_SHARED_INC = "non_shared_inc"
    AUTO_CONVERGE = "auto_converge"
    POSTCOPY = "postcopy"


@dataclass(frozen=True)
class DiskInfo:
    """A guest disk; `local` ones are what a block migration copies (Nova's disk paths)."""

    target: str
    path: str
    format: str
    capacity_bytes: int
    local: bool


@dataclass(frozen=True)
class GuestInfo:
    name: str
    uuid: str
    host: str
    power_state: PowerState
    memory_bytes: int
    vcpus: int
    persistent: bool
    disks: tuple[DiskInfo, ...] = ()
    cpu_xml: str | None = None  # the guest's <cpu> definition when it names a model
    virt_type: str = "qemu"
    arch: str = "x86_64"
    machine: str | None = None

    @property
    def vm_state(self) -> str:
        return VM_STATES[self.power_state]

    @property
    def local_disks(self) -> tuple[DiskInfo, ...]:
        return tuple(disk for disk in self.disks if disk.local)


@dataclass(frozen=True)
class HostFacts:
    """What `lmes hosts` shows and what the conductor checks compare."""

    name: str
    reachable: bool
    error: str | None = None
    hypervisor_type: str | None = None
    hypervisor_version: int | None = None
    libvirt_version: int | None = None
    cpu_model: str | None = None
    cpu_arch: str | None = None
    free_memory_bytes: int | None = None
    free_disk_bytes: int | None = None
    running_instances: tuple[str, ...] = ()


@dataclass(frozen=True)
class JobStats:
    """One reading of a migration job (libvirt's `virDomainGetJobStats`)."""

    job_type: JobType
    elapsed_ms: int | None = None
    memory_total_bytes: int | None = None
    memory_processed_bytes: int | None = None
    memory_remaining_bytes: int | None = None
    dirty_rate_bytes_s: float | None = None
    iteration: int | None = None
    disk_total_bytes: int | None = None
    disk_processed_bytes: int | None = None
    disk_remaining_bytes: int | None = None
    data_processed_bytes: int | None = None
    downtime_ms: float | None = None
    memory_bps: float | None = None

    @classmethod
    def from_libvirt(cls, stats: dict[str, Any], job_type: JobType | None = None) -> JobStats:
        page_bytes = stats.get("memory_page_size") or 4096
        dirty_pages = stats.get("memory_dirty_rate")
        downtime = stats.get("downtime")
        return cls(
            job_type=job_type if job_type is not None else JobType(stats.get("type", 0)),
            elapsed_ms=stats.get("time_elapsed"),
            memory_total_bytes=stats.get("memory_total"),
            memory_processed_bytes=stats.get("memory_processed"),
            memory_remaining_bytes=stats.get("memory_remaining"),
            dirty_rate_bytes_s=None if dirty_pages is None else float(dirty_pages * page_bytes),
            iteration=stats.get("memory_iteration"),
            disk_total_bytes=stats.get("disk_total"),
            disk_processed_bytes=stats.get("disk_processed"),
            disk_remaining_bytes=stats.get("disk_remaining"),
            data_processed_bytes=stats.get("data_processed"),
            downtime_ms=None if downtime is None else float(downtime),
            memory_bps=stats.get("memory_bps"),
        )


class EventKind(StrEnum):
    LIFECYCLE = "lifecycle"
    MIGRATION_ITERATION = "migration_iteration"
    JOB_COMPLETED = "job_completed"


@dataclass(frozen=True)
class HypervisorEvent:
    host: str
    guest: str
    kind: EventKind
    detail: dict[str, Any] = field(default_factory=dict)


EventListener = Callable[[HypervisorEvent], None]


@dataclass(frozen=True)
class MigrationRequest:
    """What the source host needs to push a guest to the destination (`migrateToURI3`)."""

    guest: str
    destination: HostConfig
    flags: tuple[MigrationFlag, ...]
    bandwidth_mib_s: int
    disk_targets: tuple[str, ...] = ()


class Hypervisor(Protocol):
    """One host's hypervisor, with the operations Nova's libvirt driver uses."""

    host: HostConfig

    def facts(self) -> HostFacts: ...
    def guests(self) -> list[GuestInfo]: ...
    def guest(self, name: str) -> GuestInfo | None: ...
    def host_cpu_xml(self) -> str | None: ...
    def cpu_incompatibility(self, guest: GuestInfo, source_cpu_xml: str | None) -> str | None: ...

    # files, through the host's storage (works for remote hosts too)
    def make_dir(self, path: str) -> bool: ...
    def remove_dir(self, path: str) -> bool: ...
    def create_check_file(self, directory: str) -> str: ...
    def has_file(self, directory: str, name: str) -> bool: ...
    def remove_file(self, directory: str, name: str) -> bool: ...
    def free_disk_bytes(self, directory: str) -> int: ...
    def create_disk(self, disk: DiskInfo) -> bool: ...

    # the migration job, driven from the source
    def migrate(self, request: MigrationRequest) -> None: ...
    def job_stats(self, guest: str) -> JobStats: ...
    def completed_job_stats(self, guest: str) -> JobStats | None: ...
    def set_max_speed(self, guest: str, mib_s: int) -> None: ...
    def set_max_downtime(self, guest: str, downtime_ms: int) -> None: ...
    def max_downtime(self, guest: str) -> int | None: ...
    def start_post_copy(self, guest: str) -> None: ...
    def abort_job(self, guest: str) -> None: ...
    def pause(self, guest: str) -> None: ...
    def resume(self, guest: str) -> None: ...
    def destroy(self, guest: str) -> bool: ...
    def undefine(self, guest: str) -> bool: ...
    def subscribe(self, listener: EventListener) -> Callable[[], None]: ...
    def close(self) -> None: ...


Connector = Callable[[HostConfig], Hypervisor]


class Cloud:
    """The hosts of a hosts file, each reached through one cached hypervisor connection."""

    def __init__(self, hosts: Sequence[HostConfig], connect: Connector) -> None:
        self.hosts = list(hosts)
        self._connect = connect
        self._open: dict[str, Hypervisor] = {}
        self._lock = threading.Lock()

    def host(self, name: str) -> HostConfig | None:
        return next((host for host in self.hosts if host.name == name), None)

    def hypervisor(self, name: str) -> Hypervisor:
        """The open hypervisor of host `name`; `HostUnreachable` when it cannot be reached."""
        config = self.host(name)
        if config is None:
            raise HostUnreachable(f"host {name!r} is not in the hosts file")
        with self._lock:
            if name not in self._open:
                self._open[name] = self._connect(config)
            return self._open[name]

    def facts(self, name: str) -> HostFacts:
        try:
            facts = self.hypervisor(name).facts()
        except HostUnreachable as exc:
            return HostFacts(name=name, reachable=False, error=str(exc))
        if not facts.reachable:
            self.forget(name)  # a daemon that went away: reconnect next time
        return facts

    def find_guest(self, name: str) -> list[GuestInfo]:
        """Every host's guest called `name` (a guest defined on two hosts shows twice)."""
        found = []
        for host in self.hosts:
            try:
                guest = self.hypervisor(host.name).guest(name)
            except HostUnreachable:
                continue
            if guest is not None:
                found.append(guest)
        return found

    def forget(self, name: str) -> None:
        """Drop a connection that failed, so the next call reconnects."""
        with self._lock:
            hypervisor = self._open.pop(name, None)
        if hypervisor is not None:
            hypervisor.close()

    def close(self) -> None:
        with self._lock:
            opened, self._open = list(self._open.values()), {}
        for hypervisor in opened:
            hypervisor.close()


# --------------------------------------------------------------------------- libvirt

_event_loop_lock = threading.Lock()
_event_loop_started = False


def _libvirt() -> Any:
    """libvirt-python, with its event loop running (it must be registered before any open)."""
    global _event_loop_started
    from lmes.executor.lab.libvirt_client import libvirt_module

    libvirt = libvirt_module()
    with _event_loop_lock:
        if not _event_loop_started:
            libvirt.virEventRegisterDefaultImpl()

            def run() -> None:
                while True:
                    libvirt.virEventRunDefaultImpl()

            threading.Thread(target=run, name="libvirt-events", daemon=True).start()
            _event_loop_started = True
    return libvirt


def connect_libvirt(host: HostConfig) -> Hypervisor:
    """The default `Connector`: a libvirt connection to `host.uri`."""
    return LibvirtHypervisor(host)


_POWER_STATES = {1: PowerState.RUNNING, 3: PowerState.PAUSED, 5: PowerState.SHUTOFF}
_POWER_STATES.update({6: PowerState.CRASHED, 7: PowerState.SUSPENDED, 4: PowerState.SHUTOFF})

_FLAG_NAMES = {
    MigrationFlag.LIVE: "VIR_MIGRATE_LIVE",
    MigrationFlag.PEER2PEER: "VIR_MIGRATE_PEER2PEER",
    MigrationFlag.PERSIST_DEST: "VIR_MIGRATE_PERSIST_DEST",
    MigrationFlag.UNDEFINE_SOURCE: "VIR_MIGRATE_UNDEFINE_SOURCE",
    MigrationFlag.NON_SHARED_INC: "VIR_MIGRATE_NON_SHARED_INC",
    MigrationFlag.AUTO_CONVERGE: "VIR_MIGRATE_AUTO_CONVERGE",
    MigrationFlag.POSTCOPY: "VIR_MIGRATE_POSTCOPY",
}

CHECK_FILE_PREFIX = "lmes-shared-check-"


class LibvirtHypervisor:
    """A host reached through libvirt-python; every libvirt error becomes a `HypervisorError`."""

    def __init__(self, host: HostConfig) -> None:
        self.host = host
        self._libvirt = _libvirt()
        try:
            self._conn = self._libvirt.open(host.uri)
        except self._libvirt.libvirtError as exc:
            raise HostUnreachable(f"host {host.name} is unreachable: {_first_line(exc)}") from None
        self._listeners: list[EventListener] = []
        self._callbacks: list[int] = []
        self._pool_lock = threading.Lock()

    # ------------------------------------------------------------- facts

    def facts(self) -> HostFacts:
        try:
            caps = ET.fromstring(self._conn.getCapabilities())
            guests = self.guests()
            used_bytes = sum(
                g.memory_bytes for g in guests if g.power_state is not PowerState.SHUTOFF
            )
            capacity_bytes = self.host.capacity.memory_mb * MIB_BYTES
            return HostFacts(
                name=self.host.name,
                reachable=True,
                hypervisor_type=self._conn.getType(),
                hypervisor_version=self._conn.getVersion(),
                libvirt_version=self._conn.getLibVersion(),
                cpu_model=caps.findtext("host/cpu/model"),
                cpu_arch=caps.findtext("host/cpu/arch"),
                free_memory_bytes=max(0, capacity_bytes - used_bytes),
                free_disk_bytes=self.free_disk_bytes(INSTANCES_PATH),
                running_instances=tuple(
                    sorted(g.name for g in guests if g.power_state is not PowerState.SHUTOFF)
                ),
            )
        except self._libvirt.libvirtError as exc:
            return HostFacts(name=self.host.name, reachable=False, error=_first_line(exc))

    def guests(self) -> list[GuestInfo]:
        return [self._guest_info(domain) for domain in self._call(self._conn.listAllDomains)]

    def guest(self, name: str) -> GuestInfo | None:
        domain = self._domain(name)
        return None if domain is None else self._guest_info(domain)

    def host_cpu_xml(self) -> str | None:
        caps = ET.fromstring(self._call(self._conn.getCapabilities))
        cpu = caps.find("host/cpu")
        if cpu is None:
            return None
        for child in list(cpu):
            if child.tag not in ("arch", "model", "vendor", "feature", "topology"):
                cpu.remove(child)
        return ET.tostring(cpu, encoding="unicode")

    def cpu_incompatibility(self, guest: GuestInfo, source_cpu_xml: str | None) -> str | None:
        """Why this host cannot run the guest's CPU, or None (Nova's `_compare_cpu`).

        A guest that names a CPU model is compared with what this host's hypervisor can provide
        for its domain type (`compareHypervisorCPU`); a guest without one runs the source host's
        CPU, which is compared with this host's (`compareCPU`), as Nova does.
        """
        try:
            if guest.cpu_xml:
                result = self._conn.compareHypervisorCPU(
                    None, guest.arch, guest.machine, guest.virt_type, guest.cpu_xml, 0
                )
                what = "guest CPU"
            elif source_cpu_xml:
                result = self._conn.compareCPU(source_cpu_xml, 0)
                what = "source host CPU"
            else:
                return None
        except self._libvirt.libvirtError as exc:
            return f"CPU comparison failed: {_first_line(exc)}"
        if result <= 0:
            return (
                f"host {self.host.name} cannot run the {what} "
                f"(libvirt compare result {result}: incompatible)"
            )
        return None

    # ------------------------------------------------------------- files

    def make_dir(self, path: str) -> bool:
        """Create `path` on the host (with its parents); False when it already existed."""
        with self._pool_lock:
            pool, existed = self._dir_pool(path)
            return not existed

    def remove_dir(self, path: str) -> bool:
        """Delete `path` and the files in it; False when there was nothing to delete."""
        with self._pool_lock:
            pool, existed = self._dir_pool(path)
            for volume in self._call(pool.listAllVolumes):
                self._call(volume.delete, 0)
            if pool.isPersistent():
                self._call(pool.destroy)
                try:
                    self._call(pool.delete, 0)
                finally:
                    self._call(pool.undefine)
            return existed

    def create_check_file(self, directory: str) -> str:
        name = f"{CHECK_FILE_PREFIX}{uuid.uuid4().hex[:12]}"
        with self._pool_lock:
            pool, _ = self._dir_pool(directory)
            self._call(pool.createXML, _volume_xml(name, 0, "raw"), 0)
        return name

    def has_file(self, directory: str, name: str) -> bool:
        with self._pool_lock:
            pool, _ = self._dir_pool(directory)
            self._call(pool.refresh, 0)
            return name in self._call(pool.listVolumes)

    def remove_file(self, directory: str, name: str) -> bool:
        with self._pool_lock:
            pool, _ = self._dir_pool(directory)
            self._call(pool.refresh, 0)
            if name not in self._call(pool.listVolumes):
                return False
            self._call(self._call(pool.storageVolLookupByName, name).delete, 0)
            return True

    def free_disk_bytes(self, directory: str) -> int:
        with self._pool_lock:
            pool, _ = self._dir_pool(directory)
            self._call(pool.refresh, 0)
            available = int(self._call(pool.info)[3])
        return min(available, self.host.capacity.disk_gb * 1024**3)

    def create_disk(self, disk: DiskInfo) -> bool:
        """An empty image of the disk's size and format at its path; False if one was there."""
        path = PurePosixPath(disk.path)
        with self._pool_lock:
            pool, _ = self._dir_pool(str(path.parent))
            self._call(pool.refresh, 0)
            if path.name in self._call(pool.listVolumes):
                return False
            self._call(pool.createXML, _volume_xml(path.name, disk.capacity_bytes, disk.format), 0)
            return True

    # ------------------------------------------------------------- the migration job

    def migrate(self, request: MigrationRequest) -> None:
        """`migrateToURI3`, blocking until the job ends, on a connection of its own: while one
        call blocks on a connection, other calls on it (job stats, abort) can stall until the
        next keepalive (5 s), which would make the monitor blind and aborts late."""
        libvirt = self._libvirt
        try:
            connection = libvirt.open(self.host.uri)
        except libvirt.libvirtError as exc:
            raise HypervisorError(_first_line(exc), code=exc.get_error_code()) from None
        try:
            self._migrate_on(connection, request)
        finally:
            with contextlib.suppress(libvirt.libvirtError):
                connection.close()

    def _migrate_on(self, connection: Any, request: MigrationRequest) -> None:
        libvirt = self._libvirt
        try:
            domain = connection.lookupByName(request.guest)
        except libvirt.libvirtError as exc:
            raise HypervisorError(_first_line(exc), code=exc.get_error_code()) from None
        flags = 0
        for flag in request.flags:
            flags |= getattr(libvirt, _FLAG_NAMES[flag])
        params: dict[str, Any] = {libvirt.VIR_MIGRATE_PARAM_BANDWIDTH: request.bandwidth_mib_s}
        destination = request.destination
        if destination.migration_uri:
            params[libvirt.VIR_MIGRATE_PARAM_URI] = destination.migration_uri
        if destination.migration_address:
            params[libvirt.VIR_MIGRATE_PARAM_LISTEN_ADDRESS] = destination.migration_address
        if request.disk_targets:
            params[libvirt.VIR_MIGRATE_PARAM_MIGRATE_DISKS] = list(request.disk_targets)
        try:
            domain.migrateToURI3(destination.p2p_uri, params, flags)
        except libvirt.libvirtError as exc:
            code = exc.get_error_code()
            raise HypervisorError(
                _first_line(exc), code=code, aborted=code == libvirt.VIR_ERR_OPERATION_ABORTED
            ) from None

    def job_stats(self, guest: str) -> JobStats:
        domain = self._domain(guest)
        if domain is None:
            return JobStats(JobType.NONE)
        try:
            return JobStats.from_libvirt(domain.jobStats())
        except self._libvirt.libvirtError:
            return JobStats(JobType.NONE)

    def completed_job_stats(self, guest: str) -> JobStats | None:
        domain = self._domain(guest)
        if domain is None:
            return None
        try:
            stats = domain.jobStats(self._libvirt.VIR_DOMAIN_JOB_STATS_COMPLETED)
        except self._libvirt.libvirtError:
            return None
        if not stats or not stats.get("type"):
            return None
        return JobStats.from_libvirt(stats, JobType.COMPLETED)

    def set_max_speed(self, guest: str, mib_s: int) -> None:
        self._call(self._require_domain(guest).migrateSetMaxSpeed, _speed(mib_s), 0)

    def set_max_downtime(self, guest: str, downtime_ms: int) -> None:
        self._call(self._require_domain(guest).migrateSetMaxDowntime, downtime_ms, 0)

    def max_downtime(self, guest: str) -> int | None:
        domain = self._domain(guest)
        return None if domain is None else self._call(domain.migrateGetMaxDowntime, 0)

    def start_post_copy(self, guest: str) -> None:
        self._call(self._require_domain(guest).migrateStartPostCopy, 0)

    def abort_job(self, guest: str) -> None:
        self._call(self._require_domain(guest).abortJob)

    def pause(self, guest: str) -> None:
        self._call(self._require_domain(guest).suspend)

    def resume(self, guest: str) -> None:
        self._call(self._require_domain(guest).resume)

    def destroy(self, guest: str) -> bool:
        domain = self._domain(guest)
        if domain is None or not domain.isActive():
            return False
        self._call(domain.destroy)
        return True

    def undefine(self, guest: str) -> bool:
        domain = self._domain(guest)
        if domain is None:
            return False
        if domain.isPersistent():
            self._call(domain.undefine)
        return True

    # ------------------------------------------------------------- events

    def subscribe(self, listener: EventListener) -> Callable[[], None]:
        """Call `listener` for this host's domain events; returns the unsubscribe function."""
        self._listeners.append(listener)
        if not self._callbacks:
            self._register_callbacks()
        return lambda: self._listeners.remove(listener) if listener in self._listeners else None

    def _register_callbacks(self) -> None:
        libvirt = self._libvirt
        register = self._conn.domainEventRegisterAny
        self._callbacks = [
            register(
                None,
                libvirt.VIR_DOMAIN_EVENT_ID_LIFECYCLE,
                lambda _c, dom, event, detail, _o: self._emit(
                    dom, EventKind.LIFECYCLE, {"event": event, "detail": detail}
                ),
                None,
            ),
            register(
                None,
                libvirt.VIR_DOMAIN_EVENT_ID_MIGRATION_ITERATION,
                lambda _c, dom, iteration, _o: self._emit(
                    dom, EventKind.MIGRATION_ITERATION, {"iteration": iteration}
                ),
                None,
            ),
            register(
                None,
                libvirt.VIR_DOMAIN_EVENT_ID_JOB_COMPLETED,
                lambda _c, dom, stats, _o: self._emit(
                    dom, EventKind.JOB_COMPLETED, {"stats": dict(stats)}
                ),
                None,
            ),
        ]

    def _emit(self, domain: Any, kind: EventKind, detail: dict[str, Any]) -> None:
        event = HypervisorEvent(self.host.name, domain.name(), kind, detail)
        for listener in list(self._listeners):
            listener(event)

    def close(self) -> None:
        for callback in self._callbacks:
            with contextlib.suppress(self._libvirt.libvirtError):
                self._conn.domainEventDeregisterAny(callback)
        self._callbacks = []
        with contextlib.suppress(self._libvirt.libvirtError):
            self._conn.close()

    # ------------------------------------------------------------- internals

    def _call(self, method: Callable[..., Any], *args: Any) -> Any:
        try:
            return method(*args)
        except self._libvirt.libvirtError as exc:
            raise HypervisorError(_first_line(exc), code=exc.get_error_code()) from None

    def _domain(self, name: str) -> Any | None:
        try:
            return self._conn.lookupByName(name)
        except self._libvirt.libvirtError as exc:
            if exc.get_error_code() == self._libvirt.VIR_ERR_NO_DOMAIN:
                return None
            raise HypervisorError(_first_line(exc), code=exc.get_error_code()) from None

    def _require_domain(self, name: str) -> Any:
        domain = self._domain(name)
        if domain is None:
            raise HypervisorError(f"no guest {name} on host {self.host.name}")
        return domain

    def _guest_info(self, domain: Any) -> GuestInfo:
        state, _reason = self._call(domain.state)
        root = ET.fromstring(self._call(domain.XMLDesc, 0))
        os_type = root.find("os/type")
        # The CPU the guest asked for (Nova's `vcpu_model`): the persistent definition keeps
        # it, while the live one shows what the hypervisor gave (features it lacks dropped).
        persistent = bool(domain.isPersistent())
        defined = root
        if persistent:
            flags = self._libvirt.VIR_DOMAIN_XML_INACTIVE
            defined = ET.fromstring(self._call(domain.XMLDesc, flags))
        cpu = defined.find("cpu")
        cpu_xml = None
        if cpu is not None and cpu.findtext("model"):
            cpu_xml = ET.tostring(cpu, encoding="unicode")
        return GuestInfo(
            name=domain.name(),
            uuid=domain.UUIDString(),
            host=self.host.name,
            power_state=_POWER_STATES.get(state, PowerState.OTHER),
            memory_bytes=int(root.findtext("memory") or 0) * 1024,
            vcpus=int(root.findtext("vcpu") or 1),
            persistent=persistent,
            disks=tuple(self._disks(domain, root)),
            cpu_xml=cpu_xml,
            virt_type=root.get("type", "qemu"),
            arch=os_type.get("arch", "x86_64") if os_type is not None else "x86_64",
            machine=os_type.get("machine") if os_type is not None else None,
        )

    def _disks(self, domain: Any, root: ET.Element) -> list[DiskInfo]:
        disks = []
        for disk in root.findall("devices/disk"):
            if disk.get("device", "disk") != "disk":
                continue
            source = disk.find("source")
            target = disk.find("target")
            if source is None or target is None:
                continue
            path = source.get("file") or source.get("dev")
            if not path:
                continue
            local = (
                disk.get("type") in ("file", "block")
                and disk.find("readonly") is None
                and disk.find("shareable") is None
            )
            driver = disk.find("driver")
            try:
                capacity = int(domain.blockInfo(path)[0])
            except self._libvirt.libvirtError:
                capacity = 0
            disks.append(
                DiskInfo(
                    target=target.get("dev", ""),
                    path=path,
                    format=(driver.get("type") if driver is not None else None) or "raw",
                    capacity_bytes=capacity,
                    local=local,
                )
            )
        return disks

    def _dir_pool(self, path: str) -> tuple[Any, bool]:
        """An active directory pool over `path` (created if missing) and whether it existed.

        A directory's own pool cannot tell whether it was just built, but its parent's can:
        libvirt lists subdirectories as volumes of type `dir`.
        """
        pool = self._find_pool(path)
        if pool is not None:
            return pool, True
        target = PurePosixPath(path)
        existed = False
        if target.parent != target:
            parent = self._find_pool(str(target.parent)) or self._define_pool(str(target.parent))
            self._call(parent.refresh, 0)
            existed = target.name in self._call(parent.listVolumes)
        return self._define_pool(path), existed

    def _find_pool(self, path: str) -> Any | None:
        for pool in self._call(self._conn.listAllStoragePools, 0):
            target = ET.fromstring(self._call(pool.XMLDesc, 0)).findtext("target/path")
            if target and PurePosixPath(target) == PurePosixPath(path):
                if not pool.isActive():
                    self._call(pool.create, self._libvirt.VIR_STORAGE_POOL_CREATE_WITH_BUILD)
                return pool
        return None

    def _define_pool(self, path: str) -> Any:
        name = "lmes-" + hashlib.sha1(path.encode()).hexdigest()[:16]
        xml = f"<pool type='dir'><name>{name}</name><target><path>{path}</path></target></pool>"
        pool = self._call(self._conn.storagePoolDefineXML, xml, 0)
        self._call(pool.create, self._libvirt.VIR_STORAGE_POOL_CREATE_WITH_BUILD)
        return pool


def _speed(mib_s: int) -> int:
    """libvirt's bandwidth: 0 (Nova's "hypervisor default") means no cap, libvirt's maximum."""
    return mib_s if mib_s > 0 else 8796093022207


def _volume_xml(name: str, capacity_bytes: int, fmt: str) -> str:
    return (
        f"<volume><name>{name}</name><capacity unit='bytes'>{capacity_bytes}</capacity>"
        f"<target><format type='{fmt}'/></target></volume>"
    )


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    return text.splitlines()[0]
