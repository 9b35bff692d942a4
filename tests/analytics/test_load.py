"""The analytics frames, read from real SQLite stores of migrations built with the aggregate."""

from __future__ import annotations

from datetime import timedelta

import pytest

from lmes.analytics import load
from lmes.store import open_store
from tests.analytics.builders import GIB, START, completed, failed, post_copy


@pytest.fixture
def store(lmes_home):
    store = open_store()
    store.add(
        completed("vm-a", downtime_ms=100, copy_s=400, context={"scenario": "baseline"}),
        completed("vm-d", downtime_ms=300, copy_s=200, at=START + timedelta(hours=1)),
        failed("vm-b"),
        post_copy("vm-c"),
    )
    return store


def test_migrations_carry_outcomes_and_what_follows_from_them(store):
    frame = load.migrations(store).set_index("instance")
    assert frame.loc["vm-a", "succeeded"]
    assert frame.loc["vm-a", "converged"]
    assert not frame.loc["vm-a", "forced"]
    assert frame.loc["vm-a", "downtime_steps_applied"] == 3
    assert frame.loc["vm-a", "memory_total_bytes"] == 2 * GIB
    # 3 GiB sent in the 400 s the libvirt job ran
    assert frame.loc["vm-a", "transfer_rate_bytes_s"] == pytest.approx(3 * GIB / 400)
    assert frame.loc["vm-a", "context"] == {"scenario": "baseline"}
    assert frame.loc["vm-c", "post_copy"] and frame.loc["vm-c", "forced"]
    assert not frame.loc["vm-c", "converged"]
    assert frame.loc["vm-b", "timeout_action"] == "abort"
    assert frame.loc["vm-b", "status"] == "failed"
    assert frame.loc["vm-b", "failure_reason"].startswith("Live migration not completed")


def test_migrations_filter_by_origin_host_status_time_and_ids(store):
    everything = load.migrations(store)
    assert len(everything) == 4
    assert set(load.migrations(store, origin="sim")["instance"]) == {"vm-c"}
    assert set(load.migrations(store, host="compute-3")["instance"]) == {"vm-b"}
    assert set(load.migrations(store, status="completed")["instance"]) == {"vm-a", "vm-d", "vm-c"}
    assert set(load.migrations(store, since=START + timedelta(minutes=30))["instance"]) == {"vm-d"}
    assert set(load.migrations(store, instance="vm-a")["instance"]) == {"vm-a"}
    one = everything.loc[everything["instance"] == "vm-d", "id"].iloc[0]
    assert load.migrations(store, ids=[one])["instance"].tolist() == ["vm-d"]


def test_outcome_stats_give_success_rate_and_percentiles_of_completed_ones(store):
    frame = load.migrations(store)
    stats = load.outcome_stats(frame).iloc[0]
    assert stats["migrations"] == 4
    assert stats["success_rate"] == pytest.approx(0.75)
    # downtimes of the completed ones: 20, 100, 300 ms
    assert stats["downtime_p50_ms"] == pytest.approx(100)
    assert stats["downtime_p99_ms"] == pytest.approx(296, abs=0.5)
    by_origin = load.outcome_stats(frame, by="origin").set_index("origin")
    assert by_origin.loc["replay", "success_rate"] == pytest.approx(2 / 3)
    assert by_origin.loc["sim", "total_p50_s"] == pytest.approx(72)


def test_phase_intervals_put_work_on_source_and_destination_lanes(store):
    events = load.events(store)
    frame = load.migrations(store).set_index("instance")
    intervals, markers = load.phase_intervals(events, frame.loc["vm-c", "id"])
    by_phase = {i.phase: i for i in intervals}
    assert by_phase["memory copy"].lane == "source"
    assert by_phase["post-copy"].lane == "destination"
    assert by_phase["memory copy"].end_s == by_phase["post-copy"].start_s == 63
    assert by_phase["post-copy"].end_s == 72
    assert [m.label for m in markers] == ["force-complete", "completed"]
    assert "post-migration" not in by_phase
    # the libvirt job of vm-a ended total_s = 400 s after the copy started at 6 s
    intervals, _ = load.phase_intervals(events, frame.loc["vm-a", "id"])
    by_phase = {i.phase: i for i in intervals}
    assert (by_phase["memory copy"].start_s, by_phase["memory copy"].end_s) == (6, 406)
    assert (by_phase["post-migration"].start_s, by_phase["post-migration"].end_s) == (406, 408)
    assert load.copy_seconds(events, frame.loc["vm-a", "id"]) == 400
    intervals, markers = load.phase_intervals(events, frame.loc["vm-b", "id"])
    assert {i.phase: i.lane for i in intervals}["rollback"] == "destination"
    assert "timeout: abort" in [m.label for m in markers]


def test_progress_and_downtime_curves_of_one_migration(store):
    events = load.events(store)
    vm_a = load.migrations(store, instance="vm-a")["id"].iloc[0]
    curve = load.progress(events, vm_a)
    assert len(curve) == 8
    assert curve["memory_remaining_bytes"].is_monotonic_decreasing
    applied = load.downtime_applied(events, vm_a)
    assert applied["downtime_ms"].tolist() == [46, 47, 48]
    assert load.planned_ramp(events, vm_a)[-1] == [1500, 500]
    with pytest.raises(ValueError, match="name one migration_id"):
        load.progress(events)


def test_streams_rebuild_migrations_with_their_events(store):
    streams = load.streams(store)
    assert [s.migration.instance for s in streams][-1] == "vm-d"
    first = streams[0]
    assert first.events[0].originator_version == 1
    assert len(first.events) == first.migration.version
    assert first.events_frame()["at_s"].iloc[0] == 0


def test_expand_spreads_settings_into_columns(store):
    frame = load.expand(load.migrations(store, instance="vm-a"), "settings")
    assert frame["live_migration_downtime"].tolist() == [500]


def test_an_empty_store_gives_empty_frames(lmes_home):
    store = open_store()
    assert load.migrations(store).empty
    assert load.events(store).empty
    assert load.outcome_stats(load.migrations(store))["migrations"].tolist() == [0]
