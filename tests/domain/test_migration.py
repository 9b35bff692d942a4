"""The Migration aggregate follows Nova's statuses; an illegal command records nothing."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from lmes.domain.errors import IllegalTransition
from lmes.domain.migration import Migration, migration_id_for
from lmes.domain.status import ENTERED_FROM, TERMINAL, Origin, Status

T0 = datetime(2016, 11, 8, 9, 30, tzinfo=UTC)


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def requested() -> Migration:
    return Migration.request(
        instance="vm-1", source_host="node-1", at=at(0), origin=Origin.EXECUTOR
    )


def queued() -> Migration:
    m = requested()
    m.select_destination("node-3", attempt=1, at=at(1))
    m.queue(data_gb=2, downtime_steps=[(0, 46), (150, 47)], completion_timeout_s=1600, at=at(2))
    return m


def preparing() -> Migration:
    m = queued()
    m.start_preparation(at=at(3))
    return m


def running() -> Migration:
    m = preparing()
    m.complete_preparation(duration_s=5.1, at=at(8))
    m.start(flags=["live", "peer2peer"], bandwidth_mib_s=0, at=at(9))
    return m


def post_copy() -> Migration:
    m = running()
    m.switch_to_post_copy(elapsed_s=30, at=at(39))
    return m


def completed() -> Migration:
    m = running()
    m.complete(
        total_s=20, downtime_ms=31, bytes_sent=10, iterations=3, new_host="node-3", at=at(20)
    )
    return m


def failed() -> Migration:
    m = running()
    m.fail(phase="copy", reason="boom", at=at(20))
    return m


def errored() -> Migration:
    m = preparing()
    m.fail(phase="preparation", reason="vif plug timeout", status="error", at=at(20))
    return m


def cancelled() -> Migration:
    m = running()
    m.cancel(by="api", at=at(20))
    return m


BUILDERS = {
    Status.ACCEPTED: requested,
    Status.QUEUED: queued,
    Status.PREPARING: preparing,
    Status.RUNNING: running,
    Status.POST_COPY: post_copy,
    Status.COMPLETED: completed,
    Status.FAILED: failed,
    Status.ERROR: errored,
    Status.CANCELLED: cancelled,
}


def test_a_migration_walks_novas_happy_path_with_every_event_named_as_designed():
    m = running()
    m.plug_vif("port-1", at=at(10))
    m.change_bandwidth(100, at=at(10))
    m.increase_downtime(46, elapsed_s=0.5, step_index=0, at=at(10))
    m.report_progress(elapsed_s=5, memory_total_bytes=100, memory_remaining_bytes=40, at=at(14))
    m.complete(
        total_s=11, downtime_ms=31, bytes_sent=10, iterations=3, new_host="node-3", at=at(20)
    )
    names = [type(e).__name__ for e in m.collect_events()]
    assert names == [
        "MigrationRequested",
        "DestinationSelected",
        "MigrationQueued",
        "PreparationStarted",
        "PreparationCompleted",
        "MigrationStarted",
        "VifPlugged",
        "BandwidthChanged",
        "DowntimeIncreased",
        "ProgressReported",
        "Completed",
    ]
    assert m.status is Status.COMPLETED
    assert m.dest_host == "node-3"
    assert m.downtime_limit_ms == 46
    assert m.ended_at == at(20)


def test_events_carry_the_time_things_happened_not_the_time_of_storing():
    m = queued()
    events = m.collect_events()
    assert [e.timestamp for e in events] == [at(0), at(1), at(2)]
    assert m.requested_at == at(0)


def test_each_stream_records_its_origin():
    for origin in Origin:
        m = Migration.request(instance="vm", at=at(0), origin=origin)
        assert m.origin is origin
        assert m.collect_events()[0].origin == origin.value


def test_stable_ids_name_the_same_stream_for_the_same_key():
    assert migration_id_for("req-1/vm") == migration_id_for("req-1/vm")
    assert migration_id_for("req-1/vm") != migration_id_for("req-2/vm")
    m = Migration.request(
        instance="vm", at=at(0), origin="replay", migration_id=migration_id_for("req-1/vm")
    )
    assert m.id == migration_id_for("req-1/vm")


def _status_commands() -> dict[Status, object]:
    """For each target status, the command that enters it."""
    return {
        Status.QUEUED: lambda m: m.queue(
            data_gb=2, downtime_steps=[(0, 50)], completion_timeout_s=1600, at=at(50)
        ),
        Status.PREPARING: lambda m: m.start_preparation(at=at(50)),
        Status.RUNNING: lambda m: m.start(at=at(50)),
        Status.POST_COPY: lambda m: m.switch_to_post_copy(elapsed_s=1, at=at(50)),
        Status.COMPLETED: lambda m: m.complete(at=at(50)),
        Status.FAILED: lambda m: (
            m.fail_precheck(check="c", reason="r", retries_exhausted=True, at=at(50))
            if m.status is Status.ACCEPTED
            else m.fail(phase="p", reason="r", at=at(50))
        ),
        Status.ERROR: lambda m: m.fail(phase="p", reason="r", status="error", at=at(50)),
        Status.CANCELLED: lambda m: m.cancel(by="api", at=at(50)),
    }


TRANSITIONS = [(source, target) for source in Status for target in ENTERED_FROM]


@pytest.mark.parametrize(("source", "target"), TRANSITIONS, ids=lambda s: str(s).replace(" ", "_"))
def test_every_transition_is_legal_exactly_where_nova_makes_it(source, target):
    m = BUILDERS[source]()
    before = m.version
    command = _status_commands()[target]
    if source in ENTERED_FROM[target]:
        command(m)
        assert m.status is target
        assert m.version == before + 1
    else:
        with pytest.raises(IllegalTransition):
            command(m)
        assert m.version == before, "an illegal command must record nothing"
        assert m.status is source


@pytest.mark.parametrize("source", list(Status), ids=lambda s: str(s).replace(" ", "_"))
def test_abort_only_from_queued_preparing_or_running(source):
    m = BUILDERS[source]()
    before = m.version
    if source in (Status.QUEUED, Status.PREPARING, Status.RUNNING):
        m.request_abort(by="cli", at=at(60))
        assert m.abort_requested_by == "cli"
    else:
        with pytest.raises(IllegalTransition, match="cannot be aborted"):
            m.request_abort(by="cli", at=at(60))
        assert m.version == before


@pytest.mark.parametrize("source", list(Status), ids=lambda s: str(s).replace(" ", "_"))
def test_force_complete_only_while_running(source):
    m = BUILDERS[source]()
    before = m.version
    if source is Status.RUNNING:
        m.request_force_complete(by="api", at=at(60))
        assert m.force_complete_requested_by == "api"
    else:
        with pytest.raises(IllegalTransition, match="forced to complete"):
            m.request_force_complete(by="api", at=at(60))
        assert m.version == before


ALL_COMMANDS = {
    "select_destination": lambda m: m.select_destination("x", attempt=1, at=at(70)),
    "reject_destination": lambda m: m.reject_destination(
        "x", attempt=1, check="c", reason="r", at=at(70)
    ),
    "fail_precheck": lambda m: m.fail_precheck(check="c", reason="r", at=at(70)),
    "complete_preparation": lambda m: m.complete_preparation(duration_s=1, at=at(70)),
    "plug_vif": lambda m: m.plug_vif("p", at=at(70)),
    "change_bandwidth": lambda m: m.change_bandwidth(1, at=at(70)),
    "increase_downtime": lambda m: m.increase_downtime(50, elapsed_s=1, at=at(70)),
    "report_progress": lambda m: m.report_progress(elapsed_s=1, at=at(70)),
    "pause_guest": lambda m: m.pause_guest(elapsed_s=1, why="force", at=at(70)),
    "reach_completion_timeout": lambda m: m.reach_completion_timeout(
        elapsed_s=1, action="abort", at=at(70)
    ),
    "roll_back": lambda m: m.roll_back(cleaned=["domain"], at=at(70)),
    **{f"enter_{s.value}": c for s, c in _status_commands().items()},
}


@pytest.mark.parametrize("terminal", sorted(TERMINAL), ids=str)
@pytest.mark.parametrize("command", sorted(ALL_COMMANDS))
def test_terminal_statuses_accept_nothing(terminal, command):
    m = BUILDERS[terminal]()
    before = m.version
    with pytest.raises(IllegalTransition):
        ALL_COMMANDS[command](m)
    assert m.version == before
    assert m.status is terminal


def test_the_destination_cannot_be_the_source():
    m = requested()
    with pytest.raises(IllegalTransition, match="is the source"):
        m.select_destination("node-1", attempt=1, at=at(1))


def test_retries_exhausted_fail_rather_than_error():
    m = requested()
    m.reject_destination("node-2", attempt=1, check="memory", reason="not enough", at=at(1))
    m.fail_precheck(
        check="scheduler", reason="MaxRetriesExceeded", retries_exhausted=True, at=at(2)
    )
    assert m.status is Status.FAILED
    assert m.rejected == [{"host": "node-2", "check": "memory", "reason": "not enough"}]


def test_rollback_is_recorded_before_the_terminal_status():
    m = running()
    m.roll_back(cleaned=["domain", "instance dir"], at=at(30))
    m.cancel(by="timeout", elapsed_s=21, at=at(30))
    assert m.rolled_back == ["domain", "instance dir"]
    assert m.status is Status.CANCELLED


def test_times_must_be_timezone_aware():
    with pytest.raises(IllegalTransition, match="timezone-aware"):
        Migration.request(instance="vm", at=datetime(2016, 1, 1), origin="sim")
    m = running()
    with pytest.raises(IllegalTransition, match="timezone-aware"):
        m.report_progress(elapsed_s=1, at=datetime(2016, 1, 1))


def test_block_migration_takes_novas_three_answers():
    with pytest.raises(IllegalTransition, match="block_migration"):
        Migration.request(instance="vm", at=at(0), origin="sim", block_migration="maybe")
