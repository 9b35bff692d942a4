"""Network namespaces for lab hosts that should not share the machine's loopback.

Each host gets a namespace with one veth interface, `eth0`, addressed 10.254.77.<n>/24; the other
ends meet on a bridge in a hub namespace. Migration traffic then crosses a real link that tests
can take down (`ip -n <ns> link set eth0 down`), and every address exists only inside the lab.
"""

from __future__ import annotations

import shutil
import subprocess

from lmes.errors import UserError

SUBNET_PREFIX = "10.254.77."
HOST_INTERFACE = "eth0"


def host_address(index: int) -> str:
    """The migration address of the lab's `index`-th host (0-based)."""
    return f"{SUBNET_PREFIX}{index + 1}"


def _ip(*args: str) -> None:
    result = subprocess.run(["ip", *args], capture_output=True, text=True)
    if result.returncode != 0:
        raise UserError(f"ip {' '.join(args)}: {result.stderr.strip()}")


def existing_namespaces() -> set[str]:
    if shutil.which("ip") is None:  # no iproute2: no namespaces of ours either
        return set()
    result = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True)
    return {line.split()[0] for line in result.stdout.splitlines() if line.strip()}


def create_network(hub: str, hosts: list[str]) -> None:
    """The hub namespace with its bridge, and one namespace per host wired to it."""
    remove_network(hub, hosts)
    _ip("netns", "add", hub)
    _ip("-n", hub, "link", "add", "br0", "type", "bridge")
    _ip("-n", hub, "link", "set", "br0", "up")
    for index, namespace in enumerate(hosts):
        hub_end = f"v{index}"
        _ip("netns", "add", namespace)
        _ip("-n", namespace, "link", "set", "lo", "up")
        _ip(
            "-n",
            hub,
            "link",
            "add",
            hub_end,
            "type",
            "veth",
            "peer",
            "name",
            HOST_INTERFACE,
            "netns",
            namespace,
        )
        _ip("-n", hub, "link", "set", hub_end, "master", "br0", "up")
        _ip("-n", namespace, "addr", "add", f"{host_address(index)}/24", "dev", HOST_INTERFACE)
        _ip("-n", namespace, "link", "set", HOST_INTERFACE, "up")


def remove_network(hub: str, hosts: list[str]) -> None:
    """Delete whichever of these namespaces exist (their veths go with them)."""
    present = existing_namespaces()
    for namespace in [*hosts, hub]:
        if namespace in present:
            _ip("netns", "del", namespace)
