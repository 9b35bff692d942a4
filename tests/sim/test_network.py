"""Max-min fair sharing of links by concurrent flows (models.md A6.3, VC-4 ratios)."""

from __future__ import annotations

import pytest
import simpy

from lmes.sim.network import Network
from lmes.sim.nova import MigrationPlan, NovaMigration
from lmes.sim.precopy import QemuSettings
from lmes.sim.workload import ConstantRate, Phase, Workload

GB = 1e9


def transfer_times(network: Network, flows: list[tuple[list[str], float, float | None, float]]):
    """Start each (path, bytes, cap, at_s) transfer; return when each one finished."""
    env = network.env
    finished: dict[int, float] = {}

    def transfer(index, path, nbytes, cap, at_s):
        yield env.timeout(at_s)
        flow = network.open(path, cap)
        yield flow.send(nbytes)
        flow.close()
        finished[index] = env.now

    for index, (path, nbytes, cap, at_s) in enumerate(flows):
        env.process(transfer(index, path, nbytes, cap, at_s))
    env.run()
    return [finished[i] for i in range(len(flows))]


def test_two_equal_transfers_on_one_link_each_take_twice_as_long():
    network = Network(simpy.Environment())
    network.add_link("link", 1 * GB)

    alone = transfer_times(network, [(["link"], 10 * GB, None, 0.0)])[0]
    network = Network(simpy.Environment())
    network.add_link("link", 1 * GB)
    both = transfer_times(network, [(["link"], 10 * GB, None, 0.0), (["link"], 10 * GB, None, 0.0)])

    assert alone == pytest.approx(10.0)
    assert both == pytest.approx([20.0, 20.0])


def test_a_capped_flow_leaves_the_rest_to_the_other():
    network = Network(simpy.Environment())
    network.add_link("link", 1 * GB)

    times = transfer_times(
        network, [(["link"], 2 * GB, 0.2 * GB, 0.0), (["link"], 8 * GB, None, 0.0)]
    )

    assert times == pytest.approx([10.0, 10.0])


def test_rates_are_recomputed_when_a_flow_ends():
    network = Network(simpy.Environment())
    network.add_link("link", 1 * GB)

    # Shared until the small one ends at 2 s (1 GB each sent), then the big one runs alone.
    times = transfer_times(network, [(["link"], 1 * GB, None, 0.0), (["link"], 4 * GB, None, 0.0)])

    assert times == pytest.approx([2.0, 5.0])


def test_max_min_fairness_across_two_bottlenecks():
    network = Network(simpy.Environment())
    network.add_link("a", 1 * GB)
    network.add_link("b", 3 * GB)
    # Flow 0 crosses a and b, flow 1 only a, flow 2 only b: a is split 0.5/0.5,
    # flow 2 gets what b has left (2.5).
    rates = {}

    def probe():
        flows = [network.open(["a", "b"]), network.open(["a"]), network.open(["b"])]
        yield network.env.timeout(0)
        rates.update({i: f.rate_bytes_s for i, f in enumerate(flows)})

    network.env.process(probe())
    network.env.run()

    assert rates == pytest.approx({0: 0.5 * GB, 1: 0.5 * GB, 2: 2.5 * GB})


def test_a_loose_link_does_not_couple_flows():
    network = Network(simpy.Environment())
    network.add_link("nic1", 1 * GB)
    network.add_link("nic2", 1 * GB)
    network.add_link("fabric", 100 * GB)

    times = transfer_times(
        network, [(["nic1", "fabric"], 5 * GB, None, 0.0), (["nic2", "fabric"], 2 * GB, None, 1.0)]
    )

    assert times == pytest.approx([5.0, 3.0])


def test_two_equal_migrations_sharing_a_link_each_take_twice_as_long():
    guest = Workload(2 * 1024**3, 0.0, (Phase(0.0, ConstantRate(0.0)),))
    plan = MigrationPlan("vm", guest, downtime_limit_ms=300, qemu=QemuSettings(page_header_bytes=0))

    def copy_times(count: int) -> list[float]:
        env = simpy.Environment()
        network = Network(env)
        network.add_link("link", 1 * GB)
        migrations = [NovaMigration(env, network, plan, path=["link"]) for _ in range(count)]
        for migration in migrations:
            env.process(migration.run())
        env.run()
        return [m.result.copy_s for m in migrations]

    (alone,) = copy_times(1)
    shared = copy_times(2)

    assert shared == pytest.approx([2 * alone, 2 * alone])
