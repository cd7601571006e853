"""Forward passes in a child process of their own.

In one process the HTTP front (the asyncio event loop: intake, ``/health``, shedding) and the
engine's forward passes share one GIL: under overload the loop waits behind the engine's
Python-level work and the engine behind the loop (docs/results/reliability.md). ``inference_process``
forks a child once the engine is built and profiled (copy-on-write: the weights are not loaded
twice) and swaps the engine's backend for ``RemoteBackend``, which sends each switch and each
batch down a pipe. ``ServingEngine`` keeps its bookkeeping (active subnet, switch counts, latency
profiles) in the server process, so the scheduler and policy are unchanged; the scheduler's thread
waits on the pipe with the GIL released.

CPU only: a CUDA context does not survive ``fork``.
"""

from __future__ import annotations

import multiprocessing
import os
import signal
import threading
import time
from contextlib import contextmanager
from typing import Any, Iterator

import numpy as np
import torch

from ..errors import SkipswitchError
from .cpus import pin_threads
from .engine import Backend, ServingEngine, Subnet


def _serve_batches(backend: Backend, subnets: dict[str, Subnet], conn, parent_end,
                   cpus: frozenset[int] | None = None) -> None:
    """The child: answer ("activate", name) and ("forward", array) until the parent closes the pipe."""
    parent_end.close()
    if cpus:
        pin_threads(cpus)
    # The parent decides when this process ends (it drains its queue through it first): a Ctrl-C
    # or SIGTERM sent to the whole process group must not kill it mid-drain.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    with torch.no_grad():
        while True:
            try:
                op, arg = conn.recv()
            except (EOFError, OSError):  # the parent closed the pipe or died
                return
            try:
                if op == "activate":
                    backend.activate(subnets[arg])
                    reply = ("ok", (backend.resident_bytes(), backend.to_dict()))
                elif op == "run":  # a pipelined batch: switch if asked, then forward, timing both here
                    name, array = arg
                    start = time.perf_counter()
                    state = None
                    if name is not None:
                        backend.activate(subnets[name])
                        state = (backend.resident_bytes(), backend.to_dict())
                    switched = time.perf_counter()
                    out = backend.forward(torch.from_numpy(array)).cpu().numpy()
                    reply = ("ok", (out, switched - start, time.perf_counter() - switched, state))
                else:
                    reply = ("ok", backend.forward(torch.from_numpy(arg)).cpu().numpy())
            except Exception as exc:  # the batch fails, the process stays
                reply = ("error", f"{type(exc).__name__}: {exc}")
            try:
                conn.send(reply)
            except (BrokenPipeError, OSError):
                return


class RemoteBackend(Backend):
    """The engine's backend, run in a forked child process; ``close`` ends the child."""

    def __init__(self, backend: Backend, subnets: list[Subnet], cpus: frozenset[int] | None = None):
        context = multiprocessing.get_context("fork")
        self._conn, child_end = context.Pipe()
        self.process = context.Process(target=_serve_batches, name="skipswitch-inference", daemon=True,
                                       args=(backend, {s.name: s for s in subnets}, child_end, self._conn, cpus))
        self.process.start()
        child_end.close()
        self._lock = threading.Lock()
        self._outstanding = 0
        self._resident, self._info = backend.resident_bytes(), backend.to_dict()

    # The pipe is first in, first out: the scheduler may send the next batch (``submit``) before it
    # takes the last one's outputs (``collect``), so the child never waits for the parent's
    # per-batch work. Synchronous calls are refused while batches are outstanding.
    pipelined = True

    def _call(self, op: str, arg: Any) -> Any:
        with self._lock:
            if self._outstanding:
                raise RuntimeError(f"{op} while {self._outstanding} pipelined batch(es) are outstanding")
            self._send((op, arg))
            return self._recv()

    def _send(self, message: Any) -> None:
        try:
            self._conn.send(message)
        except (EOFError, OSError):
            raise SkipswitchError(f"the inference process exited (code {self.process.exitcode})") from None

    def _recv(self) -> Any:
        try:
            status, value = self._conn.recv()
        except (EOFError, OSError):
            raise SkipswitchError(f"the inference process exited (code {self.process.exitcode})") from None
        if status == "error":
            raise RuntimeError(f"in the inference process: {value}")
        return value

    def submit(self, subnet: Subnet | None, x: torch.Tensor) -> None:
        """Queue a batch in the child (switching to ``subnet`` first unless None); ``collect`` takes its outputs."""
        with self._lock:
            self._send(("run", (None if subnet is None else subnet.name, np.ascontiguousarray(x.numpy()))))
            self._outstanding += 1

    def collect(self) -> tuple[torch.Tensor, float, float]:
        """The oldest submitted batch's (outputs, switch seconds, forward seconds), waiting for it."""
        with self._lock:
            self._outstanding -= 1
            out, switch_s, forward_s, state = self._recv()
        if state is not None:
            self._resident, self._info = state
        return torch.from_numpy(out), switch_s, forward_s

    def activate(self, subnet: Subnet) -> None:
        self._resident, self._info = self._call("activate", subnet.name)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.from_numpy(self._call("forward", np.ascontiguousarray(x.numpy())))

    def resident_bytes(self) -> int:
        return self._resident

    def to_dict(self) -> dict[str, Any]:
        return self._info

    def close(self, timeout_s: float = 10.0) -> None:
        """Close the pipe (the child returns after its current batch); kill it if it lingers."""
        self._conn.close()
        self.process.join(timeout_s)
        if self.process.is_alive():
            self.process.kill()
            self.process.join()


@contextmanager
def inference_process(engine: ServingEngine, cpus: frozenset[int] | None = None) -> Iterator[RemoteBackend]:
    """Run ``engine``'s forward passes in a child process for the duration of the block; the child
    is stopped on every exit path (and exits by itself if this process dies: its pipe closes).
    With ``cpus``, the child runs on those CPUs only and this process on the others."""
    if engine.device.type != "cpu":
        raise SkipswitchError(f"a separate inference process needs device cpu (a {engine.device.type} context "
                              "does not survive fork); serve with --inference thread")
    local = engine.backend
    before = frozenset(os.sched_getaffinity(0)) if cpus else None
    remote = RemoteBackend(local, engine.subnets, cpus)
    engine.backend = remote
    try:
        if before:  # this process (HTTP loop, scheduler) keeps off the inference CPUs while the child runs
            pin_threads(before - cpus)
        yield remote
    finally:
        engine.backend = local
        remote.close()
        if before:
            pin_threads(before)
