"""The hosts file: which libvirt hosts lmes may migrate between, and how to reach them.

One TOML file serves the lab (`lmes lab up` writes it) and real clouds (an operator writes it):

    [lab]                                  # only in files the lab wrote
    state_dir = "/abs/lmes-data/lab"
    virt_type = "qemu"                     # "qemu" (TCG) or "kvm"
    network = "loopback"                   # or "netns"

    [[hosts]]
    name = "lab-a"
    uri = "qemu:///system?socket=/abs/lmes-data/lab/lab-a/run/libvirt-sock"
    p2p_uri = "qemu+unix:///system?socket=/abs/lmes-data/lab/lab-a/run/libvirt-sock"
    migration_address = "127.0.0.1"
    migration_uri = "tcp://127.0.0.1"
    capacity = { memory_mb = 8192, vcpus = 2, disk_gb = 40 }

`uri` is what a client opens; `p2p_uri` is the destination URI the *source* daemon opens in a
peer-to-peer migration (defaults to `uri`); `migration_uri` is where QEMU sends memory
(defaults to `tcp://<migration_address>` when an address is given).
"""

from __future__ import annotations

import json
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lmes.errors import UserError

_HOST_KEYS = {"name", "uri", "p2p_uri", "migration_address", "migration_uri", "capacity"}
_CAPACITY_KEYS = ("memory_mb", "vcpus", "disk_gb")
_TOP_LEVEL_KEYS = {"hosts", "lab"}


@dataclass(frozen=True)
class Capacity:
    """What a host offers to guests, as a scheduler counts it."""

    memory_mb: int
    vcpus: int
    disk_gb: int


@dataclass(frozen=True)
class HostConfig:
    """One libvirt host as the executor reaches it."""

    name: str
    uri: str
    p2p_uri: str
    migration_address: str | None
    migration_uri: str | None
    capacity: Capacity


def load_hosts(path: Path | str) -> list[HostConfig]:
    """Read and check a hosts file; any mistake is a one-line UserError naming file and entry."""
    return _parse_hosts(_read_toml(Path(path)), Path(path))


def load_hosts_document(path: Path) -> tuple[list[HostConfig], dict[str, Any]]:
    """The hosts and the raw `[lab]` table (empty when the file is not the lab's)."""
    document = _read_toml(path)
    lab_table = document.get("lab", {})
    if not isinstance(lab_table, dict):
        raise UserError(f"{path}: [lab] must be a table")
    return _parse_hosts(document, path), lab_table


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise UserError(f"hosts file {path} does not exist") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise UserError(f"cannot read hosts file {path}: {exc}") from None
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise UserError(f"{path}: not valid TOML: {exc}") from None


def _parse_hosts(document: dict[str, Any], path: Path) -> list[HostConfig]:
    unknown = sorted(set(document) - _TOP_LEVEL_KEYS)
    if unknown:
        raise UserError(f"{path}: unknown top-level key {unknown[0]!r} (expected [[hosts]])")
    entries = document.get("hosts")
    if not isinstance(entries, list) or not entries:
        raise UserError(f"{path}: no hosts; add at least one [[hosts]] table")
    hosts = [_parse_host(entry, index, path) for index, entry in enumerate(entries, start=1)]
    seen: set[str] = set()
    for host in hosts:
        if host.name in seen:
            raise UserError(f"{path}: host name {host.name!r} appears twice")
        seen.add(host.name)
    return hosts


def _parse_host(entry: Any, index: int, path: Path) -> HostConfig:
    where = f"{path}: hosts[{index}]"
    if not isinstance(entry, dict):
        raise UserError(f"{where} must be a table")
    unknown = sorted(set(entry) - _HOST_KEYS)
    if unknown:
        raise UserError(f"{where}: unknown key {unknown[0]!r}")
    name = _text(entry, "name", where, required=True)
    where = f"{path}: host {name!r}"
    uri = _text(entry, "uri", where, required=True)
    p2p_uri = _text(entry, "p2p_uri", where) or uri
    for key, value in (("uri", uri), ("p2p_uri", p2p_uri)):
        if "://" not in value:
            raise UserError(f"{where}: {key} {value!r} is not a libvirt URI")
    address = _text(entry, "migration_address", where)
    migration_uri = _text(entry, "migration_uri", where) or (
        f"tcp://{address}" if address else None
    )
    if migration_uri is not None and "://" not in migration_uri:
        raise UserError(f"{where}: migration_uri {migration_uri!r} is not a URI like tcp://HOST")
    return HostConfig(name, uri, p2p_uri, address, migration_uri, _capacity(entry, where))


def _text(entry: dict[str, Any], key: str, where: str, required: bool = False) -> str | None:
    value = entry.get(key)
    if value is None:
        if required:
            raise UserError(f"{where}: missing {key!r}")
        return None
    if not isinstance(value, str) or not value.strip():
        raise UserError(f"{where}: {key} must be a non-empty string")
    return value


def _capacity(entry: dict[str, Any], where: str) -> Capacity:
    table = entry.get("capacity")
    if not isinstance(table, dict):
        raise UserError(f"{where}: missing capacity table ({', '.join(_CAPACITY_KEYS)})")
    unknown = sorted(set(table) - set(_CAPACITY_KEYS))
    if unknown:
        raise UserError(f"{where}: unknown capacity key {unknown[0]!r}")
    values = {}
    for key in _CAPACITY_KEYS:
        value = table.get(key)
        if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
            raise UserError(f"{where}: capacity.{key} must be a positive integer")
        values[key] = value
    return Capacity(**values)


def render_hosts(hosts: list[HostConfig], lab_table: dict[str, str]) -> str:
    """TOML text for `hosts` and a `[lab]` table of strings, readable by `load_hosts`."""
    lines = ["[lab]"]
    lines += [f"{key} = {_toml_string(value)}" for key, value in lab_table.items()]
    for host in hosts:
        lines += ["", "[[hosts]]"]
        for key in ("name", "uri", "p2p_uri", "migration_address", "migration_uri"):
            value = getattr(host, key)
            if value is not None:
                lines.append(f"{key} = {_toml_string(value)}")
        capacity = host.capacity
        lines.append(
            f"capacity = {{ memory_mb = {capacity.memory_mb}, vcpus = {capacity.vcpus}, "
            f"disk_gb = {capacity.disk_gb} }}"
        )
    return "\n".join(lines) + "\n"


def _toml_string(value: str) -> str:
    """A TOML basic string: JSON's escapes (\\", \\\\, \\n, \\uXXXX) are all valid TOML."""
    return json.dumps(value, ensure_ascii=False)
