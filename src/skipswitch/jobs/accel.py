"""Jobs of the FastSwitch accelerator model: design-space exploration and switching latency."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal, Optional

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from ..errors import SkipswitchError
from ..io import OutDir, utf8_file_unless
from ..training.config import Seed
from .base import JobConfig, JobResult

DESIGN_AXES = ("kp", "yp", "tk", "tc", "tx", "ty")
MAX_SEQUENCE = 64  # subnets extracted and traced one by one: more is a typo


class WorkloadOptions(JobConfig):
    workload: Annotated[str, AfterValidator(utf8_file_unless(binary_suffixes=(".safetensors",)))] = Field("ofa-resnet50", description="Workload name, a workload .json, or a searched supernet "
                                                      ".safetensors (its Pareto set).")
    sequence: int = Field(9, ge=1, le=MAX_SEQUENCE, description="Subnets in the sequence, sizes spread smallest->largest.")
    seed: Seed = Field(0, description="Seed of the subnet sampling.")


class DseJob(WorkloadOptions):
    part: str = Field("zu3eg", description="FPGA part or board (zu3eg/ultra96, zu7ev/zcu104, xcu280/u280).")
    policy: str = Field("most-used", description="PB content: smallest (paper) or most-used (SUSHI-like).")
    out: OutDir = Field(Path("runs/accel"), description="Folder for dse.json, dse.png and the workload cache.")


class DseResult(JobResult):
    """``dse.json``."""

    kind: Literal["accel-dse"] = "accel-dse"
    part: str
    workload: str
    policy: str
    points: int
    feasible: int
    seconds: float
    points_per_second: float
    joint_best: dict[str, Any]
    two_phase_array: dict[str, Any]
    two_phase_best: dict[str, Any]
    pareto: list[dict[str, Any]]


class EvaluateJob(WorkloadOptions):
    part: list[str] = Field(["zu3eg", "zu7ev", "xcu280"], description="Parts to evaluate (repeat the flag).")
    kp: Optional[int] = Field(None, ge=1, description="DPE rows; with all of --yp/--tk/--tc/--tx/--ty, skip the DSE.")
    yp: Optional[int] = Field(None, ge=1)
    tk: Optional[int] = Field(None, ge=1)
    tc: Optional[int] = Field(None, ge=1)
    tx: Optional[int] = Field(None, ge=1)
    ty: Optional[int] = Field(None, ge=1)
    pb_bytes: Optional[int] = Field(None, ge=0, le=2**40, description="PB capacity in bytes (default: the DSE's choice).")
    trace: Optional[str] = Field(None, pattern=r"^\d+(,\d+)*$", description="Query trace: subnet indices in serving order, e.g. 0,3,3,8 "
                                                   "(default: each subnet once); the most-used PB policy counts uses in it.")
    out: OutDir = Field(Path("runs/accel"), description="Folder for evaluate.json, breakdown.png and the workload cache.")


class PartReport(BaseModel):
    """One part's switching study (accel.study.part_report)."""

    model_config = ConfigDict(extra="allow", populate_by_name=True)
    design_short: str
    baseline: dict[str, Any]
    smallest: dict[str, Any]
    most_used: dict[str, Any] = Field(alias="most-used")
    gain_smallest: float
    gain_most_used: float
    spatial_fits: bool


class EvaluateResult(JobResult):
    """``evaluate.json``."""

    kind: Literal["accel-evaluate"] = "accel-evaluate"
    workload: str
    parts: dict[str, PartReport]


def _workload(name: str, sequence: int, seed: int, cache_dir: Path, trace: str | None = None):
    from ..accel.workload import WORKLOADS, get_workload, load_workload, save_workload

    # Building ofa-resnet50 (supernet, 9 extractions and traces) takes minutes on 2 shared cores: cache it.
    cache = cache_dir / "workloads" / f"{name}-{sequence}-{seed}.json"
    work = None
    if name in WORKLOADS and cache.exists():
        try:
            work = load_workload(cache)
        except SkipswitchError:  # a cache written by another version of the format: rebuild it
            work = None
    if work is None:
        work = get_workload(name, sequence=sequence, seed=seed)
        if name in WORKLOADS:
            save_workload(work, cache)
    if trace:  # EvaluateJob's pattern: comma-separated indices
        work = work.with_trace([int(v) for v in trace.split(",")])
    return work


def dse(job: DseJob) -> DseResult:
    from ..accel.dse import explore, two_phase
    from ..accel.plots import dse_plot
    from ..accel.workload import PB_POLICIES
    from ..fpga.parts import get_part

    if job.policy not in PB_POLICIES:
        raise SkipswitchError(f"invalid --policy {job.policy!r}; choose one of {', '.join(PB_POLICIES)}")
    fpga = get_part(job.part)
    work = _workload(job.workload, job.sequence, job.seed, job.out)
    joint = explore(work, fpga, policy=job.policy)
    phase1, phase2 = two_phase(work, fpga, policy=job.policy)
    result = DseResult(
        part=fpga.name, workload=work.name, policy=job.policy, points=joint.points,
        feasible=int(joint.feasible.sum()), seconds=joint.seconds, points_per_second=joint.points_per_second,
        joint_best=joint.best(), two_phase_array=phase1.best(), two_phase_best=phase2.best(),
        pareto=[{**joint.design(int(i)), "latency_ms": float(joint.latency[i]) / (fpga.clock_mhz * 1e3),
                 "bram18_eq": int(joint.bram18_eq[i])} for i in joint.pareto()],
    )
    result.save(job.out / "dse.json")
    dse_plot(joint, job.out / "dse.png")
    return result


def evaluate(job: EvaluateJob) -> EvaluateResult:
    from ..accel.plots import breakdown_plot
    from ..accel.study import best_design, part_report
    from ..accel.template import AcceleratorDesign
    from ..fpga.parts import get_part

    given = {a: getattr(job, a) for a in DESIGN_AXES if getattr(job, a) is not None}
    if given and len(given) != len(DESIGN_AXES):
        raise SkipswitchError(f"give all of --kp --yp --tk --tc --tx --ty or none; missing "
                              f"{', '.join('--' + a for a in DESIGN_AXES if a not in given)}")
    work = _workload(job.workload, job.sequence, job.seed, job.out, job.trace)
    reports = {}
    for name in job.part:
        fpga = get_part(name)
        if given:
            design = AcceleratorDesign.for_part(fpga, **given, pb_bytes=job.pb_bytes or 0, stride_max=work.stride_max)
        else:
            design = best_design(work, fpga)
            if job.pb_bytes is not None:
                design = design.replace(pb_bytes=job.pb_bytes)
        reports[fpga.name] = part_report(design, work, fpga)
    result = EvaluateResult(workload=work.name, parts=reports)
    result.save(job.out / "evaluate.json")
    breakdown_plot({p: {m: r[m] for m in ("baseline", "smallest", "most-used")} for p, r in reports.items()},
                   job.out / "breakdown.png", title=f"{work.name}: latency breakdown per part")
    return result
