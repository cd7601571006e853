"""``skipswitch accel``: FastSwitch design-space exploration and switching evaluation."""

from __future__ import annotations

import json

import typer

from ..jobs.accel import DseJob, EvaluateJob
from .options import options_from

app = typer.Typer(help="FastSwitch accelerator model: DSE and subnet-switching latency.", no_args_is_help=True)


@app.command("dse")
@options_from(DseJob)
def dse_cmd(job: DseJob):
    """Brute-force grid: the paper's two phases and a joint search; best design and Pareto set."""
    from ..jobs.accel import dse

    r = dse(job)
    typer.echo(f"{r.points:,} designs ({r.feasible:,} fit {r.part}) in {r.seconds:.2f} s "
               f"= {r.points_per_second:,.0f} points/s")
    typer.echo(f"joint best:     {json.dumps(r.joint_best)}")
    typer.echo(f"two-phase best: {json.dumps(r.two_phase_best)}")
    typer.echo(f"Pareto set (latency vs BRAM18-eq): {len(r.pareto)} designs; wrote {job.out / 'dse.json'}, "
               f"{job.out / 'dse.png'}")


@app.command("evaluate")
@options_from(EvaluateJob)
def evaluate_cmd(job: EvaluateJob):
    """Latency breakdown (switching/loading vs compute): temporal baseline, FastSwitch with each PB
    policy (smallest, most-used, trace-optimal), spatial switching; per part, with a stacked-bar PNG (paper Fig. 5)."""
    from ..fpga.parts import get_part
    from ..jobs.accel import evaluate

    result = evaluate(job)
    for name, r in result.parts.items():
        policies = ((r.smallest, r.gain_smallest, "smallest"), (r.most_used, r.gain_most_used, "most-used"),
                    (r.trace_optimal, r.gain_trace_optimal, "trace-optimal"))
        typer.echo(f"{name} ({get_part(name).board}) design {r.design_short}: baseline {r.baseline['latency_ms']:.2f} ms, "
                   + ", ".join(f"FastSwitch({m}) {p['latency_ms']:.2f} ms (-{g:.1%})" for p, g, m in policies)
                   + f", spatial {'fits' if r.spatial_fits else 'does not fit'}")
    typer.echo(f"wrote {job.out / 'evaluate.json'}, {job.out / 'breakdown.png'}")
