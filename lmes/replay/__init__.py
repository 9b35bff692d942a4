"""Nova logs into migration event streams (origin `replay`), and the diagnosis of a migration.

    from lmes.replay import Replay, collect_logs, diagnose
    for result in Replay(collect_logs(["logs/"]), store=open_store()).migrations():
        print(result.diagnosis.outcome, result.diagnosis.phases)

`diagnose(migration, events)` reads any stored migration (replayed, executed or simulated).
"""

from lmes.replay.diagnosis import Diagnosis, diagnose
from lmes.replay.ramp import RampFit, fit_ramp
from lmes.replay.service import Replay, ReplayedMigration, StoreResult, collect_logs

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
