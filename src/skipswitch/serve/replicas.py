"""Scale-out: the same serving engine as N Ray Serve replicas behind one HTTP route.

Each replica loads the supernet checkpoint once, runs its own ``Scheduler`` (policy,
dynamic batching, in-place switching) and answers ``POST /v1/predict`` with the body and
answers of ``server.py`` plus ``replica``, the id of the replica that served (and ``GET /v1/subnets``,
which `skipswitch loadgen` reads before it sends). Ray Serve's
proxy is the one front-end route; its router spreads requests over the replicas (by
queue length), and every replica switches subnets in place on its own.

    from ray import serve
    serve.run(replicated_app("runs/sn/search-macs/supernet.safetensors", pareto=..., replicas=2))

Ray itself comes with ``pip install 'skipswitch[serve]'`` (``ray[serve]``).
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from ..errors import SkipswitchError


def replicated_app(checkpoint: str | Path, pareto: str | Path | None = None, *, replicas: int = 2,
                   mode: str = "inplace", policy: str = "slackfit", cpus_per_replica: float = 1.0,
                   gpus_per_replica: float = 0.0, capacity: int = 256, default_deadline_ms: float | None = None,
                   engine_options: dict[str, Any] | None = None):
    """A Ray Serve application of ``replicas`` copies of the engine (``serve.run`` it)."""
    try:
        from ray import serve
    except ImportError:
        raise SkipswitchError("Ray Serve is not installed; pip install 'skipswitch[serve]'") from None
    if replicas < 1:
        raise SkipswitchError(f"replicas must be at least 1, got {replicas}")
    checkpoint = str(Path(checkpoint).resolve())
    pareto = None if pareto is None else str(Path(pareto).resolve())
    device = "cuda" if gpus_per_replica > 0 else "cpu"

    @serve.deployment(name="skipswitch", num_replicas=replicas,
                      ray_actor_options={"num_cpus": cpus_per_replica, "num_gpus": gpus_per_replica})
    class EngineReplica:
        def __init__(self):
            import torch

            from .engine import ServingEngine
            from .policy import make_policy
            from .scheduler import Scheduler

            torch.set_num_threads(max(1, int(cpus_per_replica)))
            self.engine = ServingEngine.from_checkpoint(checkpoint, pareto, mode=mode, device=device,
                                                        **(engine_options or {}))
            self.scheduler = Scheduler(self.engine, make_policy(policy, self.engine), capacity=capacity,
                                       default_deadline_ms=default_deadline_ms)
            self.scheduler.start()
            self.replica = serve.get_replica_context().replica_id.unique_id

        async def __call__(self, request):
            from starlette.responses import JSONResponse

            from .scheduler import QueueFull, Result, Shed, ShuttingDown
            from .server import parse_predict, subnets_info

            path = request.url.path.rstrip("/")
            if path.endswith("/health"):
                return JSONResponse({"status": "ok", "replica": self.replica, "switches": self.engine.switches})
            if path.endswith("/v1/subnets") and request.method == "GET":  # `skipswitch loadgen` reads it first
                return JSONResponse({**subnets_info(self.engine), "replica": self.replica})
            try:
                x, options = parse_predict(await request.body(), request.headers.get("content-type", ""),
                                           dict(request.query_params))
                loop = asyncio.get_running_loop()
                future = loop.create_future()
                self.scheduler.submit(x, done=lambda o: loop.call_soon_threadsafe(
                    lambda: future.done() or future.set_result(o)), **options)
            except SkipswitchError as exc:
                return JSONResponse({"error": " ".join(str(exc).split())}, status_code=422)
            except (QueueFull, ShuttingDown) as exc:
                return JSONResponse({"error": str(exc), "reason": "queue_full"}, status_code=503)
            outcome = await future
            if isinstance(outcome, Result):
                return JSONResponse({"subnet": outcome.subnet, "accuracy": outcome.accuracy,
                                     "predictions": outcome.outputs.argmax(1).tolist(),
                                     "outputs": outcome.outputs.tolist(), "latency_ms": outcome.latency_ms,
                                     "queue_ms": outcome.queue_ms, "batch_size": outcome.batch_size,
                                     "deadline_met": outcome.deadline_met, "replica": self.replica,
                                     "switches": self.engine.switches})
            reason = "shed" if isinstance(outcome, Shed) else "error"
            return JSONResponse({"error": str(outcome), "reason": reason}, status_code=503 if reason == "shed" else 500)

    return EngineReplica.bind()
