"""``skipswitch serve CKPT`` and ``skipswitch loadgen``: the HTTP server and its load generator."""

from __future__ import annotations

import typer

from ..jobs.serve import LoadgenJob, ServeJob
from .options import options_from


@options_from(ServeJob, arguments=("checkpoint",), decls={"switch_interval_ms": ("--gil-switch-ms",)})
def serve(job: ServeJob):
    """Load CHECKPOINT once, profile its Pareto set and serve it until Ctrl-C (which drains the queue)."""
    from ..jobs.serve import serve

    def on_ready(engine) -> None:
        for s in engine.subnets:
            typer.echo(f"{s.name}: accuracy {s.accuracy:.4f}  {s.weight_bytes:,} B  latency b=1 "
                       f"{s.latency[1] * 1e3:.2f} ms  b={job.max_batch} {s.latency[job.max_batch] * 1e3:.2f} ms")
        typer.echo(f"serving {len(engine.subnets)} subnets ({job.mode}, resident {engine.resident_bytes():,} B) "
                   f"on http://{job.host}:{job.port}")

    r = serve(job, on_ready=on_ready)
    typer.echo(f"stopped: queue drained, {r.switches} subnet switches")


@options_from(LoadgenJob)
def loadgen(job: LoadgenJob):
    """Open-loop load: report SLO attainment, served accuracy, p50/p99 latency and throughput."""
    from ..jobs.serve import loadgen
    from ..serve.loadgen import LoadReport

    r = loadgen(job)
    typer.echo(LoadReport(**r.model_dump(exclude={"kind", "version"})).summary())
    if job.out is not None:
        typer.echo(f"-> {job.out}")
