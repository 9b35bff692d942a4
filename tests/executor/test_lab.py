"""The lab: real libvirt hosts on this machine, dirtying guests, and a real live migration."""

from __future__ import annotations

import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import NamedTuple

import pytest

from lmes.cli import main
from lmes.errors import UserError
from lmes.executor.lab import (
    Lab,
    create_guest,
    guest_reports,
    kvm_usable,
    lab_down,
    lab_status,
    lab_up,
    load_hosts,
    read_guest_counter,
    remove_guest,
    running_lab,
    wait_for_report,
)
from lmes.executor.lab.guest import build_guest_kernel
from tests.executor.conftest import MIB, lab_unavailable_reason

pytestmark = pytest.mark.lab


class CommandResult(NamedTuple):
    returncode: int
    stdout: str
    stderr: str


@pytest.fixture
def lmes(capsys, monkeypatch) -> Callable[..., CommandResult]:
    """Run the `lmes` command in this process against the lab in `home`."""

    def run(home: Path, *arguments: str) -> CommandResult:
        monkeypatch.setenv("LMES_HOME", str(home))
        capsys.readouterr()
        status = main(list(arguments))
        out, err = capsys.readouterr()
        return CommandResult(status, out, err)

    return run


def _migrate(
    lab: Lab,
    name: str,
    source: str,
    destination: str,
    bandwidth_mib_s: int = 0,
    copy_disks: bool = False,
):
    """Peer-to-peer live migration as Nova starts it; return the guest's domain on the
    destination and the names of the guests left on the source."""
    import libvirt

    destination_host = lab.host(destination)
    source_connection = libvirt.open(lab.host(source).uri)
    destination_connection = libvirt.open(destination_host.uri)
    params = {
        libvirt.VIR_MIGRATE_PARAM_URI: destination_host.migration_uri,
        libvirt.VIR_MIGRATE_PARAM_LISTEN_ADDRESS: destination_host.migration_address,
    }
    if bandwidth_mib_s:
        params[libvirt.VIR_MIGRATE_PARAM_BANDWIDTH] = bandwidth_mib_s
    flags = (
        libvirt.VIR_MIGRATE_LIVE
        | libvirt.VIR_MIGRATE_PEER2PEER
        | libvirt.VIR_MIGRATE_PERSIST_DEST
        | libvirt.VIR_MIGRATE_UNDEFINE_SOURCE
    )
    if copy_disks:
        flags |= libvirt.VIR_MIGRATE_NON_SHARED_DISK
    source_connection.lookupByName(name).migrateToURI3(destination_host.p2p_uri, params, flags)
    source_names = [domain.name() for domain in source_connection.listAllDomains()]
    source_connection.close()
    return destination_connection.lookupByName(name), source_names


def _network_namespaces() -> set[str]:
    listing = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    return {line.split()[0] for line in listing.splitlines() if line.strip()}


def _assert_guest_continued(lab: Lab, name: str, source: str, destination: str) -> None:
    """The guest's counters in memory went on from where the source left them."""
    last_on_source = guest_reports(lab, source, name)[-1]
    first_on_destination = guest_reports(lab, destination, name)[0]
    # A line being printed at the switch-over is split between the two logs and lost.
    assert last_on_source.seq < first_on_destination.seq <= last_on_source.seq + 2
    assert first_on_destination.t_s > last_on_source.t_s
    assert first_on_destination.total_pages > last_on_source.total_pages
    assert first_on_destination.bad_pages == 0


def test_live_migration_moves_a_running_guest_between_lab_hosts(lab, make_guest):
    import libvirt

    guest = make_guest(memory_mb=128, dirty_mb=64, dirty_rate_bps=20 * MIB, host="lab-a")
    wait_for_report(lab, "lab-a", guest.name)

    domain, left_on_source = _migrate(lab, guest.name, "lab-a", "lab-b", bandwidth_mib_s=32)

    assert domain.state()[0] == libvirt.VIR_DOMAIN_RUNNING
    assert domain.isPersistent()
    assert guest.name not in left_on_source
    stats = domain.jobStats(libvirt.VIR_DOMAIN_JOB_STATS_COMPLETED)
    assert stats["downtime"] > 0
    assert stats["time_elapsed"] > 0
    assert stats["memory_processed"] > 64 * MIB  # the dirty set, sent more than once
    assert stats["memory_iteration"] >= 2
    t_on_source_s, total_on_source = read_guest_counter(lab, "lab-a", guest.name)
    on_destination = wait_for_report(lab, "lab-b", guest.name)
    assert on_destination.t_s > t_on_source_s
    assert on_destination.total_pages > total_on_source
    _assert_guest_continued(lab, guest.name, "lab-a", "lab-b")


def test_guest_dirties_pages_at_the_requested_rate(lab, make_guest):
    guest = make_guest(memory_mb=64, dirty_mb=8, dirty_rate_bps=2 * MIB)
    assert guest.pages_per_s == 512
    report = wait_for_report(lab, guest.host, guest.name)
    assert report.pages_dirtied_per_s == 512
    assert report.total_pages == 512 * report.seq
    assert report.bad_pages == 0


def test_a_guest_with_a_local_disk_block_migrates(lab, make_guest):
    guest = make_guest(memory_mb=32, dirty_mb=4, dirty_rate_bps=MIB, host="lab-a", disk_mb=16)
    image_on = {host.name: lab.state_dir / host.name / "lib" / "images" / f"{guest.name}.qcow2"
                for host in lab.hosts}  # fmt: skip
    assert image_on["lab-a"].read_bytes()[:4] == b"QFI\xfb"
    assert not image_on["lab-b"].exists()
    wait_for_report(lab, "lab-a", guest.name)

    _migrate(lab, guest.name, "lab-a", "lab-b", copy_disks=True)

    assert image_on["lab-b"].read_bytes()[:4] == b"QFI\xfb"  # created by libvirt on the way
    wait_for_report(lab, "lab-b", guest.name)
    _assert_guest_continued(lab, guest.name, "lab-a", "lab-b")


def test_guest_arguments_are_checked_before_anything_is_created(lab):
    with pytest.raises(UserError, match="cannot hold a 64 MiB dirty set"):
        create_guest(lab, "too-small", 32, 64, MIB)
    with pytest.raises(UserError, match="unknown lab host 'lab-z'"):
        create_guest(lab, "nowhere", 64, 8, MIB, host="lab-z")
    with pytest.raises(UserError, match="guest name"):
        create_guest(lab, "../escape", 64, 8, MIB)
    guests = [name for status in lab_status(lab.state_dir.parent) for name in status.guests]
    assert not {"too-small", "nowhere", "../escape"} & set(guests)


def test_the_hosts_file_describes_every_lab_host(lab):
    hosts = load_hosts(lab.hosts_file)
    assert [host.name for host in hosts] == ["lab-a", "lab-b"]
    for host in hosts:
        socket = lab.state_dir / host.name / "run" / "libvirt-sock"
        assert host.uri == f"qemu:///system?socket={socket}"
        assert host.p2p_uri == f"qemu+unix:///system?socket={socket}"
        assert host.migration_uri == "tcp://127.0.0.1"
        assert host.capacity.memory_mb > 0 and host.capacity.vcpus > 0
    assert hosts == list(lab.hosts)


def test_lab_hosts_are_separate_machines_to_libvirt(lab):
    import libvirt

    connections = [libvirt.open(host.uri) for host in lab.hosts]
    assert [connection.getHostname() for connection in connections] == ["lab-a", "lab-b"]
    for connection in connections:
        connection.close()


def test_lab_up_again_reports_the_running_lab(lab, lab_home, lmes):
    result = lmes(lab_home, "lab", "up", "--tcg")
    assert result.returncode == 0, result.stderr
    assert "already up" in result.stdout
    assert lab_up(home=lab_home) == lab
    result = lmes(lab_home, "lab", "up", "--hosts", "3")
    assert result.returncode == 2
    assert result.stderr.strip().count("\n") == 0
    assert "already up with 2 hosts" in result.stderr


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (["--dirty-rate", "8MiB"], "needs a time unit"),
        (["--dirty-rate", "8 parsecs/s"], "is not a number with a unit"),
        (["--host", "lab-z"], "unknown lab host 'lab-z'"),
        (["--memory-mb", "lots"], "invalid int value"),
    ],
)
def test_lab_guest_rejects_bad_arguments_in_one_line(lab, lab_home, lmes, arguments, message):
    result = lmes(lab_home, "lab", "guest", "rejected", *arguments)
    assert result.returncode == 2
    assert result.stderr.startswith("lmes: ") and result.stderr.count("\n") == 1
    assert message in result.stderr
    assert "rejected" not in " ".join(g for s in lab_status(lab_home) for g in s.guests)


def test_lab_guest_command_starts_a_guest(lab, lab_home, lmes):
    result = lmes(
        lab_home, "lab", "guest", "cli-guest", "--memory-mb", "64", "--dirty-mb", "16",
        "--dirty-rate", "4MiB/s", "--host", "lab-b",
    )  # fmt: skip
    try:
        assert result.returncode == 0, result.stderr
        assert "cli-guest running on lab-b" in result.stdout
        assert wait_for_report(lab, "lab-b", "cli-guest").pages_dirtied_per_s == 1024
        status = lmes(lab_home, "lab", "status")
        assert "cli-guest" in status.stdout
    finally:
        remove_guest(lab, "cli-guest")


def test_guest_kernel_is_built_once_per_source(lab):
    kernel = build_guest_kernel(lab.state_dir)
    built_at = kernel.stat().st_mtime_ns
    assert build_guest_kernel(lab.state_dir).stat().st_mtime_ns == built_at


def test_netns_lab_migrates_over_its_own_link_and_goes_down_cleanly(lab, tmp_path):
    """A second lab beside the session's one: own network namespaces, then torn down."""
    home = tmp_path / "netns-home"
    netns_lab = lab_up(2, "tcg", netns_mode=True, home=home)
    try:
        addresses = [host.migration_address for host in netns_lab.hosts]
        assert addresses == ["10.254.77.1", "10.254.77.2"]
        host_namespaces = {netns_lab.network_namespace(host.name) for host in netns_lab.hosts}
        assert host_namespaces <= _network_namespaces()
        guest = create_guest(netns_lab, "over-veth", 64, 16, 4 * MIB, host="lab-a")
        wait_for_report(netns_lab, "lab-a", guest.name)
        _migrate(netns_lab, guest.name, "lab-a", "lab-b")
        wait_for_report(netns_lab, "lab-b", guest.name)
        _assert_guest_continued(netns_lab, guest.name, "lab-a", "lab-b")
        pids = [
            int((home / "lab" / h.name / "host.pid").read_text().split()[0])
            for h in netns_lab.hosts
        ]
    finally:
        stopped = lab_down(home)
    assert stopped == ["lab-a", "lab-b"]
    assert running_lab(home) is None
    assert not (home / "lab" / "hosts.toml").exists()
    for pid in pids:
        assert not Path(f"/proc/{pid}").exists()
    for host in netns_lab.hosts:
        assert not (home / "lab" / host.name / "run" / "libvirt-sock").exists()
        assert not list((home / "lab" / host.name / "run" / "qemu").glob("*.pid"))
    lab_prefix = next(iter(host_namespaces)).rsplit("-", 1)[0]  # hosts and hub share it
    assert not [name for name in _network_namespaces() if name.startswith(lab_prefix)]
    assert lab_status(home) == []
    assert lab_down(home) == []


@pytest.mark.slow
def test_kvm_lab_migrates_a_busy_waiting_guest(lab, tmp_path):
    """Under KVM here (kvm-pvm) the guest paces itself on the TSC; firmware makes boot slow."""
    if not kvm_usable():
        pytest.skip("/dev/kvm cannot create a VM on this machine")
    home = tmp_path / "kvm-home"
    kvm_lab = lab_up(2, "kvm", home=home)
    try:
        assert kvm_lab.virt_type == "kvm"
        guest = create_guest(kvm_lab, "on-kvm", 64, 16, 4 * MIB, host="lab-a")
        assert (
            "clock=tsc" in (kvm_lab.state_dir / "lab-a" / "etc" / "qemu" / "on-kvm.xml").read_text()
        )
        wait_for_report(kvm_lab, "lab-a", guest.name)
        _migrate(kvm_lab, guest.name, "lab-a", "lab-b")
        wait_for_report(kvm_lab, "lab-b", guest.name)
        _assert_guest_continued(kvm_lab, guest.name, "lab-a", "lab-b")
    finally:
        lab_down(home)


def test_lab_down_when_nothing_is_up_is_a_no_op(tmp_path, lmes):
    if lab_unavailable_reason():
        pytest.skip(lab_unavailable_reason())
    assert lab_down(tmp_path) == []
    assert lmes(tmp_path, "lab", "status").stdout == "lab is down\n"
