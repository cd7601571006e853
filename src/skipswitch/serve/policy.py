"""Which subnet serves which queued requests next: pluggable policies.

A policy sees the queue (arrival order), the clock and the engine (subnets with accuracy
and per-batch-size latency profiles, the active subnet, the measured switch cost) and
returns one ``Decision``: a subnet and the requests it serves in one batch, plus the
requests it sheds with a reason.

``slackfit`` follows SuperServe's SlackFit: earliest deadline first; among every subnet and
every EDF prefix of the queue (up to the largest batch) it picks the pair that finishes the
most requests by their deadlines, preferring the more accurate subnet on ties. Under load a
large batch on a smaller subnet beats a small batch on a large one, so accuracy degrades
while throughput holds; a request that even the fastest allowed subnet alone cannot finish
in time is shed.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Callable, Protocol, Sequence

import torch

from ..errors import SkipswitchError
from .engine import ServingEngine, Subnet


@dataclass(eq=False)
class Request:
    """One queued request. ``deadline`` is absolute (``time.monotonic()`` seconds) or None."""

    id: int
    x: torch.Tensor
    arrival: float
    deadline: float | None = None
    subnet: Subnet | None = None  # the client named this subnet
    accuracy_floor: float | None = None
    done: Callable[[Any], None] | None = None  # called with a Result or an exception
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def size(self) -> int:
        return int(self.x.shape[0])


@dataclass
class Decision:
    subnet: Subnet | None
    batch: list[Request]
    shed: list[tuple[Request, str]] = field(default_factory=list)


class Policy(Protocol):
    name: str

    def decide(self, queue: Sequence[Request], now: float, engine: ServingEngine) -> Decision:
        """Pick the next batch from a non-empty queue."""


def _take(requests: Sequence[Request], max_batch: int) -> list[Request]:
    """The longest prefix of ``requests`` whose examples fit in ``max_batch`` (at least one)."""
    out, total = [], 0
    for r in requests:
        if out and total + r.size > max_batch:
            break
        out.append(r)
        total += r.size
    return out


def _explicit_batch(queue: Sequence[Request], engine: ServingEngine) -> Decision | None:
    """Requests that named a subnet are served by it, batched with the others naming it."""
    head = min(queue, key=_edf_key)
    if head.subnet is None:
        return None
    same = [r for r in sorted(queue, key=_edf_key) if r.subnet is head.subnet]
    return Decision(head.subnet, _take(same, engine.max_batch))


def _edf_key(r: Request) -> tuple[float, float]:
    return (math.inf if r.deadline is None else r.deadline, r.arrival)


def switch_cost(engine: ServingEngine, subnet: Subnet) -> float:
    """Expected seconds to make ``subnet`` active (0 when it already is)."""
    if engine.active is subnet:
        return 0.0
    return engine.switch_estimate


class FixedPolicy:
    """Serve every request with one subnet (the fixed-largest / fixed-smallest baselines),
    in arrival order, never shedding; requests that name a subnet still get it."""

    def __init__(self, subnet: str):
        self.subnet_name = subnet
        self.name = f"fixed:{subnet}"

    def decide(self, queue: Sequence[Request], now: float, engine: ServingEngine) -> Decision:
        explicit = _explicit_batch(queue, engine)
        if explicit is not None:
            return explicit
        subnet = engine.get(self.subnet_name)
        return Decision(subnet, _take([r for r in queue if r.subnet is None], engine.max_batch))


class SlackFitPolicy:
    name = "slackfit"

    def __init__(self, shed: bool = True):
        self.shed = shed

    def allowed(self, engine: ServingEngine, floor: float | None) -> list[Subnet]:
        """Subnets meeting an accuracy floor, most accurate first."""
        return [s for s in reversed(engine.subnets) if floor is None or s.accuracy >= floor - 1e-12]

    def decide(self, queue: Sequence[Request], now: float, engine: ServingEngine) -> Decision:
        explicit = _explicit_batch(queue, engine)
        if explicit is not None:
            return explicit
        pending = sorted((r for r in queue if r.subnet is None), key=_edf_key)
        shed: list[tuple[Request, str]] = []
        while pending:
            head = pending[0]
            choices = self.allowed(engine, head.accuracy_floor)
            # The quickest way to answer the head alone: staying on the active subnet counts
            # (a temporal switch can cost more than a larger subnet's forward).
            fastest = min(choices, key=lambda s: s.latency_for(head.size) + switch_cost(engine, s))
            need = fastest.latency_for(head.size) + switch_cost(engine, fastest)
            if self.shed and head.deadline is not None and head.deadline - now < need:
                shed.append((head, f"shed: {max(0.0, head.deadline - now) * 1e3:.1f} ms left before the deadline, "
                                   f"the fastest allowed subnet {fastest.name} needs {need * 1e3:.1f} ms"))
                pending.pop(0)
                continue
            break
        if not pending:
            return Decision(None, [], shed)
        group = _take(pending, engine.max_batch)
        # Every (subnet, EDF prefix): how many of the prefix's requests finish by their deadline.
        # Most on time first (throughput under load), then the most accurate subnet, then the
        # larger batch. Requests of the chosen prefix that would finish late stay queued: the
        # next decision serves them in a smaller batch or sheds them.
        best, best_key = None, None
        for n in range(1, len(group) + 1):
            batch = group[:n]
            examples = sum(r.size for r in batch)
            floors = [r.accuracy_floor for r in batch if r.accuracy_floor is not None]
            for subnet in self.allowed(engine, max(floors) if floors else None):
                finish = now + switch_cost(engine, subnet) + subnet.latency_for(examples)
                on_time = [r for r in batch if r.deadline is None or r.deadline >= finish]
                key = (len(on_time), subnet.accuracy, n)
                if on_time and (best_key is None or key > best_key):
                    best, best_key = Decision(subnet, on_time, shed), key
        if best is not None:
            return best
        # Nothing finishes in time (shedding off, or a deadline too tight for every batch):
        # clear the queue as fast as possible with the fastest subnet the batch allows.
        floors = [r.accuracy_floor for r in group if r.accuracy_floor is not None]
        choices = self.allowed(engine, max(floors) if floors else None)
        return Decision(min(choices, key=lambda s: s.latency_for(engine.max_batch)), group, shed)


_POLICIES: dict[str, Callable[[ServingEngine], Policy]] = {
    "slackfit": lambda engine: SlackFitPolicy(),
    "slackfit-noshed": lambda engine: SlackFitPolicy(shed=False),
    "fixed-largest": lambda engine: FixedPolicy(engine.largest.name),
    "fixed-smallest": lambda engine: FixedPolicy(engine.smallest.name),
}


def register_policy(name: str, factory: Callable[[ServingEngine], Policy]) -> None:
    _POLICIES[name] = factory


def list_policies() -> list[str]:
    return sorted(_POLICIES)


def make_policy(name: str, engine: ServingEngine) -> Policy:
    """A registered policy by name, or ``fixed:<subnet>`` for any subnet of the engine."""
    if name.startswith("fixed:"):
        engine.get(name.split(":", 1)[1])
        return FixedPolicy(name.split(":", 1)[1])
    if name not in _POLICIES:
        raise SkipswitchError(f"unknown policy {name!r}; choose {', '.join(list_policies())} or fixed:<subnet>")
    return _POLICIES[name](engine)
