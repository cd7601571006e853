"""What keeps Tailor's retraining stable on wide (ImageNet-style, torchvision) ResNets.

Measured on ``torchvision:resnet18`` (docs/tailor.md): each alteration, and the first steps
from the teacher's weights, change the network's function abruptly; at the fine-tuning rate
the next SGD steps overshoot and the loss spikes to tens or hundreds. Three remedies that
the reference training recipes use: a linear learning-rate warm-up after each alteration,
gradient-norm clipping, and BatchNorm statistics recomputed for the new topology; and, ours,
a removed skip faded out over the steps before its removal instead of cut at once.
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

    @property
    def epoch_step(self) -> int:
        return self._epoch_step

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
    old statistics describe the old topology), and the optimizer's warm-up armed.

    With ``fade_steps`` (Skip Remover only; 0: the reference's abrupt removal) the skip that the
    schedule removes at epoch e fades out over the first ``fade_steps`` steps (at most all) of
    epoch e - 1: its shortcut's output is scaled from 1 down to 0, so the removal itself no longer
    changes the function and the weights adapt while the skip still carries part of the signal."""

    def __init__(self, schedule: AlterationSchedule, optimizer: AlterationAwareSGD, train: Split, *,
                 batch_size: int, seed: int, recalibrate_batches: int = 0, fade_steps: int = 0):
        self.schedule, self.optimizer, self.train = schedule, optimizer, train
        self.batch_size, self.seed, self.recalibrate_batches = batch_size, seed, recalibrate_batches
        # at most one epoch's steps, so that the skip is at 0 when it is removed
        steps_per_epoch = -(-len(train) // batch_size)
        self.fade_steps = min(fade_steps, steps_per_epoch) if schedule.method == "remove" else 0

    def _fade(self, block: nn.Module) -> None:
        """Scale ``block``'s long shortcut by 1 - step / fade_steps (step: the optimizer's step in
        this epoch). An identity shortcut becomes an ``nn.Identity`` module to carry the hook; it
        has no parameters, so checkpoints keep their keys; the removal drops it with the hook."""
        if block.shortcut is None:
            block.shortcut = nn.Identity()
        block.shortcut.register_forward_hook(
            lambda _m, _i, out: out * max(0.0, 1.0 - self.optimizer.epoch_step / self.fade_steps))

    def __call__(self, epoch: int, model: nn.Module) -> tuple[list[nn.Parameter], dict[str, Any] | None]:
        new_params, event = self.schedule(epoch, model)
        if event is not None and self.recalibrate_batches:
            batches = iterate_batches(self.train, self.batch_size, shuffle=True, seed=self.seed, epoch=epoch)
            update_bn(islice(batches, self.recalibrate_batches), model)
        self.optimizer.begin_epoch(warm=event is not None or epoch == 0)
        upcoming = self.schedule.at(epoch + 1)
        if self.fade_steps and upcoming is not None:  # after the recalibration, which must see the skip whole
            self._fade(model.blocks()[upcoming.block])
        return new_params, event
