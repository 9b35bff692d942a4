"""Calibration: fitting the model to a migration's progress reports, then simulating it back."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest

from lmes.cli import main
from lmes.domain.migration import Migration
from lmes.domain.settings import Settings
from lmes.sim.calibrate import CalibrationError, calibrate_migration
from lmes.sim.nova import MigrationPlan, NovaCosts, simulate_one
from lmes.sim.record import migration_stream
from lmes.sim.workload import Phase, WorkingSet, Workload
from lmes.store import open_store

SEED_DAY = datetime(2019, 12, 16, 8, 5, tzinfo=UTC)  # 16:05 in the log's UTC+8


def at(seconds: float) -> datetime:
    return SEED_DAY + timedelta(seconds=seconds)


def seed_migration() -> Migration:
    """The seed's migration as a replay records it: a 512 MB guest, Newton's ramp, 107 MiB/s,
    one progress line at the start of the copy, the job done 3.06 s after the VIFs."""
    migration = Migration.request(
        instance="25a38456-409e-45c3-a878-ad63e052edad",
        at=at(28.175),
        origin="replay",
        source_host="node-1.domain.tld",
        settings={"live_migration_downtime": 500, "release": "Newton"},
    )
    migration.select_destination("node-3.domain.tld", attempt=1, at=at(28.2))
    migration.queue(
        data_gb=2.0,
        downtime_steps=[(0, 46), (150, 47), (300, 48), (450, 51), (600, 57)],
        completion_timeout_s=1600,
        at=at(28.452),
    )
    migration.start_preparation(dest_host="node-3.domain.tld", at=at(28.553))
    migration.complete_preparation(duration_s=9.36, at=at(37.91))
    migration.start(flags=["live", "peer2peer"], bandwidth_mib_s=107, at=at(37.928))
    migration.plug_vif("9c29ae4c-4aaa-4449-841b-6f93421959fc", at=at(40.551))
    migration.increase_downtime(46, elapsed_s=0, step_index=0, at=at(40.671))
    migration.report_progress(
        elapsed_s=0,
        memory_total_bytes=554508288,
        memory_processed_bytes=7755671,
        memory_remaining_bytes=545390592,
        at=at(41.099),
    )
    migration.complete(total_s=43.610 - 37.928, new_host="node-3.domain.tld", at=at(48.043))
    return migration


def test_the_seeds_migration_simulates_back_within_ten_percent_of_its_copy_time():
    migration = seed_migration()
    events = list(migration.collect_events())
    observed_copy_s = 43.610 - 40.551

    fitted = calibrate_migration(migration, events)

    assert fitted.observed_copy_s == pytest.approx(observed_copy_s)
    plan = MigrationPlan("again", fitted.workload(), downtime_limit_ms=fitted.downtime_limit_ms)
    again = simulate_one(plan, fitted.bandwidth_bytes_s)
    assert again.converged
    assert again.copy_s == pytest.approx(observed_copy_s, rel=0.10)
    assert fitted.memory_bytes == 554508288
    assert fitted.bandwidth_bytes_s == 107 * 1024**2  # the cap Nova set: the only rate known
    assert fitted.downtime_limit_ms == 46


def simulated_stream(workload: Workload, link_bytes_s: float) -> tuple[Migration, list, object]:
    plan = MigrationPlan(
        "vm",
        workload,
        settings=Settings.defaults(),
        costs=NovaCosts.draw(None, np.random.default_rng(2)),
    )
    result = simulate_one(plan, link_bytes_s)
    migration = migration_stream(result)
    return migration, list(migration.collect_events()), result


def test_a_simulated_working_set_guest_is_fitted_back_in_time_and_rounds():
    guest = Workload(4 * 1024**3, 0.0, (Phase(0.0, WorkingSet(1 * 1024**3, 800e6)),))
    migration, events, result = simulated_stream(guest, 1.25e9)

    fitted = calibrate_migration(migration, events)

    assert fitted.observed_copy_s == pytest.approx(result.copy_s)
    assert fitted.bandwidth_bytes_s == pytest.approx(1.25e9, rel=1e-6)
    assert fitted.copy_error < 0.01
    assert fitted.simulated_rounds == result.rounds == fitted.observed_rounds
    assert fitted.working_set_bytes is not None


def test_a_constant_rate_guest_is_fitted_with_a_constant_rate():
    guest = Workload(8 * 1024**3, 0.0, (Phase(0.0, WorkingSet(8 * 1024**3, 200e6)),))
    migration, events, result = simulated_stream(guest, 1.25e9)

    fitted = calibrate_migration(migration, events)

    assert fitted.copy_error < 0.01
    assert abs(fitted.simulated_rounds - result.rounds) <= 1


def test_a_migration_without_a_completed_copy_cannot_be_fitted():
    migration = Migration.request(instance="vm", at=at(0), origin="replay")
    migration.queue(data_gb=2, downtime_steps=[], completion_timeout_s=0, at=at(1))
    migration.start_preparation(at=at(2))
    migration.start(at=at(3))
    migration.report_progress(
        elapsed_s=1, memory_total_bytes=1 << 30, memory_processed_bytes=1 << 20, at=at(4)
    )

    with pytest.raises(CalibrationError, match="no completed copy"):
        calibrate_migration(migration, list(migration.collect_events()))


def test_calibrate_saves_a_workload_that_simulate_reuses(lmes_home, tmp_path, capsys):
    assert (
        main(
            [
                "simulate",
                "--memory-mb",
                "4096",
                "--bandwidth",
                "10Gbit/s",
                "--working-set",
                "1GiB",
                "--write-rate",
                "800MB/s",
                "--json",
            ]
        )
        == 0
    )
    original = json.loads(capsys.readouterr().out)
    saved = tmp_path / "fit.json"

    assert main(["calibrate", original["migration_id"][:8], "--save", str(saved)]) == 0
    capsys.readouterr()
    assert (
        main(["simulate", "--workload", str(saved), "--no-fixed-costs", "--no-store", "--json"])
        == 0
    )
    again = json.loads(capsys.readouterr().out)

    assert again["copy_s"] == pytest.approx(original["copy_s"], rel=0.01)
    assert again["rounds"] == original["rounds"]
    assert json.loads(saved.read_text())["kind"] == "lmes-workload"


def test_calibrate_names_an_unknown_migration(lmes_home, capsys):
    open_store()

    assert main(["calibrate", "abcdef12"]) == 2
    assert "no migration abcdef12" in capsys.readouterr().err


def test_the_replayed_seed_is_simulated_back_within_ten_percent(lmes_home, tmp_path, capsys):
    seed_logs = Path(__file__).resolve().parents[2] / "examples" / "seed"
    assert main(["replay", str(seed_logs)]) == 0
    capsys.readouterr()
    (replayed,) = list(open_store().migrations())
    fit = tmp_path / "seed.json"

    assert main(["calibrate", str(replayed.id), "--save", str(fit), "--json"]) == 0
    fitted = json.loads(capsys.readouterr().out)["fit"]
    assert (
        main(["simulate", "--workload", str(fit), "--no-fixed-costs", "--no-store", "--json"]) == 0
    )
    again = json.loads(capsys.readouterr().out)

    observed = fitted["observed_copy_s"]
    assert observed == pytest.approx(43.610 - 40.551, abs=0.2)
    assert again["copy_s"] == pytest.approx(observed, rel=0.10)
