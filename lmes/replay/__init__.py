"""Nova logs into migration event streams (origin `replay`), and the diagnosis of a migration.

    from lmes.replay import Replay, collect_logs, diagnose
    for result in Replay(collect_logs(["logs/"]), store=open_store()).migrations():
        print(result.diagnosis.outcome, result.diagnosis.phases)

`diagnose(migration, events)` reads any stored migration (replayed, executed or simulated).

The names are loaded on first use: a replay forks its log readers first and loads the
rebuilding and diagnosing code while they read, instead of before.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from lmes.replay.diagnosis import Diagnosis, diagnose
    from lmes.replay.ramp import RampFit, fit_ramp
    from lmes.replay.service import Replay, ReplayedMigration, StoreResult, collect_logs

_HOMES = {
    "Diagnosis": "lmes.replay.diagnosis",
    "diagnose": "lmes.replay.diagnosis",
    "RampFit": "lmes.replay.ramp",
    "fit_ramp": "lmes.replay.ramp",
    "Replay": "lmes.replay.service",
    "ReplayedMigration": "lmes.replay.service",
    "StoreResult": "lmes.replay.service",
    "collect_logs": "lmes.replay.service",
}

__all__ = [
    "Diagnosis",
    "RampFit",
    "Replay",
    "ReplayedMigration",
    "StoreResult",
    "collect_logs",
    "diagnose",
    "fit_ramp",
]


def __getattr__(name: str) -> Any:
    if name not in _HOMES:
        raise AttributeError(f"module 'lmes.replay' has no attribute {name!r}")
    return getattr(importlib.import_module(_HOMES[name]), name)
