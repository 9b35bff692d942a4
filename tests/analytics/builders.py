"""Migrations built with the aggregate, the way a producer records them, for the analytics tests."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from lmes.domain.migration import Migration
from tests.seed import SEED_RAMP as NEWTON_RAMP

GIB = 1024**3
START = datetime(2026, 11, 20, 9, 0, tzinfo=UTC)


def completed(
    instance: str = "vm-a",
    *,
    source: str = "compute-1",
    dest: str = "compute-2",
    at: datetime = START,
    copy_s: float = 400.0,
    downtime_ms: float = 180.0,
    origin: str = "replay",
    settings: dict | None = None,
    context: dict | None = None,
) -> Migration:
    """A 2 GiB guest copied in `copy_s` seconds while Nova walked the Newton ramp."""
    m = Migration.request(
        instance=instance,
        at=at,
        origin=origin,
        source_host=source,
        settings=settings or {"live_migration_downtime": 500},
        context=context or {},
    )
    t = at + timedelta(seconds=1)
    m.select_destination(dest, attempt=1, at=t)
    m.queue(data_gb=2.0, downtime_steps=NEWTON_RAMP, completion_timeout_s=1600, at=t)
    m.start_preparation(dest_host=dest, at=t + timedelta(seconds=1))
    m.complete_preparation(duration_s=3.0, at=t + timedelta(seconds=4))
    running = t + timedelta(seconds=5)
    m.start(flags=["live", "peer2peer"], bandwidth_mib_s=None, at=running)
    m.plug_vif("port-1", at=running + timedelta(seconds=2))
    for step_index, (mark_s, ms) in enumerate(NEWTON_RAMP):
        if mark_s >= copy_s:
            break
        m.increase_downtime(
            ms,
            elapsed_s=mark_s + 0.5,
            step_index=step_index,
            at=running + timedelta(seconds=mark_s + 0.5),
        )
    for i in range(1, 9):
        elapsed = copy_s * i / 9
        m.report_progress(
            elapsed_s=elapsed,
            memory_total_bytes=2 * GIB,
            memory_processed_bytes=int(2 * GIB * i / 6),
            memory_remaining_bytes=int(2 * GIB * (1 - i / 9) ** 2),
            at=running + timedelta(seconds=elapsed),
        )
    m.complete(
        total_s=copy_s,
        downtime_ms=downtime_ms,
        bytes_sent=3 * GIB,
        iterations=5,
        new_host=dest,
        at=running + timedelta(seconds=copy_s + 2),
    )
    return m


def failed(instance: str = "vm-b", *, at: datetime = START) -> Migration:
    """A migration that timed out, was aborted and rolled back."""
    m = Migration.request(instance=instance, at=at, origin="replay", source_host="compute-1")
    m.select_destination("compute-3", attempt=1, at=at)
    m.queue(data_gb=2.0, downtime_steps=NEWTON_RAMP, completion_timeout_s=1600, at=at)
    m.start_preparation(at=at + timedelta(seconds=1))
    running = at + timedelta(seconds=3)
    m.start(at=running)
    m.report_progress(
        elapsed_s=800,
        memory_total_bytes=2 * GIB,
        memory_remaining_bytes=GIB,
        at=running + timedelta(seconds=800),
    )
    m.reach_completion_timeout(elapsed_s=1601, action="abort", at=running + timedelta(seconds=1601))
    m.roll_back(cleaned=["instance dir"], at=running + timedelta(seconds=1602))
    m.fail(
        phase="memory copy",
        reason="Live migration not completed after 1600 sec",
        at=running + timedelta(seconds=1605),
    )
    return m


def post_copy(instance: str = "vm-c", *, at: datetime = START) -> Migration:
    """A migration forced over to post-copy after a while."""
    m = Migration.request(instance=instance, at=at, origin="sim", source_host="compute-4")
    m.select_destination("compute-5", attempt=1, at=at)
    m.queue(data_gb=4.0, downtime_steps=[(0, 50), (300, 500)], completion_timeout_s=3200, at=at)
    m.start_preparation(at=at + timedelta(seconds=1))
    running = at + timedelta(seconds=2)
    m.start(flags=["live", "postcopy"], at=running)
    m.request_force_complete(by="api", at=running + timedelta(seconds=60))
    m.switch_to_post_copy(elapsed_s=61, at=running + timedelta(seconds=61))
    m.complete(downtime_ms=20.0, at=running + timedelta(seconds=70))
    return m
