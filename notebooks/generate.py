"""Writes the studies in this folder as notebooks without outputs, from the cells below.

Edit a study here, then run `python notebooks/generate.py`: the stored `.ipynb` files are exactly
what this file writes (the test suite checks it), so a diff of a study is a diff of its text,
never of outputs. Each notebook takes its inputs in its first code cell, tagged `parameters`
(papermill-style), and ends with a cell that shows its key numbers as JSON.
"""

# The cells below are formatted as notebook code (100 columns); indented here, they run longer.
# ruff: noqa: E501

from __future__ import annotations

import sys
from pathlib import Path
from textwrap import dedent

import nbformat
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

FOLDER = Path(__file__).resolve().parent

KERNEL = {
    "kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"},
    "language_info": {"name": "python"},
}


def setup(*, numpy: bool = True, markdown: bool = True, progress: bool = False) -> str:
    """The imports a study uses (and only those), and the store from the environment."""
    lines = ["%matplotlib inline"]
    lines += ["import numpy as np"] if numpy else []
    lines += ["import pandas as pd"]
    display_names = "JSON, Markdown, display" if markdown else "JSON, display"
    lines += [f"from IPython.display import {display_names}"]
    lines += ["from tqdm import tqdm"] if progress else []
    lines += [
        "",
        "from lmes.analytics import load, plots",
        "from lmes.store import open_store",
        "",
        "store = open_store()  # LMES_STORE, else the SQLite file in LMES_HOME",
    ]
    return "\n".join(lines)


def md(text: str) -> tuple[str, str]:
    return ("markdown", text)


def code(text: str) -> tuple[str, str]:
    return ("code", text)


def parameters(text: str) -> tuple[str, str]:
    return ("parameters", text)


DIAGNOSE = [
    md(
        """
        # Diagnose a migration

        This study replays nova-compute logs into the lmes store and walks through one live
        migration: its timeline, the downtime ramp Nova applied (and the configuration that ramp
        gives away), where the time went, and what the diagnosis concludes.

        It starts from the seed's logs in `examples/seed/` (a Newton-era migration between
        `node-1` and `node-3`); point `LOG_PATHS` at your own nova-compute, nova-conductor or
        nova-api logs (files or folders, one folder per host) to study yours.
        """
    ),
    parameters(
        """
        # Log files or folders to replay (a folder per host names the host: node-1/nova-compute.log)
        LOG_PATHS = ["../examples/seed"]
        # The migration to walk through: an id or prefix; None picks the longest one replayed
        MIGRATION_ID = None
        """
    ),
    code(setup(numpy=False)),
    md(
        """
        ## Replay the logs

        Every file is read on its own and the records are merged in time order; lines are
        grouped into migrations by instance and request id, and each migration becomes the
        same events an executed or simulated one has. Replaying twice adds nothing: a
        migration's identity comes from the logs.
        """
    ),
    code(
        """
        from lmes.replay.service import Replay, collect_logs

        logs = collect_logs([str(p) for p in LOG_PATHS])
        replayed = list(Replay(logs, store=store).migrations())
        print(f"{len(logs.files)} log file(s), {len(replayed)} migration(s) found")
        pd.DataFrame(
            [
                {
                    "id": r.diagnosis.id[:8],
                    "instance": r.diagnosis.instance,
                    "from": r.diagnosis.source_host,
                    "to": r.diagnosis.dest_host,
                    "outcome": r.diagnosis.outcome,
                    "duration_s": r.diagnosis.duration_s,
                    "store": r.stored,
                }
                for r in replayed
            ]
        )
        """
    ),
    code(
        """
        if not replayed:
            raise SystemExit("no live migration found in LOG_PATHS")
        if MIGRATION_ID is None:
            chosen = max(replayed, key=lambda r: r.diagnosis.duration_s or 0.0)
        else:
            chosen = next(r for r in replayed if r.diagnosis.id.startswith(str(MIGRATION_ID)))
        diagnosis = chosen.diagnosis
        migration_id = diagnosis.id
        events = load.events(store, [migration_id])
        summary = load.migrations(store, ids=[migration_id]).iloc[0]
        print(
            f"migration {migration_id}: {diagnosis.instance}, "
            f"{diagnosis.source_host} -> {diagnosis.dest_host}, {diagnosis.outcome}"
        )
        """
    ),
    md(
        """
        ## The timeline

        Each line is an event as the logs told it; lines marked *inferred* are moments the logs
        do not state but imply (the API's log missing, Nova logging no "queued" line). The chart
        puts the phases on the two hosts involved: the source runs the checks, the queue and
        the memory copy; the destination prepares (`pre_live_migration`: instance directory,
        volumes, VIFs) and, with post-copy, runs the guest while pages are still arriving.
        """
    ),
    code(
        """
        pd.DataFrame([{"at": t.at, "what": t.text, "inferred": t.inferred} for t in diagnosis.timeline])
        """
    ),
    code("plots.phase_timeline(events, migration_id)"),
    md(
        """
        ## The downtime ramp

        Nova does not ask libvirt for the final downtime at once: it walks a ramp of
        `live_migration_downtime_steps + 1` steps, one every `live_migration_downtime_delay ×
        data_gb` seconds, up to `live_migration_downtime`. Liberty to Newton space the values
        exponentially, Ocata and later linearly. Inverting the formula on the ramp in the logs
        tells which era of Nova ran the migration and how it was configured, and the policy
        functions in `lmes.domain.policy` recompute it to check.
        """
    ),
    code(
        """
        from lmes.domain import policy
        from lmes.domain.releases import Release

        planned = load.planned_ramp(events, migration_id)
        inferred = diagnosis.inferred or {}
        ramps = {"ramp in the logs": planned}
        if inferred.get("delay_s") and inferred.get("data_gb"):
            for release in ("newton", "ocata"):
                ramps[f"Nova {Release.parse(release).name} formula"] = policy.downtime_steps(
                    inferred["downtime_ms"],
                    inferred["steps"],
                    inferred["delay_s"],
                    inferred["data_gb"],
                    Release.parse(release),
                )
        for label, steps in ramps.items():
            print(f"{label:>24}: {[tuple(s) for s in steps]}")
        pd.Series(inferred, name="configuration implied by the ramp").to_frame()
        """
    ),
    code('plots.downtime_ramps(ramps, title="downtime ramp: logged and recomputed")'),
    md(
        """
        ## Where the time went

        The phases below come from the events (and, for the destination's and os-brick's own
        work, from the durations Nova logs). A migration that spends most of its time outside
        `memory_copy` is slow for reasons no downtime setting fixes: volume attachment in
        `pre_live_migration`, Neutron in `vif_wait`, cleanup in `post_migration`.
        """
    ),
    code(
        """
        from lmes.replay.report import PHASE_ORDER

        phases = {name: s for name, s in diagnosis.phases.items() if name in PHASE_ORDER}
        parts = {name: s for name, s in diagnosis.phases.items() if name not in PHASE_ORDER}
        plots.phase_bars(phases, parts_s=parts, title=f"where the time went, {migration_id[:8]}")
        """
    ),
    code("plots.memory_remaining(events, migration_id)"),
    md(
        """
        ## What the diagnosis says

        The verdict below is computed from the stored events alone, so the same words come out
        for an executed migration or a simulated one. Anomalies name what to look at next.
        """
    ),
    code(
        """
        from lmes.replay.report import render

        print(render(diagnosis, chosen.stored))
        """
    ),
    code(
        """
        copy_s = diagnosis.phases.get("memory_copy")
        busiest = max(phases, key=phases.get) if phases else None
        lines = [
            f"**Outcome: {diagnosis.outcome}** after {diagnosis.duration_s:.1f} s.",
            f"The longest phase was `{busiest}` ({phases[busiest]:.1f} s)."
            if busiest
            else "No phases could be measured.",
        ]
        if inferred:
            lines.append(
                f"The ramp is {inferred['ramp_form']} ({inferred['era']}): "
                f"live_migration_downtime = {inferred['downtime_ms']} ms in {inferred['steps']} "
                f"steps, delay {inferred['delay_s']} s/GiB, data_gb = {inferred['data_gb']}."
            )
        if copy_s is not None and diagnosis.duration_s:
            lines.append(
                f"The memory copy took {copy_s:.1f} s, "
                f"{100 * copy_s / diagnosis.duration_s:.0f} % of the migration."
            )
        lines += [f"- {text}" for text in diagnosis.anomalies] or ["Nothing unusual found."]
        display(Markdown("\\n\\n".join(lines)))
        """
    ),
    md("## Key numbers"),
    code(
        """
        key_numbers = {
            "migrations_replayed": len(replayed),
            "migration_id": migration_id,
            "outcome": diagnosis.outcome,
            "duration_s": diagnosis.duration_s,
            "phases_s": diagnosis.phases,
            "ramp_form": inferred.get("ramp_form"),
            "data_gb": inferred.get("data_gb"),
            "downtime_ms": inferred.get("downtime_ms"),
            "steps": inferred.get("steps"),
            "delay_s": inferred.get("delay_s"),
            "planned_ramp": planned,
            "downtime_applied": diagnosis.downtime_steps,
            "anomalies": diagnosis.anomalies,
            "stored_migrations": int(len(load.migrations(store, origin="replay"))),
        }
        display(JSON(key_numbers, expanded=True))
        """
    ),
]


TUNING = [
    md(
        """
        # Downtime tuning

        Which Nova settings let the guests you run migrate, how long does it take, and how long
        are they paused? This study sweeps the settings Nova gives for that —
        `live_migration_downtime`, `_downtime_steps`, `_downtime_delay`,
        `_completion_timeout` and `_timeout_action`, `_permit_auto_converge` and
        `_permit_post_copy` — over a set of workloads in the lmes simulator, and recommends the
        settings that complete every migration within a downtime budget in the least time.

        It first reproduces what is known for certain about Nova's downtime ramp, so that the
        sweep rests on the same arithmetic Nova runs.
        """
    ),
    parameters(
        """
        # Guests to tune for, by name: memory, zero-page share and how they dirty memory.
        WORKLOADS = {
            "web": {"memory": "4GiB", "dirty_rate": "50MB/s", "zero_pages": 0.3},
            "database": {
                "memory": "8GiB",
                "working_set": "2GiB",
                "write_rate": "600MB/s",
                "zero_pages": 0.1,
            },
            "cache": {"memory": "16GiB", "dirty_rate": "1.1GB/s", "zero_pages": 0.05},
        }
        # Also fit a workload to each migration replayed from these logs (empty: none).
        CALIBRATE_FROM_LOGS = ["../examples/seed"]
        # The link a migration gets (bytes/s or with a unit; a distribution draws per run).
        BANDWIDTH = {"dist": "uniform", "low": "1.0GB/s", "high": "1.2GB/s"}
        RELEASE = "2024.1"
        # The settings swept: every combination runs for every workload, REPEATS times.
        GRID = {
            "live_migration_downtime": [100, 500, 1000, 2000],
            "live_migration_downtime_steps": [3, 10],
            "live_migration_downtime_delay": [10, 75],
            "live_migration_completion_timeout": [100, 800],
            "live_migration_timeout_action": ["abort", "force_complete"],
            "live_migration_permit_auto_converge": [False, True],
            "live_migration_permit_post_copy": [False, True],
        }
        REPEATS = 2
        DOWNTIME_BUDGET_MS = 500  # the longest guest pause acceptable, at the 99th percentile
        MIN_SUCCESS_RATE = 1.0  # share of migrations that must complete
        SEED = 1
        WORKERS = 2
        """
    ),
    code(setup(progress=True)),
    md(
        """
        ## What is known for certain: Nova's ramp

        Nova walks the downtime limit up in `steps + 1` steps spaced `delay × data_gb` seconds
        apart. Up to Newton the values grow exponentially, from Ocata linearly. The seed's
        nova-compute log (a 2 GiB guest, Newton defaults: 500 ms, 10 steps, 75 s/GiB) prints the
        exponential ramp; newer releases walk the linear one. Both are recomputed here with
        `lmes.domain.policy` and checked against the log.
        """
    ),
    code(
        """
        from lmes.domain import policy
        from lmes.domain.releases import Release
        from lmes.domain.settings import Settings

        SEED_LOG_RAMP = [
            (0, 46),
            (150, 47),
            (300, 48),
            (450, 51),
            (600, 57),
            (750, 66),
            (900, 84),
            (1050, 117),
            (1200, 179),
            (1350, 291),
            (1500, 500),
        ]
        newton_ramp = policy.downtime_steps(500, 10, 75, 2.0, Release.parse("newton"))
        linear_ramp = policy.downtime_steps(500, 10, 75, 2.0, Release.parse(RELEASE))
        print("Newton :", newton_ramp)
        print(f"{RELEASE}:", linear_ramp)
        print("Newton formula reproduces the seed's log:", newton_ramp == SEED_LOG_RAMP)
        plots.downtime_ramps(
            {
                "seed's log": SEED_LOG_RAMP,
                "Newton (exponential)": newton_ramp,
                f"{RELEASE} (linear)": linear_ramp,
            },
            title="Nova's downtime ramp for a 2 GiB guest (500 ms, 10 steps, 75 s/GiB)",
        )
        """
    ),
    md(
        """
        The exponential ramp stays under 100 ms for the first 1050 s and only then climbs; the
        linear ramp allows 95 ms after 150 s. A guest that needs 200 ms to switch over waits
        1350 s for it under Newton's ramp and 600 s under the linear one (for this 2 GiB guest;
        the spacing grows with `data_gb`).

        ## The workloads

        Hand-chosen guests cover the range from idle to hopeless; guests fitted to replayed
        migrations (`lmes.sim.calibrate`) add the ones you actually run.
        """
    ),
    code(
        """
        from lmes.replay.service import Replay, collect_logs
        from lmes.sim.calibrate import CalibrationError, calibrate_migration

        workloads = dict(WORKLOADS)
        seed_log_ramps = []
        if CALIBRATE_FROM_LOGS:
            logs = collect_logs([str(p) for p in CALIBRATE_FROM_LOGS])
            for replayed in Replay(logs, store=store).migrations():
                migration = replayed.replayed.migration
                seed_log_ramps.append(migration.downtime_steps)
                try:
                    fitted = calibrate_migration(migration, replayed.replayed.events)
                except CalibrationError as exc:
                    print(f"{migration.id}: not calibrated: {exc}")
                    continue
                workloads[f"fitted {str(migration.id)[:8]}"] = {"workload": fitted.as_workload_file()}
        pd.DataFrame(
            {
                name: {k: v for k, v in spec.items() if k != "workload"} or {"fitted": "yes"}
                for name, spec in workloads.items()
            }
        ).T
        """
    ),
    md(
        """
        ## The sweep

        Every combination of the settings in `GRID` runs for every workload `REPEATS` times,
        each run drawing its own bandwidth. Runs are spread over `WORKERS` processes; the
        results do not depend on how they are spread.
        """
    ),
    code(
        """
        from lmes.sim.experiment import expand_grid, run_sweep

        specs = []
        for name, workload in workloads.items():
            base = {"release": RELEASE, "bandwidth": BANDWIDTH, "name": name, **workload}
            specs += expand_grid({"base": base, "grid": GRID, "repeats": REPEATS})
        with tqdm(total=len(specs), desc="simulated migrations") as bar:
            rows = run_sweep(specs, seed=SEED, workers=WORKERS, on_progress=bar.update)
        runs = pd.DataFrame(rows).rename(columns={"name": "guest"})
        settings_columns = list(GRID)
        runs["convergence aid"] = np.select(
            [runs["live_migration_permit_post_copy"], runs["live_migration_permit_auto_converge"]],
            ["post-copy", "auto-converge"],
            "none",
        )
        print(f"{len(runs)} runs; outcomes: {runs['outcome'].value_counts().to_dict()}")
        """
    ),
    md(
        """
        ## What each setting does

        Success rate first: the share of runs that completed. Without help (no auto-converge,
        no post-copy) a guest that dirties memory faster than the link carries it never
        converges, whatever the downtime; a higher `live_migration_downtime` only helps guests
        close to the line.
        """
    ),
    code(
        """
        plain = runs[runs["convergence aid"] == "none"]
        plots.sweep_heatmap(
            plain.assign(success_rate=plain["outcome"].eq("completed").astype(float)),
            "live_migration_downtime",
            "guest",
            "success_rate",
            agg="mean",
            fmt="{:.0%}",
            title="share of migrations completed, no auto-converge or post-copy",
        )
        """
    ),
    code(
        """
        def p99(values):
            return float(np.percentile(values.dropna(), 99)) if values.notna().any() else np.nan


        completed = runs[runs["outcome"] == "completed"]
        plots.sweep_heatmap(
            completed,
            "live_migration_downtime",
            "guest",
            "downtime_ms",
            agg=p99,
            fmt="{:.0f}",
            cmap="magma",
            title="guest downtime p99 (ms) of completed migrations",
        )
        """
    ),
    code(
        """
        plots.sweep_heatmap(
            runs,
            "convergence aid",
            "guest",
            "total_s",
            agg="median",
            fmt="{:.0f}",
            title="median total time (s) by what helps convergence",
        )
        """
    ),
    md(
        """
        ## Success rate, total time and downtime per setting

        For each combination of settings, across all workloads: the share of migrations that
        completed (the worst workload's), and the worst workload's total time and downtime
        percentiles. A setting has to work for every guest it will meet.
        """
    ),
    code(
        """
        per_workload = load.outcome_stats(runs, by=[*settings_columns, "guest"], outcome="outcome")
        worst = (
            per_workload.groupby(settings_columns)
            .agg(
                success_rate=("success_rate", "min"),
                total_p50_s=("total_p50_s", "max"),
                total_p95_s=("total_p95_s", "max"),
                total_p99_s=("total_p99_s", "max"),
                downtime_p50_ms=("downtime_p50_ms", "max"),
                downtime_p95_ms=("downtime_p95_ms", "max"),
                downtime_p99_ms=("downtime_p99_ms", "max"),
            )
            .reset_index()
        )
        defaults = {
            name: getattr(Settings.defaults(Release.parse(RELEASE)), name) for name in settings_columns
        }
        is_default = np.logical_and.reduce([worst[k] == v for k, v in defaults.items()])
        default_row = worst[is_default].iloc[0] if is_default.any() else None
        acceptable = worst[
            (worst["success_rate"] >= MIN_SUCCESS_RATE) & (worst["downtime_p99_ms"] <= DOWNTIME_BUDGET_MS)
        ].sort_values(["total_p95_s", "downtime_p99_ms"])
        print(
            f"{len(acceptable)} of {len(worst)} setting combinations complete "
            f"{MIN_SUCCESS_RATE:.0%} of migrations within {DOWNTIME_BUDGET_MS} ms (p99)"
        )
        acceptable.head(10)
        """
    ),
    md(
        """
        ## Recommendation

        The recommended settings are the acceptable combination with the shortest worst-case
        (p95) total time; the table compares them with Nova's defaults for the release.
        """
    ),
    code(
        """
        if acceptable.empty:
            recommended = None
            display(
                Markdown(
                    f"**No combination in the grid completes {MIN_SUCCESS_RATE:.0%} of migrations "
                    f"within {DOWNTIME_BUDGET_MS} ms.** Widen the grid (post-copy, a larger "
                    f"downtime budget) or move the hottest guests another way."
                )
            )
        else:
            recommended = acceptable.iloc[0]
            display(pd.DataFrame({"recommended": recommended, f"Nova {RELEASE} defaults": default_row}))
        """
    ),
    code(
        """
        def describe(row):
            return (
                f"{row['success_rate']:.0%} completed, "
                f"total time p95 {row['total_p95_s']:.0f} s, "
                f"downtime p99 {row['downtime_p99_ms']:.0f} ms"
            )


        if recommended is not None:
            changed = {k: recommended[k] for k in settings_columns if recommended[k] != defaults[k]}
            lines = [
                "**Recommended** (changes from the defaults): "
                + (", ".join(f"`{k} = {v}`" for k, v in changed.items()) or "none"),
                f"- recommended: {describe(recommended)}",
            ]
            if default_row is not None:
                lines.append(f"- Nova's defaults: {describe(default_row)}")
            trade = []
            if recommended["live_migration_permit_post_copy"]:
                trade.append(
                    "post-copy runs the guest on the destination before all its memory "
                    "arrived: page faults slow it, and a network failure then loses it"
                )
            elif recommended["live_migration_permit_auto_converge"]:
                trade.append(
                    "auto-converge throttles the guest's vCPUs until it converges: the "
                    "workload runs slower during the migration"
                )
            longer = (
                default_row is not None and recommended["downtime_p99_ms"] > default_row["downtime_p99_ms"]
            )
            if longer:
                trade.append(
                    f"guests pause longer: p99 {recommended['downtime_p99_ms']:.0f} ms "
                    f"instead of {default_row['downtime_p99_ms']:.0f} ms"
                )
            if recommended["live_migration_timeout_action"] == "force_complete":
                trade.append("a migration that times out is forced over instead of abandoned")
            lines.append("**Trade-off:** " + ("; ".join(trade) if trade else "none visible in these runs"))
            display(Markdown("\\n".join(lines)))
        """
    ),
    md(
        """
        ## The recommendation, migration by migration

        The recommended settings run once more per workload, this time recorded in the store as
        ordinary migrations (origin `sim`), so every analysis of replayed or executed migrations
        applies to them too: here, the memory still to copy against the downtime limit.
        """
    ),
    code(
        """
        from lmes.sim.experiment import run_spec
        from lmes.sim.record import store_results

        chosen = recommended if recommended is not None else default_row
        chosen_settings = {
            k: (v.item() if hasattr(v, "item") else v) for k, v in chosen[settings_columns].items()
        }
        results = []
        for index, (name, workload) in enumerate(workloads.items()):
            spec = {"release": RELEASE, "bandwidth": BANDWIDTH, "name": name, **workload, **chosen_settings}
            result, _ = run_spec(spec, SEED + index, keep_commands=True)
            results.append(result)
        stored_ids = [
            str(i)
            for i in store_results(
                store, results, context={"study": "downtime-tuning", "settings": chosen_settings}
            )
        ]
        stored = load.migrations(store, ids=stored_ids)
        stored[["instance", "status", "total_s", "downtime_ms", "converged", "post_copy"]]
        """
    ),
    code(
        """
        hottest = stored.sort_values("total_s").iloc[-1]
        plots.memory_remaining(
            load.events(store, [hottest["id"]]),
            hottest["id"],
            title=f"{hottest['instance']} under the recommended settings",
        )
        """
    ),
    code(
        """
        plots.downtime_distribution(completed, by="convergence aid", outcome="outcome")
        """
    ),
    md("## Key numbers"),
    code(
        """
        def plain(value):
            return value.item() if hasattr(value, "item") else value


        key_numbers = {
            "newton_ramp": newton_ramp,
            "linear_ramp": linear_ramp,
            "newton_matches_seed_log": newton_ramp == SEED_LOG_RAMP,
            "seed_log_ramps_replayed": seed_log_ramps,
            "workloads": list(workloads),
            "runs": len(runs),
            "combinations": len(worst),
            "acceptable_combinations": len(acceptable),
            "downtime_budget_ms": DOWNTIME_BUDGET_MS,
            "recommended": None if recommended is None else {k: plain(v) for k, v in recommended.items()},
            "defaults": None if default_row is None else {k: plain(v) for k, v in default_row.items()},
            "stored_sim_migrations": len(stored_ids),
        }
        display(JSON(key_numbers, expanded=True))
        """
    ),
]

EVACUATION = [
    md(
        """
        # Evacuation planning

        How fast can a host, or a whole rack, be emptied for maintenance, and what does hurrying
        cost the guests? Nova moves at most `max_concurrent_live_migrations` guests off a host
        at once; they share the host's NIC, each capped by `live_migration_bandwidth` when set.
        More at once overlaps Nova's fixed work (checks, pre-live-migration, VIF plugging,
        post-migration) and fills the link, until the link is full: from there each migration
        only gets a smaller share, copies slower, and guests that dirty memory quickly stop
        converging.

        This study drains a host and a rack in the lmes simulator under several concurrency and
        bandwidth settings, shows the makespan (first request to last migration done) and the
        downtime the guests see, and picks the settings that drain fastest within a downtime
        budget.
        """
    ),
    parameters(
        """
        # The cluster and its guests (a scenario file, see examples/scenarios/)
        SCENARIO = "../examples/scenarios/drain-host.yaml"
        # What to drain: a label for each, and the scenario action
        DRAINS = {"host r01-h01": {"drain_host": "r01-h01"}, "rack r01": {"drain_rack": "r01"}}
        MAX_CONCURRENT = [1, 2, 3, 4]  # max_concurrent_live_migrations
        NICS = ["10Gbit/s", "25Gbit/s"]  # each host's NIC
        BANDWIDTH_CAPS_MIB_S = [0, 1000]  # live_migration_bandwidth per migration (0: none)
        SEEDS = [1, 2]  # each seed draws other guests
        DOWNTIME_BUDGET_MS = 100  # the longest guest pause acceptable, at the 99th percentile
        """
    ),
    code(setup(progress=True)),
    md(
        """
        ## The cluster

        The scenario file gives the hosts, racks, network and guests; every run below changes
        only the action, the seed and the settings swept.
        """
    ),
    code(
        """
        import copy
        import itertools
        import math

        from lmes.sim.scenario import build_scenario, read_scenario_file, run_scenario
        from lmes.sim.workload import rate_value

        base = SCENARIO if isinstance(SCENARIO, dict) else read_scenario_file(SCENARIO)
        sample = build_scenario(copy.deepcopy(base))
        hosts = sample.cluster.hosts
        print(
            f"{len(hosts)} hosts in {len({h.rack for h in hosts.values()})} racks, "
            f"{sample.cluster.vm_count} guests; network {base['network']}"
        )
        pd.Series(
            {
                label: len(build_scenario({**copy.deepcopy(base), "action": action}).target_hosts())
                for label, action in DRAINS.items()
            },
            name="hosts to drain",
        ).to_frame()
        """
    ),
    md(
        """
        ## The drains

        Every drain runs under every combination of concurrency, NIC and bandwidth cap, once per
        seed.
        """
    ),
    code(
        """
        def drain(action, max_concurrent, nic, cap_mib_s, seed):
            data = copy.deepcopy(base)
            data.update(seed=seed, action=action)
            data["network"] = {**data["network"], "nic": nic}
            data["nova"] = {
                **data.get("nova", {}),
                "max_concurrent_live_migrations": max_concurrent,
                "live_migration_bandwidth": cap_mib_s,
            }
            return run_scenario(build_scenario(data))


        plan = list(itertools.product(DRAINS, NICS, BANDWIDTH_CAPS_MIB_S, MAX_CONCURRENT, SEEDS))
        runs, migrations = [], []
        for label, nic, cap, concurrent, seed in tqdm(plan, desc="drains simulated"):
            result = drain(DRAINS[label], concurrent, nic, cap, seed)
            summary = result.summary()
            setting = {
                "drain": label,
                "nic": nic,
                "bandwidth_cap_mib_s": cap,
                "max_concurrent_live_migrations": concurrent,
                "seed": seed,
            }
            runs.append(
                {
                    **setting,
                    "makespan_s": result.makespan_s,
                    "migrations": summary["migrations"],
                    "failures": summary["failures"],
                    "downtime_p99_ms": summary["downtime_ms"]["p99"],
                }
            )
            migrations += [{**setting, **m.summary()} for m in result.migrations]
        runs = pd.DataFrame(runs)
        migrations = pd.DataFrame(migrations)
        print(f"{len(runs)} drains, {len(migrations)} migrations simulated")
        """
    ),
    md(
        """
        ## Makespan against concurrency

        Each panel is one drain and one bandwidth cap; each line one NIC. The dashed marks are
        the link limit: how many capped migrations it takes to fill the NIC
        (⌈NIC / cap⌉; without a cap one migration can fill it alone).
        """
    ),
    code(
        """
        from matplotlib.figure import Figure


        def link_limit(nic, cap_mib_s):
            if not cap_mib_s:
                return 1
            return max(1, math.ceil(rate_value(nic) / (cap_mib_s * 2**20)))


        figure = Figure(figsize=(12, 4 * len(DRAINS)), layout="constrained")
        axes = figure.subplots(len(DRAINS), len(BANDWIDTH_CAPS_MIB_S), squeeze=False)
        for (row, label), (col, cap) in itertools.product(
            enumerate(DRAINS), enumerate(BANDWIDTH_CAPS_MIB_S)
        ):
            part = runs[(runs["drain"] == label) & (runs["bandwidth_cap_mib_s"] == cap)]
            cap_text = f"cap {cap} MiB/s" if cap else "no cap"
            plots.sweep_lines(
                part,
                "max_concurrent_live_migrations",
                "makespan_s",
                by="nic",
                ax=axes[row, col],
                title=f"{label}, {cap_text}",
            )
            colours = {line.get_label(): line.get_color() for line in axes[row, col].get_lines()}
            for nic in NICS:
                axes[row, col].axvline(
                    link_limit(nic, cap),
                    linestyle="--",
                    linewidth=1.2,
                    color=colours.get(f"nic = {nic}", "grey"),
                    label=f"link limit, {nic}",
                )
            axes[row, col].legend(fontsize=8)
        figure
        """
    ),
    code(
        """
        makespans = (
            runs.groupby(["drain", "nic", "bandwidth_cap_mib_s", "max_concurrent_live_migrations"])
            .agg(
                makespan_s=("makespan_s", "median"),
                failures=("failures", "sum"),
                downtime_p99_ms=("downtime_p99_ms", "max"),
            )
            .reset_index()
        )
        makespans["link_limit"] = [
            link_limit(nic, cap)
            for nic, cap in zip(makespans["nic"], makespans["bandwidth_cap_mib_s"], strict=True)
        ]
        makespans.pivot_table(
            index=["drain", "nic", "bandwidth_cap_mib_s"],
            columns="max_concurrent_live_migrations",
            values="makespan_s",
        ).round(0)
        """
    ),
    md(
        """
        Up to the link limit, every extra concurrent migration shortens the drain: the copies
        still get their full rate, and Nova's fixed work overlaps. Past it the gain shrinks, and
        on a slow NIC it can reverse: migrations that share the link copy slower, the hottest
        guests hit the completion timeout and the drain fails to empty the host.

        ## What the guests see

        Downtime per migration, by concurrency, for the rack drain on each NIC.
        """
    ),
    code(
        """
        def p99(values):
            return float(np.percentile(values.dropna(), 99)) if values.notna().any() else np.nan


        done = migrations[migrations["outcome"] == "completed"]
        figure = Figure(figsize=(12, 4.5), layout="constrained")
        axes = figure.subplots(1, 2)
        last = list(DRAINS)[-1]
        plots.sweep_heatmap(
            done[done["drain"] == last],
            "max_concurrent_live_migrations",
            "nic",
            "downtime_ms",
            agg=p99,
            fmt="{:.0f}",
            cmap="magma",
            ax=axes[0],
            title=f"{last}: downtime p99 (ms)",
        )
        plots.downtime_distribution(
            migrations[migrations["drain"] == last],
            by="max_concurrent_live_migrations",
            outcome="outcome",
            ax=axes[1],
        )
        figure
        """
    ),
    md(
        """
        ## The fastest drain within the budget

        The NIC is what you have; concurrency and the bandwidth cap are what you set. For each
        drain and NIC, a setting qualifies when every migration of every seed completed and the
        worst p99 downtime stays within `DOWNTIME_BUDGET_MS`; of those, the one with the
        shortest median makespan wins.
        """
    ),
    code(
        """
        qualifying = makespans[
            (makespans["failures"] == 0) & (makespans["downtime_p99_ms"] <= DOWNTIME_BUDGET_MS)
        ]
        best = (
            qualifying.sort_values("makespan_s")
            .groupby(["drain", "nic"], sort=False)
            .head(1)
            .sort_values(["drain", "nic"])
        )
        lines = []
        for label, nic in itertools.product(DRAINS, NICS):
            choice = best[(best["drain"] == label) & (best["nic"] == nic)]
            if choice.empty:
                lines.append(
                    f"- **{label}, {nic}**: no setting drains it within "
                    f"{DOWNTIME_BUDGET_MS} ms with every migration completed."
                )
                continue
            c = choice.iloc[0]
            same_nic = makespans[(makespans["drain"] == label) & (makespans["nic"] == nic)]
            one_at_a_time = same_nic[same_nic["max_concurrent_live_migrations"] == 1]
            lines.append(
                f"- **{label}, {nic}**: `max_concurrent_live_migrations = "
                f"{c['max_concurrent_live_migrations']}`, "
                + (
                    f"`live_migration_bandwidth = {c['bandwidth_cap_mib_s']}`"
                    if c["bandwidth_cap_mib_s"]
                    else "no bandwidth cap"
                )
                + f": drained in {c['makespan_s']:.0f} s (Nova's default of one at a time: "
                f"{one_at_a_time['makespan_s'].min():.0f} s; "
                f"the slowest setting: {same_nic['makespan_s'].max():.0f} s), "
                f"downtime p99 {c['downtime_p99_ms']:.0f} ms."
            )
        display(Markdown("\\n".join(lines)))
        best
        """
    ),
    md(
        """
        ## The chosen rack drain, migration by migration

        The winning setting for the last drain runs once more and is recorded in the store
        (origin `sim`): each bar is one guest, from its request to its end, split into waiting
        in the queue, preparation and the copy.
        """
    ),
    code(
        """
        from lmes.sim.record import store_results

        candidates = best[best["drain"] == last].sort_values("makespan_s")
        chosen = (candidates if len(candidates) else makespans[makespans["drain"] == last]).iloc[0]
        result = drain(
            DRAINS[last],
            int(chosen["max_concurrent_live_migrations"]),
            chosen["nic"],
            int(chosen["bandwidth_cap_mib_s"]),
            SEEDS[0],
        )
        stored_ids = [
            str(i)
            for i in store_results(
                store, result.migrations, context={"study": "evacuation-planning", "drain": last}
            )
        ]
        stored = load.migrations(store, ids=stored_ids)
        plots.migrations_gantt(stored, title=f"{last}: every migration of the chosen drain")
        """
    ),
    md("## Key numbers"),
    code(
        """
        def plain(value):
            return value.item() if hasattr(value, "item") else value


        key_numbers = {
            "drains": len(runs),
            "migrations": len(migrations),
            "makespan_by_concurrency": [
                {k: plain(v) for k, v in row.items()} for row in makespans.to_dict("records")
            ],
            "best": [{k: plain(v) for k, v in row.items()} for row in best.to_dict("records")],
            "downtime_budget_ms": DOWNTIME_BUDGET_MS,
            "stored_sim_migrations": len(stored_ids),
        }
        display(JSON(key_numbers, expanded=True))
        """
    ),
]

REALITY = [
    md(
        """
        # Simulation against reality

        A simulator is only worth its predictions. This study fits the lmes simulator to
        migrations that really happened — replayed from nova logs, and executed by lmes when the
        store holds some — then asks it to predict them back, and shows the error of every
        prediction, the bad ones included.

        Two kinds of prediction are kept apart. The **copy time** of the calibrated simulation is
        fitted on the very migration it predicts: its error measures how well the model can
        describe the migration, not how well it forecasts. The **total time** with lmes' default
        costs for Nova's own work is a forecast: nothing about it was fitted. A naive model
        (memory divided by bandwidth, as CloudSim computes it) is the baseline both must beat.
        """
    ),
    parameters(
        """
        # Logs to replay into the store (files or folders, one folder per host)
        LOG_PATHS = ["../examples/seed"]
        # Also compare with migrations the executor ran, when the store holds some
        INCLUDE_EXECUTED = True
        # The error a calibrated simulation may have and still count as a good fit
        TOLERANCE = 0.10
        SEED = 1
        """
    ),
    code(setup(markdown=False)),
    md("## The migrations that really happened"),
    code(
        """
        from lmes.replay.diagnosis import diagnose
        from lmes.replay.service import Replay, collect_logs

        if LOG_PATHS:
            for _ in Replay(collect_logs([str(p) for p in LOG_PATHS]), store=store).migrations():
                pass
        origins = ["replay", "executor"] if INCLUDE_EXECUTED else ["replay"]
        real = pd.concat([load.migrations(store, origin=o, status="completed") for o in origins])
        executed = int((real["origin"] == "executor").sum())
        print(
            f"{len(real)} completed real migrations: {len(real) - executed} replayed, "
            f"{executed} executed" + ("" if executed else " (no executed migrations in this store)")
        )
        streams = {str(s.migration.id): s for s in load.streams(store, real["id"].tolist())}
        real[["id", "origin", "instance", "source_host", "dest_host", "total_s", "downtime_ms"]]
        """
    ),
    md(
        """
        ## Calibration

        For each migration, `lmes.sim.calibrate` finds the bandwidth (from the progress reports,
        else the bandwidth cap), the share of zero pages and the dirty rate with which the
        simulator copies the guest in the time observed. A migration without what a fit needs
        is listed with the reason, not dropped.
        """
    ),
    code(
        """
        from lmes.sim.calibrate import CalibrationError, calibrate_migration

        fits, unfit = {}, []
        for migration_id, stream in streams.items():
            try:
                fits[migration_id] = calibrate_migration(stream.migration, stream.events)
            except CalibrationError as exc:
                unfit.append({"id": migration_id, "why not": str(exc)})
        if unfit:
            display(pd.DataFrame(unfit))
        pd.DataFrame(
            [
                {
                    "id": migration_id[:8],
                    "memory (MiB)": fit.memory_bytes / 2**20,
                    "zero pages": fit.zero_fraction,
                    "bandwidth (MiB/s)": fit.bandwidth_bytes_s / 2**20,
                    "dirty rate (MiB/s)": fit.dirty_rate_bytes_s / 2**20,
                    "notes": "; ".join(fit.notes),
                }
                for migration_id, fit in fits.items()
            ]
        )
        """
    ),
    md(
        """
        ## Predictions and their errors

        Each calibrated guest is simulated again under the Nova configuration its downtime ramp
        gives away, twice: with lmes' default costs for Nova's work around the copy (a
        forecast), and with the costs this migration's logs show (which leaves only the copy
        to the model).
        """
    ),
    code(
        """
        from lmes.sim.experiment import run_spec
        from lmes.sim.record import store_results

        RELEASE_OF_FORM = {"exponential": "newton", "linear": "2024.1"}
        predictions, simulated = [], {}
        for migration_id, fit in fits.items():
            stream = streams[migration_id]
            diagnosis = diagnose(stream.migration, stream.events)
            inferred = diagnosis.inferred or {}
            nova = {"release": RELEASE_OF_FORM.get(inferred.get("ramp_form"), "2024.1")}
            if inferred.get("delay_s"):
                nova.update(
                    live_migration_downtime=inferred["downtime_ms"],
                    live_migration_downtime_steps=inferred["steps"],
                    live_migration_downtime_delay=inferred["delay_s"],
                )
            phases = diagnosis.phases
            # The wait for the VIFs counts with the preparation: releases before Rocky did not
            # wait for it before copying, yet the copy the fit describes starts once it ended.
            measured_costs = {
                "checks_s": phases.get("checks", 0.0) + phases.get("queued", 0.0),
                "pre_live_migration_s": phases.get("pre_live_migration", 0.0) + phases.get("vif_wait", 0.0),
                "vif_plug_s": 0.0,
                "post_live_migration_s": phases.get("post_migration", 0.0),
            }
            spec = {"workload": fit.as_workload_file(), "name": stream.migration.instance, **nova}
            forecast, _ = run_spec(spec, SEED)
            replayed_costs, _ = run_spec({**spec, "costs": measured_costs}, SEED, keep_commands=True)
            simulated[migration_id] = replayed_costs
            observed_total = diagnosis.duration_s
            naive_copy = fit.memory_bytes / fit.bandwidth_bytes_s
            rows = [
                (
                    "copy time",
                    "calibrated simulation (fitted here)",
                    fit.observed_copy_s,
                    fit.simulated_copy_s,
                ),
                ("copy time", "naive: memory / bandwidth", fit.observed_copy_s, naive_copy),
                (
                    "total time",
                    "simulation, default Nova costs (forecast)",
                    observed_total,
                    forecast.total_s,
                ),
                ("total time", "simulation, measured Nova costs", observed_total, replayed_costs.total_s),
                ("downtime", "calibrated simulation", stream.migration.downtime_ms, forecast.downtime_ms),
            ]
            for quantity, model, observed, predicted in rows:
                known = observed is not None and predicted is not None and observed > 0
                predictions.append(
                    {
                        "migration": migration_id[:8],
                        "quantity": quantity,
                        "model": model,
                        "observed": observed,
                        "predicted": predicted,
                        "error": predicted / observed - 1 if known else np.nan,
                    }
                )
        predictions = pd.DataFrame(predictions)
        predictions.style.format(
            {"observed": "{:.3f}", "predicted": "{:.3f}", "error": "{:+.1%}"}, na_rep="not observed"
        )
        """
    ),
    code(
        """
        shown = predictions.dropna(subset=["error"]).assign(
            prediction=lambda f: f["migration"] + " " + f["quantity"] + ": " + f["model"]
        )
        plots.prediction_errors(
            shown, tolerance=TOLERANCE, title="every prediction, against what really happened"
        )
        """
    ),
    md(
        """
        The calibrated copy time is close by construction; the naive model misses because it
        ignores zero pages and dirtying. The forecast of the total time misses by however much
        this deployment's Nova work (volume attachment, VIF plugging, cleanup) differs from lmes'
        defaults: in the seed's logs, `pre_live_migration` with its os-brick volume work takes
        three times lmes' default. That part of a migration is not memory copying at all, so
        before trusting forecasts, measure those costs on your own hosts (replay their logs) and
        give them to the simulator, as the last prediction does.

        ## Replayed and simulated, side by side

        The simulation with the measured costs is stored as an ordinary migration (origin
        `sim`); the same timeline plot reads both.
        """
    ),
    code(
        """
        from matplotlib.figure import Figure

        stored_ids = [
            str(i)
            for i in store_results(store, simulated.values(), context={"study": "simulation-vs-reality"})
        ]
        pairs = list(zip(simulated, stored_ids, strict=True))
        figure = Figure(figsize=(11, 3.2 * 2 * max(len(pairs), 1)), layout="constrained")
        axes = figure.subplots(2 * max(len(pairs), 1), 1, squeeze=False)[:, 0]
        events = load.events(store, [i for pair in pairs for i in pair])
        for n, (real_id, sim_id) in enumerate(pairs):
            plots.phase_timeline(events, real_id, ax=axes[2 * n], title=f"replayed {real_id[:8]}")
            plots.phase_timeline(
                events,
                sim_id,
                ax=axes[2 * n + 1],
                title="simulated with the fitted guest and measured costs",
            )
        figure
        """
    ),
    md("## Key numbers"),
    code(
        """
        def error_of(migration_id, model):
            rows = predictions[
                (predictions["migration"] == migration_id[:8]) & (predictions["model"] == model)
            ]
            value = rows["error"].iloc[0] if len(rows) else np.nan
            return None if pd.isna(value) else float(value)


        key_numbers = {
            "real_migrations": len(real),
            "executed_migrations": executed,
            "calibrated": len(fits),
            "not_calibrated": unfit,
            "tolerance": TOLERANCE,
            "errors": {
                migration_id: {
                    "copy_calibrated": error_of(migration_id, "calibrated simulation (fitted here)"),
                    "copy_naive": error_of(migration_id, "naive: memory / bandwidth"),
                    "total_forecast": error_of(migration_id, "simulation, default Nova costs (forecast)"),
                    "total_measured_costs": error_of(migration_id, "simulation, measured Nova costs"),
                }
                for migration_id in fits
            },
            "stored_sim_migrations": len(stored_ids),
        }
        display(JSON(key_numbers, expanded=True))
        """
    ),
]

NOTEBOOKS: dict[str, list[tuple[str, str]]] = {
    "diagnose-a-migration.ipynb": DIAGNOSE,
    "downtime-tuning.ipynb": TUNING,
    "evacuation-planning.ipynb": EVACUATION,
    "simulation-vs-reality.ipynb": REALITY,
}


def build(name: str) -> nbformat.NotebookNode:
    """The notebook `name` as its cells say, without outputs, with stable cell ids."""
    stem = Path(name).stem
    cells = []
    for index, (kind, text) in enumerate(NOTEBOOKS[name]):
        source = dedent(text).strip()
        if kind == "markdown":
            cell = new_markdown_cell(source)
        else:
            cell = new_code_cell(source)
            if kind == "parameters":
                cell.metadata["tags"] = ["parameters"]
        cell.id = f"{stem}-{index:02d}"
        cells.append(cell)
    notebook = new_notebook(cells=cells, metadata=KERNEL)
    nbformat.validate(notebook)
    return notebook


def main(argv: list[str]) -> int:
    for name in NOTEBOOKS:
        nbformat.write(build(name), FOLDER / name)
        print(f"wrote {FOLDER / name}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
