"""``skipswitch serve CKPT`` and ``skipswitch loadgen``: the HTTP server and its load generator."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Optional

import typer

from ..errors import SkipswitchError

app = typer.Typer(help="Serve a supernet's Pareto set over HTTP and load it.", no_args_is_help=True)


@app.command("serve")
def serve(
    checkpoint: Path = typer.Argument(..., help="Supernet checkpoint (supernet.safetensors) with per-subnet BN statistics."),
    pareto: Optional[Path] = typer.Option(None, help="Pareto set JSON from `skipswitch supernet search` "
                                          "[default: the subnets whose BN statistics the checkpoint holds]."),
    port: int = typer.Option(8000, help="TCP port on --host."),
    host: str = typer.Option("127.0.0.1", help="Address to listen on."),
    mode: str = typer.Option("inplace", help="Switching: inplace, temporal, spatial or budget."),
    policy: str = typer.Option("slackfit", help="slackfit, slackfit-noshed, fixed-largest, fixed-smallest or fixed:<subnet>."),
    queue: int = typer.Option(256, help="Bounded queue length; more waiting requests get 503."),
    deadline_ms: Optional[float] = typer.Option(None, "--deadline-ms", help="Deadline for requests that give none."),
    device: str = typer.Option("cpu", help="cpu or cuda."),
    threads: int = typer.Option(1, help="torch intra-op threads (1 keeps latency profiles stable on a shared CPU)."),
    max_batch: int = typer.Option(32, "--max-batch", help="Largest dynamic batch (profiled at powers of two)."),
    switch_interval_ms: float = typer.Option(0.2, "--gil-switch-ms", help="Python GIL switch interval (ms)."),
):
    """Load CHECKPOINT once, profile its Pareto set and serve it until Ctrl-C (which drains the queue)."""
    import torch
    import uvicorn

    from .engine import ServingEngine
    from .policy import make_policy
    from .server import create_app, loopback_socket

    if threads < 1 or max_batch < 1 or not (0 < port < 65536) or not switch_interval_ms > 0:
        raise SkipswitchError(f"invalid --threads={threads}, --max-batch={max_batch}, --port={port} "
                              f"or --gil-switch-ms={switch_interval_ms}")
    torch.set_num_threads(threads)
    # The engine thread runs many small Python-level ops; with the default 5 ms GIL switch
    # interval the HTTP event loop waits up to 5 ms at every hand-over (convoy effect).
    sys.setswitchinterval(switch_interval_ms / 1e3)
    sizes = [b for b in (1, 2, 4, 8, 16, 32, 64, 128, 256) if b < max_batch] + [max_batch]
    engine = ServingEngine.from_checkpoint(checkpoint, pareto, mode=mode, device=device, batch_sizes=sizes)
    app_ = create_app(engine, make_policy(policy, engine), capacity=queue, default_deadline_ms=deadline_ms)
    for s in engine.subnets:
        typer.echo(f"{s.name}: accuracy {s.accuracy:.4f}  {s.weight_bytes:,} B  "
                   f"latency b=1 {s.latency[1] * 1e3:.2f} ms  b={max_batch} {s.latency[max_batch] * 1e3:.2f} ms")
    typer.echo(f"serving {len(engine.subnets)} subnets ({mode}, resident {engine.resident_bytes():,} B) "
               f"on http://{host}:{port}")
    sock = loopback_socket(host, port) if host in ("127.0.0.1", "localhost", "::1") else None
    config = uvicorn.Config(app_, host=host, port=port, log_level="warning", timeout_graceful_shutdown=30)
    try:
        uvicorn.Server(config).run(sockets=[sock] if sock else None)
    except KeyboardInterrupt:  # uvicorn re-raises the signal after its graceful shutdown
        pass
    typer.echo(f"stopped: queue drained, {engine.switches} subnet switches")


@app.command("loadgen")
def loadgen(
    trace: str = typer.Option("poisson", help="poisson, bursty, or a file of arrival times (seconds)."),
    rate: float = typer.Option(50.0, help="Mean requests per second."),
    duration: float = typer.Option(10.0, help="Seconds of load (at most 3600)."),
    url: str = typer.Option("http://127.0.0.1:8000", help="Server URL (loopback only)."),
    deadline_ms: Optional[float] = typer.Option(100.0, "--deadline-ms", help="Deadline sent with every request."),
    subnet: Optional[str] = typer.Option(None, help="Name a subnet for every request."),
    accuracy_floor: Optional[float] = typer.Option(None, "--accuracy-floor", help="Accuracy floor for every request."),
    dataset: str = typer.Option("digits", help="Inputs (and labels) from this dataset's test split."),
    seed: int = typer.Option(0, help="Trace seed."),
    out: Optional[Path] = typer.Option(None, help="Write the report as JSON here."),
):
    """Open-loop load: report SLO attainment, served accuracy, p50/p99 latency and throughput."""
    import asyncio

    from ..checkpoint import atomic_write_json
    from .loadgen import TRACES, check_loopback, load_inputs, make_trace, read_trace, run_load

    check_loopback(url)
    if deadline_ms is not None and deadline_ms <= 0:
        raise SkipswitchError(f"--deadline-ms must be positive, got {deadline_ms}")
    arrivals = make_trace(trace, rate, duration, seed) if trace in TRACES else read_trace(trace, duration)
    inputs, labels = load_inputs(url, dataset, seed)
    report = asyncio.run(run_load(url, arrivals, inputs, labels, deadline_ms=deadline_ms,
                                  options={"subnet": subnet, "accuracy_floor": accuracy_floor},
                                  trace_name=Path(trace).name if trace not in TRACES else trace))
    typer.echo(report.summary())
    if out is not None:
        atomic_write_json(out, report.to_dict())
        typer.echo(f"-> {out}")
