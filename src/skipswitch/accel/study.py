"""Per-part switching study: the DSE's best design, its no-PB baseline, the PB policies
(smallest, most-used, trace-optimal) and spatial switching (the upper bound), under one set of conditions."""

from __future__ import annotations

from .dse import default_grid, explore, to_design
from .latency import evaluate, switching_report
from .pb_policy import POLICY as TRACE_OPTIMAL, trace_optimal_plan
from ..fpga.parts import Part as FpgaPart
from .presets import Conditions
from .template import AcceleratorDesign, design_resources, fits
from .workload import Workload

POLICIES = ("smallest", "most-used", TRACE_OPTIMAL)


def best_design(workload: Workload, part: FpgaPart, policy: str = "most-used", grid: dict | None = None,
                conditions: Conditions | None = None) -> AcceleratorDesign:
    result = explore(workload, part, grid, policy=policy, conditions=conditions)
    return to_design(result.best(), part, conditions, stride_max=workload.stride_max)


def part_report(design: AcceleratorDesign, workload: Workload, part: FpgaPart,
                conditions: Conditions | None = None) -> dict:
    """Switching modes on ``design`` (gains against the same design without PB; ``spatial``, every
    weight of the sequence on chip, is the upper bound of any PB policy) plus the best design with
    no PB at all (a stronger baseline: it may spend the PB's memory on tiles)."""
    part = (conditions or Conditions()).on(part)
    report = switching_report(design, workload)
    report[TRACE_OPTIMAL] = evaluate(design, workload, plan=trace_optimal_plan(workload, design)).to_dict() \
        if design.pb_bytes else dict(report["baseline"])
    base = report["baseline"]["latency"]
    for mode in (*POLICIES, "spatial"):
        report[f"gain_{mode.replace('-', '_')}"] = 1 - report[mode]["latency"] / base
    spatial = design.replace(pb_bytes=report["spatial"]["pb_bytes"])
    report["spatial_fits"] = bool(fits(design_resources(spatial, part), part))
    grid = {**default_grid(workload, design.dw), "pb_bytes": (0,)}
    no_pb = explore(workload, part, grid, conditions=conditions)
    report["best_no_pb"] = no_pb.best()
    report["best_no_pb_latency_ms"] = report["best_no_pb"]["latency_ms"]
    report["design"] = design.to_dict()
    report["design_short"] = (f"K_p={design.kp} Y_p={design.yp} T=({design.tk},{design.tc},{design.tx},{design.ty}) "
                              f"PB={design.pb_bytes / 2**20:.2f} MiB")
    report["resources"] = design_resources(design, part)
    return report
