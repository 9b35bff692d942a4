"""The lab: real libvirt hosts on one machine, and guests with a known memory dirtying rate.

Operators use it to try lmes end to end (`lmes lab up`, `lmes lab guest`); the test suite uses
it for real live migrations.
"""

from lmes.executor.lab.guest import (
    GuestReport,
    LabGuest,
    create_guest,
    guest_reports,
    read_guest_counter,
    remove_guest,
    wait_for_report,
)
from lmes.executor.lab.hosts import Capacity, HostConfig, load_hosts
from lmes.executor.lab.lifecycle import (
    HostStatus,
    Lab,
    kvm_usable,
    lab_dir,
    lab_down,
    lab_status,
    lab_up,
    load_lab,
    running_lab,
)

__all__ = [
    "Capacity",
    "GuestReport",
    "HostConfig",
    "HostStatus",
    "Lab",
    "LabGuest",
    "create_guest",
    "guest_reports",
    "kvm_usable",
    "lab_dir",
    "lab_down",
    "lab_status",
    "lab_up",
    "load_hosts",
    "load_lab",
    "read_guest_counter",
    "remove_guest",
    "running_lab",
    "wait_for_report",
]
