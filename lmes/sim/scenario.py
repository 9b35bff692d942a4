"""Evacuation scenarios: a cluster, its guests and what to do with them, read from a file.

A scenario file (JSON or YAML) names the Nova settings, the network, the hosts, the guests and
one action: drain a host, drain a rack, or rolling maintenance of a set of hosts. Guests may be
listed one by one or generated (`per_host`), with any value drawn from a distribution; every
draw comes from one generator seeded by the scenario's `seed`, in file order, so a scenario
gives the same result for the same seed. See `examples/scenarios/` for commented examples.

```yaml
name: drain-one-host
seed: 7
nova: {release: "2024.1", max_concurrent_live_migrations: 1}
costs: {checks_s: 0.5}                   # Nova's fixed costs (numbers or distributions)
qemu: {page_header_bytes: 8, switchover_ms: 20}
network: {nic: 25Gbit/s, rack_uplink: 100Gbit/s, core: 400Gbit/s}
hosts: {racks: 2, per_rack: 8, memory: 512GiB, vcpus: 64}    # or a list of hosts
vms:
  per_host: 10                           # or a list of {name, host, vcpus, workload}
  vcpus: 4
  workload: {memory_mb: 8192, dirty_rate: {dist: lognormal, median: 50MB/s, sigma: 1.0}}
action: {drain_host: r01-h01}            # or drain_rack: r01, or rolling: {...}
```
"""

from __future__ import annotations

import json
from collections.abc import Callable, Generator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import simpy
import yaml

from lmes.domain.settings import Settings
from lmes.errors import UserError
from lmes.sim.cluster import PLACEMENT_POLICIES, VM, Cluster, Fabric, Host
from lmes.sim.distributions import resolve
from lmes.sim.experiment import settings_from_values
from lmes.sim.nova import MigrationPlan, MigrationResult, NovaCosts, Outcome
from lmes.sim.precopy import DEFAULT_PAGE_HEADER_BYTES, QemuSettings
from lmes.sim.workload import rate_value, size_value, workload_from_dict

SCENARIO_FIELDS = {
    "name",
    "seed",
    "nova",
    "costs",
    "qemu",
    "placement",
    "network",
    "hosts",
    "vms",
    "action",
}
ACTIONS = ("drain_host", "drain_rack", "rolling")
# Rolling maintenance takes hosts rack after rack, or round-robin across racks (so that no
# rack loses many hosts, nor its uplink carries many evacuations, at once).
ROLLING_ORDERS = ("rack", "interleaved")


@dataclass
class Scenario:
    """A cluster ready to run, and the action to run on it."""

    name: str
    seed: int
    cluster: Cluster
    action: dict[str, Any]
    source: dict[str, Any] = field(default_factory=dict)

    def target_hosts(self) -> list[str]:
        """The hosts the action empties, in the order it takes them."""
        kind, value = next(iter(self.action.items()))
        cluster = self.cluster
        if kind == "drain_host":
            return [value]
        if kind == "drain_rack":
            return sorted(h.name for h in cluster.hosts.values() if h.rack == value)
        return _rolling_hosts(cluster, value)

    def planned_migrations(self) -> int | None:
        """How many migrations the action starts, when known in advance.

        Rolling maintenance may move a guest twice (onto a host not yet maintained), so its
        count is only known at the end.
        """
        if "rolling" in self.action:
            return None
        return sum(len(self.cluster.hosts[name].vms) for name in self.target_hosts())


@dataclass
class ScenarioResult:
    """What a scenario produced: one result per migration, and the scenario's own figures."""

    name: str
    seed: int
    makespan_s: float
    migrations: list[MigrationResult]
    hosts_drained: list[str]
    hosts_not_empty: list[str]
    maintenance: list[dict[str, Any]] = field(default_factory=list)

    def summary(self) -> dict[str, Any]:
        completed = [m for m in self.migrations if m.outcome == Outcome.COMPLETED]
        outcomes: dict[str, int] = {}
        for migration in self.migrations:
            outcomes[migration.outcome] = outcomes.get(migration.outcome, 0) + 1
        return {
            "scenario": self.name,
            "seed": self.seed,
            "migrations": len(self.migrations),
            "completed": len(completed),
            "failures": len(self.migrations) - len(completed),
            "outcomes": dict(sorted(outcomes.items())),
            "makespan_s": self.makespan_s,
            "downtime_ms": percentiles([m.downtime_ms for m in completed]),
            "total_s": percentiles([m.total_s for m in self.migrations]),
            "copy_s": percentiles([m.copy_s for m in completed]),
            "queue_wait_s": percentiles([m.queue_wait_s for m in self.migrations]),
            "bytes_sent": float(sum(m.bytes_sent for m in self.migrations)),
            "post_copy": sum(1 for m in self.migrations if m.post_copy),
            "throttled": sum(1 for m in self.migrations if m.throttle_pct),
            "hosts_drained": self.hosts_drained,
            "hosts_not_empty": self.hosts_not_empty,
        }

    def frame(self) -> Any:
        """One row per migration, as a pandas DataFrame (for notebooks)."""
        import pandas as pd

        return pd.DataFrame([m.summary() for m in self.migrations])

    def as_dict(self) -> dict[str, Any]:
        return {
            "summary": self.summary(),
            "maintenance": self.maintenance,
            "migrations": [m.summary() for m in self.migrations],
        }


def percentiles(values: list[float | None]) -> dict[str, float | None]:
    """p50, p95, p99 and max of the values given (None when there are none)."""
    present = np.array([v for v in values if v is not None], dtype=float)
    if present.size == 0:
        return {"p50": None, "p95": None, "p99": None, "max": None}
    p50, p95, p99 = np.percentile(present, [50, 95, 99])
    return {"p50": float(p50), "p95": float(p95), "p99": float(p99), "max": float(present.max())}


# ------------------------------------------------------------------------------ loading


def read_scenario_file(path: Path | str, what: str = "scenario") -> dict[str, Any]:
    """The mapping in a JSON or YAML file (a scenario, a sweep grid), or a one-line error."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise UserError(f"cannot read {what} {path}: {exc.strerror or exc}") from None
    except UnicodeDecodeError:
        raise UserError(f"{what} {path} is not UTF-8 text") from None
    try:
        data = json.loads(text) if path.suffix.lower() == ".json" else yaml.safe_load(text)
    except (json.JSONDecodeError, yaml.YAMLError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise UserError(f"{what} {path} is not valid JSON or YAML: {first}") from None
    if not isinstance(data, dict):
        raise UserError(f"{what} {path} must hold a mapping")
    return data


def build_scenario(
    data: dict[str, Any], *, base_dir: Path | None = None, keep_commands: bool = True
) -> Scenario:
    """A runnable scenario from its mapping; raises UserError naming what is wrong."""
    try:
        return _build(data, base_dir, keep_commands)
    except UserError:
        raise
    except (KeyError, TypeError, ValueError) as exc:
        detail = f"missing {exc.args[0]!r}" if isinstance(exc, KeyError) else str(exc)
        raise UserError(f"scenario: {detail}") from None


def _build(data: dict[str, Any], base_dir: Path | None, keep_commands: bool) -> Scenario:
    unknown = sorted(set(data) - SCENARIO_FIELDS)
    if unknown:
        raise UserError(f"scenario: unknown field(s) {', '.join(unknown)}")
    seed = int(data.get("seed", 0))
    rng = np.random.default_rng(seed)
    settings = _settings(data.get("nova") or {})
    qemu_values = dict(data.get("qemu") or {})
    unknown = sorted(set(qemu_values) - {"page_header_bytes", "switchover_ms", "max_bandwidth"})
    if unknown:
        raise UserError(f"scenario: unknown qemu field(s) {', '.join(unknown)}")
    qemu = QemuSettings(
        page_header_bytes=int(qemu_values.get("page_header_bytes", DEFAULT_PAGE_HEADER_BYTES)),
        switchover_s=float(qemu_values.get("switchover_ms", 0.0)) / 1000.0,
        max_bandwidth_bytes_s=rate_value(qemu_values["max_bandwidth"])
        if qemu_values.get("max_bandwidth")
        else None,
    )
    network = dict(data.get("network") or {})
    unknown = sorted(set(network) - {"nic", "rack_uplink", "core"})
    if unknown:
        raise UserError(f"scenario: unknown network field(s) {', '.join(unknown)}")
    if "nic" not in network:
        raise UserError("scenario: network.nic (each host's NIC, e.g. 25Gbit/s) is required")
    fabric = Fabric(
        rack_uplink_bytes_s=rate_value(network["rack_uplink"])
        if network.get("rack_uplink")
        else None,
        core_bytes_s=rate_value(network["core"]) if network.get("core") else None,
    )
    hosts = _hosts(data.get("hosts"), rate_value(network["nic"]))
    placement = str(data.get("placement", "spread"))
    if placement not in PLACEMENT_POLICIES:
        raise UserError(f"scenario: placement must be one of {', '.join(PLACEMENT_POLICIES)}")
    cluster = Cluster(hosts, fabric, settings, placement=placement, keep_commands=keep_commands)
    costs_spec = data.get("costs")
    for vm in _vms(data.get("vms"), hosts, rng, settings, qemu, costs_spec, base_dir):
        cluster.add_vm(vm)
    action = _action(data.get("action"), cluster)
    return Scenario(
        name=str(data.get("name", "scenario")),
        seed=seed,
        cluster=cluster,
        action=action,
        source=data,
    )


def _settings(values: dict[str, Any]) -> Settings:
    if not isinstance(values, dict):
        raise UserError("scenario: nova must be a mapping of Nova options (and release)")
    return settings_from_values({k: v for k, v in values.items()})


def _hosts(spec: Any, nic_bytes_s: float) -> list[Host]:
    if isinstance(spec, list):
        hosts = []
        for item in spec:
            hosts.append(
                Host(
                    name=str(item["name"]),
                    rack=str(item.get("rack", "r01")),
                    memory_bytes=size_value(item["memory"]),
                    vcpus=int(item.get("vcpus", 1 << 20)),
                    nic_bytes_s=rate_value(item["nic"]) if "nic" in item else nic_bytes_s,
                )
            )
        if not hosts:
            raise UserError("scenario: hosts is empty")
        return hosts
    if not isinstance(spec, dict):
        raise UserError("scenario: hosts must be a list of hosts or {racks, per_rack, memory}")
    racks, per_rack = int(spec.get("racks", 1)), int(spec["per_rack"])
    if racks < 1 or per_rack < 1:
        raise UserError("scenario: racks and per_rack must be at least 1")
    memory, vcpus = size_value(spec["memory"]), int(spec.get("vcpus", 1 << 20))
    return [
        Host(f"r{r:02d}-h{h:02d}", f"r{r:02d}", memory, vcpus, nic_bytes_s)
        for r in range(1, racks + 1)
        for h in range(1, per_rack + 1)
    ]


def _vms(
    spec: Any,
    hosts: list[Host],
    rng: np.random.Generator,
    settings: Settings,
    qemu: QemuSettings,
    costs_spec: Any,
    base_dir: Path | None,
) -> list[VM]:
    if isinstance(spec, list):
        items = [dict(item) for item in spec]
    elif isinstance(spec, dict):
        per_host = int(spec["per_host"])
        template = {key: value for key, value in spec.items() if key != "per_host"}
        items = [
            {**template, "name": f"{host.name}-vm{i:03d}", "host": host.name}
            for host in hosts
            for i in range(1, per_host + 1)
        ]
    else:
        raise UserError("scenario: vms must be a list of guests or {per_host, workload, vcpus}")
    vms = []
    for item in items:
        values = resolve(item, rng)
        if "workload" not in values:
            raise UserError(f"scenario: guest {values.get('name', '?')} needs a workload")
        try:
            workload = workload_from_dict(values["workload"], base_dir)
        except ValueError as exc:
            raise UserError(f"scenario: guest {values.get('name', '?')}: {exc}") from None
        costs = NovaCosts.draw(costs_spec, rng)
        plan = MigrationPlan(
            instance=str(values["name"]),
            workload=workload,
            settings=settings,
            qemu=qemu,
            costs=costs,
        )
        vms.append(VM(str(values["name"]), str(values["host"]), int(values.get("vcpus", 1)), plan))
    return vms


def _action(spec: Any, cluster: Cluster) -> dict[str, Any]:
    if not isinstance(spec, dict) or len(spec) != 1 or next(iter(spec)) not in ACTIONS:
        raise UserError(f"scenario: action must be one of {', '.join(ACTIONS)}")
    kind, value = next(iter(spec.items()))
    racks = {host.rack for host in cluster.hosts.values()}
    if kind == "drain_host" and value not in cluster.hosts:
        raise UserError(f"scenario: no host {value!r} to drain")
    if kind == "drain_rack" and value not in racks:
        raise UserError(f"scenario: no rack {value!r} to drain")
    if kind == "rolling":
        value = dict(value or {})
        unknown = sorted(
            set(value)
            - {"hosts", "rack", "order", "parallel", "maintenance_s", "prefer_maintained"}
        )
        if unknown:
            raise UserError(f"scenario: unknown rolling field(s) {', '.join(unknown)}")
        if "hosts" in value:
            missing = [name for name in value["hosts"] if name not in cluster.hosts]
            if missing:
                raise UserError(f"scenario: rolling names unknown host(s) {', '.join(missing)}")
        if "rack" in value and value["rack"] not in racks:
            raise UserError(f"scenario: no rack {value['rack']!r} for rolling maintenance")
        if value.get("order", "rack") not in ROLLING_ORDERS:
            raise UserError(f"scenario: rolling.order must be one of {', '.join(ROLLING_ORDERS)}")
        if int(value.get("parallel", 1)) < 1:
            raise UserError("scenario: rolling.parallel must be at least 1")
    return {kind: value}


# ------------------------------------------------------------------------------ running


def run_scenario(
    scenario: Scenario, on_result: Callable[[MigrationResult], None] | None = None
) -> ScenarioResult:
    """Run the scenario's action to its end."""
    cluster = scenario.cluster
    cluster.on_result = on_result
    env = cluster.env
    kind, value = next(iter(scenario.action.items()))
    maintenance: list[dict[str, Any]] = []
    targets = scenario.target_hosts()
    if kind in ("drain_host", "drain_rack"):
        process = env.process(_drain(cluster, targets))
    else:
        process = env.process(
            _rolling(
                cluster,
                targets,
                int(value.get("parallel", 1)),
                float(value.get("maintenance_s", 0.0)),
                maintenance,
                bool(value.get("prefer_maintained", False)),
            )
        )
    env.run(process)
    results = sorted(cluster.results, key=lambda r: (r.requested_s, r.instance))
    ends = [r.ended_s for r in results]
    makespan = max([*ends, *(m["returned_s"] for m in maintenance)], default=0.0)
    if maintenance:  # a host back in service takes guests again: judge it when it was drained
        left = {record["host"]: record["guests_left"] for record in maintenance}
    else:
        left = {name: len(cluster.hosts[name].vms) for name in targets}
    return ScenarioResult(
        name=scenario.name,
        seed=scenario.seed,
        makespan_s=makespan,
        migrations=results,
        hosts_drained=sorted(name for name in targets if not left.get(name)),
        hosts_not_empty=sorted(name for name in targets if left.get(name)),
        maintenance=maintenance,
    )


def _drain(cluster: Cluster, targets: list[str]) -> Generator[simpy.Event, Any, None]:
    for name in targets:  # none of the drained hosts may receive guests from the others
        cluster.set_enabled(cluster.hosts[name], False)
    evacuations = [cluster.env.process(cluster.evacuate(name)) for name in targets]
    yield simpy.AllOf(cluster.env, evacuations)


def _rolling_hosts(cluster: Cluster, spec: dict[str, Any]) -> list[str]:
    if "hosts" in spec:
        return [str(name) for name in spec["hosts"]]
    hosts = sorted(cluster.hosts.values(), key=lambda h: (h.rack, h.name))
    if "rack" in spec:
        hosts = [h for h in hosts if h.rack == spec["rack"]]
    if spec.get("order", "rack") == "interleaved":
        by_rack: dict[str, list[str]] = {}
        for host in hosts:
            by_rack.setdefault(host.rack, []).append(host.name)
        columns = list(by_rack.values())
        depth = max(len(column) for column in columns) if columns else 0
        return [column[i] for i in range(depth) for column in columns if i < len(column)]
    return [h.name for h in hosts]


def _rolling(
    cluster: Cluster,
    targets: list[str],
    parallel: int,
    maintenance_s: float,
    maintenance: list[dict[str, Any]],
    prefer_maintained: bool,
) -> Generator[simpy.Event, Any, None]:
    """Take hosts out `parallel` at a time; with `prefer_maintained`, guests go to hosts
    already done (as an operator steers them with an aggregate), so most move only once."""
    env = cluster.env
    queue = list(reversed(targets))

    def worker() -> Generator[simpy.Event, Any, None]:
        while queue:
            name = queue.pop()
            started = env.now
            yield env.process(cluster.evacuate(name))
            drained = env.now
            guests_left = len(cluster.hosts[name].vms)
            if maintenance_s:
                yield env.timeout(maintenance_s)
            cluster.set_enabled(cluster.hosts[name], True)
            if prefer_maintained:
                cluster.prefer(cluster.hosts[name])
            maintenance.append(
                {
                    "host": name,
                    "drain_started_s": started,
                    "drained_s": drained,
                    "returned_s": env.now,
                    "guests_left": guests_left,
                }
            )

    workers = [env.process(worker()) for _ in range(min(parallel, len(targets)))]
    if workers:
        yield simpy.AllOf(env, workers)
