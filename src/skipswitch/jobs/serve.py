"""Serving jobs: the HTTP server over a supernet's Pareto set, and the open-loop load generator."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Annotated, Any, Callable, Literal, Optional

from pydantic import AfterValidator, ConfigDict, Field, model_validator

from ..errors import SkipswitchError
from ..io import OutFile, utf8_file_unless
from ..training.config import Seed
from ..serve.loadgen import TRACES, is_loopback_host  # numpy only, no torch
from .base import JobConfig, JobResult


def _inference_cpus(value: Optional[str]) -> Optional[str]:
    """A CPU list that this process may use, leaving at least one CPU for the server itself."""
    if value is None:
        return None
    from ..serve.cpus import parse_cpu_list

    if not hasattr(os, "sched_getaffinity"):
        raise ValueError("pinning the inference process needs Linux (os.sched_setaffinity)")
    cpus, allowed = parse_cpu_list(value), set(os.sched_getaffinity(0))
    if not cpus <= allowed:
        raise ValueError(f"CPU(s) {sorted(cpus - allowed)} not among this process's CPUs {sorted(allowed)}")
    if not allowed - cpus:
        raise ValueError(f"{value} leaves no CPU for the server's HTTP loop (this process may use {sorted(allowed)})")
    return value


MIN_TOKEN_CHARS = 8  # the bearer token, from --token or $SKIPSWITCH_TOKEN


class ServeJob(JobConfig):
    checkpoint: Path = Field(..., description="Supernet checkpoint (supernet.safetensors) with per-subnet BN statistics.")
    pareto: Optional[Path] = Field(None, description="Pareto set JSON from `skipswitch supernet search` "
                                                     "[default: the subnets whose BN statistics the checkpoint holds].")
    port: int = Field(8000, ge=1, le=65535, description="TCP port on --host.")
    host: str = Field("127.0.0.1", description="Address to listen on.")
    mode: str = Field("inplace", description="Switching: inplace, temporal, spatial or budget.")
    policy: str = Field("slackfit", description="slackfit (SuperServe's bucket rule with our backlog filters), slackfit-plain (the bucket rule alone), slackfit-noshed, max-on-time (the earlier rule), fixed-largest, fixed-smallest or fixed:<subnet>.")
    queue: int = Field(256, ge=1, le=1_000_000, description="Bounded queue length; more waiting requests get 503.")
    deadline_ms: Optional[float] = Field(None, gt=0, description="Deadline for requests that give none.")
    device: str = Field("cpu", pattern=r"^(cpu|cuda(:\d+)?)$", description="cpu, cuda or cuda:N.")
    threads: int = Field(1, ge=1, le=1024, description="torch intra-op threads (1 keeps latency profiles stable on a shared CPU).")
    max_batch: int = Field(32, ge=1, le=256, description="Largest dynamic batch (profiled at powers of two).")
    switch_interval_ms: float = Field(0.2, gt=0, le=1000, description="Python GIL switch interval (ms).")
    token: Optional[str] = Field(None, min_length=MIN_TOKEN_CHARS, description="Require 'Authorization: Bearer TOKEN' on every path "
                                 "but /health [default: $SKIPSWITCH_TOKEN; the variable keeps it out of `ps`].")
    api_docs: bool = Field(False, description="Serve /docs, /redoc and /openapi.json.")
    inference: Literal["auto", "process", "thread"] = Field(
        "auto", description="Run forward passes in a child process (process), so the HTTP loop never waits behind "
                            "them for the GIL, or in a thread of the server process (thread; always with cuda). auto: "
                            "process on a machine of 2 or more CPUs (the child needs a core of its own; on 2 idle "
                            "cores it served more at overload than the thread, docs/results/reliability.md), else thread.")
    inference_cpus: Annotated[Optional[str], AfterValidator(_inference_cpus)] = Field(
        None, description="Pin the inference process to these CPUs (taskset's list format: 0, 0,2, 1-3; Linux) and "
                          "the server's HTTP loop and scheduler to the others, so that neither takes the other's time.")

    @model_validator(mode="after")
    def _pinning_needs_a_process(self):
        if self.inference_cpus is not None and (self.inference == "thread" or self.device != "cpu"):
            raise ValueError(f"--inference-cpus {self.inference_cpus}: pins the inference process, which needs "
                             "--inference process (or auto) and --device cpu")
        return self


class ServeResult(JobResult):
    kind: Literal["serve"] = "serve"
    subnets: int
    switches: int


class LoadgenJob(JobConfig):
    trace: Annotated[str, AfterValidator(utf8_file_unless(*TRACES))] = Field("poisson", description="poisson, bursty, ramp, azure, or a file of arrival times (seconds).")
    rate: float = Field(50.0, gt=0, le=100_000, description="Mean requests per second.")
    duration: float = Field(10.0, gt=0, le=3600, description="Seconds of load (at most 3600).")
    url: str = Field("http://127.0.0.1:8000", description="Server URL (loopback only).")
    deadline_ms: Optional[float] = Field(100.0, gt=0, description="Deadline sent with every request.")
    subnet: Optional[str] = Field(None, description="Name a subnet for every request.")
    accuracy_floor: Optional[float] = Field(None, ge=0, le=1, description="Accuracy floor for every request.")
    dataset: str = Field("digits", description="Inputs (and labels) from this dataset's test split.")
    seed: Seed = Field(0, description="Trace seed.")
    out: Optional[OutFile] = Field(None, description="Write the report as JSON here.")


class LoadgenResult(JobResult):
    """The load report (serve.loadgen.LoadReport's fields); with ``out``, its JSON file."""

    kind: Literal["loadgen"] = "loadgen"
    model_config = ConfigDict(extra="allow")
    trace: str
    sent: int
    slo_attainment: float
    served_accuracy: Optional[float]
    p50_ms: Optional[float]
    p99_ms: Optional[float]
    throughput: float


def bearer_token(job: ServeJob) -> Optional[str]:
    """The token requests must bear: ``--token``, else ``$SKIPSWITCH_TOKEN``, else none; without one,
    binding beyond loopback prints a one-line warning (anyone who reaches the port may then use it)."""
    token = job.token or os.environ.get("SKIPSWITCH_TOKEN") or None
    if token is not None and len(token) < MIN_TOKEN_CHARS:  # the field checks --token; the variable is checked here
        raise SkipswitchError(f"SKIPSWITCH_TOKEN is shorter than {MIN_TOKEN_CHARS} characters; use a longer token")
    if not is_loopback_host(job.host) and token is None:
        print(f"warning: serving on {job.host}, beyond loopback, without authentication; "
              "set SKIPSWITCH_TOKEN (or --token) to require a bearer token", file=sys.stderr)
    return token


def serve(job: ServeJob, on_ready: Callable[[Any], None] = lambda engine: None) -> ServeResult:
    """Load the checkpoint once, profile its Pareto set, call ``on_ready(engine)``, and serve until
    stopped (SIGINT/SIGTERM: new requests get 503 while the queue drains, then this returns)."""
    token = bearer_token(job)  # before torch's import: a bad token is refused at once
    import tempfile
    from contextlib import ExitStack

    import torch
    import uvicorn

    from ..serve.engine import ServingEngine
    from ..serve.policy import make_policy
    from ..serve.server import create_app, draining_server, intake_protocol, listening_socket
    from ..serve.worker import inference_process

    torch.set_num_threads(job.threads)
    # The engine thread runs many small Python-level ops; with the default 5 ms GIL switch
    # interval the HTTP event loop waits up to 5 ms at every hand-over (convoy effect).
    sys.setswitchinterval(job.switch_interval_ms / 1e3)
    sizes = [b for b in (1, 2, 4, 8, 16, 32, 64, 128, 256) if b < job.max_batch] + [job.max_batch]
    # temporal mode's per-subnet files live in a directory this job owns and removes on every exit
    temporal = job.mode == "temporal"
    with ExitStack() as stack:
        work_dir = stack.enter_context(tempfile.TemporaryDirectory(prefix="skipswitch-temporal-")) if temporal else None
        engine = ServingEngine.from_checkpoint(job.checkpoint, job.pareto, mode=job.mode, device=job.device,
                                               batch_sizes=sizes, **({"work_dir": work_dir} if temporal else {}))
        # forked before the socket and the event loop exist; the stack stops it before the directory goes
        process = job.inference == "process" or (job.inference == "auto" and (os.cpu_count() or 1) >= 2)
        if process and engine.device.type == "cpu":
            from ..serve.cpus import parse_cpu_list

            cpus = parse_cpu_list(job.inference_cpus) if job.inference_cpus else None
            stack.enter_context(inference_process(engine, cpus))
        app = create_app(engine, make_policy(job.policy, engine), capacity=job.queue,
                         default_deadline_ms=job.deadline_ms, token=token, api_docs=job.api_docs)
        on_ready(engine)
        sock = listening_socket(job.host, job.port)  # bound here: a taken port or a bad --host is one line
        # No proxy-header rewriting nor access log: the server reads neither, and both cost on every request.
        config = uvicorn.Config(app, host=job.host, port=job.port, log_level="warning", timeout_graceful_shutdown=30,
                                proxy_headers=False, access_log=False, http=intake_protocol(app.intake))
        draining_server(config, app.state.scheduler).run(sockets=[sock])
    return ServeResult(subnets=len(engine.subnets), switches=engine.switches)


def _run_stoppable(runner, coro):
    """``runner.run(coro)`` with SIGTERM cancelling ``coro`` as asyncio.Runner does for Ctrl-C, then calling
    the caller's own SIGTERM handler (the CLI's raises KeyboardInterrupt). Raised by that handler inside a
    task, the KeyboardInterrupt would be stored on the task and logged at exit as "Task exception was
    never retrieved", with a traceback."""
    import asyncio
    import signal
    import threading

    previous = signal.getsignal(signal.SIGTERM)
    if threading.current_thread() is not threading.main_thread() or not callable(previous):
        return runner.run(coro)
    terminated = False

    async def stoppable():
        nonlocal terminated
        loop, task = asyncio.get_running_loop(), asyncio.current_task()

        def stop() -> None:
            nonlocal terminated
            terminated = True
            task.cancel()

        loop.add_signal_handler(signal.SIGTERM, stop)
        try:
            return await coro
        finally:
            loop.remove_signal_handler(signal.SIGTERM)
            signal.signal(signal.SIGTERM, previous)  # the loop's removal leaves SIG_DFL

    try:
        return runner.run(stoppable())
    except asyncio.CancelledError:
        if not terminated:
            raise
    previous(signal.SIGTERM, None)
    raise KeyboardInterrupt  # a handler that returned: stop as Ctrl-C would


def loadgen(job: LoadgenJob) -> LoadgenResult:
    import asyncio

    from ..serve.loadgen import check_loopback, load_inputs, make_trace, read_trace, run_load

    check_loopback(job.url)
    builtin = job.trace in TRACES
    arrivals = make_trace(job.trace, job.rate, job.duration, job.seed) if builtin else read_trace(job.trace, job.duration)
    inputs, labels = load_inputs(job.url, job.dataset, job.seed)
    try:  # uvloop (a dependency except on Windows): less of the generator's CPU per request (docs/serving.md)
        from uvloop import new_event_loop
    except ImportError:
        new_event_loop = None
    with asyncio.Runner(loop_factory=new_event_loop) as runner:
        report = _run_stoppable(runner, run_load(job.url, arrivals, inputs, labels, deadline_ms=job.deadline_ms,
                                                 options={"subnet": job.subnet, "accuracy_floor": job.accuracy_floor},
                                                 trace_name=job.trace if builtin else Path(job.trace).name))
    result = LoadgenResult(**report.to_dict())
    if job.out is not None:
        result.save(job.out)
    return result
