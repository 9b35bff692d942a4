"""The migrations left when the logs end, rebuilt in two processes, are those one process finds."""

from __future__ import annotations

from bench.make_nova_logs import write_scenario
from lmes.replay import service
from lmes.replay.service import Replay, collect_logs
from lmes.replay.sources import ParallelSources
from tests.replay.conftest import planned, replay_folder

INSTANCES = [f"0d0d0d0d-4444-4444-8444-00000000000{n}" for n in range(1, 6)]


def test_the_migrations_held_at_the_end_come_back_whole_and_in_order(tmp_path, monkeypatch):
    hosts = ["compute-01", "compute-02", "compute-03", "compute-04"]
    write_scenario(
        tmp_path,
        [
            planned(
                "wallaby",
                instance=instance,
                request=f"req-f000000{n}-0000-4000-8000-00000000000{n}",
                source=hosts[n % 4],
                dest=hosts[(n + 1) % 4],
                at_s=60 * n,
                outcome="failed" if n == 3 else "completed",
            )
            for n, instance in enumerate(INSTANCES, start=1)
        ],
        noise_lines_s=1.0,
    )
    alone = replay_folder(tmp_path)
    monkeypatch.setattr(service, "SHARED_FINISH_FROM", 2)
    replay = Replay(collect_logs([str(tmp_path)]), jobs=2, parallel_from_bytes=0)
    assert isinstance(replay.sources, ParallelSources)
    shared = list(replay.migrations())
    assert len(alone) == len(INSTANCES)
    assert replay.count == len(INSTANCES)
    assert [m.diagnosis.as_dict() for m in shared] == [m.diagnosis.as_dict() for m in alone]
    assert [m.replayed.events for m in shared] == [m.replayed.events for m in alone]
