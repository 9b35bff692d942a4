"""The executor's cost over plain libvirt, and how fast it acts on an abort.

1. One guest migrated back and forth between two lab hosts, alternately by lmes (Nova's whole
   workflow: checks, queue, preparation, monitor, post-migration, every step recorded in a
   SQLite store) and by `virsh migrate --live --p2p` with the same bandwidth and the same
   initial max downtime. Prints each run and the ratio of total times (target <= 1.05).
2. A guest that cannot converge, migrated by lmes; `lmes abort ID` from another process
   records the request in the store; the time from that record to libvirt's job being gone
   (polled on a connection of the bench's own) is printed (target < 1 s).

A first round (one migration by each) warms both up (libvirt connections, the hosts' storage
pools for instance directories, page cache) and is shown but left out of the totals.

    python3 bench/executor.py [--runs 8] [--aborts 5] [--bandwidth 32]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from lmes.domain.settings import Settings  # noqa: E402
from lmes.domain.status import Status  # noqa: E402
from lmes.executor.lab import create_guest, lab_down, lab_up, remove_guest  # noqa: E402
from lmes.executor.service import Executor  # noqa: E402
from lmes.store import open_store  # noqa: E402

MIB = 1024**2
# The ramp's first step equals libvirt's default max downtime (300 ms), so both sides start
# from the same limit; with this guest both converge within that first step.
SAME_START = {"live_migration_downtime": 900, "live_migration_downtime_steps": 3}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=8, help="migrations each way (default 8)")
    parser.add_argument("--aborts", type=int, default=5, help="abort measurements (default 5)")
    parser.add_argument("--bandwidth", type=int, default=32, help="MiB/s cap (default 32)")
    args = parser.parse_args()

    home = Path(tempfile.mkdtemp(prefix="lmes-bench-executor-"))
    os.environ["LMES_HOME"] = str(home)
    os.environ["LMES_STORE"] = f"sqlite:///{home / 'lmes.sqlite'}"
    lab = lab_up(2, "tcg", netns_mode=False, home=home)
    os.environ["LMES_HOSTS"] = str(lab.hosts_file)
    try:
        ratio = compare_with_virsh(lab, args.runs, args.bandwidth)
        latencies = abort_latencies(lab, args.aborts)
    finally:
        lab_down(home)
        shutil.rmtree(home, ignore_errors=True)
    print()
    print(f"total-time ratio lmes / virsh: {ratio:.3f}  (target <= 1.05)")
    print(
        f"abort request -> libvirt job cancelled: median {statistics.median(latencies):.3f} s, "
        f"max {max(latencies):.3f} s  (target < 1 s)"
    )
    return 0


def compare_with_virsh(lab, runs: int, bandwidth_mib_s: int) -> float:
    guest = create_guest(lab, "bench-pingpong", 128, 64, 20 * MIB, host="lab-a")
    time.sleep(1)
    store = open_store()
    executor = Executor.from_hosts_file(store, lab.hosts_file)
    settings = Settings.defaults().with_overrides(
        live_migration_bandwidth=bandwidth_mib_s, **SAME_START
    )
    hosts = {host.name: host for host in lab.hosts}
    where = "lab-a"
    times: dict[str, list[float]] = {"lmes": [], "virsh": []}
    overheads: list[tuple[float, float]] = []
    print(f"guest {guest.name}: 128 MiB, 64 MiB dirtied at 20 MiB/s; cap {bandwidth_mib_s} MiB/s")
    print(f"{'run':>4} {'by':<6} {'from':<6} {'to':<6} {'seconds':>8}")
    try:
        for run in range(0, runs + 1):
            # Swap the order every run, so each tool moves the guest both ways.
            for by in ("lmes", "virsh") if run % 2 else ("virsh", "lmes"):
                to = "lab-b" if where == "lab-a" else "lab-a"
                started = time.perf_counter()
                if by == "lmes":
                    migration = executor.migrate(guest.name, dest=to, settings=settings)
                    if migration.status is not Status.COMPLETED:
                        raise SystemExit(f"lmes migration ended {migration.status}")
                    if run:
                        overheads.append(overhead_s(migration))
                else:
                    virsh_migrate(hosts[where], hosts[to], guest.name, bandwidth_mib_s)
                elapsed = time.perf_counter() - started
                if run:
                    times[by].append(elapsed)
                label = run or "warm"
                print(f"{label:>4} {by:<6} {where:<6} {to:<6} {elapsed:8.3f}")
                where = to
    finally:
        executor.close()
        remove_guest(lab, guest.name)
    for by, values in times.items():
        print(f"{by:<6} total {sum(values):7.3f} s  mean {statistics.mean(values):6.3f} s")
    before, after = (statistics.mean(part) for part in zip(*overheads, strict=True))
    print(
        f"lmes around libvirt's job (means): request -> job start {before:.3f} s, "
        f"job end -> completed recorded {after:.3f} s"
    )
    return sum(times["lmes"]) / sum(times["virsh"])


def overhead_s(migration) -> tuple[float, float]:
    """Seconds lmes spent before libvirt's job started and after it ended."""
    started = migration.phase_times[Status.RUNNING.value]
    before = (started - migration.requested_at).total_seconds()
    after = (migration.ended_at - started).total_seconds() - migration.total_s
    return before, after


def virsh_migrate(source, destination, name: str, bandwidth_mib_s: int) -> None:
    command = [
        "virsh", "-c", source.uri, "migrate", "--live", "--p2p", "--persistent",
        "--undefinesource", "--bandwidth", str(bandwidth_mib_s),
        "--migrateuri", destination.migration_uri,
        "--listen-address", destination.migration_address,
        name, destination.p2p_uri,
    ]  # fmt: skip
    subprocess.run(command, check=True, capture_output=True, text=True)


def abort_latencies(lab, count: int) -> list[float]:
    import libvirt

    store = open_store()
    executor = Executor.from_hosts_file(store, lab.hosts_file)
    settings = Settings.defaults().with_overrides(live_migration_bandwidth=16)
    watcher = libvirt.open(lab.host("lab-a").uri)
    latencies = []
    print()
    print("abort: guest dirtying 48 MiB/s of 64 MiB against a 16 MiB/s cap (never converges)")
    try:
        for attempt in range(1, count + 1):
            guest = create_guest(lab, f"bench-abort-{attempt}", 128, 64, 48 * MIB, host="lab-a")
            migration, lease = executor.request(guest.name, dest="lab-b", settings=settings)
            worker = threading.Thread(target=executor.execute, args=(migration.id,))
            worker.start()
            while store.migration(migration.id).status is not Status.RUNNING:
                time.sleep(0.05)
            time.sleep(2)
            gone_at = JobEnd(watcher.lookupByName(guest.name))
            subprocess.run(
                [sys.executable, "-m", "lmes.cli", "abort", str(migration.id)],
                check=True,
                capture_output=True,
                env={**os.environ, "PYTHONPATH": str(REPO)},
            )
            recorded_at = abort_recorded_at(store, migration.id)
            worker.join()
            lease.release()
            latency = gone_at.result() - recorded_at
            latencies.append(latency)
            final = store.migration(migration.id)
            print(f"{attempt:>4} {final.status.value:<10} abort -> job gone {latency:6.3f} s")
            remove_guest(lab, guest.name)
    finally:
        watcher.close()
        executor.close()
    return latencies


class JobEnd:
    """The moment a bench-side poll (every 5 ms) first sees the migration job gone."""

    def __init__(self, domain) -> None:
        self.domain = domain
        self.at: float | None = None
        self.thread = threading.Thread(target=self._poll, daemon=True)
        self.thread.start()

    def _poll(self) -> None:
        import libvirt

        while self.domain.jobStats().get("type") == libvirt.VIR_DOMAIN_JOB_UNBOUNDED:
            time.sleep(0.005)
        self.at = time.time()

    def result(self) -> float:
        self.thread.join()
        assert self.at is not None
        return self.at


def abort_recorded_at(store, migration_id) -> float:
    """When the store recorded the AbortRequested event (epoch seconds)."""
    for event in store.all_events():
        if event.originator_id == migration_id and type(event).__name__ == "AbortRequested":
            return event.timestamp.timestamp()
    raise SystemExit("no AbortRequested event was recorded")


if __name__ == "__main__":
    sys.exit(main())
