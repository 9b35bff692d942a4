"""Which lines belong to which migration, decided as the lines stream by."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from lmes.replay.grouping import BUSY_OPEN, Grouper, Sighting
from logs_parsers.nova_catalogue import recognise
from logs_parsers.records import Record

T = datetime(2024, 5, 6, 9, 0, tzinfo=UTC)


def sighting(seconds: float, host: str, message: str, *, request=None, instance=None) -> Sighting:
    record = Record(
        source=f"{host}.log",
        line_number=int(seconds * 10),
        message=message,
        timestamp=T + timedelta(seconds=seconds),
        host=host,
        request_id=request,
        instance_uuid=instance,
    )
    return Sighting(at=record.timestamp, host=host, record=record, marker=recognise(message))


def feed(grouper: Grouper, sightings: list[Sighting]) -> list:
    done = [m for s in sightings for m in grouper.add(s)]
    return done + list(grouper.flush())


def test_a_line_without_instance_waits_for_its_request_to_be_claimed():
    migrations = feed(
        Grouper(),
        [
            sighting(
                0, "dst", "destination check data is LibvirtLiveMigrateData()", request="req-1"
            ),
            sighting(
                1, "src", "Starting monitoring of live migration", request="req-1", instance="vm-a"
            ),
            sighting(
                9, "src", "Live migration monitoring is all done", request="req-1", instance="vm-a"
            ),
        ],
    )
    [migration] = migrations
    assert migration.instance == "vm-a"
    assert migration.request_ids == ["req-1"]
    assert [s.host for s in migration.sightings] == ["src", "dst", "src"]


def test_a_second_migration_of_the_same_instance_is_a_new_one():
    migrations = feed(
        Grouper(),
        [
            sighting(
                0, "a", "Starting monitoring of live migration", request="req-1", instance="vm"
            ),
            sighting(
                5,
                "a",
                "Migrating instance to b finished successfully.",
                request="req-1",
                instance="vm",
            ),
            sighting(
                60, "b", "Starting monitoring of live migration", request="req-2", instance="vm"
            ),
        ],
    )
    assert [m.request_ids for m in migrations] == [["req-1"], ["req-2"]]


def test_an_abort_under_its_own_request_joins_the_running_migration():
    migrations = feed(
        Grouper(),
        [
            sighting(
                0, "a", "Starting monitoring of live migration", request="req-1", instance="vm"
            ),
            sighting(3, "api", "Going to cancel live migration 12", request="req-9", instance="vm"),
            sighting(4, "a", "Migration operation was cancelled", request="req-1", instance="vm"),
        ],
    )
    [migration] = migrations
    assert migration.request_ids == ["req-1"]
    assert "abort_requested" in migration.kinds


def test_a_settled_migration_is_handed_back_while_the_stream_goes_on():
    grouper = Grouper(settle_s=3600)
    first = [
        sighting(0, "a", "Starting monitoring of live migration", request="req-1", instance="v1"),
        sighting(5, "a", "Live migration monitoring is all done", request="req-1", instance="v1"),
    ]
    assert [m for s in first for m in grouper.add(s)] == []
    later = sighting(
        2 * 3600, "a", "Starting monitoring of live migration", request="req-2", instance="v2"
    )
    [settled] = list(grouper.add(later))
    assert settled.request_ids == ["req-1"]


def test_an_evacuation_settles_ended_migrations_sooner_to_bound_memory():
    grouper = Grouper(settle_s=6 * 3600)
    handed_back = []
    for index in range(BUSY_OPEN + 10):
        for s in (
            sighting(
                index,
                "a",
                "Starting monitoring of live migration",
                request=f"req-{index}",
                instance=f"vm-{index}",
            ),
            sighting(
                index + 0.5,
                "a",
                "Live migration monitoring is all done",
                request=f"req-{index}",
                instance=f"vm-{index}",
            ),
        ):
            handed_back.extend(grouper.add(s))
    handed_back.extend(
        grouper.add(
            sighting(
                BUSY_OPEN + 3600,
                "a",
                "Starting monitoring of live migration",
                request="req-x",
                instance="vm-x",
            )
        )
    )
    assert len(handed_back) == BUSY_OPEN + 10
