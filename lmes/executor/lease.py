"""Telling a live executor from a dead one: a lock file per migration under `$LMES_HOME/executor/`.

The executor that runs a migration holds an exclusive `flock` on its file for as long as it
lives; the kernel drops the lock when the process dies, even by `kill -9`, so recovery takes
over exactly the migrations whose lock it can get. The file also names the holder's pid, for
people reading the folder. (The lock is per machine: executors sharing one PostgreSQL store
from several machines each recover the migrations they started.)
"""

from __future__ import annotations

import fcntl
import os
from pathlib import Path
from uuid import UUID

from lmes.home import lmes_home


def lease_dir() -> Path:
    return lmes_home().resolve() / "executor"


class Lease:
    """The held lock of one migration; `release()` (or process death) frees it."""

    def __init__(self, migration_id: UUID, descriptor: int, path: Path) -> None:
        self.migration_id = migration_id
        self.descriptor = descriptor
        self.path = path

    def release(self) -> None:
        if self.descriptor >= 0:
            fcntl.flock(self.descriptor, fcntl.LOCK_UN)
            os.close(self.descriptor)
            self.descriptor = -1

    def inheritable(self) -> int:
        """The lock's descriptor, made inheritable so a child process keeps holding it."""
        os.set_inheritable(self.descriptor, True)
        return self.descriptor

    def hand_off(self) -> None:
        """Close this process's copy without unlocking: a child holding the same open file
        keeps the lock (an unlock here would free it for the child too)."""
        if self.descriptor >= 0:
            os.close(self.descriptor)
            self.descriptor = -1


def try_lease(migration_id: UUID) -> Lease | None:
    """The migration's lease, or None when a live process holds it."""
    directory = lease_dir()
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{migration_id}.lock"
    descriptor = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
    try:
        fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(descriptor)
        return None
    os.ftruncate(descriptor, 0)
    os.write(descriptor, f"{os.getpid()}\n".encode())
    return Lease(migration_id, descriptor, path)


def lease_held(migration_id: UUID) -> bool:
    """Whether a live executor holds the migration (its lock cannot be taken)."""
    lease = try_lease(migration_id)
    if lease is None:
        return True
    lease.release()
    return False


def adopt_lease(migration_id: UUID, descriptor: int) -> Lease:
    """The lease a parent process handed down as an open, locked descriptor."""
    os.ftruncate(descriptor, 0)
    os.write(descriptor, f"{os.getpid()}\n".encode())
    return Lease(migration_id, descriptor, lease_dir() / f"{migration_id}.lock")
