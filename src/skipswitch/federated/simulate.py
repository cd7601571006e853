"""Running the apps: Flower's simulation (Ray), or an in-process grid without Ray.

* ``run_federated(config, run_dir, engine="flower")`` runs ``flwr.simulation.run_simulation``:
  one virtual SuperNode per client on a Ray actor pool, the ServerApp in a thread.
* ``engine="local"`` runs the very same ServerApp and ClientApp objects against
  ``LocalGrid``, a ``flwr`` Grid that delivers each message to the ClientApp in a thread of
  this process. No Ray start-up (~30 s on 2 cores), so tests and benchmarks use it; a
  message's reply counts only if it arrives before the round timeout, as with Flower.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
import uuid
from concurrent.futures import ThreadPoolExecutor, wait
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Callable, Optional

from ..errors import SkipswitchError
from .config import FedConfig
from .strategy import require_flwr

ENGINES = ("flower", "local")

try:
    from flwr.serverapp import Grid as _GridBase
except ImportError:  # pragma: no cover
    _GridBase = object  # type: ignore[assignment,misc]


def build_strategy(config: FedConfig, run_dir: str | Path, *, resume: bool = False,
                   on_round: Optional[Callable[[dict[str, Any]], None]] = None, save_every_round: bool = False):
    """A fresh supernet (seeded) and its strategy; the strategy loads the checkpoint when resuming."""
    import torch

    from ..data import load_dataset
    from ..supernet import ElasticResNet, get_space
    from .strategy import SupernetStrategy

    dataset = load_dataset(config.dataset, config.data_dir, seed=config.seed)
    args = {"num_classes": dataset.num_classes, "in_channels": dataset.in_channels,
            "input_size": list(dataset.input_size), **config.space_args}
    space = get_space(config.space, skip_mode=config.skip_mode, **args)
    torch.manual_seed(config.seed)
    supernet = ElasticResNet(space)
    return SupernetStrategy(config, supernet, run_dir, dataset=dataset, resume=resume, on_round=on_round,
                            save_every_round=save_every_round)


def make_server_app(config: Optional[FedConfig] = None, run_dir: str | Path | None = None, *, resume: bool = False,
                    on_round: Optional[Callable[[dict[str, Any]], None]] = None, save_every_round: bool = False,
                    strategy_out: Optional[list] = None):
    """A ServerApp; without ``config`` it reads the Flower run config (``flwr run``, deployment)."""
    require_flwr()
    from flwr.serverapp import ServerApp

    from .config import fed_config_from_run_config

    app = ServerApp()

    @app.main()
    def main(grid, context) -> None:
        run_config = dict(context.run_config)
        out = run_dir or run_config.pop("run-dir", "runs/fed")
        cfg = config or fed_config_from_run_config({k: v for k, v in run_config.items() if k not in ("run-dir", "resume")})
        strategy = build_strategy(cfg, out, resume=resume or bool(run_config.get("resume", False)),
                                  on_round=on_round, save_every_round=save_every_round)
        if strategy_out is not None:
            strategy_out.append(strategy)
        strategy.start(grid)

    return app


# What the client threads and the server import on first use. CPython 3.11 can fail with "SystemError: AST
# constructor recursion depth mismatch" when two threads compile source at once, and a fresh checkout has no
# bytecode cache, so every first import compiles: import it all in this thread before any client thread runs.
_FIRST_USE_PACKAGES = ("skipswitch.data", "skipswitch.models", "skipswitch.graph", "skipswitch.training",
                       "skipswitch.supernet", "skipswitch.federated")


def _import_before_threads() -> None:
    import importlib
    import pkgutil

    for package in _FIRST_USE_PACKAGES:
        module = importlib.import_module(package)
        for info in pkgutil.walk_packages(module.__path__, package + "."):
            importlib.import_module(info.name)


class LocalGrid(_GridBase):
    """A Flower Grid that runs a ClientApp in threads of this process (one per message in flight).

    Each node gets ``partition-id`` and ``num-partitions`` in its node config, as Flower's
    simulation sets them. An exception in the ClientApp becomes an error reply; a reply
    that is not ready when ``send_and_receive``'s timeout expires is dropped.
    """

    def __init__(self, client_app, num_nodes: int, first_node_id: int = 1001):
        from flwr.app import Context, RecordDict
        from flwr.common.constant import SUPERLINK_NODE_ID

        _import_before_threads()

        try:  # flwr >= 1.41: messages take their run and sender from the process's task identity,
            # which the Flower runtimes set; here we are the runtime.
            from flwr.supercore.task_identity import TaskIdentity
        except ImportError:
            TaskIdentity = None
        for attr, value in (("run_id", 1), ("task_id", 1), ("node_id", SUPERLINK_NODE_ID)):
            try:
                getattr(TaskIdentity, attr) if TaskIdentity is not None else None
            except RuntimeError:
                setattr(TaskIdentity, attr, value)
        import torch

        # Several clients train at once in this process: one intra-op thread each, else their
        # thread pools oversubscribe the cores (measured 20x slower steps on a busy 2-core host).
        self._threads = torch.get_num_threads()
        torch.set_num_threads(1)
        self.client_app = client_app
        self.contexts = {first_node_id + i: Context(run_id=1, node_id=first_node_id + i,
                                                    node_config={"partition-id": i, "num-partitions": num_nodes},
                                                    state=RecordDict(), run_config={})
                         for i in range(num_nodes)}
        self._pool = ThreadPoolExecutor(max_workers=max(2, num_nodes))
        self._futures: dict[str, Any] = {}
        self._lock = threading.Lock()

    # Grid's abstract surface; runs and messages need no SuperLink here.
    def set_run(self, run) -> None:
        self._run = run

    @property
    def run(self):
        return getattr(self, "_run", None)

    def create_message(self, content, message_type, dst_node_id, group_id, ttl=None):
        from flwr.app import Message

        return Message(content, dst_node_id=dst_node_id, message_type=message_type, group_id=group_id, ttl=ttl)

    def get_node_ids(self):
        return list(self.contexts)

    def get_nodes(self):
        return []

    def _execute(self, message):
        from flwr.app import Error, Message

        try:
            return self.client_app(message, self.contexts[message.metadata.dst_node_id])
        except Exception as exc:  # noqa: BLE001 - any ClientApp failure is an error reply, as in Flower
            return Message(Error(code=2, reason=f"{type(exc).__name__}: {exc}"), reply_to=message)

    def push_messages(self, messages):
        ids = []
        for message in messages:
            if message.metadata.dst_node_id not in self.contexts:
                raise SkipswitchError(f"no node {message.metadata.dst_node_id} in the local grid")
            message.metadata.__dict__["_message_id"] = str(uuid.uuid4())
            with self._lock:
                self._futures[message.metadata.message_id] = self._pool.submit(self._execute, message)
            ids.append(message.metadata.message_id)
        return ids

    def pull_messages(self, message_ids):
        out = []
        with self._lock:
            for mid in list(message_ids):
                future = self._futures.get(mid)
                if future is not None and future.done():
                    out.append(future.result())
                    del self._futures[mid]
        return out

    def send_and_receive(self, messages, *, timeout: Optional[float] = None):
        ids = self.push_messages(messages)
        with self._lock:
            futures = [self._futures.pop(mid) for mid in ids]
        # Replies not done by the timeout are dropped, as a SuperLink would after the deadline.
        done, _ = wait(futures, timeout=timeout)
        return [f.result() for f in futures if f in done]

    def close(self) -> None:
        import torch

        self._pool.shutdown(wait=True, cancel_futures=True)
        torch.set_num_threads(self._threads)


class RoundsStopped(Exception):
    """A signal asked the run to stop; raised from the round callback once the round is checkpointed."""


@contextmanager
def stop_between_rounds(on_round: Optional[Callable[[dict[str, Any]], None]], grace_s: float = 5.0):
    """While the rounds run, SIGINT/SIGTERM ask for a stop after the round in progress (it is then
    checkpointed; the wrapped callback raises RoundsStopped). A second signal, or ``grace_s`` without
    a round boundary, stops at once: Ray's workers are shut down and the process exits 130, the last
    finished round being checkpointed already (checkpoints are written atomically)."""
    stop = threading.Event()
    last = {"round": 0}
    timer = threading.Timer(grace_s, lambda: abort())
    timer.daemon = True

    def notify(record: dict[str, Any]) -> None:
        last["round"] = record.get("round", last["round"])
        if on_round is not None:
            on_round(record)
        if stop.is_set():
            raise RoundsStopped(f"stopped after round {last['round']}")

    def abort() -> None:
        print(f"stopped during the round after round {last['round']}; rounds up to it are checkpointed; "
              "rerun with --resume to continue", file=sys.stderr, flush=True)
        try:
            import ray

            ray.shutdown()
        except Exception:  # noqa: BLE001 - no Ray, or already down: nothing to stop
            pass
        os._exit(130)

    def handler(sig, frame) -> None:
        if stop.is_set():
            abort()
        stop.set()
        print(f"{signal.Signals(sig).name}: stopping after the round in progress (within {grace_s:.0f} s; "
              "again to stop now)", file=sys.stderr, flush=True)
        timer.start()

    if threading.current_thread() is not threading.main_thread():  # signals reach only the main thread
        yield on_round
        return
    old = {s: signal.signal(s, handler) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield notify
    finally:
        timer.cancel()
        for s, h in old.items():
            signal.signal(s, h)


@contextmanager
def _ray_keeps_our_sigterm():
    """ray.init replaces the SIGTERM handler with sys.exit, which strands Flower's threads, and its
    core worker's failure handler turns SIGTERM into a native stack dump and an abort: keep ours."""
    os.environ.setdefault("RAY_DISABLE_FAILURE_SIGNAL_HANDLER", "1")
    try:
        import ray._private.utils as ray_utils
    except ImportError:
        yield
        return
    original = ray_utils.set_sigterm_handler
    ray_utils.set_sigterm_handler = lambda handler: None
    try:
        yield
    finally:
        ray_utils.set_sigterm_handler = original


def run_federated(config: FedConfig, run_dir: str | Path, *, engine: str = "flower", resume: bool = False,
                  on_round: Optional[Callable[[dict[str, Any]], None]] = None, save_every_round: bool = False,
                  verbose: bool = False) -> dict[str, Any]:
    """Run all rounds; returns the results written to ``run_dir/results.json``."""
    import json

    from .strategy import RESULTS

    require_flwr()
    if engine not in ENGINES:
        raise SkipswitchError(f"unknown engine {engine!r}; choose flower or local")
    run_dir = Path(run_dir)
    try:
        with stop_between_rounds(on_round) as notify:
            _run_engine(config, run_dir, engine, resume, notify, save_every_round, verbose)
    except RoundsStopped as exc:
        print(f"{exc} of {config.rounds}; it is checkpointed in {run_dir}", file=sys.stderr, flush=True)
        raise KeyboardInterrupt from None
    path = run_dir / RESULTS
    if not path.exists():
        raise SkipswitchError(f"the federated run wrote no {path}; see the log above")
    return json.loads(path.read_text())


def _run_engine(config: FedConfig, run_dir: Path, engine: str, resume: bool, on_round, save_every_round: bool,
                verbose: bool) -> None:
    from .client import make_client_app

    if engine == "local":
        strategy = build_strategy(config, run_dir, resume=resume, on_round=on_round, save_every_round=save_every_round)
        grid = LocalGrid(make_client_app(), config.clients)
        try:
            strategy.start(grid)
        finally:
            grid.close()
    else:
        from flwr.simulation import run_simulation

        cpus = os.cpu_count() or 1
        backend = {"client_resources": {"num_cpus": 1, "num_gpus": 0.0},
                   "init_args": {"num_cpus": cpus, "logging_level": "ERROR" if not verbose else "INFO",
                                 "log_to_driver": verbose}}
        server_app = make_server_app(config, run_dir, resume=resume, on_round=on_round,
                                     save_every_round=save_every_round)
        _quiet_flower(verbose)
        try:
            with _ray_keeps_our_sigterm():
                run_simulation(server_app=server_app, client_app=make_client_app(), num_supernodes=config.clients,
                               backend_config=backend, verbose_logging=verbose)
        except RuntimeError as exc:
            cause = exc.__cause__
            if isinstance(cause, (SkipswitchError, RoundsStopped)):
                raise cause from None
            raise


def _quiet_flower(verbose: bool) -> None:
    import logging
    import warnings

    if not verbose:
        # Injected faults would print a traceback each; results.json records every failure and its reason.
        logging.getLogger("flwr").setLevel(logging.CRITICAL)
        warnings.filterwarnings("ignore", module="flwr")
