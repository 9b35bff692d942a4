"""The simulator's commands, as a user runs them, with a real SQLite store."""

from __future__ import annotations

import json
import sys
from datetime import UTC, datetime
from pathlib import Path

import pandas as pd
import pytest

from lmes.cli import main
from lmes.domain.migration import Migration
from lmes.domain.status import Origin, Status
from lmes.store import open_store
from tests.conftest import run_lmes

REPO = Path(__file__).resolve().parents[2]
VC6 = [
    "simulate",
    "--memory-mb",
    "4096",
    "--bandwidth",
    "1.25GB/s",
    "--dirty-rate",
    "0.25GB/s",
    "--downtime-limit-ms",
    "300",
    "--page-header-bytes",
    "0",
]


def lmes_json(capsys, *args: str) -> dict:
    assert main([*args, "--json"]) == 0
    return json.loads(capsys.readouterr().out)


def test_simulate_reports_the_closed_form_case_and_stores_it(lmes_home, capsys):
    report = lmes_json(capsys, *VC6)

    assert report["outcome"] == "completed" and report["converged"] is True
    assert report["rounds"] == 2
    assert round(report["bytes_sent"] / 1e6, 1) == 5325.8
    assert round(report["total_s"], 4) == 4.2606
    assert round(report["downtime_ms"], 1) == 137.4
    assert report["throttle_pct"] == 0
    assert [r["stop_and_copy"] for r in report["rounds_detail"]] == [False, False, True]

    migration = open_store().migration(report["migration_id"])
    assert migration.origin is Origin.SIM
    assert migration.status is Status.COMPLETED
    assert migration.progress_reports == 2  # one per round before the stop-and-copy
    assert migration.bytes_sent == int(report["bytes_sent"])


def test_simulate_with_nova_settings_walks_the_ramp(lmes_home, capsys):
    report = lmes_json(
        capsys,
        "simulate",
        "--memory-mb",
        "2048",
        "--bandwidth",
        "1Gbit/s",
        "--dirty-rate",
        "100MB/s",
        "--release",
        "newton",
        "--live-migration-downtime-delay",
        "10",
        "--no-fixed-costs",
        "--start",
        "2026-03-01T10:00:00Z",
    )

    migration = open_store().migration(report["migration_id"])
    assert report["downtime_steps"][0] == [0, 46]  # Newton: the exponential ramp
    steps = [step for _, step in migration.downtime_applied]
    assert steps[:3] == [46, 47, 48]
    assert migration.requested_at == datetime(2026, 3, 1, 10, 0, tzinfo=UTC)
    assert report["outcome"] in ("completed", "cancelled")


def test_simulate_without_store_keeps_the_store_empty(lmes_home, capsys):
    report = lmes_json(capsys, *VC6, "--no-store")

    assert "migration_id" not in report
    assert list(open_store().migrations()) == []


def test_the_same_seed_gives_the_same_events(lmes_home, capsys):
    args = [
        "simulate",
        "--memory-mb",
        "8192",
        "--bandwidth",
        "10Gbit/s",
        "--working-set",
        "2GiB",
        "--write-rate",
        "1GB/s",
        "--seed",
        "42",
    ]
    first = lmes_json(capsys, *args)["migration_id"]
    again = lmes_json(capsys, *args)["migration_id"]
    other = lmes_json(capsys, *args[:-1], "43")["migration_id"]
    store = open_store()

    def events(migration_id: str) -> list[tuple]:
        return [
            (type(e).__name__, e.timestamp, _fields(e))
            for e in store.events.get(store.resolve(migration_id))
        ]

    assert first != again
    assert events(first) == events(again)
    assert events(first) != events(other)


def _fields(event) -> dict:
    skipped = {"originator_id", "originator_version", "timestamp", "originator_topic"}
    return {k: v for k, v in event.__dict__.items() if k not in skipped}


def test_a_migration_that_never_converges_says_so(lmes_home, capsys):
    report = lmes_json(
        capsys,
        "simulate",
        "--memory-mb",
        "4096",
        "--bandwidth",
        "1GB/s",
        "--dirty-rate",
        "2GB/s",
        "--downtime-limit-ms",
        "300",
        "--no-store",
    )

    assert report["converged"] is False
    assert report["outcome"] == "not_converged"
    assert report["downtime_ms"] is None


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--memory-mb", "1024", "--bandwidth", "fast", "--dirty-rate", "1MB/s"], "bandwidth"),
        (["--memory-mb", "1024", "--bandwidth", "1GB/s"], "one of --dirty-rate"),
        (["--bandwidth", "1GB/s", "--dirty-rate", "1MB/s"], "--memory-mb"),
        (
            ["--memory-mb", "1024", "--bandwidth", "1GB/s", "--working-set", "1GiB"],
            "--write-rate",
        ),
        (
            [
                "--memory-mb",
                "1024",
                "--bandwidth",
                "1GB/s",
                "--dirty-rate",
                "1MB/s",
                "--downtime-limit-ms",
                "300",
                "--release",
                "newton",
            ],
            "QEMU alone",
        ),
        (
            ["--memory-mb", "1024", "--bandwidth", "1GB/s", "--dirty-curve", "/nonexistent.json"],
            "cannot read dirty curve",
        ),
        (
            [
                "--memory-mb",
                "1024",
                "--bandwidth",
                "1GB/s",
                "--dirty-rate",
                "1MB/s",
                "--zero-pages",
                "2",
            ],
            "--zero-pages",
        ),
    ],
)
def test_simulate_refuses_bad_input_in_one_line(lmes_home, capsys, args, message):
    assert main(["simulate", *args]) == 2
    error = capsys.readouterr().err
    assert message in error
    assert error.count("\n") == 1
    assert list(open_store().migrations()) == []


def test_a_bad_flag_is_one_line_without_a_traceback(lmes_home):
    completed = run_lmes("simulate", "--memory-mb", "1024", "--bandwidth", "x", "--dirty-rate", "1")

    assert completed.returncode == 2
    assert completed.stderr.startswith("lmes: ") and "Traceback" not in completed.stderr


def test_simulate_reads_a_calc_dirty_rate_curve(capsys):
    report = lmes_json(
        capsys,
        "simulate",
        "--dirty-curve",
        str(REPO / "examples" / "workloads" / "calc-dirty-rate.json"),
        "--bandwidth",
        "10Gbit/s",
        "--downtime-limit-ms",
        "500",
        "--no-store",
    )

    assert report["memory_bytes"] == 8 * 1024**3
    assert report["converged"] is True


def test_evacuate_prints_the_scenario_and_stores_every_migration(lmes_home, capsys):
    path = REPO / "examples" / "scenarios" / "drain-host.yaml"

    report = lmes_json(capsys, "evacuate", str(path))

    summary = report["summary"]
    assert summary["migrations"] == 12 and summary["hosts_drained"] == ["r01-h01"]
    assert set(summary["downtime_ms"]) == {"p50", "p95", "p99", "max"}
    stored = list(open_store().migrations())
    assert len(stored) == 12
    assert {m.context["scenario"] for m in stored} == {"drain-one-host"}
    assert all(m.origin is Origin.SIM and m.status is Status.COMPLETED for m in stored)


def test_evacuate_shows_a_summary_table(capsys):
    path = REPO / "examples" / "scenarios" / "drain-rack.json"

    assert main(["evacuate", str(path), "--no-store"]) == 0

    out = capsys.readouterr().out
    assert "makespan" in out and "downtime_ms" in out and "p99" in out


def test_evacuate_refuses_a_bad_scenario(tmp_path, capsys):
    bad = tmp_path / "bad.yaml"
    bad.write_text("network: {nic: 1Gbit/s}\nhosts: {per_rack: 1, memory: 1GiB}\nvms: []\n")

    assert main(["evacuate", str(bad), "--no-store"]) == 2
    assert "action must be one of" in capsys.readouterr().err


def grid_file(tmp_path: Path) -> Path:
    grid = tmp_path / "grid.yaml"
    grid.write_text(
        "seed: 3\n"
        "repeats: 2\n"
        "base: {memory: 4GiB, bandwidth: 10Gbit/s, downtime_limit_ms: 300,\n"
        "       dirty_rate: {dist: uniform, low: 100MB/s, high: 2GB/s}}\n"
        "grid:\n"
        "  auto_converge: [false, true]\n"
        "  zero_pages: [0.0, 0.5]\n"
    )
    return grid


def test_sweep_writes_one_row_per_run_on_every_core(tmp_path, capsys):
    output = tmp_path / "runs.csv"

    assert main(["sweep", str(grid_file(tmp_path)), "-o", str(output), "--workers", "2"]) == 0

    table = pd.read_csv(output)
    assert len(table) == 8
    assert {"outcome", "converged", "total_s", "downtime_ms", "rounds", "throttle_pct"} <= set(
        table.columns
    )
    assert table["bandwidth_bytes_s"].eq(1.25e9).all()
    serial = tmp_path / "serial.csv"
    assert main(["sweep", str(grid_file(tmp_path)), "-o", str(serial), "--workers", "1"]) == 0
    pd.testing.assert_frame_equal(table, pd.read_csv(serial))


def test_sweep_to_parquet_needs_pyarrow(tmp_path, capsys):
    output = tmp_path / "runs.parquet"
    try:
        import pyarrow  # noqa: F401
    except ImportError:
        assert main(["sweep", str(grid_file(tmp_path)), "-o", str(output)]) == 2
        assert "pyarrow" in capsys.readouterr().err
        assert not output.exists()
    else:
        assert main(["sweep", str(grid_file(tmp_path)), "-o", str(output)]) == 0
        assert len(pd.read_parquet(output)) == 8


def test_sweep_refuses_an_unknown_setting(tmp_path, capsys):
    grid = tmp_path / "grid.json"
    grid.write_text(json.dumps({"base": {"memory": "1GiB"}, "grid": {"colour": ["red"]}}))

    assert main(["sweep", str(grid), "-o", str(tmp_path / "out.csv")]) == 2
    assert "unknown run setting" in capsys.readouterr().err
    assert not (tmp_path / "out.csv").exists()


def test_sweep_runs_on_a_dask_cluster(tmp_path, capsys):
    distributed = pytest.importorskip("dask.distributed")
    output = tmp_path / "dask.csv"
    local = tmp_path / "local.csv"
    with distributed.LocalCluster(
        n_workers=2, threads_per_worker=1, host="127.0.0.1", dashboard_address=None
    ) as cluster:
        code = main(
            [
                "sweep",
                str(grid_file(tmp_path)),
                "-o",
                str(output),
                "--dask",
                cluster.scheduler_address,
            ]
        )
    assert code == 0
    assert main(["sweep", str(grid_file(tmp_path)), "-o", str(local), "--workers", "1"]) == 0
    pd.testing.assert_frame_equal(pd.read_csv(output), pd.read_csv(local))


def test_sweep_says_when_the_dask_scheduler_is_away(tmp_path, capsys):
    pytest.importorskip("dask.distributed")

    code = main(
        [
            "sweep",
            str(grid_file(tmp_path)),
            "-o",
            str(tmp_path / "x.csv"),
            "--dask",
            "tcp://127.0.0.1:9",
        ]
    )

    assert code == 2
    assert "Dask scheduler" in capsys.readouterr().err


def test_stored_runs_are_ordinary_migrations(lmes_home, capsys):
    report = lmes_json(capsys, *VC6)
    store = open_store()

    events = list(store.events.get(store.resolve(report["migration_id"])))

    names = [type(e).__name__ for e in events]
    assert names[0] == "MigrationRequested" and names[-1] == "Completed"
    assert names.count("ProgressReported") == 2
    assert all(isinstance(e, Migration.Event) for e in events)
    assert [e.timestamp for e in events] == sorted(e.timestamp for e in events)


def test_sweep_on_dask_without_dask_installed_is_one_line(tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "dask.distributed", None)

    code = main(
        ["sweep", str(grid_file(tmp_path)), "-o", str(tmp_path / "x.csv"), "--dask", "tcp://h:1"]
    )

    assert code == 2
    assert 'pip install "dask[distributed]"' in capsys.readouterr().err
