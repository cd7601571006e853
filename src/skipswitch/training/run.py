"""Train a model from scratch (a Tailor teacher, or the no-skip baseline)."""

from __future__ import annotations

from pathlib import Path

import torch

from ..data import load_dataset
from ..models import create_model
from ..models.resnet import zero_init_residuals
from .config import TrainConfig
from .trainer import RunResult, Trainer


def train_model(
    model_name: str,
    dataset_name: str = "digits",
    *,
    config: TrainConfig,
    out_dir: str | Path,
    skip_mode: str = "long",
    data_dir: str | Path | None = None,
    quiet: bool = False,
    resume: bool = False,
    image_size: int | None = None,
    zero_init_residual: bool = False,
) -> RunResult:
    """Train ``model_name`` on ``dataset_name``. ``zero_init_residual`` starts every long-skip block as its
    skip (last BN scale 0, Goyal et al. 2017): a CIFAR-style torchvision ResNet-50 otherwise blows up
    within its first 20 steps at lr 0.01 (loss 2.3 -> 21, fp32 and bf16 alike; docs/tailor.md)."""
    options = {"image_size": image_size} if image_size else {}  # imagefolder only
    dataset = load_dataset(dataset_name, data_dir, seed=config.seed, **options)
    torch.manual_seed(config.seed)
    model = create_model(
        model_name,
        num_classes=dataset.num_classes,
        in_channels=dataset.in_channels,
        input_size=dataset.input_size,
        skip_mode=skip_mode,
    )
    if zero_init_residual:
        zero_init_residuals(model)
    trainer = Trainer(
        model, dataset, config, out_dir, quiet=quiet, description=f"{model_name} ({skip_mode})",
        metadata={"run": "train", "skip_mode": skip_mode, **({"zero_init_residual": True} if zero_init_residual else {})},
    )
    return trainer.fit(resume=resume)
