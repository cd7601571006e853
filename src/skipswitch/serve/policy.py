"""Which subnet serves which queued requests next: pluggable policies.

A policy sees the queue (arrival order), the clock and the engine (subnets with accuracy
and per-batch-size latency profiles, the active subnet, the measured switch cost) and
returns one ``Decision``: a subnet and the requests it serves in one batch, plus the
requests it sheds with a reason.

The SlackFit policies are our reading of SuperServe's SlackFit (Khare et al., NSDI'25, arXiv 2312.16733).
Only the paper's abstract and the opening of its introduction were reachable to us (arXiv HTML
v1, the NSDI'25 programme page); they name SlackFit "a fine-grained, reactive scheduling
policy" made possible by near-instant subnet actuation, and no public code of SuperServe or
SubNetAct exists that we could find. The rule here is therefore ours, from that description:
a latency-profile table over (subnet, batch size) is split into buckets of equal latency width;
the slack of the most urgent queued request (earliest deadline) picks the highest-latency bucket
that still fits it, and within that bucket the choice that serves the most queued requests,
then the most accurate subnet. A request that no choice fits is shed.

Two registered names, so that the additions can be measured against the plain reading:

- ``slackfit-plain`` is that bucket rule alone (``SlackFitPolicy(lookahead=False)``): the plain
  reading of SuperServe's description.
- ``slackfit`` (the default) is ours: the bucket rule plus our own filters in front of it. Only
  subnets whose full batches keep up with the arrival rate (over a 0.1 s window and a 25 ms burst
  window) at <= 50 % utilisation are considered, and only choices after which the rest of the
  queue, drained at the best per-example rate, misses the fewest deadlines; so a backlog moves the
  choice to small subnets at large batches and overload serves as fixed-smallest does.
  ``slackfit-noshed`` is the same without shedding.

``max-on-time`` is this project's earlier rule, kept for comparison: over every subnet and every
EDF prefix of the queue it picks the pair that finishes the most requests by their deadlines,
then the most accurate subnet.
"""

from __future__ import annotations

import collections
import functools
import math
from dataclasses import dataclass, field
from typing import Any, Callable, Protocol, Sequence

import numpy as np
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

    @functools.cached_property
    def size(self) -> int:  # read many times per scheduling decision
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



def _edf_after_shedding(queue: Sequence[Request], now: float, engine: ServingEngine,
                        shed: bool) -> tuple[list[Request], list[tuple[Request, str]]]:
    """The unnamed requests in EDF order, without the heads that even the fastest allowed
    subnet cannot answer alone before their deadline (returned as shed, with a reason)."""
    pending = sorted((r for r in queue if r.subnet is None), key=_edf_key)
    dropped: list[tuple[Request, str]] = []
    while shed and pending and pending[0].deadline is not None:
        head = pending[0]
        # Staying on the active subnet counts (a temporal switch can cost more than a forward).
        cost = lambda s: s.latency_for(head.size) + switch_cost(engine, s)  # noqa: E731
        fastest = min(allowed(engine, head.accuracy_floor), key=cost)
        need = cost(fastest)
        if head.deadline - now >= need:
            break
        dropped.append((head, f"shed: {max(0.0, head.deadline - now) * 1e3:.1f} ms left before the deadline, "
                              f"the fastest allowed subnet {fastest.name} needs {need * 1e3:.1f} ms"))
        pending.pop(0)
    return pending, dropped

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


class DeadlinePolicy:
    """Shared by the deadline-driven policies: named requests first, then the unnamed ones in
    EDF order after shedding hopeless heads; ``choose_batch`` picks the batch from what is left."""

    name = ""

    def __init__(self, shed: bool = True):
        self.shed = shed

    def decide(self, queue: Sequence[Request], now: float, engine: ServingEngine) -> Decision:
        explicit = _explicit_batch(queue, engine)
        if explicit is not None:
            return explicit
        pending, shed = _edf_after_shedding(queue, now, engine, self.shed)
        if not pending:
            return Decision(None, [], shed)
        return self.choose_batch(pending, shed, now, engine)

    def choose_batch(self, pending: list[Request], shed: list[tuple[Request, str]], now: float,
                     engine: ServingEngine) -> Decision:
        raise NotImplementedError


class MaxOnTimePolicy(DeadlinePolicy):
    name = "max-on-time"

    def choose_batch(self, pending: list[Request], shed: list[tuple[Request, str]], now: float,
                     engine: ServingEngine) -> Decision:
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
            for subnet in allowed(engine, max(floors) if floors else None):
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
        choices = allowed(engine, max(floors) if floors else None)
        return Decision(min(choices, key=lambda s: s.latency_for(engine.max_batch)), group, shed)


def allowed(engine: ServingEngine, floor: float | None) -> list[Subnet]:
    """Subnets meeting an accuracy floor, most accurate first."""
    return [s for s in reversed(engine.subnets) if floor is None or s.accuracy >= floor - 1e-12]


@dataclass(frozen=True)
class Choice:
    """One row of SlackFit's latency-profile table."""

    subnet: Subnet
    batch: int  # examples it serves (the profiled size, capped at what is queued)
    latency: float  # seconds: profiled forward + the switch to ``subnet`` if it is not active


def profile_table(engine: ServingEngine, subnets: Sequence[Subnet], queued: int, least: int = 1) -> list[Choice]:
    """(subnet, batch) choices over the profiled batch sizes, each capped at the ``queued``
    examples (a batch larger than the queue serves no more and costs more) and at least
    ``least`` (the head request's examples)."""
    rows = set()
    for s in subnets:
        for b in sorted(s.latency) or [1]:
            rows.add((s.name, max(least, min(b, queued, engine.max_batch))))
    by_name = {s.name: s for s in subnets}
    return [Choice(by_name[n], b, by_name[n].latency_for(b) + switch_cost(engine, by_name[n])) for n, b in sorted(rows)]


class _Window:
    """Examples that arrived over the last ``seconds``."""

    def __init__(self, seconds: float):
        self.seconds, self.count = seconds, 0
        self.arrivals: collections.deque[tuple[float, int]] = collections.deque()  # (arrival, examples)

    def add(self, arrival: float, examples: int) -> None:
        self.arrivals.append((arrival, examples))
        self.count += examples

    def trim(self, now: float) -> None:
        while self.arrivals and self.arrivals[0][0] < now - self.seconds:
            self.count -= self.arrivals.popleft()[1]


class SlackFitPolicy(DeadlinePolicy):
    """SlackFit: bucketed latency profile, slack of the most urgent request, queue kept feasible.

    ``buckets`` equal-width latency buckets span ``(0, slowest choice]``. The chosen bucket is the
    one holding the slowest choice that fits the head's slack (the bucket closest to the slack);
    within it, the most examples served (throughput), then the highest accuracy, then the
    lower latency. Nothing fits: the head is shed (or, with ``shed=False``, served by the fastest
    choice).

    ``lookahead`` (on by default; our addition, see the module docstring): before the bucket
    rule, keep only the subnets that keep up with the arrival rate at <= ``max_utilisation``
    (the rate over ``rate_window`` or ``burst_window``, whichever is higher), then only the
    choices after which the rest of the queue, drained at the best
    per-example rate the profile offers, misses the fewest deadlines. A backlog thus moves the
    pick to smaller subnets at larger batches (on a CPU, where a batch costs about linearly in
    its size, the head's slack alone would spend the backlog's time on one accurate batch), and
    under overload SlackFit serves as fixed-smallest does, shedding what no choice can save."""

    name = "slackfit"

    def __init__(self, shed: bool = True, buckets: int = 10, lookahead: bool = True, rate_window: float = 0.1,
                 max_utilisation: float = 0.5, burst_window: float | None = 0.025):
        if buckets < 1:
            raise SkipswitchError(f"SlackFit needs at least one latency bucket, got {buckets}")
        super().__init__(shed)
        self.buckets = buckets
        self.lookahead = lookahead
        self.rate_window = rate_window
        self.burst_window = burst_window
        self.max_utilisation = max_utilisation
        self._now = 0.0
        self._windows = [_Window(rate_window)] + ([_Window(burst_window)] if burst_window else [])
        self._newest = -1  # the largest request id seen (the scheduler numbers requests in arrival order)
        self._first: float | None = None  # the first arrival seen: until a window has passed, a shorter one

    def decide(self, queue: Sequence[Request], now: float, engine: ServingEngine) -> Decision:
        if not self.lookahead:  # plain SlackFit reads no arrival rate: no windows to keep
            return super().decide(queue, now, engine)
        new = []
        for r in reversed(queue):  # arrival order: the new requests are at the end
            if r.id <= self._newest:
                break
            new.append(r)
        for r in reversed(new):  # oldest first, so that a window trims from its left
            for w in self._windows:
                w.add(r.arrival, r.size)
            self._first = r.arrival if self._first is None else min(self._first, r.arrival)
        self._newest = max(self._newest, queue[-1].id)
        for w in self._windows:
            w.trim(now)
        self._now = now
        return super().decide(queue, now, engine)

    def arrival_rate(self) -> float:
        """Examples per second that arrived over the last ``rate_window`` seconds, or over the last
        ``burst_window`` if that is higher: the onset of a burst shows there a few times sooner, and
        the policy moves to the subnets that keep up before the burst has queued (a lull still
        lowers the rate only as the long window empties). Over the time since the first arrival
        while that is shorter, at least 10 ms: a cold start must not read as an idle server."""
        if self._first is None:
            return 0.0
        return max(w.count / min(w.seconds, max(self._now - self._first, 0.01)) for w in self._windows)

    def choose(self, table: Sequence[Choice], slack: float, among: Sequence[Choice] | None = None) -> Choice | None:
        """The SlackFit pick for ``slack`` seconds from ``among`` (default: all of ``table``;
        buckets always span the whole table), or None when nothing fits."""
        fits = [c for c in (table if among is None else among) if c.latency <= slack]
        if not fits:
            return None
        width = max(c.latency for c in table) / self.buckets or 1.0
        bucket = lambda c: math.ceil(c.latency / width - 1e-9)  # noqa: E731 - bucket k holds ((k-1)w, kw]
        top = max(bucket(c) for c in fits)
        return max((c for c in fits if bucket(c) == top), key=lambda c: (c.batch, c.subnet.accuracy, -c.latency))

    def choose_batch(self, pending: list[Request], shed: list[tuple[Request, str]], now: float,
                     engine: ServingEngine) -> Decision:
        head = pending[0]
        queued = sum(r.size for r in _take(pending, engine.max_batch))
        subnets = allowed(engine, head.accuracy_floor)
        rate = self.arrival_rate()  # 0 for plain SlackFit, which keeps no windows
        if self.lookahead:
            # Only subnets whose full batches keep up with the arrival rate at utilisation <=
            # ``max_utilisation`` (else the fastest): a slower one grows the backlog by every batch
            # it serves, whatever the head's slack, and near full utilisation the queueing delay
            # (and a shared CPU's noise around the profile) eats the deadlines.
            capacity = lambda s: engine.max_batch / max(s.latency_for(engine.max_batch), 1e-9)  # noqa: E731
            subnets = ([s for s in subnets if capacity(s) * self.max_utilisation >= rate]
                       or [max(subnets, key=capacity)])
        table = profile_table(engine, subnets, queued, head.size)
        slack = math.inf if head.deadline is None else head.deadline - now
        among = self.least_misses(table, pending, now, engine, rate) if self.lookahead and len(pending) > 1 else None
        # Nothing fits only without shedding (a head that the fastest row cannot finish was
        # shed) or when the lookahead finds that serving the head costs more deadlines than it saves.
        pick = self.choose(table, slack, among)
        if pick is None and among:
            # Under overload: the highest-throughput choice among those that serve the queue best;
            # the requests it cannot finish in time are shed (or, without shedding, served late).
            pick = max(among, key=lambda c: (c.batch / max(c.latency, 1e-9), c.subnet.accuracy))
            finish = now + pick.latency
            late = [r for r in pending if r.deadline is not None and r.deadline < finish]
            if self.shed and len(late) < len(pending):
                shed = shed + [(r, f"shed: {max(0.0, r.deadline - now) * 1e3:.1f} ms left before the deadline; "
                                   f"the batch that serves the queue best ({pick.subnet.name} x {pick.batch}) "
                                   f"needs {pick.latency * 1e3:.1f} ms") for r in late]
                pending = pending[len(late):]
        pick = pick or min(table, key=lambda c: c.latency)
        # EDF order: every request after the head has at least its slack. Requests whose
        # floor the pick undercuts stay queued.
        eligible = [r for r in pending if r.accuracy_floor is None or pick.subnet.accuracy >= r.accuracy_floor - 1e-12]
        return Decision(pick.subnet, _take(eligible, pick.batch), shed)

    @staticmethod
    def least_misses(table: Sequence[Choice], pending: Sequence[Request], now: float,
                     engine: ServingEngine, rate: float = 0.0) -> list[Choice]:
        """The choices after which the fewest queued requests (EDF order) miss their deadlines.
        A choice finishing at ``t`` misses the requests due before ``t`` (they are skipped),
        serves the next ones up to its batch, and the rest of the queue then drains at the
        lowest per-example latency of the profile (a fluid estimate: optimistic, and the same
        for every choice, so a choice that serves fewer examples in more time never looks
        better), slowed by the share of that rate that new arrivals (``rate`` examples/s) take.
        Looks at the first ``4 * max_batch`` requests: one decision cannot move the later ones much."""
        pending = pending[: 4 * engine.max_batch]
        deadlines = np.array([math.inf if r.deadline is None else r.deadline for r in pending])
        examples = np.concatenate([[0], np.cumsum([r.size for r in pending])])  # examples before request k
        per_example = min((t / b for s in engine.subnets for b, t in s.latency.items()), default=0.0)
        busy = rate * per_example  # the fraction of the best rate that arrivals take
        per_example = per_example / (1 - busy) if busy < 1 else math.inf
        finish = now + np.array([c.latency for c in table])
        skipped = np.searchsorted(deadlines, finish, side="left")  # due before the batch ends (EDF: a prefix)
        end = np.searchsorted(examples, examples[skipped] + np.array([c.batch for c in table]), side="right") - 1
        end = np.minimum(np.maximum(end, skipped + 1), len(pending))  # requests [skipped, end) are the batch
        after = np.arange(len(pending))[None, :] >= end[:, None]
        behind = examples[None, 1:] - examples[end][:, None]
        with np.errstate(invalid="ignore"):  # 0 * inf: a request of the batch itself
            done = finish[:, None] + np.where(after, behind * per_example, 0.0)
        misses = skipped + (after & (deadlines[None, :] < done)).sum(axis=1)
        return [c for c, m in zip(table, misses) if m == misses.min()]


def _slackfit_plain(engine: ServingEngine) -> SlackFitPolicy:
    # ``decide`` still fills the arrival windows and ``choose_batch`` still computes the rate; only
    # the lookahead reads it, so the burst window has no effect here.
    policy = SlackFitPolicy(lookahead=False)
    policy.name = "slackfit-plain"
    return policy


_POLICIES: dict[str, Callable[[ServingEngine], Policy]] = {
    "slackfit": lambda engine: SlackFitPolicy(),
    "slackfit-plain": _slackfit_plain,
    "slackfit-noshed": lambda engine: SlackFitPolicy(shed=False),
    "max-on-time": lambda engine: MaxOnTimePolicy(),
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
