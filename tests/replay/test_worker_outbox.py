"""A log-reading worker sends from a thread; a replay that stops listening never stalls it."""

from __future__ import annotations

import queue

from lmes.replay.sources import _post


class Pipe:
    def __init__(self, fails_after: int) -> None:
        self.sent: list[object] = []
        self.fails_after = fails_after
        self.closed = False

    def send(self, message: object) -> None:
        if len(self.sent) >= self.fails_after:
            raise BrokenPipeError("the replay is gone")
        self.sent.append(message)

    def close(self) -> None:
        self.closed = True


def test_every_batch_is_sent_in_order_until_the_end():
    outbox: queue.Queue = queue.Queue()
    for message in (("batch", 1), ("batch", 2), ("done", 3), None):
        outbox.put(message)
    pipe = Pipe(fails_after=10)
    _post(outbox, pipe)
    assert pipe.sent == [("batch", 1), ("batch", 2), ("done", 3)]
    assert not pipe.closed


def test_a_failed_send_closes_the_pipe_and_the_rest_is_drained():
    outbox: queue.Queue = queue.Queue()
    for message in (("batch", 1), ("batch", 2), ("batch", 3), None):
        outbox.put(message)
    pipe = Pipe(fails_after=1)
    _post(outbox, pipe)
    assert pipe.sent == [("batch", 1)]
    assert pipe.closed
    assert outbox.empty()
