"""HTTP front end (FastAPI): predict, subnets, health, Prometheus metrics.

``POST /v1/predict`` takes either JSON ``{"inputs": [...], "subnet"?, "accuracy_floor"?,
"deadline_ms"?}`` or a ``.npy`` body (``Content-Type: application/x-npy`` or
``application/octet-stream``) with the same options as query parameters. Answers:
200 with logits, predictions and the subnet that served; 422 ``{"error": one line}`` for
a malformed body; 503 ``{"error", "reason"}`` when the queue is full, the server is
draining, or the policy shed the request because its deadline cannot be met.
"""

from __future__ import annotations

import asyncio
import hmac
import io
import math
import time
from contextlib import asynccontextmanager, contextmanager
from functools import partial
from typing import Any, Callable, Optional, Union

import numpy as np
import torch
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, PlainTextResponse
from pydantic import BaseModel, ConfigDict, Field, StrictFloat, StrictInt, ValidationError, field_validator, model_validator
from typing_extensions import TypeAliasType

from ..io import validation_line
from ..errors import SkipswitchError
from .engine import ServingEngine
from .metrics import CONTENT_TYPE
from .policy import Policy
from .scheduler import QueueFull, Result, Scheduler, Shed, ShuttingDown

NPY_TYPES = ("application/x-npy", "application/octet-stream", "application/npy")
MAX_BODY_BYTES = 16 * 1024 * 1024
PREDICT_PATH = "/v1/predict"
MAX_BUFFERED_BYTES = 4 * MAX_BODY_BYTES  # request bodies held at once, all uploads together

# One example or a batch: nested lists of numbers. Strict, so a JSON true/false is refused, not read as 1/0.
Numbers = TypeAliasType("Numbers", Union[StrictFloat, StrictInt, list["Numbers"]])


class Refused(SkipswitchError):
    """A request refused with an HTTP status other than 422 (413 too large, 415 media type)."""

    def __init__(self, status: int, reason: str, message: str):
        super().__init__(message)
        self.status, self.reason = status, reason


class PredictOptions(BaseModel):
    """How to serve a request; the query parameters of a ``.npy`` body."""

    model_config = ConfigDict(extra="forbid")
    subnet: Optional[str] = None
    accuracy_floor: Optional[float] = Field(None, allow_inf_nan=False)
    deadline_ms: Optional[float] = Field(None, allow_inf_nan=False)

    @field_validator("accuracy_floor", "deadline_ms", mode="before")
    @classmethod
    def _not_bool(cls, value: Any) -> Any:
        if isinstance(value, bool):  # lax float would take true as 1.0
            raise ValueError("must be a number, not a boolean")
        return value

    @model_validator(mode="after")
    def _one_choice(self) -> "PredictOptions":
        if self.subnet is not None and self.accuracy_floor is not None:
            raise ValueError("give either subnet or accuracy_floor, not both")
        return self


class PredictRequest(PredictOptions):
    """The JSON body of ``POST /v1/predict``."""

    inputs: list[Numbers] = Field(description="One example or a batch: nested lists of numbers of one rectangular shape.")


def _error(status: int, message: str, reason: str | None = None, headers: dict | None = None) -> JSONResponse:
    body = {"error": " ".join(str(message).split())}  # always one line
    if reason:
        body["reason"] = reason
    return JSONResponse(body, status_code=status, headers=headers)


def _refusal(metrics, status: int, reason: str, message: str, headers: dict | None = None) -> JSONResponse:
    """A refused request's answer (401, 413, 415, 503), counted in ``refusals_total{status, reason}``."""
    metrics.inc("refusals_total", status=str(status), reason=reason)
    return _error(status, message, reason, headers)


def _validated(model: type[PredictOptions], data: dict[str, Any] | bytes) -> PredictOptions:
    """``model`` from a dict or JSON bytes; a problem is one SkipswitchError line."""
    try:
        return model.model_validate_json(data) if isinstance(data, bytes) else model.model_validate(data)
    except ValidationError as exc:
        errors = exc.errors()
        unknown = [str(e["loc"][-1]) for e in errors if e["type"] == "extra_forbidden"]
        if unknown:
            raise SkipswitchError(f"unknown field(s) {unknown}; allowed: {', '.join(model.model_fields)}") from None
        if errors[0]["type"] == "json_invalid":
            raise SkipswitchError(f"body is not valid JSON ({errors[0]['ctx']['error']})") from None
        if errors[0]["type"] == "model_type":
            raise SkipswitchError("JSON body must be an object with an 'inputs' field") from None
        if errors[0]["loc"][:1] == ("inputs",):
            raise SkipswitchError("'inputs' must be nested lists of numbers (not booleans, strings or null)") from None
        raise SkipswitchError(validation_line(exc)) from None
    except (ValueError, RecursionError) as exc:  # e.g. an integer beyond Python's digit limit
        raise SkipswitchError(f"unreadable request ({type(exc).__name__})") from None


def _tensor(array: Any, what: str) -> torch.Tensor:
    try:
        with np.errstate(over="ignore"):  # beyond float32 becomes inf, refused by the engine's check
            array = np.asarray(array, dtype=np.float32)
    except (TypeError, ValueError, OverflowError, RecursionError):
        raise SkipswitchError(f"{what} must be a (nested) list of numbers of one rectangular shape") from None
    if array.size == 0:
        raise SkipswitchError(f"{what} holds no examples")
    return torch.from_numpy(np.require(array, requirements=["C", "W"]))  # a read-only body buffer is copied


def _npy_array(body: bytes) -> np.ndarray:
    """The array of a ``.npy`` body, its header checked against the body size before any allocation
    (np.load would allocate whatever shape the client's header declares)."""
    from numpy.lib import format as npy

    f = io.BytesIO(body)
    try:
        version = npy.read_magic(f)
        if version not in ((1, 0), (2, 0)):
            raise ValueError(f"version {version} is not supported")
        shape, fortran, dtype = (npy.read_array_header_1_0 if version == (1, 0) else npy.read_array_header_2_0)(f)
        if any(d < 0 for d in shape):
            raise ValueError(f"negative dimension in shape {shape}")
    except (ValueError, EOFError, OSError, SyntaxError, TypeError) as exc:
        raise SkipswitchError(f"body is not a valid .npy array ({str(exc).splitlines()[0] if str(exc) else 'unreadable'})") from None
    if dtype.hasobject or not np.issubdtype(dtype, np.number) or np.issubdtype(dtype, np.complexfloating):
        raise SkipswitchError(f".npy array has dtype {dtype}; a real numeric dtype is required")
    count = math.prod(shape)
    declared, held = count * dtype.itemsize, len(body) - f.tell()
    if declared > MAX_BODY_BYTES:
        raise Refused(413, "too_large", f".npy header declares shape {shape} of {dtype} ({declared:,} bytes), over the limit of "
                           f"{MAX_BODY_BYTES:,}")
    if declared != held:
        raise SkipswitchError(f".npy header declares shape {shape} of {dtype} ({declared:,} bytes) but the body holds "
                              f"{held:,}")
    return np.frombuffer(body, dtype=dtype, count=count, offset=f.tell()).reshape(shape, order="F" if fortran else "C")


def subnets_info(engine: ServingEngine) -> dict[str, Any]:
    """The answer of ``GET /v1/subnets``: what is served and in which input shape (the load generator reads it)."""
    info = engine.to_dict()
    return {"mode": info["mode"], "device": info["device"], "input_shape": info["input_shape"],
            "max_batch": info["max_batch"], "memory": info["memory"], "subnets": info["subnets"]}


def parse_predict(body: bytes, content_type: str, query: dict[str, str]) -> tuple[torch.Tensor, dict[str, Any]]:
    """(inputs, options) from a request body; any problem is a one-line SkipswitchError."""
    if len(body) > MAX_BODY_BYTES:
        raise Refused(413, "too_large", f"request body of {len(body)} bytes exceeds {MAX_BODY_BYTES}")
    media = content_type.split(";")[0].strip().lower()
    if media in NPY_TYPES:
        options = _validated(PredictOptions, query)
        x = _tensor(_npy_array(body), ".npy array")
    elif media == "application/json":
        options = _validated(PredictRequest, body)
        x = _tensor(options.inputs, "'inputs'")
    else:
        raise Refused(415, "media_type", f"unsupported Content-Type {media or '(none)'!r}; send application/json or application/x-npy")
    return x, options.model_dump(include=set(PredictOptions.model_fields))


class Intake:
    """The ASGI front of the app, ahead of FastAPI's own middleware, routing and parsing. It stamps each
    request's arrival (the deadline clock starts here, not when the handler runs), answers ``/health`` itself (never queued
    behind inference), checks the bearer token, and reads a predict body only while it stays under
    ``MAX_BODY_BYTES`` (413 from Content-Length before reading, or as soon as a streamed body passes
    it), with at most ``MAX_BUFFERED_BYTES`` of bodies held at once (503 "busy" beyond: many large
    concurrent uploads wait their turn; small requests never meet this cap).

    Admission before parsing (503 "queue_full", a prepared answer): a predict is refused while the queue is
    full, or when more arrive than the engine serves: a token bucket holding up to the queue bound, refilled
    at the active subnet's current rate (max batch / its profiled batch latency, which the scheduler keeps
    up to date). Without the bucket, under overload the policy sheds queued requests it cannot serve in
    time, which frees queue slots for more requests that are parsed only to be shed: parsing, not
    inference, then takes the CPU."""

    def __init__(self, app, health: Callable[[], dict], scheduler: Scheduler, token: str | None = None):
        self.app, self.health, self.scheduler, self.token = app, health, scheduler, token
        self.metrics = scheduler.metrics
        # Built once and sent as is: under overload most requests get this answer, so it must cost little
        # (its counters are bound once too: a labelled counter's lookup costs as much as the rest of the refusal).
        self.queue_full = _error(503, f"queue full ({scheduler.capacity} requests waiting); retry later", "queue_full")
        self.rejected = (self.metrics.series("requests_total", outcome="rejected"),
                         self.metrics.series("refusals_total", status="503", reason="queue_full"))
        self.buffered = 0
        self.tokens, self.refilled = float(scheduler.capacity), time.monotonic()

    def admit(self, now: float) -> bool:
        """Whether a predict arriving ``now`` may be read and parsed (see the class)."""
        scheduler, engine = self.scheduler, self.scheduler.engine
        batch_s = (engine.active or engine.largest).latency_for(engine.max_batch)
        rate = engine.max_batch / batch_s if batch_s > 0 else math.inf
        self.tokens = min(float(scheduler.capacity), self.tokens + (now - self.refilled) * rate)
        self.refilled = now
        if len(scheduler.queue) >= scheduler.capacity or self.tokens < 1:
            return False
        self.tokens -= 1
        return True

    def authorized(self, headers) -> bool:
        """Whether ``headers`` (lower-case names) carry the bearer token, if one is required."""
        return self.token is None or hmac.compare_digest(
            dict(headers).get(b"authorization", b""), f"Bearer {self.token}".encode())

    def count_rejected(self) -> None:
        for counter in self.rejected:
            counter.inc()

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        # Time a request waited unread in the socket is not counted; subtracting the event loop's measured
        # lag was tried and showed no clear gain on the shared machine (reliability.md), so it was dropped.
        # The connection's protocol (``intake_protocol``) may have admitted it already, stamped when its
        # first bytes were parsed.
        admitted = scope.get("state", {}).get(ADMITTED)
        arrival = time.monotonic() if admitted is None else admitted
        if scope["path"] == "/health":
            return await JSONResponse(self.health())(scope, receive, send)
        if admitted is None and not self.authorized(scope["headers"]):  # the protocol admits only with the token
            return await _refusal(self.metrics, 401, "unauthorized", "missing or wrong bearer token "
                                  "(Authorization: Bearer <token>)", {"WWW-Authenticate": "Bearer"})(scope, receive, send)
        if scope["path"] != PREDICT_PATH or scope["method"] != "POST":
            return await self.app(scope, receive, send)
        if admitted is None and not self.admit(arrival):  # cheap shedding: before the headers are decoded or the body read
            self.count_rejected()
            return await self.queue_full(scope, receive, send)
        length = dict(scope["headers"]).get(b"content-length", b"").decode("latin-1")
        if length.isdigit() and int(length) > MAX_BODY_BYTES:
            return await _refusal(self.metrics, 413, "too_large",
                                  f"request body of {length} bytes exceeds {MAX_BODY_BYTES}")(scope, receive, send)
        body = bytearray()
        try:
            while True:
                message = await receive()
                if message["type"] == "http.disconnect":
                    return
                chunk = message.get("body", b"")
                if len(body) + len(chunk) > MAX_BODY_BYTES:
                    return await _refusal(self.metrics, 413, "too_large",
                                          f"request body exceeds {MAX_BODY_BYTES} bytes")(scope, receive, send)
                if self.buffered + len(chunk) > MAX_BUFFERED_BYTES:
                    return await _refusal(self.metrics, 503, "busy",
                                          "too many uploads in progress; retry later")(scope, receive, send)
                body += chunk
                self.buffered += len(chunk)
                if not message.get("more_body"):
                    break
        finally:
            self.buffered -= len(body)
        scope.setdefault("state", {}).update(arrival=arrival, body=bytes(body))
        await self.app(scope, receive, send)


ADMITTED = "skipswitch.admitted"  # scope state: the arrival stamp of a request the protocol admitted


class _NoWaiter:
    """A refused request's cycle has no ASGI task waiting on its event (uvicorn sets it on disconnect)."""

    def set(self) -> None:
        pass


def intake_protocol(intake: Intake) -> type | str:
    """uvicorn's httptools protocol with ``Intake``'s admission moved ahead of the request cycle.

    Under overload most predicts are refused; through ASGI each refusal still costs uvicorn's request
    cycle, an asyncio task and the response's ASGI messages (~25 us of loop time on this machine, against
    ~10 us here: docs/results/reliability.md). Here a predict is stamped when its first bytes are parsed,
    and when its headers are complete a refusal is written straight to the socket; the body that follows
    is discarded by the parser, and the connection stays usable. Everything else, and any request this
    path does not take (a pipelined one, ``Expect: 100-continue``, a connection that closes, a missing
    or wrong token: Intake answers those), goes through uvicorn and Intake as before. Without httptools,
    or with a uvicorn whose internals differ, "auto": Intake alone admits."""
    import inspect

    try:
        from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol, RequestResponseCycle
    except ImportError:
        return "auto"
    expected = {"scope", "transport", "flow", "logger", "access_logger", "access_log", "default_headers",
                "message_event", "expect_100_continue", "keep_alive", "on_response"}
    if set(inspect.signature(RequestResponseCycle).parameters) != expected:
        return "auto"
    refusal = intake.queue_full
    answer = (b"HTTP/1.1 503 Service Unavailable\r\n"
              + b"".join(k + b": " + v + b"\r\n" for k, v in refusal.raw_headers) + b"\r\n" + refusal.body)
    no_waiter, predict_path = _NoWaiter(), PREDICT_PATH.encode()

    class IntakeProtocol(HttpToolsProtocol):
        arrival = 0.0

        def on_message_begin(self) -> None:
            self.arrival = time.monotonic()
            super().on_message_begin()

        def on_headers_complete(self) -> None:
            if (self.parser.get_method() == b"POST" and self.url.partition(b"?")[0] == predict_path
                    and not self.expect_100_continue and self.parser.should_keep_alive()
                    and (self.cycle is None or self.cycle.response_complete) and intake.authorized(self.headers)):
                if intake.admit(self.arrival):
                    self.scope["state"][ADMITTED] = self.arrival
                else:
                    intake.count_rejected()
                    cycle = RequestResponseCycle(
                        scope=self.scope, transport=self.transport, flow=self.flow, logger=self.logger,
                        access_logger=self.access_logger, access_log=False, default_headers=[],
                        message_event=no_waiter, expect_100_continue=False, keep_alive=True,
                        on_response=self.on_response_complete)
                    cycle.response_started = cycle.response_complete = True  # the parser drops its body
                    self.cycle = cycle
                    self.transport.write(answer)
                    self.on_response_complete()
                    return
            super().on_headers_complete()

    return IntakeProtocol


class ServingApp(FastAPI):
    """The FastAPI app with ``Intake`` in front of all of it: a refused request or /health then costs none of
    FastAPI's own middleware (error and exception handlers, body limit, telemetry) nor its routing."""

    intake: Intake

    async def __call__(self, scope, receive, send):
        await self.intake(scope, receive, send)


# The body is read by hand (JSON or .npy) but documented as FastAPI documents a model body.
PREDICT_BODY = {"requestBody": {"required": True, "content": {
    "application/json": {"schema": PredictRequest.model_json_schema()},
    "application/x-npy": {"schema": {"type": "string", "format": "binary"}}}}}


def create_app(engine: ServingEngine, policy: Policy, *, capacity: int = 256,
               default_deadline_ms: float | None = None, drain_timeout: float = 30.0, token: str | None = None,
               api_docs: bool = False) -> FastAPI:
    """The app; ``token`` requires ``Authorization: Bearer <token>`` on every path but /health;
    ``api_docs`` serves /docs, /redoc and /openapi.json."""
    scheduler = Scheduler(engine, policy, capacity=capacity, default_deadline_ms=default_deadline_ms)
    metrics = scheduler.metrics
    metrics.counter("refusals_total", "Requests refused before inference, by HTTP status and reason (unauthorized, "
                    "too_large, media_type, queue_full, busy: too many uploads at once, shutting_down, shed).",
                    ["status", "reason"])

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        scheduler.start()
        yield
        # uvicorn has already waited for open requests; serve whatever is still queued.
        await asyncio.to_thread(scheduler.stop, True, drain_timeout)

    docs = {} if api_docs else {"docs_url": None, "redoc_url": None, "openapi_url": None}
    app = ServingApp(title="skipswitch serving", lifespan=lifespan, **docs)
    app.state.scheduler = scheduler
    app.state.engine = engine

    @app.post(PREDICT_PATH, openapi_extra=PREDICT_BODY)
    async def predict(request: Request):
        try:  # Intake has read the body (bounded) and stamped the arrival
            x, options = parse_predict(request.state.body, request.headers.get("content-type", ""),
                                       dict(request.query_params))
            loop = asyncio.get_running_loop()
            future = loop.create_future()

            def done(outcome, future=future):
                loop.call_soon_threadsafe(lambda: future.done() or future.set_result(outcome))

            scheduler.submit(x, done=done, arrival=request.state.arrival, **options)
        except Refused as exc:
            metrics.inc("requests_total", outcome="invalid")
            return _refusal(metrics, exc.status, exc.reason, str(exc))
        except SkipswitchError as exc:
            metrics.inc("requests_total", outcome="invalid")
            return _error(422, str(exc))
        except QueueFull as exc:
            metrics.inc("requests_total", outcome="rejected")
            return _refusal(metrics, 503, "queue_full", str(exc))
        except ShuttingDown as exc:
            metrics.inc("requests_total", outcome="rejected")
            return _refusal(metrics, 503, "shutting_down", str(exc))
        outcome = await future
        if isinstance(outcome, Result):
            metrics.inc("requests_total", outcome="ok")
            logits = outcome.outputs
            return {"subnet": outcome.subnet, "accuracy": outcome.accuracy,
                    "predictions": logits.argmax(1).tolist(), "outputs": logits.tolist(),
                    "latency_ms": outcome.latency_ms, "queue_ms": outcome.queue_ms,
                    "batch_size": outcome.batch_size, "deadline_met": outcome.deadline_met}
        if isinstance(outcome, Shed):
            metrics.inc("requests_total", outcome="shed")
            return _refusal(metrics, 503, "shed", str(outcome))
        if isinstance(outcome, ShuttingDown):
            metrics.inc("requests_total", outcome="rejected")
            return _refusal(metrics, 503, "shutting_down", str(outcome))
        metrics.inc("requests_total", outcome="error")
        return _error(500, f"inference failed: {type(outcome).__name__}: {outcome}")

    @app.get("/v1/subnets")
    async def subnets():
        return subnets_info(engine)

    def health() -> dict:
        return {"status": "ok" if scheduler.accepting else "draining", "mode": engine.mode,
                "active": engine.active.name if engine.active else None, "queue_depth": len(scheduler.queue),
                "subnets": len(engine.subnets)}

    @app.get("/metrics")
    async def prometheus():
        return PlainTextResponse(metrics.render(), media_type=CONTENT_TYPE)

    app.intake = Intake(partial(FastAPI.__call__, app), health=health, scheduler=scheduler, token=token)
    return app


def draining_server(config, scheduler: Scheduler, drain_timeout: float = 30.0, grace_s: float = 0.5):
    """A uvicorn server whose first SIGINT/SIGTERM drains instead of closing the door: the scheduler
    stops accepting (requests arriving now get the documented 503 "shutting_down", as the listening
    socket stays open), the queue is served, ``grace_s`` later the server exits; a second signal
    exits at once."""
    import threading

    import uvicorn

    class DrainingServer(uvicorn.Server):
        draining = False

        def handle_exit(self, sig, frame) -> None:  # not recorded: uvicorn would re-raise it after the drain
            if self.draining:
                self.should_exit = self.force_exit = True
                return
            self.draining = True
            threading.Thread(target=self._drain, name="skipswitch-drain", daemon=True).start()

        def _drain(self) -> None:
            with scheduler.cond:
                scheduler.accepting = False
                scheduler.cond.wait_for(lambda: not scheduler.queue and not scheduler.in_flight, drain_timeout)
            time.sleep(grace_s)
            self.should_exit = True

    return DrainingServer(config)


def listening_socket(host: str = "127.0.0.1", port: int = 0):
    """A listening-ready TCP socket bound to ``host`` (a name, an IPv4 or an IPv6 address, in that
    address's own family) and ``port`` (0: a free one)."""
    import socket

    try:
        family, kind, proto, _, address = socket.getaddrinfo(host.strip("[]"), port, type=socket.SOCK_STREAM,
                                                             flags=socket.AI_PASSIVE)[0]
    except (socket.gaierror, UnicodeError) as exc:
        raise SkipswitchError(f"cannot listen on {host!r}: not an address of this machine ({exc})") from None
    sock = socket.socket(family, kind, proto)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind(address)
    except OSError as exc:
        sock.close()
        raise SkipswitchError(f"cannot listen on {host}:{port} ({exc.strerror or exc})") from None
    return sock


@contextmanager
def run_in_thread(app: FastAPI, host: str = "127.0.0.1", port: int = 0, startup_timeout: float = 30.0):
    """Run ``app`` under uvicorn in a background thread; yields its base URL and shuts it
    down gracefully (open requests finish, the queue drains) on exit."""
    import threading
    import time

    import uvicorn

    sock = listening_socket(host, port)
    config = uvicorn.Config(app, log_level="warning", lifespan="on", http=intake_protocol(app.intake))
    server = draining_server(config, app.state.scheduler)
    app.state.uvicorn_server = server  # lets a caller stop it (should_exit) or drain it (handle_exit)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + startup_timeout
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise SkipswitchError("the server did not start")
        time.sleep(0.01)
    try:
        yield f"http://{f'[{host}]' if ':' in host else host}:{sock.getsockname()[1]}"  # IPv6 in brackets
    finally:
        server.should_exit = True
        thread.join(startup_timeout)
        sock.close()


def free_loopback_port() -> int:
    """A TCP port that was free on 127.0.0.1 a moment ago (for starting a server in a child process)."""
    with listening_socket() as sock:
        return sock.getsockname()[1]


def wait_until_healthy(url: str, process, timeout_s: float = 120.0) -> None:
    """Poll ``url``/health until it answers 200; fail if ``process`` (a Popen) exits or time runs out."""
    import time

    import httpx

    deadline = time.monotonic() + timeout_s
    while True:
        if process.poll() is not None:
            raise SkipswitchError(f"the server at {url} exited with code {process.returncode} before it was healthy")
        try:
            if httpx.get(f"{url}/health", timeout=1.0).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        if time.monotonic() > deadline:
            raise SkipswitchError(f"the server at {url} was not healthy within {timeout_s:.0f} s")
        time.sleep(0.2)
