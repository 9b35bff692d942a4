"""Replaying into a real SQLite store: idempotent, and extended when the logs have grown."""

from __future__ import annotations

from bench.make_nova_logs import write_scenario
from lmes.domain.status import Origin
from lmes.replay.diagnosis import diagnose
from lmes.replay.service import StoreResult
from lmes.store import open_store
from tests.replay.conftest import SEED, planned, replay_folder


def counts(store):
    events = list(store.all_events())
    return len(list(store.migrations())), len(events)


def test_replaying_the_same_logs_twice_stores_each_migration_once(lmes_home, tmp_path):
    write_scenario(
        tmp_path,
        [
            planned(
                "wallaby",
                instance="0e0e0e0e-5555-4555-8555-00000000000" + str(i),
                request=f"req-e000000{i}-0000-4000-8000-000000000001",
                at_s=i * 200,
                outcome=outcome,
            )
            for i, outcome in enumerate(["completed", "failed", "incomplete"])
        ],
    )
    first = replay_folder(tmp_path, store=open_store())
    assert [m.stored for m in first] == [StoreResult.NEW] * 3
    after_first = counts(open_store())

    second = replay_folder(tmp_path, store=open_store())
    assert [m.stored for m in second] == [StoreResult.UNCHANGED] * 3
    assert counts(open_store()) == after_first
    assert after_first[0] == 3
    assert (lmes_home / "lmes.sqlite").exists()


def test_a_stored_migration_is_diagnosed_like_a_replayed_one(lmes_home):
    [replayed] = replay_folder(SEED, store=open_store())
    store = open_store()
    stored = store.migration(replayed.replayed.migration.id)
    events = list(store.repository.event_store.get(stored.id))
    assert stored.origin is Origin.REPLAY
    assert diagnose(stored, events).as_dict() == replayed.diagnosis.as_dict()


def test_logs_that_have_grown_extend_the_stored_stream(lmes_home, tmp_path):
    cut_at = "2019-12-16 16:05:42"
    for host in ("node-1", "node-3"):
        lines = (SEED / host / "nova-compute.log").read_text().splitlines(keepends=True)
        (tmp_path / host).mkdir()
        (tmp_path / host / "nova-compute.log").write_text(
            "".join(line for line in lines if line[:19] < cut_at)
        )
    [partial] = replay_folder(tmp_path, store=open_store())
    assert partial.diagnosis.outcome == "incomplete"
    stored_before = counts(open_store())[1]

    [full] = replay_folder(SEED, store=open_store())
    assert full.stored == StoreResult.EXTENDED
    assert full.replayed.migration.id == partial.replayed.migration.id
    store = open_store()
    assert counts(store) == (1, len(full.replayed.events))
    assert counts(store)[1] > stored_before
    assert store.migration(full.replayed.migration.id).status.value == "completed"
