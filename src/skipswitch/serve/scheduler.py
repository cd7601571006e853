"""The request queue and the one worker thread that runs the engine.

``submit`` validates a request and puts it on a bounded queue (``QueueFull`` when it is
full, ``ShuttingDown`` after ``stop``); the worker asks the policy for the next batch,
runs it as one forward (dynamic batching) and hands every request its ``Result`` (or its
shed/error exception) through the request's ``done`` callback. ``stop(drain=True)``
refuses new requests and returns once every accepted request has been answered.
"""

from __future__ import annotations

import itertools
import threading
import time
from dataclasses import dataclass
from typing import Any, Callable

import torch

from ..errors import SkipswitchError
from .engine import ServingEngine
from .metrics import BATCH_BUCKETS, LATENCY_BUCKETS, Metrics
from .policy import Policy, Request


class QueueFull(Exception):
    """The bounded queue is full: the server answers 503."""


class ShuttingDown(Exception):
    """The server is draining: the server answers 503."""


class Shed(Exception):
    """The policy dropped the request because its deadline cannot be met."""


@dataclass
class Result:
    outputs: torch.Tensor
    subnet: str
    accuracy: float
    queue_ms: float  # arrival -> batch start
    latency_ms: float  # arrival -> outputs ready
    batch_size: int
    deadline_met: bool | None


def serving_metrics(scheduler: "Scheduler") -> Metrics:
    m = Metrics()
    m.counter("requests_total", "Predict requests by outcome (ok, rejected: queue full or draining, shed, invalid, error).",
              ["outcome"])
    m.counter("served_total", "Requests served, by subnet.", ["subnet"])
    m.counter("switches_total", "Subnet switches performed by the engine.")
    m.counter("slo_misses_total", "Requests with a deadline that were served late or shed.")
    m.counter("batches_total", "Forward passes run (one per dynamic batch).")
    m.histogram("request_latency_seconds", "Arrival to outputs ready, by subnet.", LATENCY_BUCKETS, ["subnet"])
    m.histogram("switch_latency_seconds", "Time of one subnet switch.", LATENCY_BUCKETS)
    m.histogram("batch_size", "Examples per forward pass.", BATCH_BUCKETS)
    m.gauge("queue_depth", "Requests waiting in the queue.", lambda: len(scheduler.queue))
    m.gauge("resident_bytes", "Weight bytes resident for serving (mode-dependent).",
            lambda: scheduler.engine.resident_bytes())
    return m


@dataclass
class _Queued:
    """A batch sent to a pipelined backend: when it was expected to start and to end (the policy
    decides the next batch as of ``expected_end``)."""
    batch: list
    subnet: Any
    sizes: list[int]
    start: float
    expected_end: float
    switched: bool


class Scheduler:
    def __init__(self, engine: ServingEngine, policy: Policy, *, capacity: int = 256,
                 default_deadline_ms: float | None = None, metrics: Metrics | None = None):
        if capacity < 1:
            raise SkipswitchError(f"queue capacity must be positive, got {capacity}")
        if default_deadline_ms is not None and default_deadline_ms <= 0:
            raise SkipswitchError(f"default deadline must be positive, got {default_deadline_ms} ms")
        self.engine, self.policy, self.capacity = engine, policy, capacity
        self.default_deadline_ms = default_deadline_ms
        self.queue: list[Request] = []
        self.cond = threading.Condition()
        self.accepting = True
        self.in_flight = 0
        self.metrics = metrics or serving_metrics(self)
        self._ids = itertools.count()
        self._thread: threading.Thread | None = None
        self._stop = False

    # -- intake ----------------------------------------------------------------------------------
    def submit(self, x: torch.Tensor, *, subnet: str | None = None, accuracy_floor: float | None = None,
               deadline_ms: float | None = None, done: Callable[[Any], None] | None = None,
               arrival: float | None = None) -> Request:
        """Validate and enqueue; raises SkipswitchError (bad request), QueueFull or ShuttingDown.
        ``arrival`` (``time.monotonic()``, default now) starts the deadline clock: the server passes
        the moment the request reached it, so time spent in the HTTP layer counts."""
        arrival = time.monotonic() if arrival is None else arrival
        x = self.engine.check_input(x)
        if x.shape[0] > self.engine.max_batch:
            raise SkipswitchError(f"a request holds {x.shape[0]} examples, more than the largest batch "
                                  f"{self.engine.max_batch}")
        named = None
        if subnet is not None:
            named = self.engine.get(subnet)
            if accuracy_floor is not None:
                raise SkipswitchError("give either subnet or accuracy_floor, not both")
        if accuracy_floor is not None:
            if not 0 <= accuracy_floor <= 1:
                raise SkipswitchError(f"accuracy_floor={accuracy_floor} must be in [0, 1]")
            best = self.engine.largest.accuracy
            if accuracy_floor > best + 1e-12:
                raise SkipswitchError(f"accuracy_floor={accuracy_floor} is above the most accurate subnet "
                                      f"({self.engine.largest.name}: {best:.4f})")
        if deadline_ms is None:
            deadline_ms = self.default_deadline_ms
        elif not deadline_ms > 0:
            raise SkipswitchError(f"deadline_ms={deadline_ms} must be positive")
        deadline = None if deadline_ms is None else arrival + deadline_ms / 1e3
        with self.cond:
            if not self.accepting:
                raise ShuttingDown("server is shutting down; not accepting requests")
            if len(self.queue) >= self.capacity:
                raise QueueFull(f"queue full ({self.capacity} requests waiting); retry later")
            request = Request(next(self._ids), x, arrival, deadline, named, accuracy_floor, done)
            self.queue.append(request)
            self.cond.notify()
        return request

    # -- the worker ------------------------------------------------------------------------------
    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="skipswitch-serve-worker", daemon=True)
            self._thread.start()

    def stop(self, drain: bool = True, timeout: float = 30.0) -> None:
        """Stop accepting; with ``drain`` serve everything queued first, else shed it."""
        with self.cond:
            self.accepting = False
            if not drain:
                dropped, self.queue = self.queue, []
                for r in dropped:
                    self._finish(r, ShuttingDown("server stopped before this request was served"))
            self._stop = True
            self.cond.notify_all()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None

    def _run(self) -> None:
        pending = None  # a batch queued in a pipelined backend (the inference process), not yet collected
        while True:
            decision = None
            with self.cond:
                while not self.queue and not self._stop and pending is None:
                    self.cond.wait()
                if not self.queue and self._stop and pending is None:
                    return
                # With a batch in the inference process, decide the next one now only when a full batch
                # waits (the process then never idles for this thread's per-batch work); otherwise take
                # the outputs first, so that what arrives meanwhile joins the next batch.
                if pending is None or len(self.queue) >= self.engine.max_batch:
                    now = time.monotonic() if pending is None else max(time.monotonic(), pending.expected_end)
                    decision = self._decide(now)
                    if decision is not None:
                        taken = {id(r) for r in decision.batch} | {id(r) for r, _ in decision.shed}
                        self.queue = [r for r in self.queue if id(r) not in taken]
                        self.in_flight = len(decision.batch) + (len(pending.batch) if pending else 0)
            queued = None
            if decision is not None:
                for request, reason in decision.shed:
                    self.metrics.inc("slo_misses_total")
                    self._finish(request, Shed(reason))
                if decision.batch and self.engine.pipelined:
                    queued = self._submit(decision, after=pending)
                elif decision.batch:
                    self._serve(decision)
            if pending is not None:
                self._collect(pending)
            pending = queued
            with self.cond:
                self.in_flight = len(pending.batch) if pending else 0
                self.cond.notify_all()

    def _decide(self, now: float):
        """The policy's decision on the queue (called with the lock held); None if it failed or chose nothing."""
        try:
            decision = self.policy.decide(list(self.queue), now, self.engine)
        except Exception as exc:  # a broken policy must not kill the worker: fail the head
            self._finish(self.queue.pop(0), exc)
            return None
        if not decision.batch and not decision.shed:
            # A policy that picks nothing would spin forever: fail the oldest request.
            self._finish(self.queue.pop(0), SkipswitchError(f"policy {self.policy.name} chose no request"))
            return None
        return decision

    def _submit(self, decision, after: "_Queued | None") -> "_Queued | None":
        """Queue ``decision``'s batch in the pipelined backend; None (its requests failed) on an error."""
        batch, subnet = decision.batch, decision.subnet
        start = time.monotonic()
        switched = self.engine.active is not subnet
        try:
            sizes = self.engine.submit_many(subnet, [r.x for r in batch])
        except Exception as exc:
            for r in batch:
                self._finish(r, exc)
            return None
        begins = max(start, after.expected_end) if after else start  # the child runs batches in order
        expected = begins + subnet.latency_for(sum(sizes)) + (self.engine.switch_estimate if switched else 0.0)
        return _Queued(batch, subnet, sizes, begins, expected, switched)

    def _collect(self, queued: "_Queued") -> None:
        try:
            outputs, switch_s, forward_s = self.engine.collect_many(queued.sizes)
        except Exception as exc:  # the engine failed on this batch: every request in it gets the error
            for r in queued.batch:
                self._finish(r, exc)
            return
        if queued.switched:
            self.metrics.inc("switches_total")
            self.metrics.observe("switch_latency_seconds", switch_s)
        self._answer(queued.batch, queued.subnet, outputs, queued.start, time.monotonic(), forward_s)

    def _serve(self, decision) -> None:
        batch, subnet = decision.batch, decision.subnet
        start = time.monotonic()
        try:
            switched = self.engine.active is not subnet
            switch_s = self.engine.activate(subnet)
            if switched:
                self.metrics.inc("switches_total")
                self.metrics.observe("switch_latency_seconds", switch_s)
            forward_start = time.monotonic()
            outputs = self.engine.infer_many(subnet, [r.x for r in batch])
        except Exception as exc:  # the engine failed on this batch: every request in it gets the error
            for r in batch:
                self._finish(r, exc)
            return
        end = time.monotonic()
        self._answer(batch, subnet, outputs, start, end, end - forward_start)

    def _answer(self, batch, subnet, outputs, start: float, end: float, forward_s: float) -> None:
        examples = sum(r.size for r in batch)
        self.engine.observe(subnet, examples, forward_s)
        self.metrics.inc("batches_total")
        self.metrics.observe("batch_size", examples)
        for r, out in zip(batch, outputs):
            met = None if r.deadline is None else end <= r.deadline
            if met is False:
                self.metrics.inc("slo_misses_total")
            self.metrics.inc("served_total", subnet=subnet.name)
            self.metrics.observe("request_latency_seconds", end - r.arrival, subnet=subnet.name)
            self._finish(r, Result(out, subnet.name, subnet.accuracy, (start - r.arrival) * 1e3,
                                   (end - r.arrival) * 1e3, examples, met))

    def _finish(self, request: Request, outcome: Any) -> None:
        if request.done is not None:
            try:
                request.done(outcome)
            except Exception:  # a client that went away must not stop the worker
                pass
