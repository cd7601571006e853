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


class ConditionOptions(WorkloadOptions):
    """Operating conditions (accel.presets.Conditions): a preset or a .json/.yaml file, knobs on top."""

    preset: str = Field("realistic", description="Conditions: paper, realistic, or a .json/.yaml Conditions file.")
    dw: Optional[int] = Field(None, description="Weight/iAct bits (overrides the preset).")
    odw: Optional[int] = Field(None, description="oAct/partial-sum bits.")
    dsp_packing: Optional[float] = Field(None, description="MACs per DSP48E2 (2 = int8 packing, WP486; 0.5 = fp32).")
    lut_macs: Optional[bool] = Field(None, description="Build multipliers beyond the DSPs from LUTs.")
    overlap: Optional[str] = Field(None, description="double (loads hide behind compute) or single (they take turns).")
    clock_mhz: Optional[float] = Field(None, description="Accelerator clock (default: the part's).")
    bandwidth_gbps: Optional[float] = Field(None, description="Off-chip GB/s (default: the part's).")
    batch: Optional[int] = Field(None, description="Inputs per query sharing one weight fetch.")

    def conditions(self):
        from ..accel.presets import resolve_conditions

        return resolve_conditions(self.preset, **{k: getattr(self, k) for k in (
            "dw", "odw", "dsp_packing", "lut_macs", "overlap", "clock_mhz", "bandwidth_gbps", "batch")})


class DseJob(ConditionOptions):
    part: str = Field("zu3eg", description="FPGA part or board (zu3eg/ultra96, zu7ev/zcu104, xcu280/u280).")
    policy: str = Field("most-used", description="PB content: smallest (paper) or most-used (SUSHI-like).")
    out: OutDir = Field(Path("runs/accel"), description="Folder for dse.json, dse.png and the workload cache.")


class DseResult(JobResult):
    """``dse.json``."""

    kind: Literal["accel-dse"] = "accel-dse"
    part: str
    workload: str
    policy: str
    conditions: dict[str, Any]
    points: int
    feasible: int
    seconds: float
    points_per_second: float
    joint_best: dict[str, Any]
    two_phase_array: dict[str, Any]
    two_phase_best: dict[str, Any]
    pareto: list[dict[str, Any]]


class EvaluateJob(ConditionOptions):
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
    trace_optimal: dict[str, Any] = Field(alias="trace-optimal")
    gain_smallest: float
    gain_most_used: float
    gain_trace_optimal: float
    spatial_fits: bool


class EvaluateResult(JobResult):
    """``evaluate.json``."""

    kind: Literal["accel-evaluate"] = "accel-evaluate"
    workload: str
    conditions: dict[str, Any]
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
    cond = job.conditions()
    fpga = get_part(job.part)
    work = _workload(job.workload, job.sequence, job.seed, job.out)
    joint = explore(work, fpga, policy=job.policy, conditions=cond)
    phase1, phase2 = two_phase(work, fpga, policy=job.policy, conditions=cond)
    result = DseResult(
        part=fpga.name, workload=work.name, policy=job.policy, conditions=cond.model_dump(), points=joint.points,
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
    from ..accel.study import POLICIES, best_design, part_report
    from ..accel.template import AcceleratorDesign
    from ..fpga.parts import get_part

    given = {a: getattr(job, a) for a in DESIGN_AXES if getattr(job, a) is not None}
    if given and len(given) != len(DESIGN_AXES):
        raise SkipswitchError(f"give all of --kp --yp --tk --tc --tx --ty or none; missing "
                              f"{', '.join('--' + a for a in DESIGN_AXES if a not in given)}")
    cond = job.conditions()
    work = _workload(job.workload, job.sequence, job.seed, job.out, job.trace)
    reports = {}
    for name in job.part:
        fpga = get_part(name)
        if given:
            design = AcceleratorDesign.for_part(cond.on(fpga), **given, pb_bytes=job.pb_bytes or 0,
                                                stride_max=work.stride_max, **cond.design_fields())
        else:
            design = best_design(work, fpga, conditions=cond)
            if job.pb_bytes is not None:
                design = design.replace(pb_bytes=job.pb_bytes)
        reports[fpga.name] = part_report(design, work, fpga, cond)
    result = EvaluateResult(workload=work.name, conditions=cond.model_dump(), parts=reports)
    result.save(job.out / "evaluate.json")
    breakdown_plot({p: {m: r[m] for m in ("baseline", *POLICIES)} for p, r in reports.items()},
                   job.out / "breakdown.png", title=f"{work.name}: latency breakdown per part")
    return result
