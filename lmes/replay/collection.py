"""Fewer garbage collections while a replay streams records.

A replay allocates millions of small objects that die young or live exactly as long as their
migration; Python's default thresholds then run the cyclic collector thousands of times over
the ones still held, which costs a third of the parsing and rebuilding time. The records hold
no reference cycles, so collecting a hundred times less often keeps memory where it was.
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager

YOUNG_OBJECTS_BEFORE_COLLECTION = 100_000


@contextmanager
def rare_collections() -> Iterator[None]:
    """Raise the youngest generation's threshold for the duration, then restore it. What exists
    on entry (modules, the parsed arguments) is frozen meanwhile: never traversed again, and
    left shared with forked readers instead of copied by the collector touching it."""
    previous = gc.get_threshold()
    gc.freeze()
    gc.set_threshold(YOUNG_OBJECTS_BEFORE_COLLECTION, *previous[1:])
    try:
        yield
    finally:
        gc.set_threshold(*previous)
        gc.unfreeze()
