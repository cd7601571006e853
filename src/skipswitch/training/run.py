"""Train a model from scratch (a Tailor teacher, or the no-skip baseline)."""

from __future__ import annotations

from pathlib import Path

import torch

from ..data import load_dataset
from ..models import create_model
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
) -> RunResult:
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
    trainer = Trainer(
        model, dataset, config, out_dir, quiet=quiet, description=f"{model_name} ({skip_mode})",
        metadata={"run": "train", "skip_mode": skip_mode},
    )
    return trainer.fit(resume=resume)
