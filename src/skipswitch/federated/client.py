"""The Flower ClientApp: train the received subnet slice on this node's data partition.

A train message carries the subnet's tensors (``arrays``, named as in the supernet) and a
``config`` record holding a ``ClientTask`` (``task.py``) with everything else: the subnet config,
the search space, the dataset and partition settings, the local SGD settings and an optional
injected fault. So the same
ClientApp object serves every run; a SuperNode only needs its ``partition-id`` (and
``num-partitions``) in its node config, which Flower's simulation sets for each virtual node.
"""

from __future__ import annotations

import json
import threading
import time
from functools import lru_cache

import torch

from ..errors import SkipswitchError
from .task import FAULT_CRASH, FAULT_TIMEOUT, ClientTask

# A straggler answers this long after the round's deadline.
STRAGGLER_MARGIN_S = 0.5


# The in-process grid runs several clients as threads: the first ones must not load the
# dataset and partition concurrently (lru_cache does not serialise the first computation).
_DATA_LOCK = threading.Lock()
# Nor run their first training concurrently: its lazy first-use imports compile code, and
# CPython 3.11 can fail with "SystemError: AST constructor recursion depth mismatch" when two
# threads compile at once (seen in 1 of ~12 test runs). Later trainings run in parallel.
_FIRST_TRAIN_LOCK = threading.Lock()
_trained_once = threading.Event()


class InjectedFault(RuntimeError):
    """Raised by a client told to crash this round (a simulated device failure)."""


@lru_cache(maxsize=4)
def _dataset(name: str, data_dir: str | None, seed: int):
    from ..data import load_dataset

    return load_dataset(name, data_dir or None, seed=seed)


@lru_cache(maxsize=16)
def _partition(name: str, data_dir: str | None, seed: int, clients: int, scheme: str, alpha: float, min_size: int):
    from .partition import partition_indices

    return partition_indices(_dataset(name, data_dir, seed).train.labels, clients, scheme, alpha, seed, min_size)


def client_data(task: ClientTask, partition_id: int):
    """(dataset, this client's training split) from the run settings in a task."""
    from .partition import client_split

    if not 0 <= partition_id < task.num_partitions:
        raise SkipswitchError(f"partition-id {partition_id} outside 0..{task.num_partitions - 1}")
    with _DATA_LOCK:
        dataset = _dataset(task.dataset, task.data_dir, task.seed)
        parts = _partition(task.dataset, task.data_dir, task.seed, task.num_partitions, task.partition, task.alpha,
                           task.min_partition_size)
    return dataset, client_split(dataset, parts[partition_id])


def build_subnet(task: ClientTask):
    """The standalone subnet ResNet named by the task's space and subnet."""
    from ..supernet import SubnetConfig, get_space

    space = get_space(task.space["name"], **task.space.get("args", {}))
    return space.build(SubnetConfig.from_dict(task.subnet, space), skip_mode=task.skip_mode)


def local_train(tensors: dict[str, torch.Tensor], task: ClientTask, partition_id: int) -> tuple[dict[str, torch.Tensor], dict[str, float]]:
    """Train the subnet slice for ``task.local_epochs`` epochs; returns its tensors and metrics.

    Deterministic given (tensors, task, partition_id): the batch order is seeded by run
    seed, round and partition, so a resumed run replays the same local training.
    """
    if _trained_once.is_set():
        return _local_train(tensors, task, partition_id)
    with _FIRST_TRAIN_LOCK:
        result = _local_train(tensors, task, partition_id)
        _trained_once.set()
        return result


def _local_train(tensors, task: ClientTask, partition_id):
    from ..data import iterate_batches
    from ..training import TrainConfig, cross_entropy_loss, make_optimizer, train_step

    dataset, split = client_data(task, partition_id)
    model = build_subnet(task)
    own = model.state_dict()
    unexpected = sorted(set(tensors) - set(own))
    missing = sorted(n for n in set(own) - set(tensors) if not n.endswith("num_batches_tracked"))
    if unexpected or missing:
        raise SkipswitchError(f"received slices do not match the subnet: unexpected {unexpected[:2]}, missing {missing[:2]}")
    model.load_state_dict(tensors, strict=False)
    config = TrainConfig(epochs=task.local_epochs, batch_size=task.batch_size, lr=task.lr, momentum=task.momentum,
                         weight_decay=task.weight_decay, seed=task.seed)
    optimizer = make_optimizer(model, config)
    server_round = task.server_round
    batch_seed = (config.seed * 1_000_003 + server_round * 1_009 + partition_id) % (2**31)
    model.train()
    loss_sum, correct, seen = 0.0, 0, 0
    for epoch in range(config.epochs):
        for x, y in iterate_batches(split, config.batch_size, shuffle=True, augment=dataset.augment,
                                    seed=batch_seed, epoch=epoch):
            loss, batch_correct = train_step(model, optimizer, cross_entropy_loss, x, y,
                                             f"on client {partition_id} in round {server_round}")
            loss_sum += loss * y.shape[0]
            correct += batch_correct
            seen += int(y.shape[0])
    out = {name: value.detach().clone() for name, value in model.state_dict().items() if name in tensors}
    metrics = {"num-examples": len(split), "train-loss": loss_sum / max(1, seen), "train-acc": correct / max(1, seen),
               "samples-seen": seen}
    return out, metrics


def handle_train(message, context):
    """The ClientApp's train handler (plain function, so tests can call it without Flower's runtime)."""
    from flwr.app import ArrayRecord, ConfigRecord, Message, MetricRecord, RecordDict

    task = ClientTask.from_record(message.content["config"])
    partition_id = int(context.node_config["partition-id"])
    if task.fault == FAULT_CRASH:
        raise InjectedFault(f"client {partition_id}: injected crash in round {task.server_round}")
    tensors = message.content["arrays"].to_torch_state_dict()
    trained, metrics = local_train(tensors, task, partition_id)
    if task.fault == FAULT_TIMEOUT:
        # Answer only after the server stopped waiting: a straggler, not a crash.
        time.sleep(max(0.0, task.deadline - time.time()) + STRAGGLER_MARGIN_S)
    content = RecordDict({
        "arrays": ArrayRecord(trained),
        "metrics": MetricRecord(metrics),
        "subnet": ConfigRecord({"partition-id": partition_id, "subnet": json.dumps(task.subnet),
                                "server-round": task.server_round}),
    })
    return Message(content, reply_to=message)


def handle_query(message, context):
    """Who am I: the server maps node ids to partitions (and so to capability profiles)."""
    from flwr.app import ConfigRecord, Message, RecordDict

    info = {"partition-id": int(context.node_config["partition-id"]),
            "num-partitions": int(context.node_config.get("num-partitions", -1))}
    return Message(RecordDict({"info": ConfigRecord(info)}), reply_to=message)


def make_client_app():
    from flwr.clientapp import ClientApp

    app = ClientApp()
    app.train()(handle_train)
    app.query()(handle_query)
    return app
