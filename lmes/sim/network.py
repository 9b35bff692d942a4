"""Flows sharing links max-min fairly, as a fluid: the network half of the simulator.

A migration's memory stream is one flow over a path of links (source NIC out, rack uplink,
destination NIC in, ...), optionally capped (QEMU's `max-bandwidth`, Nova's
`live_migration_bandwidth`). Whenever a flow opens, closes or changes its cap, rates are
recomputed by progressive filling and each flow whose rate changed has its completion moved.

Only links that can bind are looked at: a link whose flows could all run at their own upper
bound without filling it never constrains anyone, so a change touches only the flows joined to
it through *tight* links (a rack uplink carrying four 25 Gbit/s flows out of 400 Gbit/s is
loose). That keeps a cluster of thousands of concurrent migrations cheap, while a truly shared
bottleneck (one link, an oversubscribed fabric) is still shared exactly.
"""

from __future__ import annotations

import heapq
import math
from collections.abc import Iterable
from typing import Any

import simpy

# Relative tolerance for comparing rates and capacities in the fluid model.
_EPSILON = 1e-12


class Link:
    """One direction of one piece of the network, with a capacity in bytes/s."""

    __slots__ = ("name", "capacity_bytes_s", "flows", "demand_bytes_s")

    def __init__(self, name: str, capacity_bytes_s: float) -> None:
        if not capacity_bytes_s > 0:
            raise ValueError(f"link {name} needs a positive capacity")
        self.name = name
        self.capacity_bytes_s = float(capacity_bytes_s)
        self.flows: dict[int, Flow] = {}
        self.demand_bytes_s = 0.0  # what its flows could send at their own upper bounds

    def is_tight(self) -> bool:
        """Whether the flows on it could ask for more than it carries."""
        return self.demand_bytes_s > self.capacity_bytes_s * (1 + 1e-9)


class Flow:
    """A stream of bytes over a path; sends one batch of bytes at a time."""

    __slots__ = (
        "network",
        "number",
        "path",
        "cap_bytes_s",
        "upper_bound",
        "rate_bytes_s",
        "remaining_bytes",
        "since_s",
        "done",
        "sent_bytes",
    )

    def __init__(
        self, network: Network, number: int, path: tuple[Link, ...], cap: float | None
    ) -> None:
        self.network = network
        self.number = number
        self.path = path
        self.cap_bytes_s = cap
        self.upper_bound = _upper_bound(path, cap)
        self.rate_bytes_s = 0.0
        self.remaining_bytes = 0.0
        self.since_s = network.env.now
        self.done: simpy.Event | None = None
        self.sent_bytes = 0.0

    # --------------------------------------------------------------- sending

    def send(self, nbytes: float) -> simpy.Event:
        """An event that fires once `nbytes` have crossed the path at the shared rate.

        The event is replaced (its waiters moved to the new one) whenever the flow's rate
        changes, so a batch costs one event however the network changes around it.
        """
        self._settle(self.network.env.now)
        self.remaining_bytes = max(0.0, float(nbytes))
        self.done = None
        self._schedule()
        assert self.done is not None
        return self.done

    def interrupt_send(self) -> float:
        """End the current batch now (its waiters wake at once); returns the bytes left unsent."""
        self._settle(self.network.env.now)
        left = self.remaining_bytes
        self.remaining_bytes = 0.0
        old, self.done = self.done, None
        if old is not None:
            wake = self.network.env.timeout(0.0)
            wake.callbacks.extend(c for c in old.callbacks if c != self._finish)
            old.callbacks.clear()
        return left

    def set_cap(self, cap: float | None) -> None:
        """Change the flow's own cap (None: only the links limit it)."""
        if cap == self.cap_bytes_s:
            return
        self.cap_bytes_s = cap
        old_bound, self.upper_bound = self.upper_bound, _upper_bound(self.path, cap)
        for link in self.path:
            link.demand_bytes_s += self.upper_bound - old_bound
        self.network._reshare([self])

    def close(self) -> None:
        self.network._close(self)

    # --------------------------------------------------------------- internals

    def _settle(self, now: float) -> None:
        if self.remaining_bytes > 0.0 and now > self.since_s:
            moved = min(self.remaining_bytes, self.rate_bytes_s * (now - self.since_s))
            self.remaining_bytes -= moved
            self.sent_bytes += moved
        self.since_s = now

    def _schedule(self) -> None:
        """Place the event that fires when the current batch is through, moving any waiters."""
        env = self.network.env
        if self.remaining_bytes <= 0.0:
            event = env.timeout(0.0)
        elif self.rate_bytes_s <= 0.0:
            event = env.event()  # waits for a share
        else:
            event = env.timeout(self.remaining_bytes / self.rate_bytes_s)
        event.callbacks.append(self._finish)
        old = self.done
        if old is not None:
            event.callbacks.extend(c for c in old.callbacks if c != self._finish)
            old.callbacks.clear()
        self.done = event

    def _finish(self, event: simpy.Event) -> None:
        if event is not self.done:
            return
        self.sent_bytes += self.remaining_bytes
        self.remaining_bytes = 0.0
        self.since_s = self.network.env.now
        self.done = None


class Network:
    """Links and the flows crossing them, shared max-min fairly on a SimPy clock."""

    def __init__(self, env: simpy.Environment) -> None:
        self.env = env
        self.links: dict[str, Link] = {}
        self._numbers = 0
        self.open_flows = 0

    def add_link(self, name: str, capacity_bytes_s: float) -> Link:
        link = Link(name, capacity_bytes_s)
        self.links[name] = link
        return link

    def open(self, path: Iterable[str], cap_bytes_s: float | None = None) -> Flow:
        """A new flow over the named links, sharing them from now on."""
        try:
            links = tuple(self.links[name] for name in path)
        except KeyError as exc:
            raise ValueError(f"no link {exc.args[0]!r} in the network") from None
        if not links:
            raise ValueError("a flow needs at least one link")
        self._numbers += 1
        flow = Flow(self, self._numbers, links, cap_bytes_s)
        for link in links:
            link.flows[flow.number] = flow
            link.demand_bytes_s += flow.upper_bound
        self.open_flows += 1
        self._reshare([flow])
        return flow

    def _close(self, flow: Flow) -> None:
        flow.interrupt_send()
        neighbours: list[Flow] = []
        for link in flow.path:
            if link.flows.pop(flow.number, None) is not None:
                link.demand_bytes_s = link.demand_bytes_s - flow.upper_bound if link.flows else 0.0
            neighbours.extend(link.flows.values())
        self.open_flows -= 1
        self._reshare(neighbours)

    def _reshare(self, seeds: list[Flow]) -> None:
        """Recompute the rates of every flow joined to `seeds` through tight links."""
        component = _component(seeds)
        if not component:
            return
        rates = _max_min_rates(component)
        now = self.env.now
        for flow in component:
            new_rate = rates[flow.number]
            old_rate = flow.rate_bytes_s
            if abs(new_rate - old_rate) <= _EPSILON * max(new_rate, old_rate):
                continue
            flow._settle(now)
            flow.rate_bytes_s = new_rate
            if flow.done is not None:
                flow._schedule()


def _upper_bound(path: tuple[Link, ...], cap: float | None) -> float:
    bound = min(link.capacity_bytes_s for link in path)
    return bound if cap is None or cap <= 0 else min(bound, cap)


def _component(seeds: list[Flow]) -> list[Flow]:
    seen: dict[int, Flow] = {}
    visited_links: set[str] = set()
    stack = [flow for flow in seeds if flow.path[0].flows.get(flow.number) is flow]
    while stack:
        flow = stack.pop()
        if flow.number in seen:
            continue
        seen[flow.number] = flow
        for link in flow.path:
            if link.name in visited_links:
                continue
            visited_links.add(link.name)
            if link.is_tight():
                stack.extend(other for other in link.flows.values() if other.number not in seen)
    return sorted(seen.values(), key=lambda flow: flow.number)


def _max_min_rates(flows: list[Flow]) -> dict[int, float]:
    """Progressive filling over the tight links of `flows` (each flow also has its own bound).

    The lowest fair share among the links, or the lowest flow bound, is the next level frozen;
    as flows freeze below a link's share, its share only grows, so a heap with lazy updates
    finds the next level.
    """
    rates: dict[int, float] = {}
    state: dict[str, list[Any]] = {}  # link -> [residual capacity, unfrozen flows, link]
    for flow in flows:
        for link in flow.path:
            if link.name not in state and link.is_tight():
                state[link.name] = [link.capacity_bytes_s, len(link.flows), link]
    heap = [(entry[0] / entry[1], name) for name, entry in state.items()]
    heapq.heapify(heap)
    by_bound = sorted(flows, key=lambda flow: (flow.upper_bound, flow.number))
    next_bound = 0

    def freeze(flow: Flow, rate: float) -> None:
        rates[flow.number] = rate
        for link in flow.path:
            entry = state.get(link.name)
            if entry is not None:
                entry[0] -= rate
                entry[1] -= 1

    while len(rates) < len(flows):
        while next_bound < len(by_bound) and by_bound[next_bound].number in rates:
            next_bound += 1
        while heap:
            share, name = heap[0]
            residual, count, _ = state[name]
            if count <= 0:
                heapq.heappop(heap)
                continue
            current = max(residual, 0.0) / count
            if current > share * (1 + _EPSILON):
                heapq.heapreplace(heap, (current, name))
                continue
            break
        link_level = heap[0][0] if heap else math.inf
        bound_flow = by_bound[next_bound] if next_bound < len(by_bound) else None
        if bound_flow is not None and bound_flow.upper_bound <= link_level * (1 + _EPSILON):
            freeze(bound_flow, bound_flow.upper_bound)
            continue
        _, name = heapq.heappop(heap)
        link = state[name][2]
        for flow in sorted(link.flows.values(), key=lambda flow: flow.number):
            if flow.number not in rates:
                freeze(flow, max(link_level, 0.0))
    return rates
