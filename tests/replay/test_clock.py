"""Hosts whose clocks disagree are put on one clock, not mis-ordered."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from bench.make_nova_logs import ERAS, Clock, LineWriter, write_scenario
from lmes.replay.clock import Precedence, WrapperOffsets, estimate_offsets
from tests.replay.conftest import planned, replay_folder

FOUR_HOURS_S = 4 * 3600.0
T = datetime(2024, 5, 6, 9, 0, tzinfo=UTC)
INSTANCE = "0d0d0d0d-4444-4444-8444-000000000004"
REQUEST = "req-d0000001-0000-4000-8000-000000000001"


def at(seconds: float) -> datetime:
    return T + timedelta(seconds=seconds)


def test_clocks_that_agree_are_left_alone():
    offsets = estimate_offsets(
        [Precedence("src", at(0), "dst", at(0.2)), Precedence("dst", at(4), "src", at(4.1))], "src"
    )
    assert offsets == {"src": 0.0, "dst": 0.0}


def test_a_clock_four_hours_ahead_is_pulled_back_within_the_rpc_bounds():
    ahead = FOUR_HOURS_S
    offsets = estimate_offsets(
        [
            Precedence("src", at(0), "dst", at(ahead + 0.3)),  # pre_live_migration starts after
            Precedence("dst", at(ahead + 4.0), "src", at(4.2)),  # and ends before "Took …"
        ],
        "src",
    )
    assert -ahead - 0.3 <= offsets["dst"] <= -ahead + 0.2


def test_a_syslog_prefix_gives_the_offset_to_lines_that_only_have_it():
    offsets = WrapperOffsets()
    offsets.observe("compute-02", "May 06 05:00:00", T)
    assert offsets.offset_s("compute-02") == FOUR_HOURS_S
    assert offsets.place("compute-02", "May 06 05:00:07", 2024) == at(7)


def skewed_logs(tmp_path, **writer_options):
    clock = Clock()
    era = ERAS["wallaby"]
    writers = {
        "compute-01": LineWriter(era, 20001, clock, host="compute-01"),
        "compute-02": LineWriter(era, 20002, clock, host="compute-02", **writer_options),
    }
    write_scenario(
        tmp_path, [planned("wallaby", instance=INSTANCE, request=REQUEST)], writers=writers
    )
    [migration] = replay_folder(tmp_path)
    return migration


def assert_in_nova_order(migration):
    events = migration.replayed.events
    assert [e.timestamp for e in events] == sorted(e.timestamp for e in events)
    d = migration.diagnosis
    assert d.outcome == "completed"
    assert 0 < d.phases["pre_live_migration on compute-02"] < 10
    assert 0 < d.phases["post_migration"] < 10
    assert d.dest_host == "compute-02"


def test_a_destination_whose_clock_is_four_hours_ahead_is_reconciled(tmp_path):
    migration = skewed_logs(tmp_path, clock_offset_s=FOUR_HOURS_S)
    assert_in_nova_order(migration)
    offset = migration.replayed.migration.context["clock_offsets_s"]["compute-02"]
    assert offset == pytest.approx(-FOUR_HOURS_S, abs=5)
    assert any(
        a.startswith("clock skew: compute-02's log clock is 4.0 h ahead")
        for a in migration.diagnosis.anomalies
    )


def test_a_syslog_clock_four_hours_from_oslo_utc_uses_the_oslo_time(tmp_path):
    migration = skewed_logs(tmp_path, syslog=True, syslog_offset_s=-FOUR_HOURS_S)
    assert_in_nova_order(migration)
    assert migration.replayed.migration.context["clock_offsets_s"] == {}
    assert any(
        "syslog clock is 4.0 h behind the oslo.log time" in a for a in migration.diagnosis.anomalies
    )


def test_syslog_only_lines_in_local_time_are_placed_by_the_rpc_order(tmp_path):
    migration = skewed_logs(tmp_path, syslog=True, syslog_offset_s=-FOUR_HOURS_S, oslo_time=False)
    assert_in_nova_order(migration)
    offset = migration.replayed.migration.context["clock_offsets_s"]["compute-02"]
    assert offset == pytest.approx(FOUR_HOURS_S, abs=5)
