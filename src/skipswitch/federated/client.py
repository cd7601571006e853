"""The Flower ClientApp: train the received subnet slice on this node's data partition, alone
(``fixed``) or with the sandwich rule within it (``sampled``: the smallest subnet and subnets
drawn inside the slice, learning from its soft outputs or the labels).

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
# Nor handle a message concurrently: code compiled on first use (inside torch, or Flower's records)
# could still meet CPython 3.11's concurrent-compile SystemError (the grid imports our own modules
# before its threads start, see simulate._import_before_threads; a fresh-clone CI run still hit it
# outside the training). torch's intra-op threads use the cores anyway, and stragglers sleep outside
# the lock, so deadlines behave as before. Re-entrant: handle_train holds it around local_train.
_TRAIN_LOCK = threading.RLock()


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


def build_supernet(task: ClientTask):
    """(supernet, the client's largest allowed subnet) from the task's space.

    The client holds the supernet's shapes (for the default digits space about 1 MB) so that
    its sandwich subnets share weights exactly as on the server; it only receives, trains and
    returns the slice of ``task.subnet``."""
    from ..supernet import ElasticResNet, SubnetConfig, get_space

    space = get_space(task.space["name"], **task.space.get("args", {}))
    return ElasticResNet(space, skip_mode=task.skip_mode), SubnetConfig.from_dict(task.subnet, space)


def sample_within(space, cap, gen: torch.Generator):
    """A subnet drawn uniformly per choice among those no larger than ``cap`` (depth per stage,
    expand ratio per block, width per stage), so it is a slice of ``cap``."""
    def pick(choices, top):
        allowed = [c for c in choices if c <= top + 1e-9]
        return allowed[int(torch.randint(len(allowed), (1,), generator=gen))]

    depths = [pick(choices, top) for choices, top in zip(space.depth_choices, cap.depths)]
    expands = [[pick(space.expand_choices, cap.expands[s][b]) for b in range(d)] for s, d in enumerate(depths)]
    return space.config(depths, expands, [pick(space.width_choices, top) for top in cap.widths])


def step_subnets(space, cap, task: ClientTask, gen: torch.Generator) -> list:
    """The subnets one local step trains besides ``cap``: none (fixed), or the sandwich rule's
    smallest subnet (a slice of every subnet) and ``random_subnets`` drawn within ``cap``."""
    if task.client_subnets == "fixed":
        return []
    drawn = [space.smallest(), *(sample_within(space, cap, gen) for _ in range(task.random_subnets))]
    return [c for c in dict.fromkeys(drawn) if c != cap]


def label_log_prior(labels: torch.Tensor, num_classes: int, tau: float) -> torch.Tensor:
    """``tau * log pi``, pi the client's label frequencies with add-one smoothing (a class the client
    lacks gets a finite, very negative offset instead of -inf)."""
    counts = torch.bincount(labels.long(), minlength=num_classes).double()
    return (tau * torch.log((counts + 1) / (counts.sum() + num_classes))).float()


def sandwich_loss(cap, task: ClientTask, space, gen: torch.Generator, log_prior: torch.Tensor | None = None):
    """``loss_fn`` for ``train_step``: ``cap`` learns from the labels, the step's other subnets from
    ``cap``'s detached soft outputs (in-place distillation, ``kl_distillation``) or, with
    ``kd=False``, from the labels; the loss is the mean over the subnets. With ``log_prior`` the
    label losses are logit-adjusted (Menon et al., ICLR 2021, the logit-adjusted loss): the
    cross-entropy of ``logits + log_prior``, so the logits themselves need not encode this
    client's label skew; distillation matches the unadjusted logits."""
    from torch.nn import functional as F

    from ..training import kl_distillation

    def label_loss(logits, y):
        return F.cross_entropy(logits if log_prior is None else logits + log_prior, y)

    def loss_fn(model, x, y):
        subnets = step_subnets(space, cap, task, gen)
        loss_fn.subnet_samples += (1 + len(subnets)) * x.shape[0]
        model.set_active(cap)
        logits = model(x)
        losses = [label_loss(logits, y)]
        teacher = logits.detach()
        for config in subnets:
            model.set_active(config)
            out = model(x)
            losses.append(kl_distillation(out, teacher, task.kd_temperature) if task.kd else label_loss(out, y))
        model.set_active(cap)
        return torch.stack(losses).mean(), logits

    loss_fn.subnet_samples = 0  # images x subnets trained on them (compute accounting)
    return loss_fn


def local_train(tensors: dict[str, torch.Tensor], task: ClientTask, partition_id: int) -> tuple[dict[str, torch.Tensor], dict[str, float]]:
    """Train the subnet slice for ``task.local_epochs`` epochs; returns its tensors and metrics.

    Deterministic given (tensors, task, partition_id): the batch order and the sandwich
    subnets are seeded by run seed, round and partition, so a resumed run replays the same
    local training.
    """
    with _TRAIN_LOCK:
        return _local_train(tensors, task, partition_id)


def _local_train(tensors, task: ClientTask, partition_id):
    from ..data import iterate_batches
    from ..supernet import weight_regions
    from ..training import TrainConfig, make_optimizer, train_step
    from ..training.device import Runtime
    from .aggregate import slice_state

    dataset, split = client_data(task, partition_id)
    model, cap = build_supernet(task)
    regions = weight_regions(model.space, cap, task.skip_mode)
    if set(tensors) != set(regions):
        unexpected, missing = sorted(set(tensors) - set(regions)), sorted(set(regions) - set(tensors))
        raise SkipswitchError(f"received slices do not match the subnet: unexpected {unexpected[:2]}, missing {missing[:2]}")
    own = model.state_dict()
    with torch.no_grad():
        for name, box in regions.items():
            own[name][tuple(slice(*r) for r in box)].copy_(tensors[name])
    config = TrainConfig(epochs=task.local_epochs, batch_size=task.batch_size, lr=task.lr, momentum=task.momentum,
                         weight_decay=task.weight_decay, seed=task.seed, amp=task.amp, device="cpu")
    # The runtime brings the autocast and fp16's loss scaling; a client trains on the CPU, in one process.
    runtime = Runtime(config) if config.amp != "off" else None
    # A fresh optimizer: SGD momentum restarts every round (see FedConfig.momentum).
    optimizer = make_optimizer(model, config)
    server_round = task.server_round
    batch_seed = (config.seed * 1_000_003 + server_round * 1_009 + partition_id) % (2**31)
    log_prior = (label_log_prior(split.labels, dataset.num_classes, task.logit_adjustment)
                 if task.logit_adjustment else None)
    loss_fn = sandwich_loss(cap, task, model.space, torch.Generator().manual_seed(batch_seed), log_prior)
    model.train()
    loss_sum, correct, seen = 0.0, 0, 0
    for epoch in range(config.epochs):
        for x, y in iterate_batches(split, config.batch_size, shuffle=True, augment=dataset.augment,
                                    seed=batch_seed, epoch=epoch):
            loss, batch_correct = train_step(model, optimizer, loss_fn, x, y,
                                             f"on client {partition_id} in round {server_round}", runtime)
            loss_sum += loss * y.shape[0]
            correct += batch_correct
            seen += int(y.shape[0])
    out = slice_state(model.state_dict(), regions)
    metrics = {"num-examples": len(split), "train-loss": loss_sum / max(1, seen), "train-acc": correct / max(1, seen),
               "samples-seen": seen, "subnet-samples": loss_fn.subnet_samples}
    return out, metrics


def handle_train(message, context):
    """The ClientApp's train handler (plain function, so tests can call it without Flower's runtime)."""
    from flwr.app import ArrayRecord, ConfigRecord, Message, MetricRecord, RecordDict

    with _TRAIN_LOCK:
        task = ClientTask.from_record(message.content["config"])
        partition_id = int(context.node_config["partition-id"])
        if task.fault == FAULT_CRASH:
            raise InjectedFault(f"client {partition_id}: injected crash in round {task.server_round}")
        tensors = message.content["arrays"].to_torch_state_dict()
        trained, metrics = local_train(tensors, task, partition_id)
    if task.fault == FAULT_TIMEOUT:
        # Answer only after the server stopped waiting: a straggler, not a crash.
        time.sleep(max(0.0, task.deadline - time.time()) + STRAGGLER_MARGIN_S)
    with _TRAIN_LOCK:
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
