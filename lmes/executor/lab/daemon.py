"""One lab host: its state folders, its libvirtd configuration, starting and stopping it.

A host is a libvirtd in its own mount and UTS namespaces (and optionally its own network
namespace) whose /etc, /run, /var/lib, /var/log and /var/cache folders for libvirt are
bind-mounted from `<lab>/<name>/`. Everything two daemons on one machine would otherwise share
is made per host: hostname, host UUID, pid file, sockets, migration ports; cgroups and virtlogd
are not used at all.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lmes.errors import UserError
from lmes.executor.lab.libvirt_client import libvirt_module

MIGRATION_PORTS_PER_HOST = 32
FIRST_MIGRATION_PORT = 49152
_UNIX_SOCKET_PATH_MAX = 107
_HOSTINIT = Path(__file__).with_name("hostinit.py")
_STATE_FOLDERS = ("etc", "run", "lib", "log", "cache")


@dataclass(frozen=True)
class HostLayout:
    """Where lab host number `index` keeps its state, and the names derived from it."""

    name: str
    index: int
    state_dir: Path

    @property
    def socket_path(self) -> Path:
        return self.state_dir / "run" / "libvirt-sock"

    @property
    def uri(self) -> str:
        return f"qemu:///system?socket={self.socket_path}"

    @property
    def p2p_uri(self) -> str:
        # A plain qemu:/// URI as destination is refused as "the same host" (it looks local).
        return f"qemu+unix:///system?socket={self.socket_path}"

    @property
    def pid_file(self) -> Path:
        return self.state_dir / "host.pid"

    @property
    def output_file(self) -> Path:
        return self.state_dir / "host.log"

    @property
    def libvirtd_log(self) -> Path:
        return self.state_dir / "log" / "libvirtd.log"

    @property
    def capabilities_dir(self) -> Path:
        return self.state_dir / "cache" / "qemu" / "capabilities"

    @property
    def qemu_pid_dir(self) -> Path:
        return self.state_dir / "run" / "qemu"

    def guest_serial_log(self, guest: str) -> Path:
        """The serial log as seen from outside; inside the host it is under /var/log/libvirt."""
        return self.state_dir / "log" / "qemu" / f"{guest}-serial.log"

    @property
    def migration_ports(self) -> tuple[int, int]:
        first = FIRST_MIGRATION_PORT + self.index * MIGRATION_PORTS_PER_HOST
        return first, first + MIGRATION_PORTS_PER_HOST - 1


def check_socket_path(layout: HostLayout) -> None:
    if len(str(layout.socket_path)) > _UNIX_SOCKET_PATH_MAX:
        raise UserError(
            f"lab folder {layout.state_dir.parent} is too deep for a UNIX socket path "
            f"({len(str(layout.socket_path))} > {_UNIX_SOCKET_PATH_MAX} characters); "
            "set LMES_HOME to a shorter path"
        )


def write_configuration(layout: HostLayout, migration_address: str | None) -> None:
    """libvirtd.conf and qemu.conf for this host (rewritten on every start).

    A host starts empty: guest definitions and runtime files of an earlier run (left when a
    daemon died) are removed; the QEMU capability cache and the storage pool stay."""
    for stale in ("run", "etc/qemu"):
        shutil.rmtree(layout.state_dir / stale, ignore_errors=True)
    for folder in _STATE_FOLDERS:
        (layout.state_dir / folder).mkdir(parents=True, exist_ok=True)
    (layout.state_dir / "log" / "qemu").mkdir(exist_ok=True)
    (layout.state_dir / "lib" / "images").mkdir(exist_ok=True)
    # Stable across restarts of the same host, different between hosts and between labs.
    host_uuid = uuid.uuid5(uuid.NAMESPACE_URL, f"lmes-lab:{layout.state_dir}")
    (layout.state_dir / "etc" / "libvirtd.conf").write_text(
        f'host_uuid = "{host_uuid}"\n'
        'auth_unix_rw = "none"\n'
        'auth_unix_ro = "none"\n'
        'unix_sock_rw_perms = "0700"\n'
        'log_outputs = "3:file:/var/log/libvirt/libvirtd.log"\n'
    )
    first_port, last_port = layout.migration_ports
    lines = [
        'user = "root"',
        'group = "root"',
        'swtpm_user = "root"',
        'swtpm_group = "root"',
        'security_driver = "none"',
        "dynamic_ownership = 0",
        "remember_owner = 0",
        "cgroup_controllers = [ ]",
        "namespaces = [ ]",
        'stdio_handler = "file"',
        f"migration_port_min = {first_port}",
        f"migration_port_max = {last_port}",
    ]
    if migration_address:
        lines += [
            f'migration_address = "{migration_address}"',
            f'migration_host = "{migration_address}"',
        ]
    (layout.state_dir / "etc" / "qemu.conf").write_text("\n".join(lines) + "\n")


def start_daemon(layout: HostLayout, network_namespace: str | None) -> int:
    """Start the host's first process, detached in its own session; return its pid."""
    command = [
        "unshare", "--mount", "--uts", "--propagation", "private",
        sys.executable, "-I", str(_HOSTINIT), str(layout.state_dir), layout.name,
    ]  # fmt: skip
    if network_namespace:
        command = ["ip", "netns", "exec", network_namespace, *command]
    layout.libvirtd_log.unlink(missing_ok=True)
    with open(layout.output_file, "wb") as output:
        process = subprocess.Popen(
            command,
            stdin=subprocess.DEVNULL,
            stdout=output,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    start_ticks = _start_ticks(process.pid)
    layout.pid_file.write_text(f"{process.pid} {start_ticks}\n")
    return process.pid


def daemon_pid(layout: HostLayout) -> int | None:
    """The pid of the host's first process if it is running, else None."""
    try:
        pid, start_ticks = (int(field) for field in layout.pid_file.read_text().split())
    except (OSError, ValueError):
        return None
    return pid if _start_ticks(pid) == start_ticks else None


def _start_ticks(pid: int) -> int | None:
    """When a live process started (clock ticks since boot): with the pid, an identity that
    survives exec but not pid reuse. None for a process that is gone or a zombie."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
    return None if fields[0] == "Z" else int(fields[19])


def wait_until_ready(layout: HostLayout, pid: int, timeout_s: float = 60.0) -> Any:
    """Poll until libvirtd answers (its drivers are initialised then); return the connection."""
    libvirt = libvirt_module()
    deadline = time.monotonic() + timeout_s
    while True:
        if layout.socket_path.exists():
            try:
                return libvirt.open(layout.uri)
            except libvirt.libvirtError:
                pass
        if daemon_pid(layout) != pid:
            _reap_if_child(pid)
            raise UserError(f"lab host {layout.name} stopped while starting: {last_words(layout)}")
        if time.monotonic() > deadline:
            raise UserError(f"lab host {layout.name} did not answer within {timeout_s:.0f} s")
        time.sleep(0.01)


def last_words(layout: HostLayout) -> str:
    """The last non-empty line the host or its libvirtd logged: the likely reason it failed."""
    for path in (layout.output_file, layout.libvirtd_log):
        try:
            lines = [line for line in path.read_text(errors="replace").splitlines() if line.strip()]
        except OSError:
            continue
        if lines:
            return lines[-1].strip()
    return "no log output"


def load_qemu_capabilities(connection: Any, virt_type: str) -> None:
    """Make libvirtd probe QEMU now (or load its cached probe), not at the first guest start
    or incoming migration: libvirt probes lazily, and a probe takes most of a second."""
    connection.getDomainCapabilities(None, "x86_64", "pc", virt_type)


def copy_capabilities(source: HostLayout, destination: HostLayout) -> None:
    """Reuse one host's QEMU capability probe: all hosts run the same QEMU binary."""
    if not source.capabilities_dir.is_dir():
        return
    destination.capabilities_dir.mkdir(parents=True, exist_ok=True)
    for probe in source.capabilities_dir.glob("*.xml"):
        shutil.copy2(probe, destination.capabilities_dir / probe.name)


def has_capabilities(layout: HostLayout) -> bool:
    return any(layout.capabilities_dir.glob("*.xml"))


def ensure_storage_pool(connection: Any) -> None:
    """A `default` directory pool over /var/lib/libvirt/images, so block migration can create
    the destination's disk images the way it does on a real compute host."""
    libvirt = libvirt_module()
    try:
        pool = connection.storagePoolLookupByName("default")
    except libvirt.libvirtError:
        pool = connection.storagePoolDefineXML(
            "<pool type='dir'><name>default</name>"
            "<target><path>/var/lib/libvirt/images</path></target></pool>"
        )
        pool.setAutostart(1)
    if not pool.isActive():
        pool.create()


def destroy_guests(layout: HostLayout) -> list[str]:
    """Destroy and undefine every guest on a running host; return their names."""
    libvirt = libvirt_module()
    try:
        connection = libvirt.open(layout.uri)
    except libvirt.libvirtError:
        return []
    names = []
    try:
        for domain in connection.listAllDomains():
            names.append(domain.name())
            if domain.isActive():
                domain.destroy()
            if domain.isPersistent():
                domain.undefine()
    finally:
        connection.close()
    return names


def stop_daemon(layout: HostLayout, timeout_s: float = 10.0) -> None:
    """Stop the host (libvirtd first, then anything it left behind) and forget its pid."""
    pid = daemon_pid(layout)
    if pid is not None:
        os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout_s
        while daemon_pid(layout) == pid and time.monotonic() < deadline:
            _reap_if_child(pid)
            time.sleep(0.01)
        if daemon_pid(layout) == pid:
            os.kill(pid, signal.SIGKILL)
        _reap_if_child(pid)
    _kill_leftovers(layout)
    layout.pid_file.unlink(missing_ok=True)


def _kill_leftovers(layout: HostLayout) -> None:
    """A host whose first process was killed hard leaves libvirtd and QEMU running, holding
    its namespaces, sockets and pid-file locks; their own pid files find them."""
    pid_files = [layout.state_dir / "run" / "libvirtd.pid", *layout.qemu_pid_dir.glob("*.pid")]
    for pid_file in pid_files:
        try:
            pid = int(pid_file.read_text().strip())
            command = Path(f"/proc/{pid}/cmdline").read_bytes()
        except (OSError, ValueError):
            pid_file.unlink(missing_ok=True)
            continue
        if b"qemu" in command or b"libvirtd" in command:
            os.kill(pid, signal.SIGKILL)
        pid_file.unlink(missing_ok=True)


def _reap_if_child(pid: int) -> None:
    """Hosts started by this process are its children: collect their exit status."""
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, os.WNOHANG)
