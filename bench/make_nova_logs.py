"""Write realistic nova-compute logs with many live migrations buried in everyday noise.

Each host gets `<out>/<host>/nova-compute.log`. Most lines have nothing to do with live migration
(periodic tasks, the resource tracker, RPC calls, Neutron and Cinder requests, DEBUG chatter), as
in a real deployment; among them run thousands of migrations across many instances and hosts, in
the message formats of several Nova eras (Newton's exponential ramp, Ocata's linear one, Train's
disk progress, Wallaby's `[None req-…]` contexts), some failing, some cancelled by the completion
timeout, some switched to post-copy. The lines follow oslo.log's format and the templates of
`research/nova_log_messages.json`.

    python3 bench/make_nova_logs.py --out bench/data/logs --size 2G
    python3 bench/make_nova_logs.py --out bench/data/logs --small
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from lmes.domain import policy
from lmes.domain.releases import NEWTON, OCATA, Release

GIB = 1024**3
MIB = 1024**2
WINDOW_S = 300.0
MONITOR_TICK_S = 0.5


@dataclass(frozen=True)
class Era:
    """How one Nova release writes its logs."""

    name: str
    release: Release
    python: str  # site-packages path
    context_style: (
        str  # "newton" "[req-… u p - - -]" or "modern" "[None req-… u p - - default default]"
    )
    took_line: bool  # "Took … seconds for pre_live_migration on destination host" (18+)
    migrate_api_lines: bool  # "About to invoke the migrate API" (18+)
    disk_progress: bool  # Train's "…; disk N% remaining (…)." (20+)
    failed_status_on_rollback: str  # "error" up to Ussuri, "failed" from Victoria

    @property
    def ramp_release(self) -> Release:
        return NEWTON if self.release.major <= 14 else OCATA


ERAS = {
    "newton": Era(
        "newton", NEWTON, "/usr/lib/python2.7/site-packages", "newton", False, False, False, "error"
    ),
    "queens": Era(
        "queens",
        Release.parse("queens"),
        "/usr/lib/python2.7/site-packages",
        "newton",
        False,
        False,
        False,
        "error",
    ),
    "train": Era(
        "train",
        Release.parse("train"),
        "/usr/lib/python3.6/site-packages",
        "modern",
        True,
        True,
        True,
        "error",
    ),
    "wallaby": Era(
        "wallaby",
        Release.parse("wallaby"),
        "/usr/lib/python3.8/site-packages",
        "modern",
        True,
        True,
        True,
        "failed",
    ),
}


@dataclass
class PlannedMigration:
    """One migration to write: who, where, in which era, and how it ends."""

    era: Era
    instance: str
    request_id: str
    source: str
    dest: str
    start_s: float
    outcome: str  # completed failed precheck_error pre_failed cancelled post_copy incomplete
    memory_mb: int
    transfer_bytes_s: float
    dirty_bytes_s: float
    downtime_ms: int = 500
    steps: int = 10
    delay_s: int = 75
    completion_timeout_per_gb_s: int = 800
    port_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    user: str = "6c3c0761000f423780b2d1cbf4459dc5"
    project: str = "a899ce15f11740ab864a57b888163d3a"
    network_cleanup_fails: bool = False


class Clock:
    """Formats epoch seconds as oslo.log does, caching the second part (it repeats a lot)."""

    def __init__(self) -> None:
        self._second = -1
        self._text = ""

    def __call__(self, t: float) -> str:
        second = int(t)
        if second != self._second:
            self._second = second
            self._text = datetime.fromtimestamp(second, UTC).strftime("%Y-%m-%d %H:%M:%S")
        return f"{self._text}.{int((t - second) * 1000):03d}"


class LineWriter:
    """Builds oslo.log lines for one era and one host process.

    `clock_offset_s` shifts every time the host writes (a host whose clock is off);
    `syslog` wraps each line in a syslog prefix (`Mon DD HH:MM:SS host nova-compute[pid]: `)
    whose clock is `syslog_offset_s` away from the oslo time; `oslo_time=False` drops the oslo
    time inside, as oslo.log does when it logs to syslog itself.
    """

    def __init__(
        self,
        era: Era,
        pid: int,
        clock: Clock,
        *,
        host: str = "",
        clock_offset_s: float = 0.0,
        syslog: bool = False,
        syslog_offset_s: float = 0.0,
        oslo_time: bool = True,
    ) -> None:
        self.era = era
        self.pid = pid
        self.clock = clock
        self.host = host
        self.clock_offset_s = clock_offset_s
        self.syslog = syslog
        self.syslog_offset_s = syslog_offset_s
        self.oslo_time = oslo_time

    def context(self, request_id: str | None, user: str = "", project: str = "") -> str:
        if request_id is None:
            return "[-]"
        if self.era.context_style == "newton":
            return f"[{request_id} {user or '-'} {project or '-'} - - -]"
        return f"[None {request_id} {user or '-'} {project or '-'} - - default default]"

    def _head(self, t: float) -> str:
        t += self.clock_offset_s
        oslo = f"{self.clock(t)} {self.pid}" if self.oslo_time else f"{self.pid}"
        if not self.syslog:
            return oslo
        wrapper = datetime.fromtimestamp(t + self.syslog_offset_s, UTC).strftime("%b %d %H:%M:%S")
        return f"{wrapper} {self.host} nova-compute[{self.pid}]: {oslo}"

    def line(
        self,
        t: float,
        level: str,
        logger: str,
        message: str,
        *,
        request_id: str | None = None,
        user: str = "",
        project: str = "",
        instance: str | None = None,
        where: str = "",
    ) -> str:
        tag = f"[instance: {instance}] " if instance else ""
        suffix = ""
        if level == "DEBUG" and where:
            suffix = f" {where.split(':')[0]} {self.era.python}/{where.split(':', 1)[1]}"
        ctx = self.context(request_id, user, project)
        return f"{self._head(t)} {level} {logger} {ctx} {tag}{message}{suffix}\n"

    def traceback(
        self, t: float, logger: str, instance: str | None, frames: list[str]
    ) -> list[str]:
        tag = f"[instance: {instance}] " if instance else ""
        head = f"{self._head(t)} ERROR {logger} {tag}"
        return [head + frame + "\n" for frame in frames]


# --------------------------------------------------------------------------- noise


NOISE_TEMPLATES = [
    (
        "DEBUG",
        "oslo_service.periodic_task",
        "Running periodic task ComputeManager.{task}",
        "run_periodic_tasks:oslo_service/periodic_task.py:215",
    ),
    (
        "DEBUG",
        "oslo_concurrency.lockutils",
        'Lock "compute_resources" acquired by "nova.compute.resource_tracker.ResourceTracker.'
        '_update_available_resource" :: waited 0.000s',
        "inner:oslo_concurrency/lockutils.py:273",
    ),
    (
        "DEBUG",
        "oslo_concurrency.lockutils",
        'Lock "compute_resources" released by "nova.compute.resource_tracker.ResourceTracker.'
        '_update_available_resource" :: held 0.{n:03d}s',
        "inner:oslo_concurrency/lockutils.py:285",
    ),
    (
        "INFO",
        "nova.compute.resource_tracker",
        "Final resource view: name={host} phys_ram=385575MB used_ram={n}MB phys_disk=11364GB "
        "used_disk=60GB total_vcpus=48 used_vcpus=12 pci_stats=[]",
        "",
    ),
    (
        "DEBUG",
        "nova.compute.resource_tracker",
        "Hypervisor/Node resource view: name={host} free_ram={n}MB free_disk=11154GB free_vcpus=19 "
        "pci_devices=None",
        "_report_hypervisor_resource_view:nova/compute/resource_tracker.py:1034",
    ),
    (
        "INFO",
        "nova.compute.resource_tracker",
        "Auditing locally available compute resources for node {host}",
        "",
    ),
    (
        "DEBUG",
        "oslo_messaging._drivers.amqpdriver",
        "CALL msg_id: {hex} exchange 'nova' topic 'conductor' _send",
        "_send:oslo_messaging/_drivers/amqpdriver.py:568",
    ),
    (
        "DEBUG",
        "oslo_messaging._drivers.amqpdriver",
        "received reply msg_id: {hex} __call__",
        "__call__:oslo_messaging/_drivers/amqpdriver.py:410",
    ),
    (
        "DEBUG",
        "nova.compute.manager",
        "Triggering sync for uuid {uuid} _sync_power_states",
        "_sync_power_states:nova/compute/manager.py:7501",
    ),
    (
        "DEBUG",
        "oslo_concurrency.lockutils",
        'Lock "{uuid}" acquired by "nova.compute.manager.ComputeManager.'
        "_sync_power_states.<locals>."
        '_sync.<locals>.query_driver_power_state_and_sync" :: waited 0.000s',
        "inner:oslo_concurrency/lockutils.py:273",
    ),
    (
        "DEBUG",
        "nova.scheduler.client.report",
        "Inventory has not changed for provider {uuid} based on inventory data: {{'VCPU': "
        "{{'total': 48, 'reserved': 0, 'min_unit': 1, 'max_unit': 48, 'step_size': 1, "
        "'allocation_ratio': 16.0}}}}",
        "set_inventory_for_provider:nova/scheduler/client/report.py:940",
    ),
    (
        "DEBUG",
        "neutronclient.v2_0.client",
        "GET call to neutron for http://neutron-server:9696/v2.0/ports.json?device_id={uuid} used "
        "request id req-{uuid}",
        "_append_request_id:neutronclient/v2_0/client.py:127",
    ),
    (
        "INFO",
        "nova.compute.manager",
        "[instance: {uuid}] During sync_power_state the instance has a pending task "
        "(spawning). Skip.",
        "",
    ),
    (
        "DEBUG",
        "nova.virt.libvirt.driver",
        "skipping disk for instance-{n:08x} as it does not have a path",
        "_get_instance_disk_info_from_config:nova/virt/libvirt/driver.py:9521",
    ),
    (
        "WARNING",
        "nova.compute.manager",
        "While synchronizing instance power states, found 41 instances in the database and 42 "
        "instances on the hypervisor.",
        "",
    ),
    (
        "DEBUG",
        "nova.compute.manager",
        "[instance: {uuid}] Checking state _get_power_state",
        "_get_power_state:nova/compute/manager.py:1544",
    ),
    ("INFO", "nova.compute.manager", "Updating bandwidth usage cache", ""),
    (
        "DEBUG",
        "nova.objects.instance",
        "Lazy-loading 'flavor' on Instance uuid {uuid} obj_load_attr",
        "obj_load_attr:nova/objects/instance.py:1099",
    ),
    (
        "DEBUG",
        "nova.compute.manager",
        "Cleaning up deleted instances _run_pending_deletes",
        "_run_pending_deletes:nova/compute/manager.py:10013",
    ),
    (
        "DEBUG",
        "nova.compute.manager",
        "There are 0 instances to clean _run_pending_deletes",
        "_run_pending_deletes:nova/compute/manager.py:10022",
    ),
]
PERIODIC_TASKS = [
    "_poll_rebooting_instances",
    "_heal_instance_info_cache",
    "_poll_unconfirmed_resizes",
    "_instance_usage_audit",
    "_reclaim_queued_deletes",
    "update_available_resource",
    "_check_instance_build_time",
    "_sync_scheduler_instance_info",
    "_poll_volume_usage",
    "_cleanup_incomplete_migrations",
    "_sync_power_states",
    "_cleanup_running_deleted_instances",
]


def noise_line(writer: LineWriter, host: str, t: float, rng: random.Random) -> str:
    level, logger, template, where = rng.choice(NOISE_TEMPLATES)
    message = template.format(
        task=rng.choice(PERIODIC_TASKS),
        host=host,
        n=rng.randrange(1, 99999),
        hex=f"{rng.getrandbits(128):032x}",
        uuid=str(uuid.UUID(int=rng.getrandbits(128), version=4)),
    )
    request = f"req-{uuid.UUID(int=rng.getrandbits(128), version=4)}"
    return writer.line(t, level, logger, message, request_id=request, where=where)


# --------------------------------------------------------------------------- migrations


def migrate_data(m: PlannedMigration, dest_side: bool) -> str:
    return (
        f"LibvirtLiveMigrateData(bdms=<?>,block_migration=False,disk_available_mb=11421696,"
        f"disk_over_commit=<?>,filename='tmp{m.request_id[4:10]}',graphics_listen_addr_spice=127.0.0.1,"
        f"graphics_listen_addr_vnc=127.0.0.1,image_type='rbd',instance_relative_path='{m.instance}',"
        f"is_shared_block_storage=True,is_shared_instance_path=False,is_volume_backed=False,"
        f"migration=<?>,serial_listen_addr=None,serial_listen_ports=<?>,"
        f"supported_perf_events=<?>,target_connect_addr={m.dest if dest_side else None})"
    )


def migration_lines(
    m: PlannedMigration, writers: dict[str, LineWriter], rng: random.Random
) -> list[tuple[float, str, str]]:
    """Every line one migration writes: (time, host, line), on the source and destination."""
    out: list[tuple[float, str, str]] = []
    src = writers[m.source]
    era = m.era
    ctx = {"request_id": m.request_id, "user": m.user, "project": m.project}

    def emit(
        host: str,
        t: float,
        level: str,
        logger: str,
        message: str,
        *,
        instance=True,
        where: str = "",
        context: bool = True,
    ) -> None:
        writer = writers[host]
        kwargs = ctx if context else {"request_id": None}
        out.append(
            (
                t,
                host,
                writer.line(
                    t,
                    level,
                    logger,
                    message,
                    instance=m.instance if instance else None,
                    where=where,
                    **kwargs,
                ),
            )
        )

    t = m.start_s
    emit(
        m.dest,
        t,
        "DEBUG",
        "nova.compute.manager",
        f"destination check data is {migrate_data(m, True)}",
        instance=False,
        where="check_can_live_migrate_destination:nova/compute/manager.py:5976",
    )
    t += rng.uniform(0.05, 0.2)
    emit(
        m.source,
        t,
        "DEBUG",
        "nova.virt.libvirt.driver",
        f"Check if temp file /var/lib/nova/instances/tmp{m.request_id[4:10]} exists to indicate "
        f"shared storage is being used for migration. Exists? False",
        where="_check_shared_storage_test_file:nova/virt/libvirt/driver.py:6980",
    )
    emit(
        m.source,
        t + 0.001,
        "DEBUG",
        "nova.compute.manager",
        f"source check data is {migrate_data(m, False)}",
        instance=False,
        where="check_can_live_migrate_source:nova/compute/manager.py:6040",
    )
    if m.outcome == "precheck_error":
        return out
    t += rng.uniform(0.1, 0.6)
    prepare_start = t
    emit(
        m.dest,
        t,
        "DEBUG",
        "nova.compute.manager",
        f"pre_live_migration data is {migrate_data(m, True)}",
        instance=False,
        where="pre_live_migration:nova/compute/manager.py:6120",
    )
    t += rng.uniform(0.2, 1.0)
    emit(
        m.dest,
        t,
        "DEBUG",
        "nova.virt.libvirt.driver",
        f"Creating instance directory: /var/lib/nova/instances/{m.instance}",
        where="pre_live_migration:nova/virt/libvirt/driver.py:9300",
    )
    t += rng.uniform(0.5, 2.0)
    plug = (
        "Plugging VIFs using destination host port bindings before live migration."
        if era.release.major >= 18
        else "Plugging VIFs before live migration."
    )
    emit(
        m.dest,
        t,
        "DEBUG",
        "nova.virt.libvirt.driver",
        plug,
        where="pre_live_migration:nova/virt/libvirt/driver.py:9380",
    )
    t += rng.uniform(0.3, 1.5)
    if m.outcome == "pre_failed":
        emit(
            m.dest, t, "WARNING", "nova.virt.libvirt.driver", "plug_vifs() failed 1. Retry up to 3."
        )
        t += 3.0
        frames = [
            "Traceback (most recent call last):",
            f'  File "{era.python}/nova/compute/manager.py", line 8120, '
            f"in _do_pre_live_migration_from_source",
            "    migrate_data = self.compute_rpcapi.pre_live_migration(",
            f'  File "{era.python}/oslo_messaging/rpc/client.py", line 190, in call',
            "    raise result",
            "nova.exception.VirtualInterfaceCreateException: Virtual Interface creation failed",
        ]
        emit(
            m.source,
            t,
            "ERROR",
            "nova.compute.manager",
            f"Pre live migration failed at {m.dest}: "
            f"nova.exception.VirtualInterfaceCreateException: Virtual Interface creation failed",
        )
        for tb in src.traceback(t, "nova.compute.manager", m.instance, frames):
            out.append((t, m.source, tb))
        if m.network_cleanup_fails:
            emit(
                m.source,
                t + 0.4,
                "ERROR",
                "nova.compute.manager",
                f"Network cleanup failed for destination host {m.dest} during live migration "
                f"rollback. You may need to manually clean up resources in the network service. "
                f"Error: Connection to neutron failed: Maximum attempts reached",
            )
        return out
    emit(
        m.dest,
        t,
        "DEBUG",
        "nova.compute.manager",
        f"pre_live_migration result data is {migrate_data(m, True)}",
        instance=False,
        where="pre_live_migration:nova/compute/manager.py:6180",
    )
    t += rng.uniform(0.02, 0.1)
    if era.took_line:
        emit(
            m.source,
            t,
            "INFO",
            "nova.compute.manager",
            f"Took {t - prepare_start:.2f} seconds for pre_live_migration on destination "
            f"host {m.dest}.",
        )
    emit(
        m.source,
        t + 0.002,
        "DEBUG",
        "nova.compute.manager",
        f"live_migration data is {migrate_data(m, False)}",
        instance=False,
        where="_do_live_migration:nova/compute/manager.py:7000",
    )
    t += 0.01
    vif_at = t + rng.uniform(0.5, 4.0)
    emit(
        m.source,
        vif_at,
        "DEBUG",
        "nova.compute.manager",
        f"Received event network-vif-plugged-{m.port_id}",
        where="external_instance_event:nova/compute/manager.py:10400",
    )
    if era.migrate_api_lines:
        emit(
            m.source,
            t,
            "DEBUG",
            "nova.virt.libvirt.driver",
            "About to invoke the migrate API",
            where="_live_migration_operation:nova/virt/libvirt/driver.py:9700",
        )
    t += 0.002
    emit(
        m.source,
        t,
        "DEBUG",
        "nova.virt.libvirt.driver",
        "Starting monitoring of live migration",
        where="_live_migration:nova/virt/libvirt/driver.py:10050",
    )
    _monitor(m, t, rng, emit)
    return out


def _monitor(m: PlannedMigration, start: float, rng: random.Random, emit) -> None:
    """The monitor loop, every half second, until the job ends (or the logs stop)."""
    era = m.era
    total = m.memory_mb * MIB + 17 * MIB
    data_gb = policy.data_gb(m.memory_mb)
    ramp = policy.downtime_steps(m.downtime_ms, m.steps, m.delay_s, data_gb, era.ramp_release)
    completion_timeout = policy.completion_timeout_s(m.completion_timeout_per_gb_s, data_gb)
    remaining = float(total)
    processed = 0.0
    downtime = None
    n = 0
    elapsed = 0.0
    mig = "nova.virt.libvirt.migration"
    drv = "nova.virt.libvirt.driver"
    steps_text = "[" + ", ".join(f"({s}, {ms})" for s, ms in ramp) + "]"
    stop_at = rng.uniform(20, 60) if m.outcome == "incomplete" else None
    fail_at = rng.uniform(3, 20) if m.outcome == "failed" else None
    post_copy_at = rng.uniform(10, 30) if m.outcome == "post_copy" else None
    t = start + 0.1
    while True:
        t += MONITOR_TICK_S
        elapsed = t - start
        n += 1
        if stop_at is not None and elapsed > stop_at:
            return
        sent = m.transfer_bytes_s * MONITOR_TICK_S
        processed += sent
        remaining = max(remaining - sent + m.dirty_bytes_s * MONITOR_TICK_S, 0.0)
        remaining = min(remaining, float(total))
        if fail_at is not None and elapsed > fail_at:
            emit(
                m.source,
                t,
                "ERROR",
                drv,
                "Live Migration failure: operation failed: migration out job: unexpectedly failed",
            )
            emit(
                m.source,
                t + 0.01,
                "DEBUG",
                drv,
                "Migration operation thread has finished",
                where="_live_migration_operation:nova/virt/libvirt/driver.py:9760",
            )
            emit(m.source, t + 0.3, "ERROR", drv, "Migration operation has aborted")
            if m.network_cleanup_fails:
                emit(
                    m.source,
                    t + 0.9,
                    "ERROR",
                    "nova.compute.manager",
                    f"Network cleanup failed for destination host {m.dest} during live migration "
                    f"rollback. You may need to manually clean up resources in the network "
                    f"service. Error: Connection to neutron failed: Maximum attempts reached",
                )
            emit(
                m.source,
                t + 1.2,
                "DEBUG",
                drv,
                "Live migration monitoring is all done",
                where="_live_migration:nova/virt/libvirt/driver.py:10075",
            )
            return
        secs = int(elapsed) if era.release.major >= 23 else n // 2
        if completion_timeout and elapsed > completion_timeout and m.outcome == "cancelled":
            emit(
                m.source,
                t,
                "WARNING",
                mig,
                f"Live migration not completed after {completion_timeout} sec",
            )
            emit(m.source, t + 0.5, "WARNING", drv, "Migration operation was cancelled")
            emit(
                m.source,
                t + 0.51,
                "DEBUG",
                drv,
                "Migration operation thread has finished",
                where="_live_migration_operation:nova/virt/libvirt/driver.py:9760",
            )
            emit(
                m.source,
                t + 1.0,
                "DEBUG",
                drv,
                "Live migration monitoring is all done",
                where="_live_migration:nova/virt/libvirt/driver.py:10075",
            )
            return
        current = "None" if downtime is None else str(downtime)
        emit(
            m.source,
            t,
            "DEBUG",
            mig,
            f"Current {current} elapsed {int(elapsed)} steps {steps_text}",
            where="update_downtime:nova/virt/libvirt/migration.py:500",
        )
        step = policy.current_step(ramp, elapsed)
        if step is not None and step[1] != downtime:
            downtime = step[1]
            emit(
                m.source,
                t,
                "INFO",
                mig,
                f"Increasing downtime to {downtime} ms after {step[0]} sec elapsed time",
            )
        else:
            emit(
                m.source,
                t,
                "DEBUG",
                mig,
                "Downtime does not need to change",
                where="update_downtime:nova/virt/libvirt/migration.py:513",
            )
        if post_copy_at is not None and elapsed > post_copy_at:
            emit(m.source, t, "INFO", mig, "Switching to post-copy migration mode")
            post_copy_at = None
            m.dirty_bytes_s = 0.0
        if n % 10 == 0:
            pct = round(remaining * 100 / total)
            level = "INFO" if n % 60 == 0 else "DEBUG"
            text = (
                f"Migration running for {secs} secs, memory {pct}% remaining"
                + ("" if era.disk_progress else ";")
                + f" (bytes processed={int(processed)}, remaining={int(remaining)}, total={total})"
            )
            if era.disk_progress:
                text += "; disk 0% remaining (bytes processed=0, remaining=0, total=0)."
            emit(
                m.source,
                t,
                level,
                drv,
                text,
                where="_live_migration_monitor:nova/virt/libvirt/driver.py:9960",
            )
        limit_ms = downtime or 0
        ends_otherwise = stop_at is not None or fail_at is not None
        if not ends_otherwise and remaining <= m.transfer_bytes_s * limit_ms / 1000:
            break
    switch = t + rng.uniform(0.05, 0.3)
    emit(
        m.source,
        switch,
        "INFO",
        "nova.compute.manager",
        "VM Paused (Lifecycle Event)",
        context=False,
    )
    if era.migrate_api_lines:
        emit(
            m.source,
            switch + 0.1,
            "DEBUG",
            drv,
            "Migrate API has completed",
            where="_live_migration_operation:nova/virt/libvirt/driver.py:9740",
        )
    emit(
        m.source,
        switch + 0.11,
        "DEBUG",
        drv,
        "Migration operation thread has finished",
        where="_live_migration_operation:nova/virt/libvirt/driver.py:9760",
    )
    done = switch + rng.uniform(0.2, 0.6)
    emit(m.source, done, "INFO", drv, "Migration operation has completed")
    emit(
        m.source,
        done + 0.001,
        "INFO",
        "nova.compute.manager",
        "_post_live_migration() is started..",
    )
    emit(
        m.dest,
        done + 0.2,
        "INFO",
        "nova.compute.manager",
        "VM Resumed (Lifecycle Event)",
        context=False,
    )
    post_dest = done + rng.uniform(1.0, 3.5)
    emit(m.dest, post_dest, "INFO", "nova.compute.manager", "Post operation of migration started")
    finish = post_dest + rng.uniform(0.5, 2.0)
    emit(
        m.source,
        finish,
        "INFO",
        "nova.compute.manager",
        f"Migrating instance to {m.dest} finished successfully.",
    )
    emit(
        m.source,
        finish + 0.02,
        "DEBUG",
        drv,
        "Live migration monitoring is all done",
        where="_live_migration:nova/virt/libvirt/driver.py:10075",
    )


# --------------------------------------------------------------------------- the whole set


OUTCOME_WEIGHTS = [
    ("completed", 80),
    ("failed", 5),
    ("pre_failed", 3),
    ("cancelled", 3),
    ("post_copy", 4),
    ("precheck_error", 2),
    ("incomplete", 3),
]


def plan_migration(
    rng: random.Random, hosts: list[str], instances: list[str], start_s: float, era: Era
) -> PlannedMigration:
    source, dest = rng.sample(hosts, 2)
    outcome = rng.choices([o for o, _ in OUTCOME_WEIGHTS], [w for _, w in OUTCOME_WEIGHTS])[0]
    memory_mb = rng.choice([512, 2048, 4096, 8192])
    transfer = rng.choice([110, 400, 900]) * MIB
    dirty = transfer * (rng.uniform(1.05, 1.5) if outcome == "cancelled" else rng.uniform(0.0, 0.5))
    return PlannedMigration(
        era=era,
        instance=rng.choice(instances),
        request_id=f"req-{uuid.UUID(int=rng.getrandbits(128), version=4)}",
        source=source,
        dest=dest,
        start_s=start_s,
        outcome=outcome,
        memory_mb=memory_mb,
        transfer_bytes_s=transfer,
        dirty_bytes_s=dirty,
        completion_timeout_per_gb_s=rng.choice([20, 30]) if outcome == "cancelled" else 800,
        network_cleanup_fails=outcome in ("failed", "pre_failed") and rng.random() < 0.3,
    )


def manifest_path(out: Path) -> Path:
    return out.parent / f"{out.name}.manifest.jsonl"


class LogSetWriter:
    """Writes one `nova-compute.log` per host, in time order, window by window: the lines of
    the migrations added so far plus each host's everyday noise."""

    def __init__(
        self,
        out: Path,
        writers: dict[str, LineWriter],
        t0: float,
        noise_lines_s: float,
        rng: random.Random,
    ) -> None:
        self.writers = writers
        self.t0 = t0
        self.noise_lines_s = noise_lines_s
        self.rng = rng
        self.window = 0
        self.written = self.lines = 0
        self._pending: dict[int, list[tuple[float, str, str]]] = {}
        self._files = {}
        out.mkdir(parents=True, exist_ok=True)
        # What was written, beside (not inside) the logs: the truth a replay is checked against.
        self._manifest = open(manifest_path(out), "w")  # noqa: SIM115
        for host in writers:
            (out / host).mkdir(parents=True, exist_ok=True)
            self._files[host] = open(out / host / "nova-compute.log", "w", buffering=1 << 20)  # noqa: SIM115

    @property
    def window_end(self) -> float:
        return self.t0 + (self.window + 1) * WINDOW_S

    def add(self, migration: PlannedMigration) -> None:
        self._manifest.write(
            json.dumps(
                {
                    "request_id": migration.request_id,
                    "instance": migration.instance,
                    "source": migration.source,
                    "dest": migration.dest,
                    "outcome": migration.outcome,
                    "era": migration.era.name,
                }
            )
            + "\n"
        )
        for item in migration_lines(migration, self.writers, self.rng):
            self._pending.setdefault(int((item[0] - self.t0) // WINDOW_S), []).append(item)

    def write_window(self) -> None:
        w_start = self.t0 + self.window * WINDOW_S
        w_end = w_start + WINDOW_S
        batch = self._pending.pop(self.window, [])
        if self.noise_lines_s > 0:
            for host, writer in self.writers.items():
                t = w_start
                while True:
                    t += self.rng.expovariate(self.noise_lines_s)
                    if t >= w_end:
                        break
                    batch.append((t, host, noise_line(writer, host, t, self.rng)))
        batch.sort(key=lambda item: item[0])
        by_host: dict[str, list[str]] = {}
        for _, host, text in batch:
            by_host.setdefault(host, []).append(text)
        for host, texts in by_host.items():
            chunk = "".join(texts)
            self._files[host].write(chunk)
            self.written += len(chunk)
            self.lines += len(texts)
        self.window += 1

    def finish(self) -> None:
        """Write every window that still holds lines, then close the files."""
        while self._pending:
            self.write_window()
        for f in self._files.values():
            f.close()
        self._manifest.close()


def write_scenario(
    out: Path,
    migrations: list[PlannedMigration],
    *,
    writers: dict[str, LineWriter] | None = None,
    noise_lines_s: float = 0.05,
    seed: int = 1,
) -> None:
    """Write the logs of exactly these migrations (plus a little noise), one file per host."""
    rng = random.Random(seed)
    clock = Clock()
    if writers is None:
        era_of: dict[str, Era] = {}
        for m in migrations:
            era_of.setdefault(m.source, m.era)
            era_of.setdefault(m.dest, m.era)
        writers = {
            h: LineWriter(era_of[h], 20000 + i * 13, clock, host=h)
            for i, h in enumerate(sorted(era_of))
        }
    t0 = min(m.start_s for m in migrations) - 60
    writer = LogSetWriter(out, writers, t0, noise_lines_s, rng)
    for migration in sorted(migrations, key=lambda m: m.start_s):
        writer.add(migration)
    writer.finish()


def write_logs(
    out: Path,
    size_bytes: int,
    *,
    hosts: int,
    seed: int,
    noise_lines_s: float,
    migrations_per_hour: float,
    era_name: str | None,
) -> dict:
    """Write the benchmark's logs; returns a summary (lines, bytes, migrations by outcome)."""
    rng = random.Random(seed)
    names = [f"compute-{i:02d}" for i in range(1, hosts + 1)]
    clock = Clock()
    eras = [ERAS[era_name]] if era_name else list(ERAS.values())
    host_era = {h: eras[i % len(eras)] for i, h in enumerate(names)}
    writers = {
        h: LineWriter(host_era[h], 10000 + i * 7, clock, host=h) for i, h in enumerate(names)
    }
    instances = [str(uuid.UUID(int=rng.getrandbits(128), version=4)) for _ in range(hosts * 25)]
    t0 = datetime(2024, 3, 4, 6, 0, tzinfo=UTC).timestamp()
    writer = LogSetWriter(out, writers, t0, noise_lines_s, rng)
    outcomes: dict[str, int] = {}
    next_migration = t0 + rng.expovariate(migrations_per_hour / 3600)
    busy: dict[str, float] = {}
    try:
        while writer.written < size_bytes:
            while next_migration < writer.window_end:
                free = [h for h in names if busy.get(h, 0) < next_migration]
                era = host_era[rng.choice(free or names)]
                same_era = [h for h in free if host_era[h] is era]
                if len(same_era) >= 2:
                    m = plan_migration(rng, same_era, instances, next_migration, era)
                    outcomes[m.outcome] = outcomes.get(m.outcome, 0) + 1
                    writer.add(m)
                    busy[m.source] = busy[m.dest] = next_migration + 120
                next_migration += rng.expovariate(migrations_per_hour / 3600)
            writer.write_window()
    finally:
        writer.finish()
    return {"lines": writer.lines, "bytes": writer.written, "hosts": hosts, "migrations": outcomes}


def parse_size(text: str) -> int:
    units = {"K": 1024, "M": MIB, "G": GIB}
    text = text.strip().upper().rstrip("B")
    if text and text[-1] in units:
        return int(float(text[:-1]) * units[text[-1]])
    return int(text)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("bench/data/logs"))
    parser.add_argument("--size", default="2G", help="total size of the logs (default 2G)")
    parser.add_argument("--small", action="store_true", help="about 60 MB, for a quick run")
    parser.add_argument("--hosts", type=int, default=24)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--era", choices=sorted(ERAS), help="only this Nova era (default: all)")
    args = parser.parse_args(argv)
    size = parse_size("60M" if args.small else args.size)
    started = time.perf_counter()
    summary = write_logs(
        args.out,
        size,
        hosts=args.hosts,
        seed=args.seed,
        noise_lines_s=4.0,
        migrations_per_hour=180,
        era_name=args.era,
    )
    summary["seconds"] = round(time.perf_counter() - started, 1)
    print(json.dumps(summary), file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
