"""An in-memory cloud of hypervisors for the workflow's logic tests.

Each `FakeHypervisor` keeps guests, files and a migration job whose memory copy advances on a
background thread at the job's bandwidth against the guest's dirtying rate, so convergence,
aborts, post-copy and pauses happen as they would, only in milliseconds.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field, replace

from lmes.executor.hypervisor import (
    DiskInfo,
    EventKind,
    GuestInfo,
    HostFacts,
    HostUnreachable,
    HypervisorError,
    HypervisorEvent,
    JobStats,
    JobType,
    MigrationFlag,
    MigrationRequest,
    PowerState,
)
from lmes.executor.lab.hosts import Capacity, HostConfig

MIB = 1024**2
JOB_STEP_S = 0.005


def host_config(name: str, memory_mb: int = 4096) -> HostConfig:
    return HostConfig(
        name=name,
        uri=f"fake:///{name}",
        p2p_uri=f"fake+p2p:///{name}",
        migration_address="127.0.0.1",
        migration_uri="tcp://127.0.0.1",
        capacity=Capacity(memory_mb=memory_mb, vcpus=4, disk_gb=100),
    )


@dataclass
class FakeGuest:
    info: GuestInfo
    dirty_rate_bytes_s: float = 0.0


@dataclass
class FakeJob:
    request: MigrationRequest
    bandwidth_bytes_s: float
    remaining_bytes: float
    total_bytes: int
    processed_bytes: float = 0.0
    iteration: int = 1
    iteration_left_bytes: float = 0.0
    iteration_size_bytes: float = 0.0
    downtime_ms: int = 300
    aborted: bool = False
    post_copy: bool = False
    started: float = field(default_factory=time.monotonic)


class FakeCloudState:
    """What all fake hosts share: who is up, and a registry to move guests between them."""

    def __init__(self) -> None:
        self.hypervisors: dict[str, FakeHypervisor] = {}
        self.down: set[str] = set()
        self.incompatible_cpu: set[str] = set()
        self.shared_storage = False
        self.versions: dict[str, tuple[str, int]] = {}

    def connect(self, host: HostConfig) -> FakeHypervisor:
        if host.name in self.down:
            raise HostUnreachable(f"host {host.name} is unreachable: connection refused")
        if host.name not in self.hypervisors:
            self.hypervisors[host.name] = FakeHypervisor(host, self)
        return self.hypervisors[host.name]


class FakeHypervisor:
    def __init__(self, host: HostConfig, state: FakeCloudState) -> None:
        self.host = host
        self.state = state
        self.guests_by_name: dict[str, FakeGuest] = {}
        self.files: set[str] = set()
        self.jobs: dict[str, FakeJob] = {}
        self.completed: dict[str, JobStats] = {}
        self.listeners: list[Callable[[HypervisorEvent], None]] = []
        self.max_downtime_ms: dict[str, int] = {}
        self.lock = threading.Lock()

    # ------------------------------------------------------------- set-up

    def add_guest(
        self,
        name: str,
        memory_mb: int = 256,
        dirty_rate_bytes_s: float = 0.0,
        state: PowerState = PowerState.RUNNING,
        disks: tuple[DiskInfo, ...] = (),
    ) -> GuestInfo:
        info = GuestInfo(
            name=name,
            uuid=str(uuid.uuid5(uuid.NAMESPACE_DNS, name)),
            host=self.host.name,
            power_state=state,
            memory_bytes=memory_mb * MIB,
            vcpus=1,
            persistent=True,
            disks=disks,
        )
        self.guests_by_name[name] = FakeGuest(info, dirty_rate_bytes_s)
        return info

    # ------------------------------------------------------------- facts

    def facts(self) -> HostFacts:
        kind, version = self.state.versions.get(self.host.name, ("QEMU", 7002000))
        used = sum(g.info.memory_bytes for g in self.guests_by_name.values())
        return HostFacts(
            name=self.host.name,
            reachable=True,
            hypervisor_type=kind,
            hypervisor_version=version,
            libvirt_version=9000000,
            cpu_model="fake64",
            cpu_arch="x86_64",
            free_memory_bytes=self.host.capacity.memory_mb * MIB - used,
            free_disk_bytes=self.host.capacity.disk_gb * 1024**3,
            running_instances=tuple(sorted(self.guests_by_name)),
        )

    def guests(self) -> list[GuestInfo]:
        return [g.info for g in self.guests_by_name.values()]

    def guest(self, name: str) -> GuestInfo | None:
        found = self.guests_by_name.get(name)
        return None if found is None else found.info

    def host_cpu_xml(self) -> str | None:
        return "<cpu><arch>x86_64</arch><model>fake64</model></cpu>"

    def cpu_incompatibility(self, guest: GuestInfo, source_cpu_xml: str | None) -> str | None:
        if self.host.name in self.state.incompatible_cpu:
            return f"host {self.host.name} cannot run the guest CPU"
        return None

    # ------------------------------------------------------------- files

    def _path(self, path: str) -> str:
        return path if not self.state.shared_storage else f"shared:{path}"

    def _all_files(self) -> set[str]:
        if self.state.shared_storage:
            return set().union(*(h.files for h in self.state.hypervisors.values()))
        return self.files

    def make_dir(self, path: str) -> bool:
        key = self._path(path) + "/"
        existed = key in self._all_files()
        self.files.add(key)
        return not existed

    def remove_dir(self, path: str) -> bool:
        key = self._path(path) + "/"
        existed = key in self.files
        self.files = {f for f in self.files if not f.startswith(key)}
        return existed

    def create_check_file(self, directory: str) -> str:
        name = f"check-{uuid.uuid4().hex[:8]}"
        self.files.add(self._path(f"{directory}/{name}"))
        return name

    def has_file(self, directory: str, name: str) -> bool:
        return self._path(f"{directory}/{name}") in self._all_files()

    def remove_file(self, directory: str, name: str) -> bool:
        key = self._path(f"{directory}/{name}")
        for hypervisor in self.state.hypervisors.values():
            if key in hypervisor.files:
                hypervisor.files.discard(key)
                return True
        return False

    def free_disk_bytes(self, directory: str) -> int:
        return self.host.capacity.disk_gb * 1024**3

    def create_disk(self, disk: DiskInfo) -> bool:
        key = self._path(disk.path)
        if key in self.files:
            return False
        self.files.add(key)
        return True

    # ------------------------------------------------------------- the job

    def migrate(self, request: MigrationRequest) -> None:
        guest = self.guests_by_name.get(request.guest)
        if guest is None:
            raise HypervisorError(f"no guest {request.guest}")
        destination = self.state.connect(request.destination)
        memory = guest.info.memory_bytes
        job = FakeJob(
            request=request,
            bandwidth_bytes_s=_bandwidth(request.bandwidth_mib_s),
            remaining_bytes=memory,
            total_bytes=memory,
            iteration_left_bytes=memory,
            iteration_size_bytes=memory,
        )
        self.jobs[request.guest] = job
        destination.guests_by_name[request.guest] = FakeGuest(
            replace(guest.info, host=destination.host.name, power_state=PowerState.PAUSED)
        )
        try:
            while True:
                time.sleep(JOB_STEP_S)
                with self.lock:
                    if job.aborted:
                        del destination.guests_by_name[request.guest]
                        raise HypervisorError(
                            "operation aborted: job 'migration out' canceled by client",
                            code=78,
                            aborted=True,
                        )
                    if job.post_copy or self._step(job, guest):
                        break
        finally:
            self.jobs.pop(request.guest, None)
        stats = JobStats(
            job_type=JobType.COMPLETED,
            elapsed_ms=int((time.monotonic() - job.started) * 1000),
            memory_total_bytes=job.total_bytes,
            memory_processed_bytes=int(job.processed_bytes),
            memory_remaining_bytes=0,
            iteration=job.iteration,
            data_processed_bytes=int(job.processed_bytes),
            downtime_ms=float(min(job.downtime_ms, 20)),
        )
        destination.guests_by_name[request.guest] = FakeGuest(
            replace(guest.info, host=destination.host.name, power_state=PowerState.RUNNING),
            guest.dirty_rate_bytes_s,
        )
        destination.completed[request.guest] = stats
        del self.guests_by_name[request.guest]
        self._emit(request.guest, EventKind.JOB_COMPLETED, {})

    def _step(self, job: FakeJob, guest: FakeGuest) -> bool:
        """Copy one step's worth of memory; True when the rest fits in the allowed downtime.

        Each pass sends what the previous one left dirty: the dirtying rate times its duration.
        """
        sent = job.bandwidth_bytes_s * JOB_STEP_S
        job.processed_bytes += sent
        job.iteration_left_bytes -= sent
        if job.iteration_left_bytes <= 0:
            paused = guest.info.power_state is PowerState.PAUSED
            dirty_rate = 0.0 if paused else guest.dirty_rate_bytes_s
            duration_s = job.iteration_size_bytes / job.bandwidth_bytes_s
            job.iteration += 1
            job.iteration_size_bytes = min(job.total_bytes, dirty_rate * duration_s)
            job.iteration_left_bytes = job.iteration_size_bytes
            self._emit(
                job.request.guest, EventKind.MIGRATION_ITERATION, {"iteration": job.iteration}
            )
            allowed = job.bandwidth_bytes_s * job.downtime_ms / 1000
            if job.iteration_size_bytes <= allowed:
                return True
        job.remaining_bytes = max(job.iteration_left_bytes, 0.0)
        return False

    def job_stats(self, guest: str) -> JobStats:
        job = self.jobs.get(guest)
        if job is None:
            return JobStats(JobType.NONE)
        return JobStats(
            job_type=JobType.UNBOUNDED,
            elapsed_ms=int((time.monotonic() - job.started) * 1000),
            memory_total_bytes=job.total_bytes,
            memory_processed_bytes=int(job.processed_bytes),
            memory_remaining_bytes=int(job.remaining_bytes),
            iteration=job.iteration,
        )

    def completed_job_stats(self, guest: str) -> JobStats | None:
        return self.completed.get(guest)

    def set_max_speed(self, guest: str, mib_s: int) -> None:
        self._job(guest).bandwidth_bytes_s = _bandwidth(mib_s)

    def set_max_downtime(self, guest: str, downtime_ms: int) -> None:
        self.max_downtime_ms[guest] = downtime_ms
        self._job(guest).downtime_ms = downtime_ms

    def max_downtime(self, guest: str) -> int | None:
        return self.max_downtime_ms.get(guest)

    def start_post_copy(self, guest: str) -> None:
        job = self._job(guest)
        if MigrationFlag.POSTCOPY not in job.request.flags:
            raise HypervisorError("post-copy migration is not enabled")
        job.post_copy = True

    def abort_job(self, guest: str) -> None:
        self._job(guest).aborted = True

    def pause(self, guest: str) -> None:
        self._set_state(guest, PowerState.PAUSED)

    def resume(self, guest: str) -> None:
        self._set_state(guest, PowerState.RUNNING)

    def destroy(self, guest: str) -> bool:
        found = self.guests_by_name.get(guest)
        if found is None:
            return False
        found.info = replace(found.info, power_state=PowerState.SHUTOFF)
        return True

    def undefine(self, guest: str) -> bool:
        return self.guests_by_name.pop(guest, None) is not None

    def subscribe(self, listener: Callable[[HypervisorEvent], None]) -> Callable[[], None]:
        self.listeners.append(listener)
        return lambda: self.listeners.remove(listener)

    def close(self) -> None:
        return None

    # ------------------------------------------------------------- internals

    def _job(self, guest: str) -> FakeJob:
        job = self.jobs.get(guest)
        if job is None:
            raise HypervisorError(f"no migration job for {guest}")
        return job

    def _set_state(self, guest: str, state: PowerState) -> None:
        found = self.guests_by_name.get(guest)
        if found is None:
            raise HypervisorError(f"no guest {guest}")
        found.info = replace(found.info, power_state=state)

    def _emit(self, guest: str, kind: EventKind, detail: dict) -> None:
        for listener in list(self.listeners):
            listener(HypervisorEvent(self.host.name, guest, kind, detail))


def _bandwidth(mib_s: int) -> float:
    return (mib_s if mib_s > 0 else 10_000) * MIB
