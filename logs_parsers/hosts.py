"""Which host a log file belongs to, when its lines do not say.

Sources, most trusted first: the user's `host=PATH` mapping (it overrides even the host named
in the lines); then, only for lines that do not name theirs: a sosreport's `hostname` file;
the folder that holds `var/log` (sosreport and `node-1/var/log/...` collections, with the
`sosreport-` decoration removed); and, for files found by walking a folder given to the
reader, the nearest sub-folder below it whose name is not a generic log folder name.
"""

from __future__ import annotations

import re
from pathlib import Path, PurePath

_GENERIC_FOLDERS = {
    "log",
    "logs",
    "nova",
    "var",
    "lib",
    "containers",
    "openstack",
    "kolla",
    "journal",
    "sos_commands",
    "pods",
    "libvirt",
    "qemu",
    "tmp",
    "stdin",
}
_SOSREPORT_NAME = re.compile(r"^sos(?:report)?-(?P<host>.+?)(?:-\d{4}-\d\d-\d\d.*|-\d{3,}.*)?$")


def parse_host_mapping(pairs: list[str]) -> dict[str, str]:
    """`["node-1=logs/a.log"]` → `{"logs/a.log": "node-1"}`; ValueError on a bad pair."""
    mapping = {}
    for pair in pairs:
        host, sep, path = pair.partition("=")
        if not sep or not host or not path:
            raise ValueError(f"host mapping {pair!r} is not HOST=PATH")
        mapping[path] = host
    return mapping


def host_from_mapping(path: Path, host_by_path: dict[str, str]) -> str | None:
    """The host the user gave for this file or for a folder above it."""
    if not host_by_path:
        return None
    resolved = path.resolve()
    for mapped, host in host_by_path.items():
        mapped_path = Path(mapped).resolve()
        if resolved == mapped_path or mapped_path in resolved.parents:
            return host
    return None


def host_from_path(path: PurePath, walked_from: Path | None = None) -> str | None:
    """The host a file's location suggests, or None. Only a concrete `Path` is looked up on
    disk (for a sosreport's `hostname` file); a `PurePath` (a path quoted in a `grep -r`
    line) is judged by its folder names alone."""
    parts = path.parts
    for index in range(len(parts) - 2, 0, -1):
        if parts[index] == "var" and parts[index + 1] == "log":
            hostname_file = Path(*parts[:index], "hostname")
            if isinstance(path, Path) and hostname_file.is_file():
                try:
                    name = hostname_file.read_text(errors="replace").strip().split()
                except OSError:
                    name = []
                if name:
                    return name[0]
            return _clean_folder_name(parts[index - 1])
    if walked_from is not None:
        try:
            relative = path.relative_to(walked_from).parts[:-1]
        except ValueError:
            relative = ()
        for name in reversed(relative):
            if name.lower() not in _GENERIC_FOLDERS:
                return _clean_folder_name(name)
    return None


def _clean_folder_name(name: str) -> str:
    match = _SOSREPORT_NAME.match(name)
    return match.group("host") if match else name
