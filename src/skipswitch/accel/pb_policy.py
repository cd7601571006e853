"""Trace-aware persistent-buffer content: the PB regions that minimise a query trace's latency.

Items are the workload's cells (``Workload.cells``: per tensor, the grid cut by every subnet's
weight box, so each cell lies wholly inside or outside every layer's box). Holding cell c saves
``S[L, c]`` = (uses of layer L in the trace) x (L's weight reload factor) x (c's elements in L)
x DW/8 / (bytes per cycle) transfer cycles on unique layer L. The model's latency is

* single-buffered: sum_L (m C_L + m T_L - sum_c S[L, c] x_c) + fill: linear in x, so the problem
  is a knapsack with value v_c = sum_L S[L, c] and weight n_c (elements);
* double-buffered: sum_L max(m C_L, m T_L - sum_c S[L, c] x_c) + fill: a layer stops gaining once
  its transfer hides behind its compute, so the saving is a sum of capped linear (budget-additive,
  monotone submodular) functions; exact as a MILP with one epigraph variable per layer.

``solve`` is exact (``scipy.optimize.milp``, HiGHS): ``divisible`` regions (x_c in [0, 1], the
model's own reading of a partly filled cell) make it an LP; whole regions (x_c in {0, 1}) a 0/1
knapsack. ``greedy`` (lazy marginal-gain-per-element greedy, the better of it and the best single
region) is for instances too large for the MILP; its guarantee: exact for divisible regions when
single-buffered (Dantzig's fractional knapsack), >= 1/2 of the optimal saving for whole regions
single-buffered, >= (1 - 1/e)/2 double-buffered (Krause & Guestrin 2005, "A note on the budgeted
maximization of submodular functions", CMU-CALD-05-103).

The PB content is static over the trace, so only query frequencies matter to this model, not
their order (the DB holds one tile; nothing else survives a switch).
"""

from __future__ import annotations

import heapq
from dataclasses import dataclass

import numpy as np
from scipy import sparse
from scipy.optimize import Bounds, LinearConstraint, milp

from ..errors import SkipswitchError
from ..regions import Box, box_overlap
from .latency import layer_terms, unique_layers
from .template import AcceleratorDesign
from .workload import PersistentPlan, Workload

POLICY = "trace-optimal"


@dataclass
class PbProblem:
    """The knapsack of one design and trace (cycles; arrays over unique layers L and cells c)."""

    cells: list[tuple[str, Box, int]]
    sizes: np.ndarray  # n_c, elements
    saves: np.ndarray  # S[L, c], cycles saved on layer L with cell c wholly on chip
    compute: np.ndarray  # m C_L
    transfer: np.ndarray  # m T_L with no PB (weights + activations)
    fill: float  # pipeline fill over all layers: no PB changes it
    overlap: bool
    capacity: float  # PB elements

    def latency(self, x) -> float:
        """The model's latency (cycles) with cell fractions ``x`` on chip."""
        left = self.transfer - self.saves @ np.asarray(x, np.float64)
        per_layer = np.maximum(self.compute, left) if self.overlap else self.compute + left
        return float(per_layer.sum() + self.fill)

    def plan(self, x) -> "FixedPlan":
        return FixedPlan(POLICY, [c for c, f in zip(self.cells, x) if f > 1e-12],
                         np.asarray(x, np.float64)[np.asarray(x) > 1e-12])


class FixedPlan(PersistentPlan):
    """A PB content with a fixed fraction of each cell on chip (whatever the capacity it is given:
    it was chosen for one capacity), so partial regions of the LP optimum are held exactly."""

    def __init__(self, policy: str, cells: list[tuple[str, Box, int]], fractions: np.ndarray):
        super().__init__(policy, cells)
        self.fractions = fractions

    @property
    def max_elements(self) -> int:
        return int(sum(f * n for f, (*_, n) in zip(self.fractions, self.cells)))

    def onchip_elements(self, layer, capacity_elements) -> np.ndarray:
        held = sum(f * box_overlap(box, layer.box) for f, (param, box, _) in zip(self.fractions, self.cells)
                   if param == layer.param)
        return np.full(np.shape(capacity_elements), float(held))


def problem(workload: Workload, design: AcceleratorDesign) -> PbProblem:
    """The knapsack for ``design`` and the workload's trace (its query frequencies)."""
    d = design
    cells = [(p, c, n) for p, c, n, count in workload.cells() if count > 0]
    by_param: dict[str, list[int]] = {}
    for i, (p, _, _) in enumerate(cells):
        by_param.setdefault(p, []).append(i)
    counts = unique_layers(workload)
    inv_bpc, k = 1.0 / d.bytes_per_cycle, d.dw / 8
    rows, cols, vals = [], [], []
    compute, transfer, fill = [], [], 0.0
    for row, (layer, mult) in enumerate(counts.items()):
        c, reload, act, f = (float(v) for v in layer_terms(layer, d.kp, d.yp, d.tk, d.tc, d.tx, d.ty, d.dw, d.odw,
                                                           d.batch))
        compute.append(mult * c)
        transfer.append(mult * (act + layer.weight_elements * k * reload) * inv_bpc)
        fill += mult * f * inv_bpc
        for i in by_param.get(layer.param, ()):
            shared = box_overlap(cells[i][1], layer.box)
            if shared:
                rows.append(row)
                cols.append(i)
                vals.append(mult * reload * shared * k * inv_bpc)
    saves = sparse.csr_array((vals, (rows, cols)), shape=(len(counts), len(cells))).toarray()
    return PbProblem(cells, np.array([n for *_, n in cells], np.float64), saves, np.array(compute),
                     np.array(transfer), fill, d.double_buffer, float(d.pb_bytes * 8 // d.dw))


def solve(prob: PbProblem, divisible: bool = True, time_limit: float = 60.0) -> np.ndarray:
    """Exact optimum x (cell fractions) of ``prob`` by MILP (an LP when ``divisible``)."""
    n_c, n_l = prob.sizes.size, prob.compute.size
    if prob.capacity <= 0 or n_c == 0:
        return np.zeros(n_c)
    capacity = LinearConstraint(np.concatenate([prob.sizes, np.zeros(n_l if prob.overlap else 0)])[None, :],
                                -np.inf, prob.capacity)
    if prob.overlap:  # min sum t_L, t_L >= m C_L, t_L + S_L x >= m T_L
        cost = np.concatenate([np.zeros(n_c), np.ones(n_l)])
        epigraph = LinearConstraint(sparse.hstack([sparse.csr_array(prob.saves), sparse.eye_array(n_l)]),
                                    prob.transfer, np.inf)
        constraints = [capacity, epigraph]
        lower = np.concatenate([np.zeros(n_c), prob.compute])
        upper = np.concatenate([np.ones(n_c), np.full(n_l, np.inf)])
        integrality = np.concatenate([np.full(n_c, 0 if divisible else 1), np.zeros(n_l)])
    else:  # max sum v_c x_c
        cost, constraints = -prob.saves.sum(axis=0), [capacity]
        lower, upper = np.zeros(n_c), np.ones(n_c)
        integrality = np.full(n_c, 0 if divisible else 1)
    res = milp(cost, constraints=constraints, integrality=integrality, bounds=Bounds(lower, upper),
               options={"time_limit": time_limit, "mip_rel_gap": 0.0})
    if res.x is None:
        raise SkipswitchError(f"PB solver found no solution: {res.message}")
    x = np.clip(res.x[:n_c], 0.0, 1.0)
    return x if divisible else np.rint(x)


def greedy(prob: PbProblem, divisible: bool = True) -> np.ndarray:
    """Lazy greedy by marginal saved cycles per element, then the better of it and the best single
    region (see the module docstring for its bound)."""
    n_c = prob.sizes.size
    # cycles each layer can still lose before it is compute-bound (no cap when transfers never hide)
    full = np.maximum(prob.transfer - prob.compute, 0.0) if prob.overlap else np.full(prob.compute.size, np.inf)
    slack = full.copy()
    cols = [np.flatnonzero(prob.saves[:, i]) for i in range(n_c)]

    def gain(i: int, slack: np.ndarray) -> float:
        return float(np.minimum(prob.saves[cols[i], i], slack[cols[i]]).sum())

    x, left = np.zeros(n_c), prob.capacity
    heap = [(-gain(i, slack) / prob.sizes[i], i) for i in range(n_c)]
    heapq.heapify(heap)
    while heap and left > 0:
        _, i = heapq.heappop(heap)
        fresh = gain(i, slack) / prob.sizes[i]
        if heap and fresh < -heap[0][0] - 1e-15:  # stale: gains only shrink (submodular), re-queue
            heapq.heappush(heap, (-fresh, i))
            continue
        if fresh <= 0:
            break
        frac = min(1.0, left / prob.sizes[i])
        if frac < 1 and not divisible:
            continue  # does not fit whole; try smaller regions
        x[i] = frac
        slack[cols[i]] -= np.minimum(prob.saves[cols[i], i] * frac, slack[cols[i]])
        left -= frac * prob.sizes[i]
    fits = np.flatnonzero(prob.sizes <= prob.capacity)
    if fits.size:
        best = max(fits, key=lambda i: gain(int(i), full))
        single = np.zeros(n_c)
        single[best] = 1.0
        if prob.latency(single) < prob.latency(x):
            return single
    return x


def trace_optimal_plan(workload: Workload, design: AcceleratorDesign, divisible: bool = True,
                       max_cells: int = 20_000) -> PersistentPlan:
    """The PB content minimising ``design``'s latency on the trace: exact up to ``max_cells`` regions,
    the greedy beyond."""
    prob = problem(workload, design)
    x = solve(prob, divisible) if prob.sizes.size <= max_cells else greedy(prob, divisible)
    return prob.plan(x)


def group_by_subnet(trace) -> list[tuple[int, int]]:
    """Query reordering for a batch that may be served in any order: one group per subnet, (subnet,
    queries), in order of first appearance. Each group runs as one batch, so a layer whose weights
    stay in the DB (one C tile) fetches them once per group instead of once per query. The order of
    the groups does not matter to this model (a static PB, nothing else survives a switch)."""
    counts: dict[int, int] = {}
    for i in trace:
        counts[i] = counts.get(i, 0) + 1
    return list(counts.items())


def grouped_latency(design: AcceleratorDesign, workload: Workload, plan: PersistentPlan | None) -> float:
    """Cycles to serve ``workload``'s trace regrouped by :func:`group_by_subnet`."""
    from .latency import evaluate

    return sum(float(evaluate(design.replace(batch=design.batch * n), workload.with_trace([i]), plan=plan).latency)
               for i, n in group_by_subnet(workload.trace))
