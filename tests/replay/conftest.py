"""Nova logs of known migrations, written the way each Nova era writes them.

The lines come from `bench/make_nova_logs.py` (the benchmark's generator, oslo.log's format
and Nova's own templates); each test says which migrations happened, so it can check that the
replay finds exactly those.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from bench.make_nova_logs import ERAS, MIB, PlannedMigration
from lmes.replay.service import Replay, ReplayedMigration, collect_logs

REPO = Path(__file__).resolve().parents[2]
SEED = REPO / "examples" / "seed"
T0 = datetime(2024, 5, 6, 9, 0, tzinfo=UTC).timestamp()


def planned(
    era: str,
    *,
    instance: str,
    request: str,
    source: str = "compute-01",
    dest: str = "compute-02",
    at_s: float = 0.0,
    outcome: str = "completed",
    memory_mb: int = 2048,
    transfer_mib_s: float = 400,
    dirty_mib_s: float = 40,
    **settings,
) -> PlannedMigration:
    return PlannedMigration(
        era=ERAS[era],
        instance=instance,
        request_id=request,
        source=source,
        dest=dest,
        start_s=T0 + at_s,
        outcome=outcome,
        memory_mb=memory_mb,
        transfer_bytes_s=transfer_mib_s * MIB,
        dirty_bytes_s=dirty_mib_s * MIB,
        port_id="5f0a4c59-7c1e-4d2b-9d6e-0d2c8a3e9b11",
        **settings,
    )


def replay_folder(folder: Path | list[Path], **kwargs) -> list[ReplayedMigration]:
    paths = [str(p) for p in folder] if isinstance(folder, list) else [str(folder)]
    return list(Replay(collect_logs(paths), **kwargs).migrations())


@pytest.fixture
def seed_logs() -> Path:
    return SEED


def compute_log(folder: Path, host: str, text: str) -> Path:
    """`text` written as `<folder>/<host>/nova-compute.log`, one folder a host, as operators
    collect them."""
    log = folder / host / "nova-compute.log"
    log.parent.mkdir()
    log.write_text(text)
    return log
