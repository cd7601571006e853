"""Open-loop load generator (raw asyncio keep-alive HTTP connections) for the serving endpoint.

Arrivals follow a trace fixed in advance - Poisson, bursty (a two-rate modulated Poisson
process with the same mean rate), a linear ramp, an Azure-Functions-like trace (see
``azure_rates``) or a file of arrival times - and each request is sent at
its time whatever the state of earlier ones (open loop), so queueing shows up as latency
and rejections rather than as a slower sender. Loopback only, bounded in count and time.
"""

from __future__ import annotations

import asyncio
import ipaddress
import json
import math
import statistics
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from ..errors import SkipswitchError

MAX_REQUESTS = 1_000_000  # 60 s at over 16,000 req/s; a record is a few hundred bytes
MAX_DURATION_S = 3600.0
TRACES = ("poisson", "bursty", "ramp", "azure")
def is_loopback_host(host: str) -> bool:
    """Whether ``host`` (a name or an address, IPv6 with or without brackets) is this machine's loopback:
    ``localhost`` or any address in 127.0.0.0/8 or ::1. `serve` warns beyond it; the load generator refuses."""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def check_loopback(url: str) -> str:
    """``url`` if its host is a loopback address, else a SkipswitchError (never load a remote host)."""
    import httpx

    try:
        host = httpx.URL(url).host
    except Exception:
        raise SkipswitchError(f"invalid URL {url!r}") from None
    if not host:
        raise SkipswitchError(f"URL {url!r} has no host")
    if not is_loopback_host(host):
        raise SkipswitchError(f"refusing to load non-loopback host {host!r}; the load generator targets 127.0.0.1 only")
    return url


def make_trace(kind: str, rate: float, duration: float, seed: int = 0, *, burst_factor: float = 4.0,
               burst_fraction: float = 0.2, period: float = 1.0) -> list[float]:
    """Arrival offsets in seconds in ``[0, duration)``.

    ``bursty``: each ``period`` starts with a burst of ``burst_fraction * period`` seconds at
    ``burst_factor * rate``; the rest runs at the rate that keeps the mean at ``rate``.
    ``ramp``: the rate grows linearly from 0.25x to 1.75x ``rate`` over the trace (load that
    crosses capacity mid-run). ``azure``: per-``period`` rates from ``azure_rates``."""
    if not (rate > 0 and math.isfinite(rate)):
        raise SkipswitchError(f"--rate must be a positive number, got {rate}")
    if not (0 < duration <= MAX_DURATION_S):
        raise SkipswitchError(f"--duration must be in (0, {MAX_DURATION_S:g}] seconds, got {duration}")
    if rate * duration > MAX_REQUESTS:
        raise SkipswitchError(f"rate {rate:g}/s for {duration:g} s is about {rate * duration:,.0f} requests, "
                              f"more than the limit {MAX_REQUESTS:,}")
    rng = np.random.default_rng(seed)
    if kind == "poisson":
        return _poisson(rng, lambda t: rate, rate, duration)
    if kind == "bursty":
        if not (0 < burst_fraction < 1) or burst_factor * burst_fraction > 1 + 1e-9 or burst_factor < 1:
            raise SkipswitchError(f"bursty trace needs 0 < burst_fraction < 1 and 1 <= burst_factor <= "
                                  f"1 / burst_fraction, got {burst_factor} and {burst_fraction}")
        high = rate * burst_factor
        low = rate * (1 - burst_factor * burst_fraction) / (1 - burst_fraction)

        def rate_at(t: float) -> float:
            return high if (t % period) < burst_fraction * period else low

        return _poisson(rng, rate_at, high, duration)
    if kind == "ramp":
        return _poisson(rng, lambda t: rate * (0.25 + 1.5 * t / duration), 1.75 * rate, duration)
    if kind == "azure":
        windows = azure_rates(rng, rate, math.ceil(duration / period))
        return _poisson(rng, lambda t: windows[int(t // period)], float(windows.max()), duration)
    raise SkipswitchError(f"unknown trace {kind!r}; choose {', '.join(TRACES)} or a file of arrival times")


def azure_rates(rng: np.random.Generator, rate: float, windows: int, functions: int = 50,
                decades: float = 8.0, shape: float = 0.5) -> np.ndarray:
    """Per-window aggregate rates (mean ``rate``) shaped like Azure Functions' invocations.

    Shahrad et al., "Serverless in the Wild" (USENIX ATC'20, arXiv 2003.03423, section 3)
    publish per-minute invocation counts per function and report that invocation frequencies
    span 8 orders of magnitude across functions, most functions being invoked rarely. We
    synthesise, not copy: ``functions`` sources with popularity log-uniform over ``decades``
    orders of magnitude (so a few dominate, as there), each with an independent Gamma(shape)
    multiplier per window (coefficient of variation 1/sqrt(shape) = 1.41 at 0.5), one window
    standing for one of the trace's minutes. ``functions``, ``decades`` and ``shape`` are our
    choices, not fitted to the data."""
    popularity = 10.0 ** rng.uniform(0.0, decades, functions)
    bursts = rng.gamma(shape, 1.0 / shape, (windows, functions))
    total = bursts @ (popularity / popularity.sum())
    return rate * total / total.mean()


def _poisson(rng: np.random.Generator, rate_at, peak: float, duration: float) -> list[float]:
    # Thinning (Lewis-Shedler): candidates at the peak rate, kept with probability rate(t)/peak.
    out, t = [], 0.0
    while True:
        t += rng.exponential(1.0 / peak)
        if t >= duration:
            return out
        if rng.random() < rate_at(t) / peak:
            out.append(t)


def read_trace(path: str | Path, duration: float | None = None) -> list[float]:
    """Arrival times (seconds from the start) from a JSON list or one number per line."""
    path = Path(path)
    if not path.is_file():
        raise SkipswitchError(f"trace file {path} not found (or pass --trace poisson|bursty)")
    text = path.read_text()
    try:
        values = json.loads(text) if text.lstrip().startswith("[") else [float(v) for v in text.split()]
        values = [float(v) for v in values]
    except (ValueError, TypeError):
        raise SkipswitchError(f"trace file {path} must hold arrival times in seconds (a JSON list or one per line)") from None
    if not values:
        raise SkipswitchError(f"trace file {path} holds no arrival times")
    if any(not math.isfinite(v) or v < 0 for v in values) or any(b < a for a, b in zip(values, values[1:])):
        raise SkipswitchError(f"trace file {path}: arrival times must be finite, non-negative and non-decreasing")
    if duration is not None:
        values = [v for v in values if v < duration]
    if len(values) > MAX_REQUESTS or (values and values[-1] > MAX_DURATION_S):
        raise SkipswitchError(f"trace file {path} exceeds the limits ({MAX_REQUESTS:,} requests, {MAX_DURATION_S:g} s)")
    return values


@dataclass
class LoadReport:
    trace: str
    sent: int
    ok: int
    rejected: int  # 503 queue full / draining
    shed: int  # 503 deadline cannot be met
    errors: int  # anything else (422, 500, connection errors)
    deadline_ms: float | None
    slo_attainment: float  # answered 200 within the deadline (client-side), over all sent
    served_accuracy: float | None  # mean profiled accuracy of the subnets that answered
    measured_accuracy: float | None  # top-1 of the answers against the dataset labels
    p50_ms: float | None
    p99_ms: float | None
    throughput: float  # 200 answers per second of wall time
    goodput: float  # 200 answers within the deadline per second
    wall_s: float
    send_lag_p99_ms: float | None = None  # how late the generator sent (p99 against the trace's times)
    # p99 of the server's own latency of the 200 answers (its arrival stamp to outputs ready, from their
    # bodies): the part of p99_ms that the server's clock and policy see
    server_p99_ms: float | None = None
    subnets: dict[str, int] = field(default_factory=dict)
    error_reasons: dict[str, int] = field(default_factory=dict)  # the server's (or the connection's) words

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def summary(self) -> str:
        fmt = lambda v, spec: "n/a" if v is None else format(v, spec)  # noqa: E731
        return (f"{self.trace}: sent {self.sent}  ok {self.ok}  rejected {self.rejected}  shed {self.shed}  "
                f"errors {self.errors}  SLO attainment {self.slo_attainment:.3f}  "
                f"served accuracy {fmt(self.served_accuracy, '.4f')}  measured {fmt(self.measured_accuracy, '.4f')}  "
                f"p50 {fmt(self.p50_ms, '.2f')} ms  p99 {fmt(self.p99_ms, '.2f')} ms "
                f"(server's own {fmt(self.server_p99_ms, '.2f')} ms)  "
                f"throughput {self.throughput:.1f}/s  subnets {self.subnets}"
                + "".join(f"\n  {n} x {reason}" for reason, n in self.error_reasons.items()))


def percentile(values: Sequence[float], q: float) -> float | None:
    return float(np.percentile(np.asarray(values), q)) if values else None


def auth_headers() -> dict[str, str]:
    """The bearer token the server wants (``SKIPSWITCH_TOKEN``), if any."""
    import os

    token = os.environ.get("SKIPSWITCH_TOKEN")
    return {"Authorization": f"Bearer {token}"} if token else {}


class KeepAlivePool:
    """At most ``size`` keep-alive HTTP/1.1 connections over raw asyncio streams. A request takes an
    idle connection (or opens one while under ``size``, else waits); the lean path (one pre-encoded
    request, a Content-Length response) keeps the generator's own cost per request small, so it can
    drive the server well past its capacity without becoming the bottleneck."""

    def __init__(self, host: str, port: int, size: int = 256):
        self.host, self.port, self.size = host, port, size
        self.idle: list[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = []
        self.opened = 0
        self.freed = asyncio.Condition()

    async def _take(self, fresh: bool = False):
        """(connection, whether it was kept alive from an earlier request)."""
        if self.idle and not fresh:  # the common case, without the lock (nothing else runs until an await)
            return self.idle.pop(), True
        async with self.freed:
            while not fresh and not self.idle and self.opened >= self.size:
                await self.freed.wait()
            if self.idle and not fresh:
                return self.idle.pop(), True
            self.opened += 1
        try:
            return await asyncio.open_connection(self.host, self.port), False
        except BaseException:
            await self._drop(None)
            raise

    async def _give(self, conn) -> None:
        self.idle.append(conn)
        if self.opened >= self.size:  # only then can a request be waiting for a connection
            async with self.freed:
                self.freed.notify()

    async def _drop(self, conn) -> None:
        if conn is not None:
            conn[1].close()
        async with self.freed:
            self.opened -= 1
            self.freed.notify()

    async def request(self, raw: bytes, fresh: bool = False) -> tuple[int, bytes]:
        """Send one pre-encoded request; (status, body) of the answer. A kept-alive connection the
        server closed meanwhile (its idle timeout) is replaced and the request sent again, once."""
        conn, reused = await self._take(fresh)
        reader, writer = conn
        try:
            writer.write(raw)
            head = await reader.readuntil(b"\r\n\r\n")  # status line and headers in one read
        except (ConnectionError, asyncio.IncompleteReadError) as exc:
            await self._drop(conn)
            if reused and not getattr(exc, "partial", b""):
                return await self.request(raw, fresh=True)
            if isinstance(exc, asyncio.IncompleteReadError) and not exc.partial:
                raise ConnectionResetError("the server closed the connection") from None
            raise
        except BaseException:
            await self._drop(conn)
            raise
        try:
            lines = head.split(b"\r\n")
            status, length, close = int(lines[0].split()[1]), 0, False
            for line in lines[1:]:
                name, _, value = line.partition(b":")
                name = name.strip().lower()
                if name == b"content-length":
                    length = int(value)
                elif name == b"connection" and value.strip().lower() == b"close":
                    close = True
            body = await reader.readexactly(length)
        except BaseException:
            await self._drop(conn)
            raise
        await (self._drop(conn) if close else self._give(conn))
        return status, body

    async def close(self) -> None:
        for _, writer in self.idle:
            writer.close()
        self.idle.clear()


def encode_post(host: str, path: str, payload: dict[str, Any], headers: dict[str, str] | None = None) -> bytes:
    body = json.dumps(payload, separators=(",", ":")).encode()
    head = {"Host": host, "Content-Type": "application/json", "Content-Length": str(len(body)), **(headers or {})}
    return (f"POST {path} HTTP/1.1\r\n" + "".join(f"{k}: {v}\r\n" for k, v in head.items()) + "\r\n").encode() + body


async def run_load(url: str, arrivals: Sequence[float], inputs: np.ndarray, labels: np.ndarray | None = None, *,
                   deadline_ms: float | None = 100.0, options: dict[str, Any] | None = None,
                   trace_name: str = "trace", timeout: float = 30.0, max_connections: int = 1024) -> LoadReport:
    """Send ``inputs[i % len]`` at ``arrivals[i]`` seconds; collect outcomes. Requests are encoded
    once per input before the clock starts and sent over a pool of keep-alive connections."""
    from urllib.parse import urlsplit

    check_loopback(url)
    if len(arrivals) > MAX_REQUESTS:
        raise SkipswitchError(f"{len(arrivals):,} arrivals exceed the limit {MAX_REQUESTS:,}")
    parts = urlsplit(url)
    extra = {k: v for k, v in (options or {}).items() if v is not None}
    if deadline_ms is not None:
        extra["deadline_ms"] = deadline_ms
    path = parts.path.rstrip("/") + "/v1/predict"
    raws = [encode_post(parts.netloc, path, {"inputs": [inputs[i].tolist()], **extra}, auth_headers())
            for i in range(min(len(inputs), len(arrivals)) or 1)]
    pool = KeepAlivePool(parts.hostname, parts.port or 80, max_connections)
    records: list[dict[str, Any]] = []

    async def one(i: int, due: float) -> None:
        sent = time.perf_counter()
        record: dict[str, Any] = {"index": i, "lag_s": sent - due}
        try:
            async with asyncio.timeout(timeout):  # unlike wait_for, no second task per request
                record["status"], raw = await pool.request(raws[i % len(raws)])
            body = json.loads(raw) if raw else {}
        except (OSError, asyncio.TimeoutError, asyncio.IncompleteReadError, ValueError, IndexError) as exc:
            record["status"], body = None, {"error": f"{type(exc).__name__}: {exc}"}
        record["latency_s"] = time.perf_counter() - sent
        record["body"] = {k: body[k] for k in REPORTED if k in body}  # not the logits: a long run holds many
        records.append(record)

    # One task per request, created at its arrival time (not all up front: a long run holds up to
    # MAX_REQUESTS, and one timer at a time keeps the generator's own cost per request low).
    start, running = time.perf_counter() + 0.05, set()
    try:
        for i, at in enumerate(arrivals):
            delay = start + at - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            task = asyncio.create_task(one(i, start + at))
            running.add(task)
            task.add_done_callback(running.discard)
        await asyncio.gather(*running)
    finally:
        for task in running:
            task.cancel()
        await pool.close()
    wall = max(time.perf_counter() - start, 1e-9)
    return build_report(records, labels, deadline_ms, trace_name, wall)


REPORTED = ("subnet", "accuracy", "predictions", "latency_ms", "reason", "error")  # the answer fields a LoadReport reads


def build_report(records: list[dict[str, Any]], labels: np.ndarray | None, deadline_ms: float | None,
                 trace_name: str, wall: float) -> LoadReport:
    """Summarise per-request records (index, status, latency_s, body) into a LoadReport."""
    ok = [r for r in records if r["status"] == 200]
    deadline_s = None if deadline_ms is None else deadline_ms / 1e3
    on_time = [r for r in ok if deadline_s is None or r["latency_s"] <= deadline_s]
    subnets: dict[str, int] = {}
    for r in ok:
        subnets[r["body"].get("subnet", "?")] = subnets.get(r["body"].get("subnet", "?"), 0) + 1
    correct = None
    if labels is not None and ok:
        correct = statistics.fmean(float(r["body"]["predictions"][0] == int(labels[r["index"] % len(labels)]))
                                   for r in ok)
    latencies = [r["latency_s"] * 1e3 for r in ok]
    reasons = [r["body"].get("reason") for r in records if r["status"] == 503]
    errors: dict[str, int] = {}
    for r in records:
        if r["status"] not in (200, 503):
            reason = f"{r['status'] or 'no answer'}: {r['body'].get('error', '?')}"
            errors[reason] = errors.get(reason, 0) + 1
    return LoadReport(
        trace=trace_name, sent=len(records), ok=len(ok), rejected=sum(x != "shed" for x in reasons),
        shed=sum(x == "shed" for x in reasons), errors=sum(r["status"] not in (200, 503) for r in records),
        deadline_ms=deadline_ms, slo_attainment=len(on_time) / len(records) if records else 0.0,
        served_accuracy=statistics.fmean(r["body"]["accuracy"] for r in ok) if ok else None,
        measured_accuracy=correct, p50_ms=percentile(latencies, 50), p99_ms=percentile(latencies, 99),
        throughput=len(ok) / wall, goodput=len(on_time) / wall, wall_s=wall,
        send_lag_p99_ms=percentile([r["lag_s"] * 1e3 for r in records if "lag_s" in r], 99),
        server_p99_ms=percentile([r["body"]["latency_ms"] for r in ok if "latency_ms" in r["body"]], 99),
        subnets=dict(sorted(subnets.items())),
        error_reasons=dict(sorted(errors.items(), key=lambda kv: -kv[1])[:5]),
    )


def load_inputs(url: str, dataset: str = "digits", seed: int = 0) -> tuple[np.ndarray, np.ndarray | None]:
    """Test-split inputs (and labels) of ``dataset`` when they fit the served input shape,
    else random inputs of that shape without labels."""
    import httpx

    from ..data import load_dataset

    check_loopback(url)
    try:
        answer = httpx.get(f"{url.rstrip('/')}/v1/subnets", timeout=10, headers=auth_headers())
        info = answer.json()
    except (httpx.HTTPError, json.JSONDecodeError) as exc:
        raise SkipswitchError(f"no skipswitch server answers at {url} ({exc})") from None
    if answer.status_code != 200:
        raise SkipswitchError(f"{url}/v1/subnets answered {answer.status_code}: {info.get('error', answer.text[:200])}")
    shape = tuple(info["input_shape"])
    ds = load_dataset(dataset, seed=seed)
    x, y = ds.test.images.numpy(), ds.test.labels.numpy()
    if tuple(x.shape[1:]) == shape:
        return x, y
    return np.random.default_rng(seed).standard_normal((256, *shape)).astype(np.float32), None


def replay(scheduler, arrivals: Sequence[float], inputs: np.ndarray, labels: np.ndarray | None = None, *,
           deadline_ms: float | None = 100.0, trace_name: str = "trace", timeout: float = 120.0) -> LoadReport:
    """The same open-loop trace submitted straight to a running ``Scheduler`` (no HTTP): isolates
    switching and policy from HTTP and client overhead. Statuses mirror the server's answers."""
    import threading

    import torch

    from .scheduler import QueueFull, Result, Shed, ShuttingDown

    if len(arrivals) > MAX_REQUESTS:
        raise SkipswitchError(f"{len(arrivals):,} arrivals exceed the limit {MAX_REQUESTS:,}")
    tensors = [torch.from_numpy(np.ascontiguousarray(inputs[i:i + 1], dtype=np.float32)) for i in range(len(inputs))]
    records: list[dict[str, Any]] = []
    pending = threading.Semaphore(0)
    expected = 0
    start = time.perf_counter() + 0.01
    for i, at in enumerate(arrivals):
        delay = start + at - time.perf_counter()
        if delay > 0:
            time.sleep(delay)
        sent = time.perf_counter()
        record = {"index": i}

        def done(outcome, record=record, sent=sent):
            record["latency_s"] = time.perf_counter() - sent
            if isinstance(outcome, Result):
                record["status"] = 200
                record["body"] = {"subnet": outcome.subnet, "accuracy": outcome.accuracy,
                                  "predictions": outcome.outputs.argmax(1).tolist()}
            else:
                record["status"] = 503 if isinstance(outcome, (Shed, ShuttingDown)) else 500
                record["body"] = {"reason": "shed" if isinstance(outcome, Shed) else "error"}
            records.append(record)
            pending.release()

        try:
            scheduler.submit(tensors[i % len(tensors)], deadline_ms=deadline_ms, done=done)
            expected += 1
        except QueueFull:
            records.append({**record, "status": 503, "latency_s": 0.0, "body": {"reason": "queue_full"}})
    for _ in range(expected):
        if not pending.acquire(timeout=timeout):
            raise SkipswitchError("replay timed out waiting for the scheduler")
    wall = max(time.perf_counter() - start, 1e-9)
    records.sort(key=lambda r: r["index"])
    return build_report(records, labels, deadline_ms, trace_name, wall)
