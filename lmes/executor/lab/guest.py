"""Lab guests whose memory dirtying rate is known, and what they report on their serial port.

The guest is `lmesdirty`, a small freestanding kernel built from `guest/lmesdirty.c` with the
machine's gcc and booted by libvirt through `<os><kernel>`: it writes one word per 4 KiB page
over a dirty set at a set number of pages per second and prints a counter line every second
(see the C source). A migration test reads those lines on the source and on the destination.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING
from xml.sax.saxutils import escape

from lmes.errors import UserError
from lmes.executor.lab.libvirt_client import libvirt_module

if TYPE_CHECKING:
    from lmes.executor.lab.lifecycle import Lab

PAGE_BYTES = 4096
MIB = 1024**2
# The kernel, its stack and the multiboot data sit below 4 MiB; the dirty set starts there.
RESERVED_MB = 4
MAX_PAGES_PER_S = 4_000_000
# Machine `pc` puts at most 3 GiB of a large guest below 4 GiB, all a 32-bit guest can reach.
MAX_DIRTY_MB = 3 * 1024 - RESERVED_MB
_SOURCE_DIR = Path(__file__).with_name("guest")
_SOURCES = ("lmesdirty.c", "lmesdirty.ld")
_GCC_FLAGS = (
    "-m32", "-ffreestanding", "-nostdlib", "-static", "-fno-pic", "-fno-pie", "-no-pie",
    "-fno-stack-protector", "-fno-asynchronous-unwind-tables", "-O2", "-Wall", "-Wextra",
    "-Wl,--build-id=none",
)  # fmt: skip
_GUEST_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
_REPORT = re.compile(
    r"lmesdirty: t=(?P<t>\d+)s pages_dirtied_per_s=(?P<rate>\d+) total=(?P<total>\d+)"
    r" seq=(?P<seq>\d+) bad=(?P<bad>\d+)$"
)


@dataclass(frozen=True)
class LabGuest:
    """A guest created in the lab, and where its serial output lands on its first host."""

    name: str
    host: str
    memory_mb: int
    dirty_mb: int
    pages_per_s: int
    serial_log: Path

    @property
    def dirty_rate_bytes_per_s(self) -> int:
        return self.pages_per_s * PAGE_BYTES


@dataclass(frozen=True)
class GuestReport:
    """One per-second line of the dirtying guest."""

    t_s: int
    pages_dirtied_per_s: int
    total_pages: int
    seq: int
    bad_pages: int


def build_guest_kernel(directory: Path) -> Path:
    """`<lab>/guest/lmesdirty.elf`, compiled again only when the source or flags change."""
    output_dir = directory / "guest"
    kernel = output_dir / "lmesdirty.elf"
    digest_file = output_dir / "lmesdirty.sha256"
    digest = hashlib.sha256(" ".join(_GCC_FLAGS).encode())
    for name in _SOURCES:
        digest.update((_SOURCE_DIR / name).read_bytes())
    if kernel.exists() and digest_file.exists() and digest_file.read_text() == digest.hexdigest():
        return kernel
    if shutil.which("gcc") is None:
        raise UserError("gcc is needed to build the lab guest; run ./install.sh")
    output_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=output_dir) as scratch:
        built = Path(scratch) / "lmesdirty.elf"
        result = subprocess.run(
            ["gcc", *_GCC_FLAGS, f"-Wl,-T,{_SOURCE_DIR / 'lmesdirty.ld'}", "-o", str(built),
             str(_SOURCE_DIR / "lmesdirty.c")],
            capture_output=True,
            text=True,
        )  # fmt: skip
        if result.returncode != 0:
            raise UserError(f"building the lab guest failed: {result.stderr.strip()[-300:]}")
        os.replace(built, kernel)
    digest_file.write_text(digest.hexdigest())
    return kernel


def guest_cmdline(virt_type: str, dirty_mb: int, pages_per_s: int) -> str:
    """Pacing per virtualisation: under TCG, sleep between PIT ticks and flush the TLB each
    millisecond (TCG misses writes through stale TLB entries during pre-copy); under KVM
    here (kvm-pvm) timer interrupts and paging hang a 32-bit guest, so busy-wait on the TSC."""
    clock, tlb_flush = ("tsc", 0) if virt_type == "kvm" else ("pit", 1)
    return f"mb={dirty_mb} pages_per_s={pages_per_s} clock={clock} tlbflush={tlb_flush}"


def create_guest(
    lab: Lab,
    name: str,
    memory_mb: int,
    dirty_mb: int,
    dirty_rate_bps: float,
    host: str | None = None,
    disk_mb: int = 0,
) -> LabGuest:
    """Define and start a dirtying guest on `host` (default: the lab's first host).

    `dirty_rate_bps` is in bytes per second (see `lmes.units.parse_rate`); the guest dirties
    whole pages, so the rate is rounded to 4 KiB/s. `disk_mb` > 0 adds a local qcow2 disk
    in the host's `default` pool, for block-migration tests.
    """
    if not _GUEST_NAME.match(name):
        raise UserError(
            f"guest name {name!r} must be 1-64 letters, digits, '.', '_' or '-' "
            "(starting with a letter or digit)"
        )
    if dirty_mb < 0 or disk_mb < 0 or dirty_rate_bps < 0:
        raise UserError("dirty set, dirty rate and disk size cannot be negative")
    if dirty_mb > MAX_DIRTY_MB:
        raise UserError(f"dirty set of {dirty_mb} MiB is above the guest's limit of {MAX_DIRTY_MB}")
    if memory_mb < dirty_mb + RESERVED_MB:
        raise UserError(
            f"memory {memory_mb} MiB cannot hold a {dirty_mb} MiB dirty set; "
            f"give at least {dirty_mb + RESERVED_MB} MiB"
        )
    pages_per_s = round(dirty_rate_bps / PAGE_BYTES)
    if pages_per_s > MAX_PAGES_PER_S:
        raise UserError(f"dirty rate is above the guest's limit of {MAX_PAGES_PER_S} pages/s")
    if pages_per_s and not dirty_mb:
        raise UserError("a dirty rate needs a dirty set; give --dirty-mb")
    target = lab.host(host)
    libvirt = libvirt_module()
    for other in lab.hosts:
        connection = libvirt.open(other.uri)
        try:
            if name in (domain.name() for domain in connection.listAllDomains()):
                raise UserError(f"guest {name!r} already exists on {other.name}")
        finally:
            connection.close()

    layout = lab.layout(target.name)
    kernel = build_guest_kernel(lab.state_dir)
    cmdline = guest_cmdline(lab.virt_type, dirty_mb, pages_per_s)
    connection = libvirt.open(target.uri)
    try:
        disk_xml = _create_disk(connection, name, disk_mb) if disk_mb else ""
        layout.guest_serial_log(name).unlink(missing_ok=True)
        domain = connection.defineXML(
            _domain_xml(lab.virt_type, name, memory_mb, kernel, cmdline, disk_xml)
        )
        try:
            domain.create()
        except libvirt.libvirtError as exc:
            domain.undefine()
            raise UserError(f"guest {name!r} did not start on {target.name}: {exc}") from None
    finally:
        connection.close()
    return LabGuest(
        name, target.name, memory_mb, dirty_mb, pages_per_s, layout.guest_serial_log(name)
    )


def _create_disk(connection: object, name: str, disk_mb: int) -> str:
    libvirt = libvirt_module()
    pool = connection.storagePoolLookupByName("default")  # type: ignore[attr-defined]
    volume_name = f"{name}.qcow2"
    with contextlib.suppress(libvirt.libvirtError):
        pool.storageVolLookupByName(volume_name).delete(0)
    volume = pool.createXML(
        f"<volume><name>{escape(volume_name)}</name><capacity unit='MiB'>{disk_mb}</capacity>"
        "<target><format type='qcow2'/></target></volume>",
        0,
    )
    return (
        "<disk type='file' device='disk'><driver name='qemu' type='qcow2'/>"
        f"<source file='{escape(volume.path())}'/><target dev='vda' bus='virtio'/></disk>"
    )


def _domain_xml(
    virt_type: str, name: str, memory_mb: int, kernel: Path, cmdline: str, disk_xml: str
) -> str:
    # The serial path is inside the host's namespace: after a migration the destination
    # writes the same path, which is the destination's own log folder.
    return f"""<domain type='{virt_type}'>
  <name>{escape(name)}</name>
  <memory unit='MiB'>{memory_mb}</memory>
  <vcpu>1</vcpu>
  <os>
    <type arch='x86_64' machine='pc'>hvm</type>
    <kernel>{escape(str(kernel))}</kernel>
    <cmdline>{escape(cmdline)}</cmdline>
  </os>
  <clock offset='utc'/>
  <on_poweroff>destroy</on_poweroff>
  <on_reboot>destroy</on_reboot>
  <on_crash>destroy</on_crash>
  <devices>
    {disk_xml}
    <serial type='file'>
      <source path='/var/log/libvirt/qemu/{escape(name)}-serial.log'/>
      <target port='0'/>
    </serial>
    <controller type='usb' model='none'/>
    <memballoon model='none'/>
  </devices>
</domain>
"""


def remove_guest(lab: Lab, name: str) -> list[str]:
    """Destroy and undefine the guest wherever it is, with its disk; return the hosts it was on.

    After a migration the guest may be on any host, so every host is asked."""
    libvirt = libvirt_module()
    found_on = []
    for host in lab.hosts:
        connection = libvirt.open(host.uri)
        try:
            try:
                domain = connection.lookupByName(name)
            except libvirt.libvirtError:
                domain = None
            if domain is not None:
                found_on.append(host.name)
                if domain.isActive():
                    domain.destroy()
                if domain.isPersistent():
                    domain.undefine()
            try:
                pool = connection.storagePoolLookupByName("default")
                pool.storageVolLookupByName(f"{name}.qcow2").delete(0)
            except libvirt.libvirtError:
                pass
        finally:
            connection.close()
    return found_on


def guest_reports(lab: Lab, host: str, name: str) -> list[GuestReport]:
    """Every complete per-second line the guest printed while it ran on `host`."""
    try:
        text = lab.layout(host).guest_serial_log(name).read_text(errors="replace")
    except FileNotFoundError:
        return []
    reports = []
    for line in text.splitlines(keepends=True):
        match = _REPORT.search(line.rstrip("\n")) if line.endswith("\n") else None
        if match:
            reports.append(
                GuestReport(
                    t_s=int(match["t"]),
                    pages_dirtied_per_s=int(match["rate"]),
                    total_pages=int(match["total"]),
                    seq=int(match["seq"]),
                    bad_pages=int(match["bad"]),
                )
            )
    return reports


def read_guest_counter(lab: Lab, host: str, name: str) -> tuple[int, int] | None:
    """(guest seconds, total pages dirtied) from the guest's last line on `host`, or None."""
    reports = guest_reports(lab, host, name)
    return (reports[-1].t_s, reports[-1].total_pages) if reports else None


def wait_for_report(
    lab: Lab, host: str, name: str, after_seq: int = 0, timeout_s: float = 30.0
) -> GuestReport:
    """Block until the guest prints a line numbered above `after_seq` on `host`."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        reports = guest_reports(lab, host, name)
        if reports and reports[-1].seq > after_seq:
            return reports[-1]
        time.sleep(0.05)
    raise TimeoutError(f"guest {name} printed nothing after seq {after_seq} on {host}")
