"""The server side: a Flower Message-API strategy that trains a weight-sharing supernet.

Per round (``start`` drives the rounds; ``configure_train``/``aggregate_train`` are the
Flower strategy hooks):

1. sample ``fraction`` of the clients (seeded by seed, round and attempt);
2. give each the largest subnet its capability profile fits (``profiles.assign_subnet``)
   and send only that subnet's slice of the supernet;
3. (fault injection) tell ``fail_fraction`` of them to crash and ``timeout_fraction`` to
   answer after the deadline;
4. wait at most ``round_timeout_s``; error replies and missing replies are failures;
5. if at least ``min_clients`` replies are valid, aggregate them (``aggregate_slices``);
   otherwise retry the round with a fresh sample (``on_too_few="retry"``, at most
   ``max_retries`` times) and then skip it, or skip it at once (``"skip"``): a skipped
   round leaves the supernet unchanged and is recorded as skipped;
6. evaluate the largest and smallest subnet (BN recalibrated) every ``eval_every`` rounds;
7. checkpoint the supernet, the round number and the history atomically.

Everything random is derived from (seed, round, attempt), and client training is
seeded the same way, so ``resume=True`` continues from the last checkpoint to the same
supernet an uninterrupted run reaches.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from logging import INFO
from pathlib import Path
from typing import Any, Callable, Iterable, Optional

import numpy as np
import torch

from ..checkpoint import atomic_write_json
from ..errors import SkipswitchError
from .aggregate import SliceUpdate, aggregate_slices, slice_state
from .config import FedConfig
from .server_opt import ServerOptimizer
from .task import FAULT_CRASH, FAULT_NONE, FAULT_TIMEOUT, ClientTask

CHECKPOINT = "supernet.safetensors"
# The server optimizer's state after round r: one file per round, written before the supernet
# checkpoint and removed once a later round's checkpoint exists, so a resume always finds the
# state that belongs to the checkpoint's round, even if the server died between the two writes.
SERVER_OPTIMIZER = "server-optimizer-{round:04d}.safetensors"
SERVER_OPTIMIZER_GLOB = "server-optimizer-*.safetensors"
RESULTS = "results.json"

try:  # flwr is an optional extra; the pure parts of this package work without it
    from flwr.app import ArrayRecord, ConfigRecord, Message, MessageType, MetricRecord, RecordDict
    from flwr.serverapp.strategy import Result, Strategy
except ImportError:  # pragma: no cover - exercised only without the `fed` extra
    Strategy = object  # type: ignore[assignment,misc]


@dataclass(frozen=True)
class Assignment:
    node_id: int
    partition: int
    subnet: Any  # SubnetConfig
    fault: str


def require_flwr() -> None:
    try:
        import flwr  # noqa: F401
    except ImportError:
        raise SkipswitchError("Flower is not installed; install the extra: pip install 'skipswitch[fed]'") from None


class SupernetStrategy(Strategy):
    """Weight-shared federated training (HeteroFL/FjORD-style slice aggregation)."""

    def __init__(self, config: FedConfig, supernet, run_dir: str | Path, *, dataset=None, resume: bool = False,
                 on_round: Optional[Callable[[dict[str, Any]], None]] = None, save_every_round: bool = False):
        from .profiles import assign_subnet, default_profiles, load_profiles

        require_flwr()
        self.config = config
        self.supernet = supernet
        self.space = supernet.space
        self.skip_mode = supernet.supernet_skip_mode
        self.run_dir = Path(run_dir)
        self.dataset = dataset
        self.on_round = on_round
        self.save_every_round = save_every_round
        profiles = load_profiles(config.profiles) if config.profiles else default_profiles(
            self.space, config.batch_size, self.skip_mode, config.ladder)
        self.profiles = profiles.for_clients(config.clients)
        self.subnets = [assign_subnet(self.space, p, config.batch_size, self.skip_mode, config.ladder)
                        for p in self.profiles]
        self.largest = self.space.largest()
        self.server_optimizer = ServerOptimizer(config.server_optimizer, lr=config.server_lr,
                                                momentum=config.server_momentum, beta1=config.server_beta1,
                                                beta2=config.server_beta2, tau=config.server_tau)
        self._params = {name for name, _ in supernet.named_parameters()}
        self.node_partition: dict[int, int] = {}
        self.history: list[dict[str, Any]] = []
        self.next_round = 1
        self._attempt = 0
        self._plan: dict[int, Assignment] = {}
        self._state: dict[str, torch.Tensor] = {}
        self._last_round: dict[str, Any] = {}
        if resume:
            self._resume()

    # -- checkpoints --------------------------------------------------------------------------
    @property
    def checkpoint_path(self) -> Path:
        return self.run_dir / CHECKPOINT

    def _resume(self) -> None:
        from ..supernet import load_supernet

        if not self.checkpoint_path.exists():
            return
        supernet, meta = load_supernet(self.checkpoint_path)
        fed = meta.get("federated", {})
        if self.config.identity_with_defaults(fed.get("identity")) != json.loads(json.dumps(self.config.run_identity())):
            raise SkipswitchError(f"cannot resume {self.run_dir}: it was started with different federated settings; "
                                  "rerun without --resume or with the same options")
        self.supernet.load_state_dict(supernet.state_dict(), strict=True)
        self.supernet.bn_stats, self.supernet.bn_configs = supernet.bn_stats, supernet.bn_configs
        self.history = list(fed.get("history", []))
        self.next_round = int(fed["round"]) + 1
        if self.config.server_optimizer != "fedavg":
            from ..checkpoint import load_tensors

            path = self.run_dir / SERVER_OPTIMIZER.format(round=int(fed["round"]))
            if not path.exists():
                raise SkipswitchError(f"cannot resume {self.run_dir}: {path.name} (the {self.config.server_optimizer} "
                                      "state of the checkpoint's round) is missing")
            self.server_optimizer.load_state_dict(load_tensors(path)[0])

    def _checkpoint(self, server_round: int) -> None:
        from ..checkpoint import save_tensors
        from ..supernet import save_supernet

        meta = {"federated": {"round": server_round, "identity": self.config.run_identity(), "history": self.history,
                              "config": self.config.model_dump()}}
        optimizer_state = self.server_optimizer.state_dict()
        if optimizer_state:
            save_tensors(self.run_dir / SERVER_OPTIMIZER.format(round=server_round), optimizer_state,
                         {"round": server_round, "server_optimizer": self.config.server_optimizer})
        save_supernet(self.checkpoint_path, self.supernet, meta)
        for old in self.run_dir.glob(SERVER_OPTIMIZER_GLOB):
            if old.name != SERVER_OPTIMIZER.format(round=server_round):
                old.unlink(missing_ok=True)
        if self.save_every_round:
            save_supernet(self.run_dir / f"round-{server_round:04d}.safetensors", self.supernet, meta)
        atomic_write_json(self.run_dir / RESULTS, self.results())

    def results(self) -> dict[str, Any]:
        done = [r for r in self.history if r["status"] == "aggregated"]
        return {
            "config": self.config.model_dump(),
            "space": self.space.to_dict(),
            "skip_mode": self.skip_mode,
            "subnets": [{"client": i, "profile": p.name, "subnet": s.to_dict()}
                        for i, (p, s) in enumerate(zip(self.profiles, self.subnets))],
            "rounds_completed": len(self.history),
            "rounds_aggregated": len(done),
            "rounds_skipped": len(self.history) - len(done),
            "history": self.history,
        }

    # -- Flower strategy hooks -------------------------------------------------------------------
    def summary(self) -> None:
        from flwr.supercore import log

        log(INFO, "\t├──> SupernetStrategy: %d clients, fraction %.2f, weighting %s, server optimizer %s, min_clients %d",
            self.config.clients, self.config.fraction, self.config.weighting, self.config.server_optimizer,
            self.config.min_clients)

    def plan_round(self, server_round: int, attempt: int) -> list[tuple[int, str]]:
        """(partition, fault) of every client sampled for this round and attempt."""
        cfg = self.config
        rng = np.random.default_rng([cfg.seed, server_round, attempt])
        k = max(1, round(cfg.fraction * cfg.clients))
        sampled = sorted(int(p) for p in rng.choice(cfg.clients, size=k, replace=False))
        crash = round(cfg.fail_fraction * k)
        late = round(cfg.timeout_fraction * k)
        order = rng.permutation(k)
        faults = [FAULT_NONE] * k
        for i in order[:crash]:
            faults[i] = FAULT_CRASH
        for i in order[crash:crash + late]:
            faults[i] = FAULT_TIMEOUT
        return list(zip(sampled, faults))

    def client_task(self, server_round: int, subnet, fault: str, deadline: float) -> ClientTask:
        cfg = self.config
        return ClientTask(
            server_round=server_round, subnet=subnet.to_dict(), space=self.space.to_dict(), skip_mode=self.skip_mode,
            dataset=cfg.dataset, data_dir=cfg.data_dir, partition=cfg.partition, alpha=cfg.alpha,
            min_partition_size=cfg.min_partition_size, seed=cfg.seed, num_partitions=cfg.clients,
            local_epochs=cfg.local_epochs, batch_size=cfg.batch_size, lr=cfg.lr_at(server_round),
            momentum=cfg.momentum, weight_decay=cfg.weight_decay, client_subnets=cfg.client_subnets,
            random_subnets=cfg.client_random_subnets, kd=cfg.client_targets == "kd", kd_temperature=cfg.kd_temperature,
            logit_adjustment=cfg.logit_adjustment, amp=cfg.amp,
            fault=fault, deadline=deadline)

    def configure_train(self, server_round: int, arrays, config, grid) -> Iterable:
        from ..supernet import weight_regions

        self._state = dict(arrays.to_torch_state_dict())
        partition_node = {p: n for n, p in self.node_partition.items()}
        deadline = time.time() + self.config.round_timeout_s
        self._plan = {}
        messages = []
        for partition, fault in self.plan_round(server_round, self._attempt):
            if partition not in partition_node:
                raise SkipswitchError(f"no connected SuperNode serves partition {partition}")
            node = partition_node[partition]
            subnet = self.subnets[partition]
            tensors = slice_state(self._state, weight_regions(self.space, subnet, self.skip_mode))
            content = RecordDict({"arrays": ArrayRecord(tensors),
                                  "config": ConfigRecord(self.client_task(server_round, subnet, fault, deadline).to_record())})
            messages.append(Message(content, dst_node_id=node, message_type=MessageType.TRAIN))
            self._plan[node] = Assignment(node, partition, subnet, fault)
        return messages

    def aggregate_train(self, server_round: int, replies: Iterable):
        from ..supernet import weight_regions

        updates, failed, rejected = [], [], []
        answered = set()
        for reply in replies:
            node = reply.metadata.src_node_id
            plan = self._plan.get(node)
            if plan is None:
                continue  # a late reply to an earlier round or attempt
            answered.add(node)
            if reply.has_error():
                # Ray wraps the ClientApp exception in several lines; its message is the last one.
                lines = (reply.error.reason or "").strip().splitlines() or [""]
                failed.append({"client": plan.partition, "reason": lines[-1][:300]})
                continue
            try:
                tensors = dict(reply.content["arrays"].to_torch_state_dict())
                metrics = dict(reply.content["metrics"])
                update = SliceUpdate(tensors, weight_regions(self.space, plan.subnet, self.skip_mode),
                                     int(metrics["num-examples"]), largest=plan.subnet == self.largest,
                                     client=f"client {plan.partition}")
                from .aggregate import check_update

                check_update(update, self._state)
            except (KeyError, SkipswitchError) as exc:
                rejected.append({"client": plan.partition, "reason": str(exc)[:200]})
                continue
            updates.append((plan.partition, update, metrics))
        timed_out = sorted(p.partition for n, p in self._plan.items() if n not in answered)
        updates.sort(key=lambda item: item[0])  # aggregation order independent of arrival order
        self._last_round = {
            "sampled": sorted(p.partition for p in self._plan.values()),
            "injected": {str(p.partition): p.fault for p in self._plan.values() if p.fault != FAULT_NONE},
            "survivors": [u[0] for u in updates], "failed": failed, "timed_out": timed_out, "rejected": rejected,
        }
        if len(updates) < self.config.min_clients:
            return None, None
        aggregate, holders = aggregate_slices(self._state, [u[1] for u in updates], weighting=self.config.weighting,
                                              largest_weight=self.config.largest_weight_at(server_round))
        new_state = self.server_optimizer.step(self._state, aggregate, holders, self._params)
        n = sum(u[1].num_examples for u in updates)
        metrics = MetricRecord({
            "train-loss": sum(u[2]["train-loss"] * u[1].num_examples for u in updates) / n,
            "train-acc": sum(u[2]["train-acc"] * u[1].num_examples for u in updates) / n,
            "samples-seen": int(sum(u[2]["samples-seen"] for u in updates)),
            "subnet-samples": int(sum(u[2].get("subnet-samples", 0) for u in updates)),
            "clients": len(updates),
        })
        return ArrayRecord(new_state), metrics

    def configure_evaluate(self, server_round: int, arrays, config, grid) -> Iterable:
        return []  # evaluation is centralised (``evaluate``), not on the clients

    def aggregate_evaluate(self, server_round: int, replies: Iterable):
        return None

    # -- the round loop ---------------------------------------------------------------------------
    def discover(self, grid, timeout: Optional[float] = None) -> None:
        """Map node ids to partition ids by asking every connected node (a query message);
        waits up to ``timeout`` (default: the round timeout) for all of them to connect and answer
        (Ray's actors may take minutes to start on a busy machine)."""
        timeout = self.config.round_timeout_s if timeout is None else timeout
        end = time.time() + timeout
        while len(self.node_partition) < self.config.clients:
            nodes = [n for n in grid.get_node_ids() if n not in self.node_partition]
            if nodes:
                messages = [Message(RecordDict({"info": ConfigRecord({})}), dst_node_id=n, message_type=MessageType.QUERY)
                            for n in nodes]
                for reply in grid.send_and_receive(messages, timeout=max(1.0, end - time.time())):
                    if reply.has_error():
                        continue
                    info = reply.content["info"]
                    partition = int(info["partition-id"])
                    if not 0 <= partition < self.config.clients:
                        raise SkipswitchError(f"a SuperNode reports partition-id {partition}, outside 0..{self.config.clients - 1}")
                    self.node_partition[reply.metadata.src_node_id] = partition
            if time.time() > end:
                raise SkipswitchError(f"only {len(self.node_partition)} of {self.config.clients} SuperNodes answered "
                                      f"within {timeout:g} s")
            if len(self.node_partition) < self.config.clients:
                time.sleep(0.2)

    def evaluate(self) -> dict[str, float]:
        """Validation accuracy of the largest and smallest subnet, BN recalibrated on training batches."""
        from ..supernet.train import calibration_batches, subnet_accuracy

        if self.dataset is None:
            return {}
        self.supernet.bn_stats.clear()
        self.supernet.bn_configs.clear()
        calibration = calibration_batches(self.dataset, seed=self.config.seed)
        return {f"{label}_val_acc": subnet_accuracy(self.supernet, cfg, self.dataset, "val", calibration)
                for label, cfg in (("largest", self.largest), ("smallest", self.space.smallest()))}

    def start(self, grid, initial_arrays=None, num_rounds: Optional[int] = None, timeout: Optional[float] = None,
              train_config=None, evaluate_config=None, evaluate_fn=None) -> "Result":
        """Run the remaining rounds (after a resume: from the checkpoint's round + 1)."""
        cfg = self.config
        num_rounds = num_rounds or cfg.rounds
        timeout = timeout or cfg.round_timeout_s
        if initial_arrays is not None and self.next_round == 1:
            self.supernet.load_state_dict(initial_arrays.to_torch_state_dict(), strict=True)
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self.discover(grid)
        result = Result()
        for server_round in range(self.next_round, num_rounds + 1):
            started = time.perf_counter()
            arrays = ArrayRecord(self.supernet.state_dict())
            attempts = []
            new_arrays = metrics = None
            tries = 1 + (cfg.max_retries if cfg.on_too_few == "retry" else 0)
            for attempt in range(tries):
                self._attempt = attempt
                messages = self.configure_train(server_round, arrays, ConfigRecord(), grid)
                replies = grid.send_and_receive(messages, timeout=timeout)
                new_arrays, metrics = self.aggregate_train(server_round, replies)
                attempts.append(self._last_round)
                if new_arrays is not None:
                    break
                survivors = len(self._last_round["survivors"])
                what = (f"retrying (attempt {attempt + 2} of {tries})" if attempt + 1 < tries
                        else "skipping the round: the supernet stays unchanged")
                self._notify({"round": server_round, "status": "too-few",
                              "message": f"round {server_round}: only {survivors} of {len(self._plan)} clients answered "
                                         f"(minimum {cfg.min_clients}); {what}"})
            record: dict[str, Any] = {"round": server_round, "attempts": attempts}
            if new_arrays is not None:
                self.supernet.load_state_dict(new_arrays.to_torch_state_dict(), strict=True)
                record.update(status="aggregated", **{k: metrics[k] for k in metrics})
                result.train_metrics_clientapp[server_round] = metrics
            else:
                record["status"] = "skipped"
            if server_round == num_rounds or (cfg.eval_every and server_round % cfg.eval_every == 0):
                record.update(self.evaluate())
            record["seconds"] = time.perf_counter() - started
            self.history.append(record)
            self._checkpoint(server_round)
            self._notify(record)
        result.arrays = ArrayRecord(self.supernet.state_dict())
        return result

    def _notify(self, record: dict[str, Any]) -> None:
        if self.on_round is not None:
            self.on_round(record)
