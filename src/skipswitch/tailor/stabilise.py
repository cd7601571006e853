"""What keeps Tailor's retraining stable on wide (ImageNet-style, torchvision) ResNets.

Measured on ``torchvision:resnet18`` (docs/tailor.md): each alteration, and the first steps
from the teacher's weights, change the network's function abruptly; at the fine-tuning rate
the next SGD steps overshoot and the loss spikes to tens or hundreds. Three remedies that
the reference training recipes use: a linear learning-rate warm-up after each alteration,
gradient-norm clipping, and BatchNorm statistics recomputed for the new topology.
"""

from __future__ import annotations

from itertools import islice
from typing import Any

import torch
from torch import nn
from torch.optim.swa_utils import update_bn

from ..data import Split, iterate_batches
from .schedule import AlterationSchedule


class AlterationAwareSGD(torch.optim.SGD):
    """SGD that clips the global gradient norm to ``clip`` (0: off) and, in an epoch that
    began with an alteration (or the first epoch), scales the learning rate linearly from
    1/``warmup_steps`` up to 1 over that epoch's first ``warmup_steps`` steps.

    The warm-up depends only on the step within the epoch, so resuming at an epoch
    boundary reproduces it without extra state."""

    def __init__(self, params, *, clip: float = 0.0, warmup_steps: int = 0, **defaults):
        super().__init__(params, **defaults)
        self.clip, self.warmup_steps = clip, warmup_steps
        self._epoch_step, self._warm = 0, False

    def begin_epoch(self, warm: bool) -> None:
        self._epoch_step, self._warm = 0, warm

    def step(self, closure=None):
        if self.clip:
            nn.utils.clip_grad_norm_([p for g in self.param_groups for p in g["params"]], self.clip)
        factor = min(1.0, (self._epoch_step + 1) / self.warmup_steps) if self._warm and self.warmup_steps else 1.0
        base = [g["lr"] for g in self.param_groups]
        for g in self.param_groups:
            g["lr"] *= factor
        try:
            return super().step(closure)
        finally:
            for g, lr in zip(self.param_groups, base):
                g["lr"] = lr
            self._epoch_step += 1


class StabilisedSchedule:
    """The alteration schedule as the trainer's epoch hook, plus: BatchNorm running statistics
    recomputed over ``recalibrate_batches`` training batches right after an alteration (the
    old statistics describe the old topology), and the optimizer's warm-up armed."""

    def __init__(self, schedule: AlterationSchedule, optimizer: AlterationAwareSGD, train: Split, *,
                 batch_size: int, seed: int, recalibrate_batches: int = 0):
        self.schedule, self.optimizer, self.train = schedule, optimizer, train
        self.batch_size, self.seed, self.recalibrate_batches = batch_size, seed, recalibrate_batches

    def __call__(self, epoch: int, model: nn.Module) -> tuple[list[nn.Parameter], dict[str, Any] | None]:
        new_params, event = self.schedule(epoch, model)
        if event is not None and self.recalibrate_batches:
            batches = iterate_batches(self.train, self.batch_size, shuffle=True, seed=self.seed, epoch=epoch)
            update_bn(islice(batches, self.recalibrate_batches), model)
        self.optimizer.begin_epoch(warm=event is not None or epoch == 0)
        return new_params, event
