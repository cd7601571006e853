"""Design-space exploration of the FastSwitch template (paper Sec. 3.3): brute-force grids.

Every grid axis is its own numpy axis, so each term of the model is computed on the smallest
sub-grid it depends on and broadcast: the full grid is touched only by the per-layer
max(compute, transfer) and the sums. The paper's two phases (DPE array first, then buffers)
and a joint search over all parameters share that evaluator.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np

from ..errors import SkipswitchError
from .latency import fast_latency
from ..fpga.parts import Part as FpgaPart
from .presets import Conditions
from .template import BUFFERS, AcceleratorDesign, bus_bits, fits, resources
from .workload import Workload, pb_plan

AXES = ("kp", "yp", "tk", "tc", "tx", "ty", "pb_bytes")
URAM_AS_BRAM18 = 16  # 288 Kb / 18 Kb: on-chip memory in BRAM18 equivalents


def default_grid(workload: Workload, dw: int = 8) -> dict[str, tuple[int, ...]]:
    """Powers of two (and the 7/14/28/56 of ResNet maps) for the array and tiles; PB sizes as
    fractions of the sequence's distinct weights (0 = temporal baseline)."""
    union_bytes = workload.union_elements() * dw // 8
    fractions = (0.0, 0.05, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 1.0)
    return {
        "kp": (1, 2, 4, 8, 16, 32, 64),
        "yp": (1, 2, 4, 7, 8, 14, 16, 28),
        "tk": (16, 32, 64, 128, 256, 512),
        "tc": (16, 32, 64, 128, 256, 512, 1024),
        "tx": (9, 16, 30, 58),
        "ty": (9, 16, 30, 58),
        "pb_bytes": tuple(sorted({int(f * union_bytes) for f in fractions})),
    }


@dataclass
class DseResult:
    part: str
    grid: dict[str, tuple[int, ...]]
    params: dict[str, np.ndarray]  # flattened per design point
    latency: np.ndarray  # cycles over the sequence; inf where infeasible
    feasible: np.ndarray
    bram18_eq: np.ndarray
    dominant: np.ndarray  # index into BUFFERS of the buffer using most on-chip memory
    seconds: float
    clock_mhz: float
    meta: dict = field(default_factory=dict)

    @property
    def points(self) -> int:
        return int(self.latency.size)

    @property
    def points_per_second(self) -> float:
        return self.points / self.seconds

    def design(self, index: int) -> dict:
        return {k: int(v[index]) for k, v in self.params.items()}

    @property
    def best_index(self) -> int:
        if not self.feasible.any():
            raise SkipswitchError(f"no design in the grid fits {self.part}")
        return int(np.argmin(self.latency))

    def best(self) -> dict:
        i = self.best_index
        return {**self.design(i), "latency_ms": float(self.latency[i]) / (self.clock_mhz * 1e3),
                "bram18_eq": int(self.bram18_eq[i]), "dominant_buffer": BUFFERS[int(self.dominant[i])]}

    def pareto(self) -> np.ndarray:
        """Indices of feasible designs no other design beats in both latency and on-chip memory."""
        idx = np.flatnonzero(self.feasible)
        order = idx[np.lexsort((self.latency[idx], self.bram18_eq[idx]))]
        keep, best = [], np.inf
        for i in order:
            if self.latency[i] < best:
                keep.append(i)
                best = self.latency[i]
        return np.asarray(keep, dtype=np.int64)


def _axes(grid: dict[str, tuple[int, ...]]) -> dict[str, np.ndarray]:
    missing = [a for a in AXES if a not in grid]
    if missing:
        raise SkipswitchError(f"DSE grid lacks axes {missing}; needs {', '.join(AXES)}")
    out = {}
    for n, name in enumerate(AXES):
        values = np.asarray(grid[name], dtype=np.int64)
        if values.ndim != 1 or values.size == 0 or (values < (0 if name == "pb_bytes" else 1)).any():
            raise SkipswitchError(f"invalid DSE axis {name}={list(grid[name])}: needs positive integers")
        shape = [1] * len(AXES)
        shape[n] = values.size
        out[name] = values.reshape(shape)
    return out


def explore(workload: Workload, part: FpgaPart, grid: dict | None = None, policy: str = "most-used",
            conditions: Conditions | None = None) -> DseResult:
    """Evaluate every grid point: resources, feasibility on ``part``, sequence latency, under
    ``conditions`` (default: ``Conditions()``, DW 8 double-buffered one MAC per DSP)."""
    cond = conditions or Conditions()
    part = cond.on(part)
    dw, odw, double_buffer, batch = cond.dw, cond.odw, cond.double_buffer, cond.batch
    grid = dict(grid or default_grid(workload, dw))
    axes = _axes(grid)
    plan = pb_plan(workload, policy)
    start = time.perf_counter()
    kp, yp, tk, tc, tx, ty, pb = (axes[a] for a in AXES)
    res = resources(kp, yp, tk, tc, tx, ty, dw, odw, pb, bus_bits(part.bandwidth_gbps, part.clock_mhz),
                    workload.stride_max, part, double_buffer, cond.dsp_packing, cond.lut_macs)
    shape = np.broadcast_shapes(*(a.shape for a in axes.values()))
    ok = np.broadcast_to(fits(res, part), shape)
    # Array sizes with no fitting design at all (e.g. too many DSPs) need no latency.
    active = ok.any(axis=tuple(range(2, ok.ndim)))
    latency = fast_latency(workload, plan, kp, yp, tk, tc, tx, ty, pb * 8 // dw, dw, odw, part.bytes_per_cycle,
                           active=active, batch=batch, overlap=double_buffer)
    latency = np.where(ok, latency, np.inf).ravel()
    per_buffer = [np.broadcast_to(res["bram"][b] + (URAM_AS_BRAM18 * res["uram"] if b == "PB" else 0), shape)
                  for b in BUFFERS]
    stacked = np.stack(per_buffer)
    bram_eq = stacked.sum(axis=0).ravel()
    dominant = stacked.argmax(axis=0).ravel()
    seconds = time.perf_counter() - start
    params = {a: np.broadcast_to(axes[a], shape).ravel() for a in AXES}
    return DseResult(part.name, grid, params, latency, ok.ravel(), bram_eq, dominant, seconds, part.clock_mhz,
                     meta={"policy": policy, "conditions": cond.model_dump(exclude={"reasons"})})


def two_phase(workload: Workload, part: FpgaPart, grid: dict | None = None, policy: str = "most-used",
              conditions: Conditions | None = None) -> tuple[DseResult, DseResult]:
    """The paper's two phases: (1) the DPE array (K_p, Y_p) with tiles at their grid medians and no
    PB; (2) tiles and PB size with that array fixed."""
    grid = dict(grid or default_grid(workload, (conditions or Conditions()).dw))
    median = {a: (sorted(grid[a])[len(grid[a]) // 2],) for a in ("tk", "tc", "tx", "ty")}
    phase1 = explore(workload, part, {**grid, **median, "pb_bytes": (0,)}, policy, conditions)
    array = phase1.best()
    phase2 = explore(workload, part, {**grid, "kp": (array["kp"],), "yp": (array["yp"],)}, policy, conditions)
    return phase1, phase2


def to_design(point: dict, part: FpgaPart, conditions: Conditions | None = None, stride_max: int = 2) -> AcceleratorDesign:
    cond = conditions or Conditions()
    return AcceleratorDesign.for_part(cond.on(part), **{a: int(point[a]) for a in AXES}, **cond.design_fields(),
                                      stride_max=stride_max)
