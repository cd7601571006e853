"""``skipswitch accel``: FastSwitch design-space exploration and switching evaluation."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import typer

app = typer.Typer(help="FastSwitch accelerator model: DSE and subnet-switching latency.", no_args_is_help=True)

DESIGN_AXES = ("kp", "yp", "tk", "tc", "tx", "ty")
WORKLOAD_CACHE = Path("runs/accel/workloads")

# Operating conditions (accel.presets.Conditions): a preset (or a .json/.yaml file) and its knobs on top.
PRESET = typer.Option("realistic", help="Conditions: paper, realistic, or a .json/.yaml Conditions file.")
DW = typer.Option(None, "--dw", help="Weight/iAct bits (overrides the preset).")
ODW = typer.Option(None, "--odw", help="oAct/partial-sum bits.")
DSP_PACKING = typer.Option(None, "--dsp-packing", help="MACs per DSP48E2 (2 = int8 packing, WP486; 0.5 = fp32).")
LUT_MACS = typer.Option(None, "--lut-macs/--no-lut-macs", help="Build multipliers beyond the DSPs from LUTs.")
OVERLAP = typer.Option(None, "--overlap", help="double (loads hide behind compute) or single (they take turns).")
CLOCK = typer.Option(None, "--clock-mhz", help="Accelerator clock (default: the part's).")
BANDWIDTH = typer.Option(None, "--bandwidth-gbps", help="Off-chip GB/s (default: the part's).")
BATCH = typer.Option(None, "--batch", help="Inputs per query sharing one weight fetch.")


def _conditions(preset: str, **knobs):
    from .presets import resolve_conditions

    return resolve_conditions(preset, **knobs)


def _workload(name: str, sequence: int, seed: int, trace: str | None = None):
    from ..errors import SkipswitchError
    from .workload import WORKLOADS, get_workload, load_workload, save_workload

    # Building ofa-resnet50 (supernet, 9 extractions and traces) takes minutes on 2 shared cores: cache it.
    cache = WORKLOAD_CACHE / f"{name}-{sequence}-{seed}.json"
    if name in WORKLOADS and cache.exists():
        work = load_workload(cache)
    else:
        work = get_workload(name, sequence=sequence, seed=seed)
        if name in WORKLOADS:
            save_workload(work, cache)
    if trace:
        try:
            indices = [int(v) for v in trace.split(",")]
        except ValueError:
            raise SkipswitchError(f"invalid --trace {trace!r}: comma-separated subnet indices, e.g. 0,3,3,8") from None
        work = work.with_trace(indices)
    return work


@app.command("dse")
def dse_cmd(
    part: str = typer.Option("zu3eg", help="FPGA part or board (zu3eg/ultra96, zu7ev/zcu104, xcu280/u280)."),
    workload: str = typer.Option("ofa-resnet50", help="Workload name, a workload .json, or a searched supernet .safetensors (its Pareto set)."),
    sequence: int = typer.Option(9, help="Subnets in the sequence, sizes spread smallest->largest."),
    policy: str = typer.Option("most-used", help="PB content: smallest (paper) or most-used (SUSHI-like)."),
    seed: int = typer.Option(0, help="Seed of the subnet sampling."),
    out: Path = typer.Option(Path("runs/accel"), help="Folder for dse.json and dse.png."),
    preset: str = PRESET, dw: Optional[int] = DW, odw: Optional[int] = ODW, dsp_packing: Optional[float] = DSP_PACKING,
    lut_macs: Optional[bool] = LUT_MACS, overlap: Optional[str] = OVERLAP, clock_mhz: Optional[float] = CLOCK,
    bandwidth_gbps: Optional[float] = BANDWIDTH, batch: Optional[int] = BATCH,
):
    """Brute-force grid: the paper's two phases and a joint search; best design and Pareto set."""
    from ..checkpoint import atomic_write_json
    from .dse import explore, two_phase
    from ..fpga.parts import get_part
    from .plots import dse_plot
    from .workload import PB_POLICIES

    if policy not in PB_POLICIES:
        from ..errors import SkipswitchError

        raise SkipswitchError(f"invalid --policy {policy!r}; choose one of {', '.join(PB_POLICIES)}")
    cond = _conditions(preset, dw=dw, odw=odw, dsp_packing=dsp_packing, lut_macs=lut_macs, overlap=overlap,
                       clock_mhz=clock_mhz, bandwidth_gbps=bandwidth_gbps, batch=batch)
    fpga = get_part(part)
    work = _workload(workload, sequence, seed)
    joint = explore(work, fpga, policy=policy, conditions=cond)
    phase1, phase2 = two_phase(work, fpga, policy=policy, conditions=cond)
    pareto = joint.pareto()
    report = {
        "part": fpga.name, "workload": work.name, "policy": policy, "conditions": cond.model_dump(), "points": joint.points,
        "feasible": int(joint.feasible.sum()), "seconds": joint.seconds, "points_per_second": joint.points_per_second,
        "joint_best": joint.best(), "two_phase_array": phase1.best(), "two_phase_best": phase2.best(),
        "pareto": [{**joint.design(int(i)), "latency_ms": float(joint.latency[i]) / (fpga.clock_mhz * 1e3),
                    "bram18_eq": int(joint.bram18_eq[i])} for i in pareto],
    }
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_json(out / "dse.json", report)
    dse_plot(joint, out / "dse.png")
    typer.echo(f"{joint.points:,} designs ({report['feasible']:,} fit {fpga.name}) in {joint.seconds:.2f} s "
               f"= {joint.points_per_second:,.0f} points/s")
    typer.echo(f"joint best:     {json.dumps(report['joint_best'])}")
    typer.echo(f"two-phase best: {json.dumps(report['two_phase_best'])}")
    typer.echo(f"Pareto set (latency vs BRAM18-eq): {len(pareto)} designs; wrote {out / 'dse.json'}, {out / 'dse.png'}")


@app.command("evaluate")
def evaluate_cmd(
    part: list[str] = typer.Option(["zu3eg", "zu7ev", "xcu280"], help="Parts to evaluate (repeat the flag)."),
    workload: str = typer.Option("ofa-resnet50", help="Workload name, a workload .json, or a searched supernet .safetensors (its Pareto set)."),
    sequence: int = typer.Option(9, help="Subnets in the sequence."),
    seed: int = typer.Option(0, help="Seed of the subnet sampling."),
    kp: Optional[int] = typer.Option(None, help="DPE rows; with all of --yp/--tk/--tc/--tx/--ty, skip the DSE."),
    yp: Optional[int] = typer.Option(None), tk: Optional[int] = typer.Option(None),
    tc: Optional[int] = typer.Option(None), tx: Optional[int] = typer.Option(None),
    ty: Optional[int] = typer.Option(None),
    pb_bytes: Optional[int] = typer.Option(None, help="PB capacity in bytes (default: the DSE's choice)."),
    trace: Optional[str] = typer.Option(None, help="Query trace: subnet indices in serving order, e.g. 0,3,3,8 "
                                        "(default: each subnet once); the most-used PB policy counts uses in it."),
    out: Path = typer.Option(Path("runs/accel"), help="Folder for evaluate.json and breakdown.png."),
    preset: str = PRESET, dw: Optional[int] = DW, odw: Optional[int] = ODW, dsp_packing: Optional[float] = DSP_PACKING,
    lut_macs: Optional[bool] = LUT_MACS, overlap: Optional[str] = OVERLAP, clock_mhz: Optional[float] = CLOCK,
    bandwidth_gbps: Optional[float] = BANDWIDTH, batch: Optional[int] = BATCH,
):
    """Latency breakdown (switching/loading vs compute): temporal baseline, FastSwitch with each PB
    policy (smallest, most-used, trace-optimal), spatial switching; per part, with a stacked-bar PNG (paper Fig. 5)."""
    from ..checkpoint import atomic_write_json
    from ..errors import SkipswitchError
    from .plots import breakdown_plot
    from .study import POLICIES, best_design, part_report

    given = {k: v for k, v in dict(kp=kp, yp=yp, tk=tk, tc=tc, tx=tx, ty=ty).items() if v is not None}
    if given and len(given) != len(DESIGN_AXES):
        raise SkipswitchError(f"give all of --kp --yp --tk --tc --tx --ty or none; missing "
                              f"{', '.join('--' + a for a in DESIGN_AXES if a not in given)}")
    from ..fpga.parts import get_part

    cond = _conditions(preset, dw=dw, odw=odw, dsp_packing=dsp_packing, lut_macs=lut_macs, overlap=overlap,
                       clock_mhz=clock_mhz, bandwidth_gbps=bandwidth_gbps, batch=batch)
    work = _workload(workload, sequence, seed, trace)
    reports = {}
    for name in part:
        fpga = get_part(name)
        design = best_design(work, fpga, conditions=cond) if not given else None
        if given:
            from .template import AcceleratorDesign

            design = AcceleratorDesign.for_part(cond.on(fpga), **given, pb_bytes=pb_bytes or 0,
                                                stride_max=work.stride_max, **cond.design_fields())
        elif pb_bytes is not None:
            design = design.replace(pb_bytes=pb_bytes)
        reports[fpga.name] = part_report(design, work, fpga, cond)
        r = reports[fpga.name]
        typer.echo(f"{fpga.name} ({fpga.board}) design {r['design_short']}: baseline {r['baseline']['latency_ms']:.2f} ms, "
                   + ", ".join(f"FastSwitch({m}) {r[m]['latency_ms']:.2f} ms (-{r['gain_' + m.replace('-', '_')]:.1%})"
                               for m in POLICIES)
                   + f", spatial {'fits' if r['spatial_fits'] else 'does not fit'}")
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_json(out / "evaluate.json", {"workload": work.name, "conditions": cond.model_dump(), "parts": reports})
    breakdown_plot({p: {m: r[m] for m in ("baseline", *POLICIES)} for p, r in reports.items()},
                   out / "breakdown.png", title=f"{work.name}: latency breakdown per part")
    typer.echo(f"wrote {out / 'evaluate.json'}, {out / 'breakdown.png'}")
