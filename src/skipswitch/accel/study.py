"""Per-part switching study: the DSE's best design, its no-PB baseline, both PB policies, spatial."""

from __future__ import annotations

from .dse import default_grid, explore, to_design
from .latency import switching_report
from ..fpga.parts import Part as FpgaPart
from .template import AcceleratorDesign, design_resources, fits
from .workload import Workload


def best_design(workload: Workload, part: FpgaPart, policy: str = "most-used", grid: dict | None = None,
                dw: int = 8) -> AcceleratorDesign:
    result = explore(workload, part, grid, policy=policy, dw=dw)
    return to_design(result.best(), part, dw=dw, stride_max=workload.stride_max)


def part_report(design: AcceleratorDesign, workload: Workload, part: FpgaPart) -> dict:
    """Switching modes on ``design`` plus the best design with no PB at all (a stronger baseline:
    it may spend the PB's memory on tiles)."""
    report = switching_report(design, workload)
    base = report["baseline"]["latency"]
    report["gain_smallest"] = 1 - report["smallest"]["latency"] / base
    report["gain_most_used"] = 1 - report["most-used"]["latency"] / base
    spatial = design.replace(pb_bytes=report["spatial"]["pb_bytes"])
    report["spatial_fits"] = bool(fits(design_resources(spatial, part), part))
    grid = {**default_grid(workload, design.dw), "pb_bytes": (0,)}
    no_pb = explore(workload, part, grid, dw=design.dw)
    report["best_no_pb"] = no_pb.best()
    report["best_no_pb_latency_ms"] = report["best_no_pb"]["latency_ms"]
    report["design"] = design.to_dict()
    report["design_short"] = (f"K_p={design.kp} Y_p={design.yp} T=({design.tk},{design.tc},{design.tx},{design.ty}) "
                              f"PB={design.pb_bytes / 2**20:.2f} MiB")
    report["resources"] = design_resources(design, part)
    return report
