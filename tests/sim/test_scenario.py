"""Evacuation scenarios: Nova's queue per source host, the scheduler, drains, rolling work."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest

from lmes.errors import UserError
from lmes.sim.nova import Outcome
from lmes.sim.scenario import build_scenario, read_scenario_file, run_scenario

REPO = Path(__file__).resolve().parents[2]
EXAMPLES = sorted((REPO / "examples" / "scenarios").glob("*.*"))


def small_cluster(**changes) -> dict:
    scenario = {
        "name": "test",
        "seed": 1,
        "nova": {"max_concurrent_live_migrations": 1},
        "costs": {
            "checks_s": 0,
            "pre_live_migration_s": 0,
            "vif_plug_s": 0,
            "post_live_migration_s": 0,
        },
        "network": {"nic": "8Gbit/s"},
        "hosts": {"racks": 1, "per_rack": 3, "memory": "64GiB", "vcpus": 32},
        "vms": {"per_host": 4, "vcpus": 2, "workload": {"memory": "4GiB", "dirty_rate": 0}},
        "action": {"drain_host": "r01-h01"},
    }
    scenario.update(changes)
    return scenario


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.name)
def test_the_example_scenarios_run(path):
    scenario = build_scenario(read_scenario_file(path), base_dir=path.parent)

    result = run_scenario(scenario)

    summary = result.summary()
    assert summary["migrations"] >= 1
    assert summary["makespan_s"] > 0
    assert summary["downtime_ms"]["p50"] is not None


def test_draining_a_host_moves_every_guest_one_at_a_time():
    scenario = build_scenario(small_cluster())

    result = run_scenario(scenario)

    assert result.hosts_drained == ["r01-h01"]
    assert [m.outcome for m in result.migrations] == [Outcome.COMPLETED] * 4
    copies = sorted((m.copy_started_s, m.ended_s) for m in result.migrations)
    for (_, end), (start, _) in zip(copies, copies[1:], strict=False):
        assert start >= end - 1e-9  # max_concurrent_live_migrations = 1: never overlap
    one_copy = 4 * 1024**3 * (1 + 8 / 4096) / 1e9
    assert result.makespan_s == pytest.approx(4 * one_copy, rel=1e-6)
    assert not scenario.cluster.hosts["r01-h01"].vms


def test_concurrent_migrations_share_the_source_nic():
    scenario = build_scenario(small_cluster(nova={"max_concurrent_live_migrations": 4}))

    result = run_scenario(scenario)

    one_copy = 4 * 1024**3 * (1 + 8 / 4096) / 1e9
    # Four at once through one NIC: the same makespan as one after the other, but each takes 4x.
    assert result.makespan_s == pytest.approx(4 * one_copy, rel=1e-6)
    assert all(m.copy_s == pytest.approx(4 * one_copy, rel=1e-6) for m in result.migrations)


def test_the_scheduler_spreads_guests_over_hosts_with_room():
    scenario = build_scenario(small_cluster())

    run_scenario(scenario)

    hosts = scenario.cluster.hosts
    assert len(hosts["r01-h02"].vms) == 6 and len(hosts["r01-h03"].vms) == 6


def test_guests_without_room_anywhere_fail_as_nova_does():
    tight = small_cluster(
        hosts={"racks": 1, "per_rack": 2, "memory": "20GiB", "vcpus": 32},
    )

    result = run_scenario(build_scenario(tight))

    outcomes = sorted(m.outcome for m in result.migrations)
    assert outcomes == [Outcome.COMPLETED, Outcome.ERROR, Outcome.ERROR, Outcome.ERROR]
    assert result.summary()["failures"] == 3
    assert result.hosts_not_empty == ["r01-h01"]


def test_draining_a_rack_sends_nothing_to_its_own_hosts():
    data = small_cluster(
        hosts={"racks": 2, "per_rack": 2, "memory": "64GiB", "vcpus": 32},
        network={"nic": "8Gbit/s", "rack_uplink": "10Gbit/s"},
        action={"drain_rack": "r01"},
    )

    result = run_scenario(build_scenario(data))

    assert sorted(result.hosts_drained) == ["r01-h01", "r01-h02"]
    assert {m.dest_host[:3] for m in result.migrations} == {"r02"}


def test_rolling_maintenance_takes_hosts_out_and_back():
    data = small_cluster(
        action={"rolling": {"parallel": 1, "maintenance_s": 100, "prefer_maintained": True}}
    )

    result = run_scenario(build_scenario(data))

    windows = result.maintenance
    assert [w["host"] for w in windows] == ["r01-h01", "r01-h02", "r01-h03"]
    assert all(w["guests_left"] == 0 for w in windows)
    assert windows[1]["drain_started_s"] == pytest.approx(windows[0]["returned_s"])
    assert result.makespan_s == pytest.approx(windows[-1]["returned_s"])


def test_interleaved_rolling_order_alternates_racks():
    data = small_cluster(
        hosts={"racks": 2, "per_rack": 2, "memory": "64GiB", "vcpus": 32},
        action={"rolling": {"order": "interleaved"}},
    )

    scenario = build_scenario(data)

    assert scenario.target_hosts() == ["r01-h01", "r02-h01", "r01-h02", "r02-h02"]


def test_a_scenario_is_deterministic_for_its_seed():
    data = read_scenario_file(REPO / "examples" / "scenarios" / "drain-rack.json")

    first = run_scenario(build_scenario(copy.deepcopy(data))).as_dict()
    again = run_scenario(build_scenario(copy.deepcopy(data))).as_dict()
    data["seed"] = 12
    other = run_scenario(build_scenario(data)).as_dict()

    assert first == again
    assert first != other


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"action": {"drain_host": "nowhere"}}, "no host 'nowhere'"),
        ({"action": {"explode": 1}}, "action must be one of"),
        ({"network": {}}, "network.nic"),
        ({"colour": "red"}, "unknown field"),
        ({"nova": {"live_migration_downtime": 10}}, "below its minimum"),
        ({"hosts": {"racks": 1}}, "missing 'per_rack'"),
        ({"placement": "random"}, "placement must be"),
    ],
)
def test_bad_scenarios_are_refused_in_one_line(changes, message):
    with pytest.raises(UserError, match=message):
        build_scenario(small_cluster(**changes))


def test_unreadable_scenario_files_are_user_errors(tmp_path):
    broken = tmp_path / "broken.yaml"
    broken.write_text("name: [unclosed\n")
    listing = tmp_path / "list.yaml"
    listing.write_text("- a\n- b\n")

    with pytest.raises(UserError, match="not valid JSON or YAML"):
        read_scenario_file(broken)
    with pytest.raises(UserError, match="must hold a mapping"):
        read_scenario_file(listing)
    with pytest.raises(UserError, match="cannot read scenario"):
        read_scenario_file(tmp_path / "missing.yaml")
