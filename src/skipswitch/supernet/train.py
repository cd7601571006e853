"""Supernet training through the shared ``Trainer``: the sandwich rule with in-place
distillation (default), a phased sandwich, CompOFA compound coupling, or OFA's
progressive shrinking.

Every strategy is a ``loss_fn`` plus an ``epoch_hook``. Per step each subnet's loss is
cross-entropy on the labels plus ``kd_ratio`` times KL to soft targets (OFA's
``loss = kd_ratio * kd_loss + CE``). The sandwich strategies take the *mean* over the
step's subnets, so the gradient scale (hence the useful learning rate) does not grow with
the number of subnets: a sandwich whose subnets are all the same network is plain
training. ``ofa`` sums them, as OFA's per-subnet backward passes accumulate gradients.

* sandwich / progressive / compound: the soft targets are the largest subnet's own
  (detached) logits in the same step (in-place distillation, Yu & Huang 2019);
* ofa: the full network is trained first (plain training), then frozen as the teacher;
  elastic depth, expand and width open in phases, each a separate run with its own
  epochs, learning rate, cosine schedule, fresh optimizer and subnets per step, scaled
  from mit-han-lab/once-for-all ``train_ofa_net.py`` (``OFA_PHASES``).
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch.nn import functional as F

from ..data import Dataset, iterate_batches, load_dataset
from ..errors import SkipswitchError
from ..models.resnet import zero_init_residuals
from ..training import RunResult, TrainConfig, Trainer, evaluate, kl_distillation
from .bn import recalibrate_bn, sort_channels
from .elastic import ElasticResNet
from .io import save_supernet
from .space import ElasticSpace, SubnetConfig, get_space

STRATEGIES = ("sandwich", "progressive", "compound", "ofa")
# The phased sandwich ("progressive"): which elastic dimensions are open in each quarter of the run.
PHASES = ((), ("depth",), ("depth", "expand"), ("depth", "expand", "width"))

# OFA progressive shrinking after the full network: (phase, dimension it opens, how many of
# that dimension's largest choices are open (0: all), OFA epochs, OFA base_lr, subnets per step).
# mit-han-lab/once-for-all commit 80a2e26, train_ofa_net.py: task "depth" phase 1 = 25 epochs
# at 2.5e-3 with depth_list {3,4} (top 2 of 3), phase 2 = 120 epochs at 7.5e-3 with all
# depths, dynamic_batch_size 2; task "expand" the same epochs and rates with
# dynamic_batch_size 4. OFA's width phase (progressive_shrinking.train_elastic_width_mult,
# for OFA-ResNet50) has no published schedule; it repeats the expand one here.
OFA_PHASES = (
    ("depth-1", "depth", 2, 25, 2.5e-3, 2),
    ("depth-2", "depth", 0, 120, 7.5e-3, 2),
    ("expand-1", "expand", 2, 25, 2.5e-3, 4),
    ("expand-2", "expand", 0, 120, 7.5e-3, 4),
    ("width-1", "width", 2, 25, 2.5e-3, 4),
    ("width-2", "width", 0, 120, 7.5e-3, 4),
)
# Phase learning rates are scaled by ours / this: OFA's first fine-tuning of the trained full
# network (task "kernel", base_lr 3e-2, train_ofa_net.py). Our spaces have no elastic kernel.
OFA_REFERENCE_LR = 3e-2


@dataclass(frozen=True)
class ShrinkPhase:
    """One progressive-shrinking run: ``open`` maps a dimension to how many of its largest
    choices are sampled (absent: the largest only)."""

    name: str
    open: dict[str, int] = field(hash=False)
    epochs: int
    lr: float
    subnets: int


def _choices(space: ElasticSpace, dim: str) -> int:
    return {"depth": len(space.depth_choices[0]), "expand": len(space.expand_choices),
            "width": len(space.width_choices)}[dim]


def ofa_schedule(space: ElasticSpace, shrink_epochs: int, lr: float) -> list[ShrinkPhase]:
    """OFA's phases for ``space``, with ``shrink_epochs`` split in OFA's epoch proportions
    (largest remainder, at least 1 each) and learning rates ``lr * OFA lr / OFA_REFERENCE_LR``.
    A first sub-phase is dropped where a dimension has at most 2 choices (it would open all
    of them), a dimension with one choice has no phase."""
    opened: dict[str, int] = {}
    kept = []
    for name, dim, top, ofa_epochs, ofa_lr, subnets in OFA_PHASES:
        n = _choices(space, dim)
        count = n if top == 0 else min(top, n)
        if n == 1 or count == opened.get(dim, 1) or (top and n <= top):
            continue
        opened = {**opened, dim: count}
        kept.append((name, dict(opened), ofa_epochs, lr * ofa_lr / OFA_REFERENCE_LR, subnets))
    if shrink_epochs < len(kept):
        raise SkipswitchError(f"shrink_epochs={shrink_epochs} is too few for the {len(kept)} OFA phases of "
                              f"{space.name} ({', '.join(k[0] for k in kept)}): one epoch each at least")
    weights = [k[2] for k in kept]
    shares = [1 + (shrink_epochs - len(kept)) * w / sum(weights) for w in weights]
    epochs = [int(s) for s in shares]
    for i in sorted(range(len(kept)), key=lambda i: int(shares[i]) - shares[i])[: shrink_epochs - sum(epochs)]:
        epochs[i] += 1
    return [ShrinkPhase(name, open_, e, phase_lr, subnets)
            for (name, open_, _, phase_lr, subnets), e in zip(kept, epochs)]


def sample_open(space: ElasticSpace, gen: torch.Generator, open_: dict[str, int]) -> SubnetConfig:
    """A random config drawing each dimension from its ``open_[dim]`` largest choices."""

    def pick(choices, dim):
        top = choices[-open_.get(dim, 1):]
        return top[int(torch.randint(len(top), (1,), generator=gen))]

    depths = [pick(c, "depth") for c in space.depth_choices]
    return space.config(depths, [[pick(space.expand_choices, "expand") for _ in range(d)] for d in depths],
                        [pick(space.width_choices, "width") for _ in range(space.num_stages)])


class ComputeMeter:
    """Training compute in multiply-accumulates: per image, a subnet's forward MACs (counted
    once per architecture by ``torch.utils.flop_counter`` on one image) times 3 when it is
    trained (backward ~ 2x forward: gradients of inputs and of weights) and times 1 for a
    no-grad forward (a frozen teacher)."""

    def __init__(self):
        self.macs = 0
        self.trained_images = 0  # forward+backward passes, one per image per subnet
        self.teacher_images = 0  # forward-only passes
        self._per_image: dict[Any, int] = {}

    def forward_macs(self, model: torch.nn.Module, x: torch.Tensor) -> int:
        from torch.utils.flop_counter import FlopCounterMode

        key = (id(model), getattr(model, "active", None))
        if key not in self._per_image:
            was_training = model.training
            model.eval()
            with torch.no_grad(), FlopCounterMode(display=False) as counter:
                model(x[:1])
            model.train(was_training)
            self._per_image[key] = counter.get_total_flops() // 2
        return self._per_image[key]

    def add(self, model: torch.nn.Module, x: torch.Tensor, trained: bool = True) -> None:
        self.macs += (3 if trained else 1) * self.forward_macs(model, x) * len(x)
        if trained:
            self.trained_images += len(x)
        else:
            self.teacher_images += len(x)

    def to_dict(self) -> dict[str, int]:
        return {"train_macs": self.macs, "trained_images": self.trained_images,
                "teacher_images": self.teacher_images}


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
    """``loss_fn`` for the shared trainer: the mean (ofa: the sum) over the step's subnets of
    ``CE(labels) + kd_ratio * KL(soft targets)`` (the largest, when it is trained, has
    labels only: it makes the targets). Soft targets: ``teacher``'s outputs when given
    (OFA), else the largest subnet's detached logits of the same step (in-place)."""

    def __init__(self, space: ElasticSpace, *, strategy: str = "sandwich", n_random: int = 2,
                 kd_temperature: float = 1.0, kd_ratio: float = 1.0, seed: int = 0, epochs: int = 1,
                 teacher: torch.nn.Module | None = None, open_dims: dict[str, int] | None = None,
                 meter: ComputeMeter | None = None):
        if strategy not in STRATEGIES:
            raise SkipswitchError(f"unknown supernet training strategy {strategy!r}; choose {', '.join(STRATEGIES)}")
        if n_random < 0:
            raise SkipswitchError(f"n_random must be >= 0, got {n_random}")
        if kd_temperature <= 0:
            raise SkipswitchError(f"kd_temperature must be positive, got {kd_temperature}")
        if kd_ratio < 0:
            raise SkipswitchError(f"kd_ratio must be >= 0, got {kd_ratio}")
        self.space, self.strategy, self.n_random = space, strategy, n_random
        self.temperature, self.kd_ratio, self.seed, self.epochs = kd_temperature, kd_ratio, seed, epochs
        self.teacher, self.open_dims, self.meter = teacher, open_dims or {}, meter
        self.set_epoch(0)

    @property
    def subnets_per_step(self) -> int:
        """Subnets trained per step once every dimension is open (the largest included,
        except under ofa)."""
        return self.n_random + {"ofa": 0, "progressive": 1}.get(self.strategy, 2)

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
        """The subnets distilled in one step (besides the largest, except under ofa)."""
        if self.strategy == "ofa":
            # OFA samples every subnet of a step (dynamic_batch_size), the largest included by chance only
            return [sample_open(self.space, self.generator, self.open_dims) for _ in range(self.n_random)]
        if self.strategy == "compound":
            sampled = [compound_sample(self.space, self.generator) for _ in range(self.n_random)]
            return [self.space.smallest(), *sampled]
        if self.strategy == "progressive":
            if not self.phase:
                return []
            return [restrict(self.space, self.space.sample(self.generator), self.phase) for _ in range(self.n_random)]
        return [self.space.smallest(), *(self.space.sample(self.generator) for _ in range(self.n_random))]

    def _forward(self, model: torch.nn.Module, x: torch.Tensor, trained: bool = True) -> torch.Tensor:
        if self.meter is not None:
            self.meter.add(model, x, trained)
        return model(x)

    def __call__(self, model: ElasticResNet, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        model.set_active(None)
        losses, shown = [], None
        if self.teacher is not None:
            with torch.no_grad():
                soft = self._forward(self.teacher, x, trained=False)
        else:
            shown = self._forward(model, x)
            losses.append(F.cross_entropy(shown, y))
            soft = shown.detach()
        for config in self.subnets():
            model.set_active(config)
            logits = self._forward(model, x)
            losses.append(F.cross_entropy(logits, y) + self.kd_ratio * kl_distillation(logits, soft, self.temperature))
            shown = logits if shown is None else shown
        model.set_active(None)  # the trainer evaluates the largest subnet
        losses = torch.stack(losses)
        # OFA calls backward once per sampled subnet before one optimizer step (progressive_shrinking.py
        # train_one_epoch), so its gradients add up; its learning rates are set for that sum.
        return (losses.sum() if self.strategy == "ofa" else losses.mean()), shown


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
    kd_ratio: float = 1.0,
    lr_per_subnet: bool = False,
    zero_init_residual: bool = False,
    shrink_epochs: int | None = None,
    space_args: dict[str, Any] | None = None,
    data_dir: str | Path | None = None,
    quiet: bool = False,
    resume: bool = False,
    meter: ComputeMeter | None = None,
) -> tuple[ElasticResNet, RunResult]:
    """Train a supernet; writes the trainer's files plus ``supernet.safetensors`` (with
    recalibrated BN statistics of the largest and smallest subnets).

    ``strategy="ofa"``: ``config.epochs`` of plain training of the full network, then the
    ``ofa_schedule`` phases over ``shrink_epochs`` (default ``config.epochs``), each in its
    own sub-directory; ``n_random`` and ``sort_every`` do not apply (OFA sets the subnets
    per step and sorts channels when expand and width open). ``lr_per_subnet`` (not ofa)
    multiplies ``config.lr`` by the subnets per step: the averaged loss gives each subnet
    1/n of the gradient a summed one (US-Nets' and OFA's accumulated backward passes) would,
    so this is the summed loss's step size. ``zero_init_residual`` starts every block as its
    shortcut (``zero_init_residuals``, BigNAS). ``meter`` counts training MACs."""
    if lr_per_subnet and strategy == "ofa":
        raise SkipswitchError("lr_per_subnet is for the averaged strategies: ofa sums its subnets' losses")
    dataset = load_dataset(dataset_name, data_dir, seed=config.seed)
    args = {"num_classes": dataset.num_classes, "in_channels": dataset.in_channels,
            "input_size": list(dataset.input_size), **(space_args or {})}
    space = get_space(space_name, skip_mode=skip_mode, **args)
    torch.manual_seed(config.seed)
    supernet = ElasticResNet(space)
    if zero_init_residual:
        zero_init_residuals(supernet)
    out_dir = Path(out_dir)
    run_meta = {"run": "supernet-train", "space": space.to_dict(), "skip_mode": skip_mode, "strategy": strategy,
                "n_random": n_random, "sort_every": sort_every, "kd_ratio": kd_ratio,
                "lr_per_subnet": lr_per_subnet, "zero_init_residual": zero_init_residual}
    description = f"supernet {space.name} ({strategy}, {skip_mode})"
    if strategy == "ofa":
        phases = ofa_schedule(space, shrink_epochs or config.epochs, config.lr)
        run_meta["phases"] = [{"name": "full", "epochs": config.epochs, "lr": config.lr, "subnets": 1},
                              *({"name": p.name, "open": p.open, "epochs": p.epochs, "lr": p.lr, "subnets": p.subnets}
                                for p in phases)]
        full_loss = SandwichLoss(space, strategy="ofa", n_random=0, meter=meter)  # the largest alone: plain training
        trainer = Trainer(supernet, dataset, config, out_dir / "0-full", loss_fn=full_loss, quiet=quiet,
                          description=f"{description} full", metadata=run_meta)
        result = trainer.fit(resume=resume)
        history = [{**r, "phase": "full"} for r in result.history]
        teacher = copy.deepcopy(supernet).eval().requires_grad_(False)
        opened: dict[str, int] = {}
        for i, phase in enumerate(phases, 1):
            if any(dim in phase.open and dim not in opened for dim in ("expand", "width")):
                sort_channels(supernet)  # OFA re_organize_middle_weights when expand, then width, opens
            opened = phase.open
            loss = SandwichLoss(space, strategy="ofa", n_random=phase.subnets, kd_ratio=kd_ratio, seed=config.seed,
                                epochs=phase.epochs, teacher=teacher, open_dims=phase.open, meter=meter)
            phase_config = config.model_copy(update={"epochs": phase.epochs, "lr": phase.lr})
            trainer = Trainer(supernet, dataset, phase_config, out_dir / f"{i}-{phase.name}", loss_fn=loss,
                              epoch_hook=SupernetEpochHook(loss, sort_every=0), quiet=quiet,
                              description=f"{description} {phase.name}", metadata=run_meta)
            result = trainer.fit(resume=resume)
            history += [{**r, "phase": phase.name} for r in result.history]
        result.results["history"] = history
    else:
        loss = SandwichLoss(space, strategy=strategy, n_random=n_random, kd_ratio=kd_ratio, seed=config.seed,
                            epochs=config.epochs, meter=meter)
        if lr_per_subnet:
            config = config.model_copy(update={"lr": config.lr * loss.subnets_per_step})
        hook = SupernetEpochHook(loss, sort_every=sort_every)
        trainer = Trainer(supernet, dataset, config, out_dir, loss_fn=loss, epoch_hook=hook, quiet=quiet,
                          description=description, metadata=run_meta)
        hook.optimizer = trainer.optimizer
        result = trainer.fit(resume=resume)
    supernet.cpu()  # BN recalibration and subnet scoring below run on the CPU
    calibration = calibration_batches(dataset, seed=config.seed)
    metrics = {}
    for label, cfg in (("largest", space.largest()), ("smallest", space.smallest())):
        metrics[f"{label}_val_acc"] = subnet_accuracy(supernet, cfg, dataset, "val", calibration)
        metrics[f"{label}_test_acc"] = subnet_accuracy(supernet, cfg, dataset, "test", calibration)
    if meter is not None:
        metrics["compute"] = meter.to_dict()
    if trainer.is_main:
        save_supernet(out_dir / "supernet.safetensors", supernet,
                      {**run_meta, "dataset": dataset.to_dict(), "train_config": config.model_dump(), "metrics": metrics})
    result.results["supernet_metrics"] = metrics
    return supernet, result
