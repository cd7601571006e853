"""The shared training loop, its configuration, progress bars and run helpers."""

from .config import TrainConfig, cosine_lr, validated
from .trainer import (RunResult, Trainer, cross_entropy_loss, evaluate, kl_distillation, make_optimizer,
                      train_step)

__all__ = ["RunResult", "TrainConfig", "Trainer", "cosine_lr", "cross_entropy_loss", "evaluate", "kl_distillation",
           "make_optimizer", "train_step", "validated"]
