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


class RuntimeConfig(BaseModel):
    """Where and how the steps run (training/device.py, training/distributed.py). These change
    neither the data order nor the model, so a resume may change them (RUNTIME_FIELDS); amp and
    sync_bn change the arithmetic and must match."""

    model_config = ConfigDict(extra="forbid")

    device: str = Field("auto", pattern=r"^(auto|cpu|cuda(:\d+)?)$",
                        description="auto (CUDA when available), cpu, cuda or cuda:N.")
    amp: Literal["off", "bf16", "fp16"] = Field("off", description="Mixed precision: off, bf16 or fp16 (with loss scaling).")
    channels_last: bool = Field(False, description="NHWC memory format (faster convs on GPUs, and with bf16 on AMX CPUs).")
    compile: bool = Field(False, description="torch.compile the model.")
    sync_bn: bool = Field(False, description="BatchNorm statistics over all ranks (CUDA).")
    nproc: int = Field(1, gt=0, description="Data-parallel processes on this machine (>1 launches torchrun).")
    workers: int = Field(4, ge=0, description="DataLoader worker processes for on-disk datasets.")


class TrainConfig(RuntimeConfig):
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


RUNTIME_FIELDS = ("device", "channels_last", "compile", "nproc", "workers")


def validated(cls: type[BaseModel], **values) -> BaseModel:
    """Build a pydantic config, turning the first validation error into one clear line."""
    try:
        return cls(**values)
    except ValidationError as exc:
        raise SkipswitchError(validation_line(exc)) from None
