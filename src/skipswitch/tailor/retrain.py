"""Tailor retraining: a student starts from the teacher's weights and has its skips
altered gradually (Skip Remover / Skip Shortener) under knowledge distillation."""

from __future__ import annotations

import copy
import sys
from pathlib import Path

import torch

from ..checkpoint import atomic_write_json, load_model
from ..data import Split, load_dataset
from ..errors import SkipswitchError
from ..training import RunResult, TrainConfig, Trainer, evaluate
from ..training.trainer import make_optimizer
from .kd import DistillationLoss, TeacherLogits
from .schedule import AlterationSchedule
from .stabilise import AlterationAwareSGD, StabilisedSchedule


def _state_snapshot(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def run_tailor(
    teacher_path: str | Path,
    method: str,
    *,
    config: TrainConfig,
    out_dir: str | Path,
    model_name: str | None = None,
    dataset_name: str | None = None,
    data_dir: str | Path | None = None,
    kd: str = "mse",
    alpha: float = 0.35,
    temperature: float = 4.0,
    every: int = 3,
    order: str = "input",
    warmup_steps: int = 0,
    clip: float = 0.0,
    recalibrate_batches: int = 0,
    fade_steps: int = 0,
    quiet: bool = False,
    resume: bool = False,
) -> RunResult:
    """Retrain a student from the teacher at ``teacher_path`` while ``method`` alters its skips.

    The defaults are the Tailor reference recipe (MSE on logits, no warm-up, clipping or BN
    recalibration); the tailor job's defaults add what wide ResNets need (docs/tailor.md)."""
    teacher, meta = load_model(teacher_path)
    teacher_arch = meta["model"]["name"]
    if model_name is not None and model_name != teacher_arch:
        raise SkipswitchError(
            f"teacher {teacher_path} is a {teacher_arch} but the student was requested as {model_name}; "
            "Tailor students have the teacher's architecture"
        )
    dataset_name = dataset_name or meta.get("dataset", {}).get("name", "digits")
    dataset = load_dataset(dataset_name, data_dir, seed=config.seed)
    if (dataset.num_classes, dataset.in_channels, list(dataset.input_size)) != (
        teacher.num_classes, teacher.in_channels, list(teacher.input_size)
    ):
        raise SkipswitchError(
            f"teacher {teacher_path} expects {teacher.in_channels}x{teacher.input_size} inputs and "
            f"{teacher.num_classes} classes; dataset {dataset_name} has {dataset.in_channels}x"
            f"{dataset.input_size} and {dataset.num_classes}"
        )

    student = copy.deepcopy(teacher)  # starts from the teacher's weights
    student.train()
    schedule = AlterationSchedule(student, method, every=every, order=order)
    schedule.check_epochs(config.epochs)
    if advice := schedule.pace_advice(config.epochs):
        print(f"warning: {advice}", file=sys.stderr)
    loss = DistillationLoss(teacher, kind=kd, alpha=alpha, temperature=temperature)
    teacher_before = _state_snapshot(teacher)
    teacher_test_loss, teacher_test_acc = evaluate(teacher, dataset.test)

    optimizer = AlterationAwareSGD(student.parameters(), clip=clip, warmup_steps=warmup_steps,
                                   **make_optimizer(student, config).defaults)
    hook = StabilisedSchedule(schedule, optimizer, dataset.train, batch_size=config.batch_size, seed=config.seed,
                              recalibrate_batches=recalibrate_batches, fade_steps=fade_steps)
    trainer = Trainer(
        student, dataset, config, out_dir, loss_fn=loss, epoch_hook=hook, optimizer=optimizer, quiet=quiet,
        description=f"tailor {method}",
        metadata={
            "run": "tailor",
            "method": method,
            "teacher": str(teacher_path),
            "teacher_model": meta["model"],
            "teacher_test_acc": teacher_test_acc,
            "kd": {"kind": kd, "alpha": alpha, "temperature": temperature},
            "schedule": {"every": every, "order": order, "alterations": [a.to_dict() for a in schedule.alterations]},
            "stabilise": {"warmup_steps": warmup_steps, "clip": clip, "recalibrate_batches": recalibrate_batches,
                          "fade_steps": fade_steps},
        },
    )
    trainer.runtime.place(teacher)
    if dataset.augment == "none" and isinstance(dataset.train, Split) and trainer.runtime.device.type == "cpu":
        loss.cache = TeacherLogits(teacher, dataset.train.images, trainer.runtime)
    result = trainer.fit(resume=resume)
    result.results["teacher_logits_cached"] = loss.cache is not None
    after = teacher.state_dict()
    unchanged = all(torch.equal(teacher_before[k], after[k].cpu()) for k in teacher_before)
    if not unchanged:  # a bug, not a user error: the guarantee this module exists for
        raise RuntimeError("the frozen teacher changed during Tailor retraining")
    result.results["teacher_unchanged"] = unchanged
    if trainer.is_main:
        atomic_write_json(trainer.results_path, result.results)
    return result
