"""The simulator: pre-copy live migration in SimPy, from one VM to a host evacuation.

Its runs are ordinary `Migration` streams (origin `sim`), read by the same analytics as
executed and replayed migrations. The pieces, each in its own module:

* `workload`: how a guest dirties memory (constant, working set, calc-dirty-rate curves, phases);
* `precopy`: one QEMU migration job (rounds, switch-over, auto-converge, post-copy);
* `network`: flows sharing links max-min fairly;
* `nova`: Nova's work around one migration (ramp, timeouts, fixed costs);
* `cluster`, `scenario`: hosts, scheduler, queues; draining hosts, racks, rolling maintenance;
* `experiment`: run specs and sweeps (local cores or Dask);
* `record`: runs into `Migration` streams; `calibrate`: fitting the model to stored migrations.
"""

from lmes.sim.calibrate import CalibrationError, FittedWorkload, calibrate_migration
from lmes.sim.experiment import expand_grid, plan_from_spec, run_spec, run_sweep
from lmes.sim.nova import MigrationPlan, MigrationResult, NovaCosts, Outcome, simulate_one
from lmes.sim.precopy import QemuSettings
from lmes.sim.record import SIM_EPOCH, migration_stream, store_results
from lmes.sim.scenario import ScenarioResult, build_scenario, read_scenario_file, run_scenario
from lmes.sim.workload import (
    ConstantRate,
    MeasuredCurve,
    Phase,
    WorkingSet,
    Workload,
    curve_from_calc_dirty_rate,
    workload_from_dict,
)

__all__ = [
    "SIM_EPOCH",
    "CalibrationError",
    "ConstantRate",
    "FittedWorkload",
    "MeasuredCurve",
    "MigrationPlan",
    "MigrationResult",
    "NovaCosts",
    "Outcome",
    "Phase",
    "QemuSettings",
    "ScenarioResult",
    "WorkingSet",
    "Workload",
    "build_scenario",
    "calibrate_migration",
    "curve_from_calc_dirty_rate",
    "expand_grid",
    "migration_stream",
    "plan_from_spec",
    "read_scenario_file",
    "run_scenario",
    "run_spec",
    "run_sweep",
    "simulate_one",
    "store_results",
    "workload_from_dict",
]
