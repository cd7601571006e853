"""Validated training configuration (pydantic), shared by every trainer in the project."""

from __future__ import annotations

import math
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from ..errors import SkipswitchError
from ..io import validation_line

# numpy and scikit-learn take seeds in [0, 2**32); bounds here reject a bad one before any work.
Seed = Annotated[int, Field(ge=0, le=2**32 - 1)]
# A sane ceiling on epochs/rounds: more is a typo, not a run (10**20 would run forever).
MAX_EPOCHS = 100_000


class TrainConfig(BaseModel):
    """SGD hyper-parameters. Defaults follow the Tailor reference scripts, except the
    cosine schedule (our runs are far shorter than its 200 epochs with StepLR(30))."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    epochs: int = Field(30, gt=0, le=MAX_EPOCHS)
    batch_size: int = Field(64, gt=0)
    lr: float = Field(0.1, gt=0)
    momentum: float = Field(0.9, ge=0, lt=1)
    nesterov: bool = True
    weight_decay: float = Field(1e-4, ge=0)
    schedule: Literal["cosine", "step"] = "cosine"
    step_size: int = Field(30, gt=0)
    gamma: float = Field(0.1, gt=0, le=1)
    warmup_epochs: int = Field(0, ge=0)
    seed: Seed = 0

    def lr_at(self, epoch: int) -> float:
        """Learning rate for ``epoch`` (0-based); computed, so resuming needs no scheduler state."""
        if epoch < self.warmup_epochs:
            return self.lr * (epoch + 1) / (self.warmup_epochs + 1)
        if self.schedule == "step":
            return self.lr * self.gamma ** (epoch // self.step_size)
        return cosine_lr(self.lr, epoch - self.warmup_epochs, self.epochs - self.warmup_epochs)


def cosine_lr(base_lr: float, step: int, total: int) -> float:
    """Cosine annealing without restarts: ``base_lr`` at step 0, half of it at ``total / 2``,
    approaching 0 as ``step`` nears ``total`` (steps counted from 0)."""
    return 0.5 * base_lr * (1 + math.cos(math.pi * step / max(1, total)))


def validated(cls: type[BaseModel], **values) -> BaseModel:
    """Build a pydantic config, turning the first validation error into one clear line."""
    try:
        return cls(**values)
    except ValidationError as exc:
        raise SkipswitchError(validation_line(exc)) from None
