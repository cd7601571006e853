"""Supernet training through the shared ``Trainer``: the sandwich rule with in-place
distillation (default), OFA progressive shrinking, or CompOFA compound coupling.

All strategies are a ``loss_fn`` plus an ``epoch_hook``: per step the largest subnet
learns from the labels and the sampled subnets learn from its (detached) soft outputs;
one backward pass over the summed loss updates the shared weights.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch.nn import functional as F

from ..data import Dataset, iterate_batches, load_dataset
from ..errors import SkipswitchError
from ..training import RunResult, TrainConfig, Trainer, evaluate, kl_distillation
from .bn import recalibrate_bn, sort_channels
from .elastic import ElasticResNet
from .io import save_supernet
from .space import ElasticSpace, SubnetConfig, get_space

STRATEGIES = ("sandwich", "progressive", "compound")
# OFA progressive shrinking: which elastic dimensions are open in each phase.
PHASES = ((), ("depth",), ("depth", "expand"), ("depth", "expand", "width"))


def compound_sample(space: ElasticSpace, gen: torch.Generator) -> SubnetConfig:
    """CompOFA: per stage one index k couples depth and expand (deeper stages are wider
    inside); the width multiplier stays independent."""
    depths, expands = [], []
    for choices in space.depth_choices:
        k = int(torch.randint(len(choices), (1,), generator=gen))
        e_index = round(k * (len(space.expand_choices) - 1) / max(1, len(choices) - 1))
        depths.append(choices[k])
        expands.append([space.expand_choices[e_index]] * choices[k])
    widths = [space.width_choices[int(torch.randint(len(space.width_choices), (1,), generator=gen))]
              for _ in range(space.num_stages)]
    return space.config(depths, expands, widths)


def restrict(space: ElasticSpace, config: SubnetConfig, open_dims: tuple[str, ...]) -> SubnetConfig:
    """``config`` with every closed dimension at its largest value."""
    largest = space.largest()
    depths = config.depths if "depth" in open_dims else largest.depths
    if "expand" in open_dims:
        expands = [list(config.expands[s][:d]) + [max(space.expand_choices)] * (d - len(config.expands[s][:d]))
                   for s, d in enumerate(depths)]
    else:
        expands = [[max(space.expand_choices)] * d for d in depths]
    widths = config.widths if "width" in open_dims else largest.widths
    return space.config(depths, expands, widths)


class SandwichLoss:
    """``loss_fn`` for the shared trainer: largest (labels) + sampled subnets (distilled)."""

    def __init__(self, space: ElasticSpace, *, strategy: str = "sandwich", n_random: int = 2,
                 kd_temperature: float = 1.0, seed: int = 0, epochs: int = 1):
        if strategy not in STRATEGIES:
            raise SkipswitchError(f"unknown supernet training strategy {strategy!r}; choose {', '.join(STRATEGIES)}")
        if n_random < 0:
            raise SkipswitchError(f"n_random must be >= 0, got {n_random}")
        if kd_temperature <= 0:
            raise SkipswitchError(f"kd_temperature must be positive, got {kd_temperature}")
        self.space, self.strategy, self.n_random = space, strategy, n_random
        self.temperature, self.seed, self.epochs = kd_temperature, seed, epochs
        self.set_epoch(0)

    def set_epoch(self, epoch: int) -> None:
        # Sampling depends only on (seed, epoch), so --resume replays the same subnets.
        self.epoch = epoch
        self.generator = torch.Generator().manual_seed(self.seed * 7919 + epoch)

    @property
    def phase(self) -> tuple[str, ...]:
        if self.strategy != "progressive":
            return PHASES[-1]
        return PHASES[min(len(PHASES) - 1, self.epoch * len(PHASES) // max(1, self.epochs))]

    def subnets(self) -> list[SubnetConfig]:
        """The subnets distilled in one step."""
        if self.strategy == "compound":
            sampled = [compound_sample(self.space, self.generator) for _ in range(self.n_random)]
            return [self.space.smallest(), *sampled]
        if self.strategy == "progressive":
            if not self.phase:
                return []
            return [restrict(self.space, self.space.sample(self.generator), self.phase) for _ in range(self.n_random)]
        return [self.space.smallest(), *(self.space.sample(self.generator) for _ in range(self.n_random))]

    def __call__(self, model: ElasticResNet, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        model.set_active(None)
        logits = model(x)
        loss = F.cross_entropy(logits, y)
        teacher = logits.detach()
        for config in self.subnets():
            model.set_active(config)
            loss = loss + kl_distillation(model(x), teacher, self.temperature)
        model.set_active(None)  # the trainer evaluates the largest subnet
        return loss, logits


class SupernetEpochHook:
    """Sets the sampling epoch and sorts channels by importance before width shrinking:
    every ``sort_every`` epochs (sandwich/compound), or when progressive shrinking opens
    the expand dimension (OFA). Needs the trainer's optimizer to permute SGD momentum."""

    def __init__(self, loss: SandwichLoss, sort_every: int = 1):
        self.loss, self.sort_every = loss, sort_every
        self.optimizer: torch.optim.Optimizer | None = None

    def _should_sort(self, epoch: int) -> bool:
        if self.sort_every <= 0 or epoch == 0:
            return False
        if self.loss.strategy == "progressive":
            now = self.loss.phase
            self.loss.set_epoch(epoch - 1)
            before = self.loss.phase
            self.loss.set_epoch(epoch)
            return "expand" in now and "expand" not in before
        return epoch % self.sort_every == 0

    def __call__(self, epoch: int, model: ElasticResNet):
        self.loss.set_epoch(epoch)
        event = None
        if self._should_sort(epoch):
            blocks = sort_channels(model, self.optimizer)
            event = {"summary": f"sorted {blocks} blocks", "sorted_blocks": blocks}
        if self.loss.strategy == "progressive":
            event = {**(event or {}), "phase": list(self.loss.phase)}
            event["summary"] = (event.get("summary", "") + f" phase {'+'.join(self.loss.phase) or 'full'}").strip()
        return [], event


def calibration_batches(dataset: Dataset, batches: int = 4, batch_size: int = 128, seed: int = 0) -> list[torch.Tensor]:
    """A fixed handful of training batches (no augmentation) for BN recalibration."""
    out = []
    for i, (x, _) in enumerate(iterate_batches(dataset.train, batch_size, shuffle=True, seed=seed, epoch=10_000)):
        if i >= batches:
            break
        out.append(x)
    return out


def subnet_accuracy(supernet: ElasticResNet, config: SubnetConfig, dataset: Dataset, split: str = "val",
                    calibration: list[torch.Tensor] | None = None) -> float:
    """Accuracy of ``config`` after BN recalibration (stored in the supernet)."""
    if config.key() not in supernet.bn_stats:
        recalibrate_bn(supernet, config, calibration or calibration_batches(dataset))
    supernet.set_active(config)
    try:
        return evaluate(supernet, getattr(dataset, split))[1]
    finally:
        supernet.set_active(None)


def train_supernet(
    space_name: str = "resnet-cifar",
    dataset_name: str = "digits",
    *,
    config: TrainConfig,
    out_dir: str | Path,
    skip_mode: str = "long",
    strategy: str = "sandwich",
    n_random: int = 2,
    sort_every: int = 1,
    space_args: dict[str, Any] | None = None,
    data_dir: str | Path | None = None,
    quiet: bool = False,
    resume: bool = False,
) -> tuple[ElasticResNet, RunResult]:
    """Train a supernet; writes the trainer's files plus ``supernet.safetensors`` (with
    recalibrated BN statistics of the largest and smallest subnets)."""
    dataset = load_dataset(dataset_name, data_dir, seed=config.seed)
    args = {"num_classes": dataset.num_classes, "in_channels": dataset.in_channels,
            "input_size": list(dataset.input_size), **(space_args or {})}
    space = get_space(space_name, skip_mode=skip_mode, **args)
    torch.manual_seed(config.seed)
    supernet = ElasticResNet(space)
    loss = SandwichLoss(space, strategy=strategy, n_random=n_random, seed=config.seed, epochs=config.epochs)
    hook = SupernetEpochHook(loss, sort_every=sort_every)
    run_meta = {"run": "supernet-train", "space": space.to_dict(), "skip_mode": skip_mode,
                "strategy": strategy, "n_random": n_random, "sort_every": sort_every}
    trainer = Trainer(supernet, dataset, config, out_dir, loss_fn=loss, epoch_hook=hook, quiet=quiet,
                      description=f"supernet {space.name} ({strategy}, {skip_mode})", metadata=run_meta)
    hook.optimizer = trainer.optimizer
    result = trainer.fit(resume=resume)
    supernet.cpu()  # BN recalibration and subnet scoring below run on the CPU
    calibration = calibration_batches(dataset, seed=config.seed)
    metrics = {}
    for label, cfg in (("largest", space.largest()), ("smallest", space.smallest())):
        metrics[f"{label}_val_acc"] = subnet_accuracy(supernet, cfg, dataset, "val", calibration)
        metrics[f"{label}_test_acc"] = subnet_accuracy(supernet, cfg, dataset, "test", calibration)
    if trainer.is_main:
        save_supernet(Path(out_dir) / "supernet.safetensors", supernet,
                      {**run_meta, "dataset": dataset.to_dict(), "train_config": config.model_dump(), "metrics": metrics})
    result.results["supernet_metrics"] = metrics
    return supernet, result
