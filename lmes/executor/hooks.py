"""Network and volume plug-ins: what Nova asks Neutron and Cinder to do around a migration.

lmes does not own networks or volumes, so their work is a small plug-in interface. `LocalHooks`
(the default) has nothing to plug; `ScriptedHooks` plays a script of delays and failures so
tests can drive Nova's VIF-plugging and pre-migration failure paths against real libvirt.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol


class HookFailed(Exception):
    """A network or volume operation failed (Nova: pre_live_migration raised)."""


@dataclass(frozen=True)
class HookContext:
    """Which migration the hook works for."""

    migration_id: str
    instance: str
    source_host: str
    dest_host: str


PortPlugged = Callable[[str], None]


class NetworkHook(Protocol):
    def plug_vifs(self, context: HookContext, on_plugged: PortPlugged) -> list[str]:
        """Set up the destination's ports; return the port ids whose plugging will be reported
        through `on_plugged` (from any thread), as Neutron's `network-vif-plugged` events."""
        ...

    def unplug_vifs(self, context: HookContext, host: str) -> None: ...


class VolumeHook(Protocol):
    def connect_volumes(self, context: HookContext) -> list[str]:
        """Connect the instance's volumes on the destination; return their ids."""
        ...

    def disconnect_volumes(self, context: HookContext, host: str) -> None: ...


@dataclass(frozen=True)
class Hooks:
    network: NetworkHook
    volumes: VolumeHook


class LocalNetwork:
    """No ports to plug: nothing to wait for, the migration starts at full bandwidth."""

    def plug_vifs(self, context: HookContext, on_plugged: PortPlugged) -> list[str]:
        return []

    def unplug_vifs(self, context: HookContext, host: str) -> None:
        return None


class LocalVolumes:
    """No volumes: the guest's disks are local files or none."""

    def connect_volumes(self, context: HookContext) -> list[str]:
        return []

    def disconnect_volumes(self, context: HookContext, host: str) -> None:
        return None


def local_hooks() -> Hooks:
    return Hooks(network=LocalNetwork(), volumes=LocalVolumes())


@dataclass
class ScriptedNetwork:
    """Ports that report as plugged after `plug_delay_s` (never, when None) and, when
    `plug_after` is given, only once that event is set; `fail_plug` makes plugging fail."""

    ports: tuple[str, ...] = ("port-1",)
    plug_delay_s: float | None = 0.0
    plug_after: threading.Event | None = None
    fail_plug: bool = False
    unplugged: list[tuple[str, str]] = field(default_factory=list)

    def plug_vifs(self, context: HookContext, on_plugged: PortPlugged) -> list[str]:
        if self.fail_plug:
            raise HookFailed(f"binding ports of {context.instance} on {context.dest_host} failed")
        if self.plug_delay_s is not None:
            delay_s = self.plug_delay_s

            def report() -> None:
                time.sleep(delay_s)
                if self.plug_after is not None:
                    self.plug_after.wait()
                for port in self.ports:
                    on_plugged(port)

            threading.Thread(target=report, name="vif-plugged", daemon=True).start()
        return list(self.ports)

    def unplug_vifs(self, context: HookContext, host: str) -> None:
        self.unplugged.append((context.instance, host))


@dataclass
class ScriptedVolumes:
    """Volumes whose connection takes `connect_delay_s` and fails when `fail_connect`."""

    volumes: tuple[str, ...] = ()
    connect_delay_s: float = 0.0
    fail_connect: bool = False
    disconnected: list[tuple[str, str]] = field(default_factory=list)

    def connect_volumes(self, context: HookContext) -> list[str]:
        time.sleep(self.connect_delay_s)
        if self.fail_connect:
            raise HookFailed(f"connecting the volumes of {context.instance} failed")
        return list(self.volumes)

    def disconnect_volumes(self, context: HookContext, host: str) -> None:
        self.disconnected.append((context.instance, host))
