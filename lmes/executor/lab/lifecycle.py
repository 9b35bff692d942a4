"""Bringing the lab of libvirt hosts up and down, and finding the lab that is up.

The hosts file `<lab>/hosts.toml` is written last when the lab comes up and removed first when it
goes down, so its presence (with every host's daemon alive) is what "the lab is up" means.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import pwd
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from lmes.errors import UserError
from lmes.executor.lab import daemon, netns
from lmes.executor.lab.daemon import HostLayout
from lmes.executor.lab.guest import build_guest_kernel
from lmes.executor.lab.hosts import Capacity, HostConfig, load_hosts_document, render_hosts
from lmes.executor.lab.libvirt_client import libvirt_module
from lmes.home import lmes_home

DEFAULT_HOST_COUNT = 2
MAX_HOST_COUNT = 64
VIRT_TYPES = ("kvm", "qemu")
_KVM_GET_API_VERSION = 0xAE00
_KVM_CREATE_VM = 0xAE01
_KVM_API_VERSION = 12
_REQUIRED_PROGRAMS = {
    "libvirtd": "libvirt-daemon",
    "qemu-system-x86_64": "qemu-system-x86",
    "qemu-img": "qemu-utils",
    "unshare": "util-linux",
    "ip": "iproute2",
    "gcc": "gcc",
}


@dataclass(frozen=True)
class Lab:
    """A running lab: its folder, how its guests are virtualised, and its hosts."""

    state_dir: Path
    virt_type: str  # libvirt's domain type: "kvm" or "qemu" (TCG)
    network: str  # "loopback" or "netns"
    hosts: tuple[HostConfig, ...]

    @property
    def hosts_file(self) -> Path:
        return self.state_dir / "hosts.toml"

    def host(self, name: str | None = None) -> HostConfig:
        """The host called `name` (the first host when None); unknown names are a UserError."""
        if name is None:
            return self.hosts[0]
        for host in self.hosts:
            if host.name == name:
                return host
        known = ", ".join(host.name for host in self.hosts)
        raise UserError(f"unknown lab host {name!r}; the lab's hosts are {known}")

    def network_namespace(self, name: str) -> str | None:
        """The network namespace of host `name` in netns mode (its link is `eth0` there)."""
        if self.network != "netns":
            return None
        _, namespaces = _namespace_names(self.state_dir, len(self.hosts))
        return namespaces[self.hosts.index(self.host(name))]

    def layout(self, name: str) -> HostLayout:
        host = self.host(name)
        return HostLayout(host.name, self.hosts.index(host), self.state_dir / host.name)


@dataclass(frozen=True)
class HostStatus:
    """What `lmes lab status` shows for one host."""

    name: str
    running: bool
    uri: str
    guests: tuple[str, ...]


def lab_dir(home: Path | str | None = None) -> Path:
    """`<LMES_HOME>/lab`, with LMES_HOME defaulting to ./lmes-data (made absolute)."""
    return (Path(home) if home else lmes_home()).resolve() / "lab"


def host_name(index: int) -> str:
    """lab-a, lab-b, … lab-z, lab-aa, …: short, ordered, and valid as hostnames."""
    letters = ""
    index += 1
    while index:
        index, remainder = divmod(index - 1, 26)
        letters = chr(ord("a") + remainder) + letters
    return f"lab-{letters}"


def kvm_usable() -> bool:
    """Whether /dev/kvm opens and creates a VM (a device node alone proves nothing)."""
    try:
        descriptor = os.open("/dev/kvm", os.O_RDWR | os.O_CLOEXEC)
    except OSError:
        return False
    try:
        if fcntl.ioctl(descriptor, _KVM_GET_API_VERSION) != _KVM_API_VERSION:
            return False
        os.close(fcntl.ioctl(descriptor, _KVM_CREATE_VM, 0))
        return True
    except OSError:
        return False
    finally:
        os.close(descriptor)


def running_lab(home: Path | str | None = None) -> Lab | None:
    """The lab that is up, or None (no hosts file, or a host's daemon is gone)."""
    directory = lab_dir(home)
    if not (directory / "hosts.toml").exists():
        return None
    lab = _read_lab(directory)
    alive = all(daemon.daemon_pid(lab.layout(host.name)) for host in lab.hosts)
    return lab if alive else None


def load_lab(home: Path | str | None = None) -> Lab:
    """The running lab, or a UserError saying how to start one."""
    lab = running_lab(home)
    if lab is None:
        raise UserError("the lab is not up; start it with: lmes lab up")
    return lab


def lab_up(
    n: int | None = None,
    virt: str = "auto",
    netns_mode: bool | None = None,
    home: Path | str | None = None,
) -> Lab:
    """Start `n` hosts (default 2), or return the lab already up if it matches the request.

    `virt` is "auto" (KVM when /dev/kvm works, else TCG), "kvm", or "qemu"/"tcg".
    `netns_mode` None means loopback for a new lab and "whatever is up" for a running one.
    """
    requested_virt = _requested_virt(virt)
    if n is not None and not 1 <= n <= MAX_HOST_COUNT:
        raise UserError(f"--hosts must be between 1 and {MAX_HOST_COUNT}, not {n}")
    _check_machine(netns_mode=bool(netns_mode))
    directory = lab_dir(home)
    with _locked(directory):
        lab = running_lab(directory.parent)
        if lab is not None:
            _check_matches(lab, n, requested_virt, netns_mode)
            return lab
        _stop_all(directory)
        virt_type = _resolve_virt(requested_virt)
        return _start(directory, n or DEFAULT_HOST_COUNT, virt_type, bool(netns_mode))


def lab_down(home: Path | str | None = None) -> list[str]:
    """Destroy the lab's guests, stop its daemons, remove its namespaces; return host names
    that were running. Leaves the state folders (and their warm QEMU capability cache)."""
    directory = lab_dir(home)
    if not directory.exists():
        return []
    with _locked(directory):
        return _stop_all(directory)


def lab_status(home: Path | str | None = None) -> list[HostStatus]:
    """Each host of the lab in the hosts file, whether its daemon runs, and its guests."""
    directory = lab_dir(home)
    if not (directory / "hosts.toml").exists():
        return []
    libvirt = libvirt_module()
    lab = _read_lab(directory)
    statuses = []
    for host in lab.hosts:
        running = daemon.daemon_pid(lab.layout(host.name)) is not None
        guests: tuple[str, ...] = ()
        if running:
            with contextlib.suppress(libvirt.libvirtError):
                connection = libvirt.open(host.uri)
                try:
                    guests = tuple(sorted(d.name() for d in connection.listAllDomains()))
                finally:
                    connection.close()
        statuses.append(HostStatus(host.name, running, host.uri, guests))
    return statuses


def _requested_virt(virt: str) -> str:
    choice = {"tcg": "qemu"}.get(virt, virt)
    if choice != "auto" and choice not in VIRT_TYPES:
        raise UserError(f"virt type must be auto, kvm or tcg, not {virt!r}")
    return choice


def _resolve_virt(requested_virt: str) -> str:
    if requested_virt == "auto":
        return "kvm" if kvm_usable() else "qemu"
    if requested_virt == "kvm" and not kvm_usable():
        raise UserError("--kvm asked for, but /dev/kvm cannot create a VM on this machine")
    return requested_virt


def _check_machine(netns_mode: bool) -> None:
    if os.geteuid() != 0:
        raise UserError("the lab needs root (it mounts folders and creates namespaces)")
    missing = [
        f"{program} (package {package})"
        for program, package in _REQUIRED_PROGRAMS.items()
        if shutil.which(program) is None and (program != "ip" or netns_mode)
    ]
    if missing:
        raise UserError(f"missing {', '.join(missing)}; run ./install.sh")


def _check_matches(lab: Lab, n: int | None, virt: str, netns_mode: bool | None) -> None:
    network = {None: lab.network, True: "netns", False: "loopback"}[netns_mode]
    if (
        (n or len(lab.hosts)) != len(lab.hosts)
        or network != lab.network
        or virt not in ("auto", lab.virt_type)
    ):
        raise UserError(
            f"the lab is already up with {len(lab.hosts)} hosts ({lab.virt_type}, {lab.network});"
            " run `lmes lab down` first"
        )


@contextlib.contextmanager
def _locked(directory: Path) -> Iterator[None]:
    """One `lab up`/`lab down` at a time per lab folder."""
    directory.mkdir(parents=True, exist_ok=True)
    with open(directory / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield


def _namespace_names(directory: Path, count: int) -> tuple[str, list[str]]:
    """Namespace names unique to this lab folder, so two labs on one machine do not collide."""
    tag = hashlib.sha256(str(directory).encode()).hexdigest()[:6]
    return f"lmes{tag}-hub", [f"lmes{tag}-{host_name(i)[4:]}" for i in range(count)]


def _start(directory: Path, count: int, virt_type: str, netns_mode: bool) -> Lab:
    _ensure_qemu_user()
    build_guest_kernel(directory)
    layouts = [HostLayout(host_name(i), i, directory / host_name(i)) for i in range(count)]
    for layout in layouts:
        daemon.check_socket_path(layout)
    hub, namespaces = _namespace_names(directory, count)
    if netns_mode:
        netns.create_network(hub, namespaces)
    addresses = [netns.host_address(i) if netns_mode else "127.0.0.1" for i in range(count)]
    for layout, address in zip(layouts, addresses, strict=True):
        daemon.write_configuration(layout, address if netns_mode else None)

    def start(layout: HostLayout) -> int:
        return daemon.start_daemon(layout, namespaces[layout.index] if netns_mode else None)

    try:
        first = layouts[0]
        pids = {first.name: start(first)}
        if not daemon.has_capabilities(first):
            # A cold lab: probe QEMU once on the first host; the others reuse its cache.
            connection = daemon.wait_until_ready(first, pids[first.name])
            daemon.load_qemu_capabilities(connection, virt_type)
            connection.close()
        for layout in layouts[1:]:
            if not daemon.has_capabilities(layout):
                daemon.copy_capabilities(first, layout)
            pids[layout.name] = start(layout)
        for layout in layouts:
            connection = daemon.wait_until_ready(layout, pids[layout.name])
            try:
                daemon.load_qemu_capabilities(connection, virt_type)
                daemon.ensure_storage_pool(connection)
            finally:
                connection.close()
    except BaseException:
        _stop_all(directory)
        raise
    hosts = tuple(
        HostConfig(
            name=layout.name,
            uri=layout.uri,
            p2p_uri=layout.p2p_uri,
            migration_address=address,
            migration_uri=f"tcp://{address}",
            capacity=_host_capacity(directory, count),
        )
        for layout, address in zip(layouts, addresses, strict=True)
    )
    lab = Lab(directory, virt_type, "netns" if netns_mode else "loopback", hosts)
    _write_hosts_file(lab)
    return lab


def _stop_all(directory: Path) -> list[str]:
    (directory / "hosts.toml").unlink(missing_ok=True)
    layouts = [
        HostLayout(path.name, index, path)
        for index, path in enumerate(sorted(directory.glob("lab-*")))
        if (path / "etc" / "libvirtd.conf").exists()
    ]
    stopped = []
    for layout in layouts:
        if daemon.daemon_pid(layout) is not None:
            daemon.destroy_guests(layout)
            stopped.append(layout.name)
        daemon.stop_daemon(layout)
    hub, _ = _namespace_names(directory, 0)
    prefix = hub.removesuffix("hub")
    present = netns.existing_namespaces()
    hosts = sorted(name for name in present if name.startswith(prefix) and name != hub)
    netns.remove_network(hub, hosts)
    return stopped


def _read_lab(directory: Path) -> Lab:
    hosts, lab_table = load_hosts_document(directory / "hosts.toml")
    return Lab(
        state_dir=directory,
        virt_type=str(lab_table.get("virt_type", "qemu")),
        network=str(lab_table.get("network", "loopback")),
        hosts=tuple(hosts),
    )


def _write_hosts_file(lab: Lab) -> None:
    """Written atomically: a reader sees the whole file or none."""
    text = render_hosts(
        list(lab.hosts),
        {"state_dir": str(lab.state_dir), "virt_type": lab.virt_type, "network": lab.network},
    )
    with tempfile.NamedTemporaryFile("w", dir=lab.state_dir, delete=False) as handle:
        handle.write(text)
    os.replace(handle.name, lab.hosts_file)


def _host_capacity(directory: Path, count: int) -> Capacity:
    """An equal share of this machine per host: the lab's hosts all live on it."""
    memory_kib = next(
        int(line.split()[1])
        for line in Path("/proc/meminfo").read_text().splitlines()
        if line.startswith("MemTotal:")
    )
    free_gb = shutil.disk_usage(directory).free // 1024**3
    return Capacity(
        memory_mb=max(1, memory_kib // 1024 // count),
        vcpus=os.cpu_count() or 1,
        disk_gb=max(1, free_gb // count),
    )


def _ensure_qemu_user() -> None:
    """libvirtd's QEMU driver looks up its built-in user before reading qemu.conf."""
    try:
        pwd.getpwnam("libvirt-qemu")
    except KeyError:
        subprocess.run(
            ["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin",
             "libvirt-qemu"],
            check=True,
            capture_output=True,
        )  # fmt: skip
