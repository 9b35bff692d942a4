"""The diagnosis reads any migration's events: one built by commands, as the executor would."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from lmes.domain import policy
from lmes.domain.migration import Migration
from lmes.domain.releases import PIKE
from lmes.replay.diagnosis import diagnose
from tests.replay.conftest import SEED, replay_folder

GIB = 1024**3
T = datetime(2024, 5, 6, 9, 0, tzinfo=UTC)


def at(seconds: float) -> datetime:
    return T + timedelta(seconds=seconds)


def executed_migration(*, remaining_gib: list[float], ends: str) -> Migration:
    """A linear-ramp migration of a 4 GiB guest copying at 1 GiB/s, as the executor records it."""
    ramp = policy.downtime_steps(500, 10, 3, 4.0, PIKE)  # 12 s apart
    m = Migration.request(
        instance="vm-1", at=at(0), origin="executor", source_host="a", block_migration="false"
    )
    m.select_destination("b", attempt=1, at=at(0.1))
    m.queue(data_gb=4.0, downtime_steps=ramp, completion_timeout_s=3200, at=at(0.2))
    m.start_preparation(at=at(0.3), dest_host="b")
    m.complete_preparation(duration_s=2.0, at=at(2.3))
    m.start(at=at(2.5))
    for index, remaining in enumerate(remaining_gib):
        elapsed = 10.0 * index
        step = policy.current_step(ramp, elapsed + 0.5)
        if step is not None and (not m.downtime_applied or m.downtime_applied[-1][1] != step[1]):
            m.increase_downtime(step[1], elapsed_s=step[0], at=at(2.5 + elapsed + 0.4))
        m.report_progress(
            elapsed_s=elapsed,
            memory_total_bytes=4 * GIB,
            memory_processed_bytes=int((index + 1) * 10 * GIB),
            memory_remaining_bytes=int(remaining * GIB),
            at=at(2.5 + elapsed + 0.5),
        )
    end = at(2.5 + 10.0 * len(remaining_gib))
    if ends == "cancelled":
        m.reach_completion_timeout(
            elapsed_s=(end - at(2.5)).total_seconds(), action="abort", at=end
        )
        m.roll_back(cleaned=["destination instance"], at=end)
        m.cancel(by="completion timeout", at=end, elapsed_s=(end - at(2.5)).total_seconds())
    else:
        m.complete(at=end + timedelta(seconds=3), total_s=(end - at(2.5)).total_seconds())
    return m


def test_a_copy_that_stops_converging_is_called_so_with_its_rates():
    m = executed_migration(
        remaining_gib=[3.0, 1.5, 1.4, 1.5, 1.45, 1.5, 1.5, 1.5, 1.5, 1.5, 1.5, 1.5, 1.5, 1.5],
        ends="cancelled",
    )
    d = diagnose(m, m.collect_events())
    assert d.outcome == "cancelled"
    assert d.failure["reason"].startswith("cancelled: Nova's completion timeout (3200 s)")
    text = " ".join(d.anomalies)
    assert "not converging: remaining memory has not fallen for" in text
    assert "completion timeout" in text
    assert "downtime ramp exhausted" in text
    assert d.transfer_rate_bytes_s == 1 * GIB
    assert d.dirty_rate_bytes_s > 0.9 * GIB
    assert d.inferred["ramp_form"] == "linear"
    assert (d.inferred["downtime_ms"], d.inferred["steps"]) == (500, 10)
    assert d.origin == "executor"


def test_a_migration_that_converges_has_no_anomaly():
    m = executed_migration(remaining_gib=[3.0, 2.0, 1.0, 0.2], ends="completed")
    d = diagnose(m, m.collect_events())
    assert d.outcome == "completed"
    assert d.anomalies == []
    assert set(d.phases) >= {
        "checks",
        "queued",
        "pre_live_migration",
        "memory_copy",
        "post_migration",
    }
    assert d.phases["post_migration"] == 3.0


def test_an_error_followed_by_post_migration_is_an_anomaly(tmp_path):
    """libvirt's job reported a failure, yet the guest was gone from the source: Nova ran the
    post-migration (find_job_type: "VM is missing, migration finished")."""
    text = (SEED / "node-1" / "nova-compute.log").read_text()
    completed_at = text.index("Migration operation has completed")
    line_start = text.rfind("\n", 0, completed_at) + 1
    prefix = text[line_start:completed_at].split(" INFO ")[0]
    error = (
        f"{prefix} ERROR nova.virt.libvirt.driver "
        f"[req-353f3f0b-522c-44cc-ba00-2f8f22225219 - - - - -] "
        f"[instance: 25a38456-409e-45c3-a878-ad63e052edad] Live Migration failure: "
        f"Unable to read from monitor: Connection reset by peer\n"
    )
    (tmp_path / "node-1").mkdir()
    (tmp_path / "node-1" / "nova-compute.log").write_text(
        text[:line_start] + error + text[line_start:]
    )
    [migration] = replay_folder(tmp_path)
    d = migration.diagnosis
    assert d.outcome == "completed"
    assert any("ran the post-migration instead of a rollback" in a for a in d.anomalies)
