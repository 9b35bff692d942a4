"""The studies in `notebooks/`, each executed from a clean kernel in a fresh LMES_HOME.

A notebook that raises fails its test; each test then checks the key numbers the notebook
reports in its last cell, and that it wrote to the store the environment named.
"""

from __future__ import annotations

import importlib.util
import json
import math
import shutil
import sys
import time
from pathlib import Path
from typing import Any

import nbformat
import pytest
from nbclient import NotebookClient

from lmes.analytics import load
from lmes.store import open_store
from tests.conftest import REPO

NOTEBOOKS = REPO / "notebooks"
SEED_LOGS = REPO / "examples" / "seed"
SEED_RAMP = [
    [0, 46],
    [150, 47],
    [300, 48],
    [450, 51],
    [600, 57],
    [750, 66],
    [900, 84],
    [1050, 117],
    [1200, 179],
    [1350, 291],
    [1500, 500],
]
CELL_TIMEOUT_S = 300
KERNEL = "lmes-tests-python"


@pytest.fixture(scope="session")
def kernel_name(tmp_path_factory) -> str:
    """A kernel running this very interpreter, whatever kernels the machine has registered."""
    folder = tmp_path_factory.mktemp("jupyter")
    spec = folder / "kernels" / KERNEL
    spec.mkdir(parents=True)
    (spec / "kernel.json").write_text(
        json.dumps(
            {
                "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
                "display_name": "lmes tests",
                "language": "python",
            }
        )
    )
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("JUPYTER_PATH", str(folder))
        yield KERNEL


def _generator():
    spec = importlib.util.spec_from_file_location("notebook_generator", NOTEBOOKS / "generate.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def run_notebook(
    name: str, kernel: str, parameters: dict[str, Any] | None = None
) -> tuple[nbformat.NotebookNode, dict[str, Any]]:
    """Execute `name` as stored (after its parameters, `parameters` overrides them) and return
    the executed notebook and its key numbers."""
    notebook = nbformat.read(NOTEBOOKS / name, as_version=4)
    if parameters:
        index = next(
            i for i, c in enumerate(notebook.cells) if "parameters" in c.metadata.get("tags", [])
        )
        injected = nbformat.v4.new_code_cell(
            "\n".join(f"{key} = {value!r}" for key, value in parameters.items())
        )
        injected.metadata["tags"] = ["injected-parameters"]
        notebook.cells.insert(index + 1, injected)
    client = NotebookClient(
        notebook,
        timeout=CELL_TIMEOUT_S,
        kernel_name=kernel,
        resources={"metadata": {"path": str(NOTEBOOKS)}},
    )
    started = time.monotonic()
    client.execute()
    print(f"{name}: executed in {time.monotonic() - started:.1f} s")
    return notebook, key_numbers(notebook)


def key_numbers(notebook: nbformat.NotebookNode) -> dict[str, Any]:
    outputs = notebook.cells[-1].get("outputs", [])
    found = [
        o["data"]["application/json"] for o in outputs if "application/json" in o.get("data", {})
    ]
    assert found, "the last cell shows no key numbers"
    return found[-1]


@pytest.fixture
def store_home(lmes_home, monkeypatch) -> Path:
    """The temporary LMES_HOME the kernel inherits, and the lmes checkout on its path."""
    monkeypatch.setenv("PYTHONPATH", str(REPO))
    return lmes_home


def _stored(home: Path, origin: str) -> int:
    store = open_store(f"sqlite:///{home / 'lmes.sqlite'}")
    return len(load.migrations(store, origin=origin))


def test_stored_notebooks_are_their_generator_output_without_outputs():
    generator = _generator()
    stored = sorted(p.name for p in NOTEBOOKS.glob("*.ipynb"))
    assert stored == sorted(generator.NOTEBOOKS)
    for name in stored:
        notebook = nbformat.read(NOTEBOOKS / name, as_version=4)
        code = [c for c in notebook.cells if c.cell_type == "code"]
        assert all(c.outputs == [] and c.execution_count is None for c in code), name
        assert code[0].metadata.get("tags") == ["parameters"], name
        assert "display(JSON(" in code[-1].source, name
        assert notebook.cells[0].cell_type == "markdown", name
        assert notebook == generator.build(name), f"{name} differs from notebooks/generate.py"


@pytest.mark.notebook
def test_diagnose_a_migration_replays_the_seed(kernel_name, store_home):
    _, numbers = run_notebook("diagnose-a-migration.ipynb", kernel_name)
    assert numbers["migrations_replayed"] == 1
    assert numbers["outcome"] == "completed"
    assert numbers["ramp_form"] == "exponential"
    assert numbers["data_gb"] == 2
    assert (numbers["downtime_ms"], numbers["steps"], numbers["delay_s"]) == (500, 10, 75)
    assert numbers["planned_ramp"] == SEED_RAMP
    assert numbers["downtime_applied"] == [[0.0, 46]]
    assert numbers["phases_s"]["pre_live_migration"] > numbers["phases_s"]["memory_copy"]
    assert _stored(store_home, "replay") == numbers["stored_migrations"] == 1


@pytest.mark.notebook
def test_diagnose_a_migration_reads_the_logs_it_is_pointed_at(kernel_name, store_home, tmp_path):
    logs = tmp_path / "incident"
    shutil.copytree(SEED_LOGS, logs)
    _, numbers = run_notebook(
        "diagnose-a-migration.ipynb",
        kernel_name,
        {"LOG_PATHS": [str(logs / "node-1"), str(logs / "node-3")], "MIGRATION_ID": None},
    )
    assert numbers["migrations_replayed"] == 1
    assert numbers["outcome"] == "completed"
    assert numbers["planned_ramp"] == SEED_RAMP


@pytest.mark.notebook
def test_downtime_tuning_reproduces_the_ramps_and_recommends_within_budget(kernel_name, store_home):
    notebook, numbers = run_notebook("downtime-tuning.ipynb", kernel_name)
    assert numbers["newton_ramp"] == SEED_RAMP
    assert numbers["newton_matches_seed_log"] is True
    assert numbers["seed_log_ramps_replayed"] == [SEED_RAMP]
    linear = numbers["linear_ramp"]
    assert linear[:2] == [[0, 50], [150, 95]] and linear[-1] == [1500, 500]
    assert all(b[1] - a[1] == 45 for a, b in zip(linear, linear[1:], strict=False))
    workloads = numbers["workloads"]
    assert len(workloads) == 4 and workloads[-1].startswith("fitted ")
    assert numbers["combinations"] == 4 * 2**6
    assert numbers["runs"] == numbers["combinations"] * len(workloads) * 2
    recommended, defaults = numbers["recommended"], numbers["defaults"]
    assert recommended["success_rate"] == 1.0
    assert recommended["downtime_p99_ms"] <= numbers["downtime_budget_ms"]
    defaults_acceptable = (
        defaults["success_rate"] == 1.0
        and defaults["downtime_p99_ms"] <= numbers["downtime_budget_ms"]
    )
    if defaults_acceptable:  # the recommendation is the fastest acceptable setting
        assert recommended["total_p95_s"] <= defaults["total_p95_s"]
    else:
        assert recommended["success_rate"] >= defaults["success_rate"]
    assert defaults["live_migration_downtime"] == 500
    text = "\n".join(
        o["data"]["text/markdown"]
        for c in notebook.cells
        for o in c.get("outputs", [])
        if "text/markdown" in o.get("data", {})
    )
    assert "**Trade-off:**" in text
    assert _stored(store_home, "sim") == numbers["stored_sim_migrations"] == len(workloads)


@pytest.mark.notebook
def test_evacuation_planning_drains_faster_up_to_the_link_limit(kernel_name, store_home):
    _, numbers = run_notebook("evacuation-planning.ipynb", kernel_name)
    curves: dict[tuple, dict[int, dict]] = {}
    for row in numbers["makespan_by_concurrency"]:
        key = (row["drain"], row["nic"], row["bandwidth_cap_mib_s"])
        curves.setdefault(key, {})[row["max_concurrent_live_migrations"]] = row
    capped = [key for key, curve in curves.items() if next(iter(curve.values()))["link_limit"] > 1]
    assert len(capped) == 4
    for key in capped:
        curve = curves[key]
        limit = next(iter(curve.values()))["link_limit"]
        makespans = [curve[k]["makespan_s"] for k in range(1, limit + 1)]
        assert makespans == sorted(makespans, reverse=True), key
        assert len(set(makespans)) == len(makespans), key
    for key, curve in curves.items():
        # one at a time is never the fastest way to drain
        assert curve[1]["makespan_s"] > min(row["makespan_s"] for row in curve.values()), key
    assert numbers["best"], "no setting drains within the budget"
    for best in numbers["best"]:
        assert best["failures"] == 0
        assert best["downtime_p99_ms"] <= numbers["downtime_budget_ms"]
    assert _stored(store_home, "sim") == numbers["stored_sim_migrations"] > 0


@pytest.mark.notebook
def test_simulation_vs_reality_shows_every_error(kernel_name, store_home):
    notebook, numbers = run_notebook("simulation-vs-reality.ipynb", kernel_name)
    assert numbers["real_migrations"] == numbers["calibrated"] == 1
    assert numbers["executed_migrations"] == 0
    (errors,) = numbers["errors"].values()
    assert abs(errors["copy_calibrated"]) <= numbers["tolerance"]
    assert abs(errors["total_measured_costs"]) <= numbers["tolerance"]
    # the misses are reported, not hidden
    assert errors["copy_naive"] is not None and abs(errors["copy_naive"]) > numbers["tolerance"]
    assert errors["total_forecast"] is not None and not math.isnan(errors["total_forecast"])
    html = "".join(
        o.get("data", {}).get("text/html", "") for c in notebook.cells for o in c.get("outputs", [])
    )
    assert "naive: memory / bandwidth" in html and "not observed" in html
    assert _stored(store_home, "replay") == 1
    assert _stored(store_home, "sim") == numbers["stored_sim_migrations"] == 1
