"""The seed: a real Newton migration from node-1 to node-3, logged by both computes."""

from __future__ import annotations

import pytest

from tests.replay.conftest import SEED, replay_folder
from tests.seed import SEED_RAMP_JSON as NEWTON_RAMP

INSTANCE = "25a38456-409e-45c3-a878-ad63e052edad"


@pytest.fixture(scope="module")
def seed():
    migrations = replay_folder(
        [SEED / "node-1" / "nova-compute.log", SEED / "node-3" / "nova-compute.log"]
    )
    assert len(migrations) == 1
    return migrations[0].diagnosis


def test_the_seed_migration_completed_from_node_1_to_node_3(seed):
    assert seed.outcome == "completed"
    assert seed.instance == INSTANCE
    assert (seed.source_host, seed.dest_host) == ("node-1", "node-3")
    assert seed.request_ids == ["req-353f3f0b-522c-44cc-ba00-2f8f22225219"]
    assert seed.ended_at.isoformat() == "2019-12-16T16:05:48.043000+00:00"


def test_the_newton_ramp_is_recognised_with_its_configuration(seed):
    assert seed.planned_ramp == NEWTON_RAMP
    assert seed.downtime_steps == [[0.0, 46]]
    assert seed.inferred["ramp_form"] == "exponential"
    assert seed.inferred["data_gb"] == 2.0
    assert (seed.inferred["downtime_ms"], seed.inferred["steps"], seed.inferred["delay_s"]) == (
        500,
        10,
        75,
    )


def test_the_volume_cache_wait_and_the_vif_wait_are_phases(seed):
    phases = seed.phases
    assert phases["os-brick pre_live_migration on node-1"] == pytest.approx(5.109)
    assert phases["vif_wait"] == pytest.approx(40.551 - 37.928, abs=0.01)
    assert phases["pre_live_migration on node-3"] == pytest.approx(37.885 - 33.709, abs=0.01)
    assert phases["memory_copy"] == pytest.approx(43.610 - 40.551, abs=0.01)
    assert phases["post_migration"] == pytest.approx(48.043 - 43.610, abs=0.01)


def test_the_seed_has_nothing_abnormal_and_says_what_it_inferred(seed):
    assert seed.anomalies == []
    assert seed.failure is None
    inferred = [entry.text for entry in seed.timeline if entry.inferred]
    assert "queued on the source" in inferred


def test_the_folder_gives_the_same_migration():
    [from_folder] = replay_folder(SEED)
    assert (
        from_folder.diagnosis.as_dict()["phases"]
        == replay_folder(
            [SEED / "node-1" / "nova-compute.log", SEED / "node-3" / "nova-compute.log"]
        )[0].diagnosis.as_dict()["phases"]
    )
