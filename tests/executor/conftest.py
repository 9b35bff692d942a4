"""The lab of real libvirt hosts, brought up once per test session for every executor test.

Two hosts under TCG in an isolated LMES_HOME; the dirtying guest sleeps between timer ticks
there, so guests cost almost no CPU. Skips (with the reason) only on machines that cannot run
libvirt at all; a lab that fails to start on a capable machine fails the tests.
"""

from __future__ import annotations

import itertools
import os
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from lmes.executor.lab import Lab, LabGuest, create_guest, lab_down, lab_up, remove_guest

MIB = 1024**2
_guest_numbers = itertools.count(1)


def lab_unavailable_reason() -> str | None:
    """Why this machine cannot run the lab at all, or None."""
    if os.geteuid() != 0:
        return "the lab needs root (bind mounts and namespaces)"
    for program in ("libvirtd", "qemu-system-x86_64", "qemu-img", "gcc"):
        if shutil.which(program) is None:
            return f"{program} is not installed (run ./install.sh)"
    try:
        import libvirt  # noqa: F401
    except ImportError:
        return "libvirt-python is not installed (pip install libvirt-python)"
    return None


@pytest.fixture(scope="session")
def lab_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The LMES_HOME of the session's lab (its hosts file is `<home>/lab/hosts.toml`)."""
    return tmp_path_factory.mktemp("lab-home")


@pytest.fixture(scope="session")
def lab(lab_home: Path) -> Iterator[Lab]:
    reason = lab_unavailable_reason()
    if reason:
        pytest.skip(reason)
    try:
        yield lab_up(2, "tcg", netns_mode=False, home=lab_home)
    finally:
        lab_down(lab_home)


@pytest.fixture
def make_guest(lab: Lab) -> Iterator[Callable[..., LabGuest]]:
    """Create dirtying guests with unique names; they are removed (wherever they migrated to)
    when the test ends."""
    created: list[str] = []

    def make(
        memory_mb: int = 128,
        dirty_mb: int = 64,
        dirty_rate_bps: float = 20 * MIB,
        host: str | None = None,
        disk_mb: int = 0,
    ) -> LabGuest:
        name = f"guest-{next(_guest_numbers)}"
        created.append(name)
        return create_guest(lab, name, memory_mb, dirty_mb, dirty_rate_bps, host, disk_mb)

    yield make
    for name in created:
        remove_guest(lab, name)
