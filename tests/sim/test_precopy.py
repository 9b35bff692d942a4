"""One migration against known answers: the closed form, QEMU's control law, Nova's ramps."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import simpy

from lmes.domain.policy import downtime_steps
from lmes.domain.releases import Release
from lmes.domain.settings import Settings
from lmes.sim.network import Network
from lmes.sim.nova import MigrationPlan, NovaCosts, Outcome, simulate_one
from lmes.sim.precopy import PrecopyJob, QemuSettings
from lmes.sim.workload import ConstantRate, Phase, WorkingSet, Workload

GIB = 1024**3
VECTORS = json.loads((Path(__file__).parents[1] / "data" / "nova_vectors.json").read_text())


def constant_guest(memory_bytes: int, rate_bytes_s: float, zero: float = 0.0) -> Workload:
    return Workload(memory_bytes, zero, (Phase(0.0, ConstantRate(rate_bytes_s)),))


def raw_plan(workload: Workload, limit_ms: float, **qemu: object) -> MigrationPlan:
    return MigrationPlan(
        "vm", workload, downtime_limit_ms=limit_ms, qemu=QemuSettings(page_header_bytes=0, **qemu)
    )


def geometric(memory: float, rate: float, dirty: float, limit_s: float) -> dict[str, float]:
    """models.md A1: V_i = M λ^i until V_n ≤ R·limit."""
    ratio = dirty / rate
    n = math.ceil(math.log(rate * limit_s / memory, ratio))
    volume = memory * (1 - ratio ** (n + 1)) / (1 - ratio)
    return {
        "rounds": n,
        "bytes": volume,
        "total_s": volume / rate,
        "downtime_s": memory * ratio**n / rate,
    }


def test_vc6_closed_form_four_gib_at_1_25_gb_s():
    result = simulate_one(raw_plan(constant_guest(4 * GIB, 0.25e9), 300), 1.25e9)

    assert result.outcome == Outcome.COMPLETED and result.converged
    assert result.rounds == 2
    assert result.iterations == 3
    assert [round(r["ram_bytes"] / 1e6, 3) for r in result.round_details] == [
        4294.967,
        858.993,
        171.799,
    ]
    assert round(result.bytes_sent / 1e6, 1) == 5325.8
    assert round(result.total_s, 4) == 4.2606
    assert round(result.downtime_ms / 1000, 4) == 0.1374


@pytest.mark.parametrize(
    ("memory", "rate", "dirty", "limit_s"),
    [(8 * GIB, 1.25e9, 0.5e9, 0.3), (2 * GIB, 125e6, 40e6, 0.5), (16 * GIB, 3e9, 2.5e9, 0.1)],
)
def test_constant_dirtying_matches_the_geometric_model(memory, rate, dirty, limit_s):
    expected = geometric(memory, rate, dirty, limit_s)

    result = simulate_one(raw_plan(constant_guest(memory, dirty), limit_s * 1000), rate)

    assert result.rounds == expected["rounds"]
    assert result.bytes_sent == pytest.approx(expected["bytes"], rel=1e-9)
    assert result.total_s == pytest.approx(expected["total_s"], rel=1e-9)
    assert result.downtime_ms / 1000 == pytest.approx(expected["downtime_s"], rel=1e-9)


def test_page_headers_and_zero_pages_cost_what_qemu_sends():
    memory = 1 * GIB
    pages = memory // 4096
    guest = constant_guest(memory, 0.0, zero=0.25)
    plan = MigrationPlan("vm", guest, downtime_limit_ms=300, qemu=QemuSettings(page_header_bytes=8))

    result = simulate_one(plan, 1e9)

    first = result.round_details[0]
    assert first["wire_bytes"] == pytest.approx(pages * 0.75 * (4096 + 8) + pages * 0.25 * 8)
    assert result.rounds == 1  # nothing dirtied: the pass, then an empty stop-and-copy


def test_switch_over_threshold_is_bandwidth_times_limit_vc3():
    link = 1.25e9  # 10 Gbit/s = 1.25e6 bytes/ms
    threshold = 1.25e6 * 300
    assert threshold == 375_000_000
    # A guest whose whole RAM is just under the threshold switches at the first sync...
    under = simulate_one(raw_plan(constant_guest(threshold - 4096, 1e6), 300), link)
    assert under.rounds == 0 and under.round_details[0]["stop_and_copy"]
    # ... one just over it is copied live first.
    over = simulate_one(raw_plan(constant_guest(threshold + 4096 * 10, 1e6), 300), link)
    assert over.rounds == 1
    assert over.round_details[0]["threshold_bytes"] == pytest.approx(threshold)


def test_auto_converge_throttles_20_then_10_more_up_to_99_vc3():
    env = simpy.Environment()
    network = Network(env)
    network.add_link("link", 100e6)
    flow = network.open(["link"])
    guest = constant_guest(1 * GIB, 1e9)  # dirties 10x what is sent: never converges alone
    job = PrecopyJob(env, guest, flow, QemuSettings(auto_converge=True, page_header_bytes=0))
    env.run(env.process(job.run()))

    steps = job.result.throttle_steps
    assert [pct for _, pct in steps] == [20, 30, 40, 50, 60, 70, 80, 90, 99]
    # Two qualifying periods of at least 1 s each per step: 18 s at least to reach 99 %.
    assert steps[-1][0] >= 18.0
    assert job.result.outcome.value in ("completed", "not_converged")


def test_auto_converge_lets_a_hot_guest_converge():
    guest = constant_guest(4 * GIB, 1.5e9)
    plain = simulate_one(raw_plan(guest, 300), 1.25e9)
    throttled = simulate_one(raw_plan(guest, 300, auto_converge=True), 1.25e9)

    assert plain.outcome == Outcome.NOT_CONVERGED and not plain.converged
    assert throttled.outcome == Outcome.COMPLETED
    assert throttled.throttle_pct >= 20


def test_a_migration_that_can_never_converge_is_reported_not_looped():
    hot = Workload(8 * GIB, 0.0, (Phase(0.0, WorkingSet(4 * GIB, 10e9)),))

    result = simulate_one(raw_plan(hot, 300), 1.25e9)

    assert result.outcome == Outcome.NOT_CONVERGED
    assert not result.converged
    assert result.downtime_ms is None
    assert result.rounds < 200


def test_a_completion_timeout_cancels_a_stuck_migration():
    hot = constant_guest(8 * GIB, 5e9)
    plan = MigrationPlan("vm", hot, downtime_limit_ms=300, completion_timeout_s=120)

    result = simulate_one(plan, 1.25e9)

    assert result.outcome == Outcome.CANCELLED
    assert result.copy_s == pytest.approx(120)
    assert [name for _, name, _ in result.commands][-2:] == ["roll_back", "cancel"]


def test_stop_and_copy_runs_at_link_speed_not_at_the_cap():
    guest = constant_guest(2 * GIB, 50e6)
    capped = MigrationPlan(
        "vm",
        guest,
        downtime_limit_ms=300,
        qemu=QemuSettings(page_header_bytes=0, max_bandwidth_bytes_s=100e6),
    )

    result = simulate_one(capped, 1e9)

    final = result.round_details[-1]
    assert final["stop_and_copy"]
    assert final["duration_s"] == pytest.approx(final["wire_bytes"] / 1e9)
    assert result.round_details[0]["duration_s"] == pytest.approx(2 * GIB / 100e6)


@pytest.mark.parametrize("vector_id", ["ds-newton-exp-doc", "ds-linear-doc"])
def test_the_simulated_monitor_walks_novas_ramp(vector_id):
    vector = next(v for v in VECTORS["downtime_steps"] if v["id"] == vector_id)
    given = vector["input"]
    release = Release.parse("newton" if "exp" in vector_id else "ocata")
    settings = Settings.defaults(release).with_overrides(
        live_migration_downtime=given["live_migration_downtime"],
        live_migration_downtime_steps=given["live_migration_downtime_steps"],
        live_migration_downtime_delay=given["live_migration_downtime_delay"],
        live_migration_progress_timeout=0,
    )
    stuck = constant_guest(int(given["data_gb"] * GIB), 10e9)
    plan = MigrationPlan("vm", stuck, settings=settings, completion_timeout_s=1000)

    result = simulate_one(plan, 1e9)

    expected = [tuple(step) for step in vector["expected"]]
    assert result.downtime_steps == expected
    applied = [
        (fields["elapsed_s"], fields["_args"][0])
        for _, name, fields in result.commands
        if name == "increase_downtime"
    ]
    distinct = [step for i, step in enumerate(expected) if i == 0 or step[1] != expected[i - 1][1]]
    assert applied == [(float(s), ms) for s, ms in distinct]
    assert result.outcome == Outcome.CANCELLED


def test_the_ramp_raises_the_limit_until_a_migration_converges():
    settings = Settings.defaults(Release.parse("2024.1")).with_overrides(
        live_migration_downtime_delay=5, live_migration_completion_timeout=0
    )
    guest = Workload(4 * GIB, 0.0, (Phase(0.0, WorkingSet(200e6, 2e9)),))
    ramp = downtime_steps(500, 10, 5, 4.0, settings.release)
    plan = MigrationPlan("vm", guest, settings=settings)

    result = simulate_one(plan, 1e9)

    assert result.outcome == Outcome.COMPLETED
    applied = [f["_args"][0] for _, name, f in result.commands if name == "increase_downtime"]
    assert applied == [ms for _, ms in ramp[: len(applied)]]
    assert len(applied) > 1
    assert result.round_details[-1]["downtime_limit_ms"] == applied[-1]


def test_force_complete_on_timeout_switches_to_post_copy_when_permitted():
    settings = Settings.defaults().with_overrides(
        live_migration_permit_post_copy=True, live_migration_timeout_action="force_complete"
    )
    hot = Workload(4 * GIB, 0.0, (Phase(0.0, WorkingSet(2 * GIB, 20e9)),))
    plan = MigrationPlan("vm", hot, settings=settings, completion_timeout_s=60)

    result = simulate_one(plan, 1e9)

    names = [name for _, name, _ in result.commands]
    assert result.outcome == Outcome.COMPLETED and result.post_copy
    assert names.index("reach_completion_timeout") < names.index("switch_to_post_copy")
    assert result.postcopy_faults > 0
    assert result.copy_s > 60


def test_force_complete_without_post_copy_pauses_the_guest():
    settings = Settings.defaults().with_overrides(live_migration_timeout_action="force_complete")
    hot = constant_guest(4 * GIB, 3e9)
    plan = MigrationPlan("vm", hot, settings=settings, completion_timeout_s=30)

    result = simulate_one(plan, 1e9)

    assert result.outcome == Outcome.COMPLETED and result.guest_paused
    assert not result.post_copy
    # The guest is down from the pause to the end of the stop-and-copy.
    assert result.downtime_ms > 300


def test_nova_fixed_costs_add_to_the_total():
    costs = NovaCosts(
        checks_s=1.0, pre_live_migration_s=2.0, vif_plug_s=3.0, post_live_migration_s=4.0
    )
    guest = constant_guest(1 * GIB, 0.0)
    plan = MigrationPlan("vm", guest, settings=Settings.defaults(), costs=costs)

    result = simulate_one(plan, 1e9)

    assert result.total_s == pytest.approx(10.0 + result.copy_s)


def test_fixed_costs_drawn_from_distributions_depend_only_on_the_seed():
    spec = {"checks_s": {"dist": "lognormal", "median": 1.0, "sigma": 0.5}}
    first = NovaCosts.draw(spec, np.random.default_rng(3))
    again = NovaCosts.draw(spec, np.random.default_rng(3))
    other = NovaCosts.draw(spec, np.random.default_rng(4))

    assert first == again
    assert first != other


def test_releases_that_do_not_wait_for_vifs_start_copying_at_once():
    costs = NovaCosts(
        checks_s=1.0, pre_live_migration_s=2.0, vif_plug_s=3.0, post_live_migration_s=4.0
    )
    guest = constant_guest(1 * GIB, 0.0)
    rocky = Settings.defaults(Release.parse("rocky"))  # live_migration_wait_for_vif_plug=False
    plan = MigrationPlan("vm", guest, settings=rocky, costs=costs)

    result = simulate_one(plan, 1e9)

    assert result.total_s == pytest.approx(7.0 + result.copy_s)
