"""Migration statuses and origins, spelled as Nova spells them.

Nova has no central state machine; these sets are the transitions its writers imply
(research: nova.md §3.3), so an operator reading lmes sees the same words as in
`openstack server migration list`.
"""

from enum import StrEnum


class Status(StrEnum):
    ACCEPTED = "accepted"
    QUEUED = "queued"
    PREPARING = "preparing"
    RUNNING = "running"
    POST_COPY = "running (post-copy)"
    COMPLETED = "completed"
    FAILED = "failed"
    ERROR = "error"
    CANCELLED = "cancelled"

    @property
    def is_terminal(self) -> bool:
        return self in TERMINAL

    @property
    def in_progress(self) -> bool:
        return not self.is_terminal


class Origin(StrEnum):
    """Which producer wrote a stream: the same analytics read all three."""

    EXECUTOR = "executor"
    REPLAY = "replay"
    SIM = "sim"


TERMINAL = frozenset({Status.COMPLETED, Status.FAILED, Status.ERROR, Status.CANCELLED})

# Where each status may be entered from (Nova's writers, nova.md §3.3).
ENTERED_FROM: dict[Status, frozenset[Status]] = {
    Status.QUEUED: frozenset({Status.ACCEPTED}),
    Status.PREPARING: frozenset({Status.QUEUED}),
    Status.RUNNING: frozenset({Status.PREPARING}),
    Status.POST_COPY: frozenset({Status.RUNNING}),
    Status.COMPLETED: frozenset({Status.RUNNING, Status.POST_COPY}),
    # rollback (>= 22: failed), max retries in the conductor
    Status.FAILED: frozenset({Status.ACCEPTED, Status.RUNNING, Status.POST_COPY}),
    # precheck failure, pre_live_migration failure, driver exception, compute restart
    Status.ERROR: frozenset(
        {Status.ACCEPTED, Status.QUEUED, Status.PREPARING, Status.RUNNING, Status.POST_COPY}
    ),
    # abort from the API (queued/preparing from Rocky), completion-timeout abort, shutdown
    Status.CANCELLED: frozenset({Status.QUEUED, Status.PREPARING, Status.RUNNING}),
}

# Nova's API: abort from queued, preparing or running (2.65+); force-complete only while running.
ABORTABLE = frozenset({Status.QUEUED, Status.PREPARING, Status.RUNNING})
FORCE_COMPLETABLE = frozenset({Status.RUNNING})
