"""Knowledge-distillation losses against a frozen teacher."""

from __future__ import annotations

from typing import Literal

import torch
from torch import nn
from torch.nn import functional as F

from ..errors import SkipswitchError
from ..training import kl_distillation


def freeze(teacher: nn.Module) -> nn.Module:
    """Eval mode and no gradients. The Tailor reference keeps the teacher inside the
    training module, so ``train()`` flips its BatchNorm to training mode and its running
    statistics drift; we keep it outside and in eval mode for the whole run."""
    teacher.eval()
    for p in teacher.parameters():
        p.requires_grad_(False)
    return teacher


class DistillationLoss:
    """``alpha * D(student, teacher) + (1 - alpha) * CE(student, y)``.

    ``kind='mse'`` (the Tailor reference: D = MSE of logits, no temperature) or
    ``kind='kl'`` (Hinton: D = T^2 * KL(softmax(t/T) || softmax(s/T)))."""

    def __init__(self, teacher: nn.Module, kind: Literal["mse", "kl"] = "mse", alpha: float = 0.35, temperature: float = 4.0):
        if kind not in ("mse", "kl"):
            raise SkipswitchError(f"unknown KD loss {kind!r}; choose mse or kl")
        if not 0.0 <= alpha <= 1.0:
            raise SkipswitchError(f"KD alpha must be in [0, 1], got {alpha}")
        if temperature <= 0:
            raise SkipswitchError(f"KD temperature must be positive, got {temperature}")
        self.teacher = freeze(teacher)
        self.kind, self.alpha, self.temperature = kind, alpha, temperature

    def distill(self, student_logits: torch.Tensor, teacher_logits: torch.Tensor) -> torch.Tensor:
        if self.kind == "mse":
            return F.mse_loss(student_logits, teacher_logits)
        return kl_distillation(student_logits, teacher_logits, self.temperature)

    def __call__(self, student: nn.Module, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        # The trainer's autocast covers this forward too; inference tensors cannot be
        # saved for backward, hence the clone.
        with torch.inference_mode():
            teacher_logits = self.teacher(x)
        teacher_logits = teacher_logits.clone()
        logits = student(x)
        loss = self.alpha * self.distill(logits, teacher_logits) + (1 - self.alpha) * F.cross_entropy(logits, y)
        return loss, logits
