"""The shared training loop, its configuration, progress bars and run helpers."""

from .config import TrainConfig, validated
from .trainer import RunResult, Trainer, cross_entropy_loss, evaluate, make_optimizer

__all__ = ["RunResult", "TrainConfig", "Trainer", "cross_entropy_loss", "evaluate", "make_optimizer", "validated"]
