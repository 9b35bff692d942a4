"""First process of one lab host, run inside its own mount and UTS namespaces.

Run as a script (`python3 -I hostinit.py STATE_DIR HOSTNAME`) by `unshare`, so it imports only
the standard library. It makes the host's state folders appear at libvirt's fixed paths, sets the
hostname, and runs libvirtd as its child. It is a child subreaper: the QEMU processes libvirtd
daemonizes become its children, and it reaps them the moment they exit. Without it they would
wait for the machine's init, which here reaps only every ~2 s, and libvirt waits for that reap at
the end of every migration and every destroy.
"""

from __future__ import annotations

import ctypes
import os
import signal
import socket
import sys
from pathlib import Path

PR_SET_CHILD_SUBREAPER = 36
MS_BIND = 4096

# host state sub-folder -> the path libvirtd uses for it
MOUNTS = {
    "etc": "/etc/libvirt",
    "run": "/run/libvirt",
    "lib": "/var/lib/libvirt",
    "log": "/var/log/libvirt",
    "cache": "/var/cache/libvirt",
}


def bind_state_folders(state_dir: Path) -> None:
    libc = ctypes.CDLL(None, use_errno=True)
    for folder, target in MOUNTS.items():
        os.makedirs(target, exist_ok=True)
        source = str(state_dir / folder).encode()
        if libc.mount(source, target.encode(), None, MS_BIND, None) != 0:
            error = ctypes.get_errno()
            raise OSError(error, f"bind-mount {source.decode()} on {target}: {os.strerror(error)}")


def become_subreaper() -> None:
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_CHILD_SUBREAPER)")


def own_children() -> list[int]:
    me = str(os.getpid())
    children = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as stat:
                fields = stat.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if fields[1] == me:
            children.append(int(entry))
    return children


def run(state_dir: Path, hostname: str) -> int:
    become_subreaper()
    bind_state_folders(state_dir)
    socket.sethostname(hostname)
    libvirtd = os.fork()
    if libvirtd == 0:
        os.execvp("libvirtd", ["libvirtd", "--pid-file", "/run/libvirt/libvirtd.pid"])

    def stop(_signal: int, _frame: object) -> None:
        os.kill(libvirtd, signal.SIGTERM)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    status = 0
    while True:
        try:
            pid, wait_status = os.wait()
        except ChildProcessError:
            return status
        if pid == libvirtd:
            status = os.waitstatus_to_exitcode(wait_status)
            # Guests outliving their daemon would keep this host's namespaces alive.
            for child in own_children():
                os.kill(child, signal.SIGKILL)


if __name__ == "__main__":
    sys.exit(run(Path(sys.argv[1]), sys.argv[2]))
