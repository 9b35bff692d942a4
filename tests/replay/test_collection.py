"""A replay collects garbage rarely while it streams, and leaves the collector as it found it."""

from __future__ import annotations

import gc

from lmes.replay.collection import YOUNG_OBJECTS_BEFORE_COLLECTION, rare_collections


def test_the_collector_runs_rarely_inside_and_as_before_after():
    before = gc.get_threshold()
    with rare_collections():
        assert gc.get_threshold()[0] == YOUNG_OBJECTS_BEFORE_COLLECTION
        assert gc.get_threshold()[1:] == before[1:]
        assert gc.get_freeze_count() > 0
    assert gc.get_threshold() == before
    assert gc.get_freeze_count() == 0


def test_the_collector_is_restored_when_the_replay_fails():
    before = gc.get_threshold()
    try:
        with rare_collections():
            raise ValueError("a bad file")
    except ValueError:
        pass
    assert gc.get_threshold() == before
    assert gc.get_freeze_count() == 0
