"""Knowledge-distillation losses against a frozen teacher."""

from __future__ import annotations

import hashlib
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


def _image_key(image: torch.Tensor) -> bytes:
    # The image's values in NCHW order (a channels-last batch row is made contiguous first).
    return hashlib.blake2b(image.contiguous().numpy().tobytes(), digest_size=16).digest()


class TeacherLogits:
    """The frozen teacher's logits for every image of an in-memory training split, computed once
    and looked up by each image's content. Without augmentation every epoch shows the teacher the
    same images, and its forward costs about a fifth of a student's training step. The logits are
    computed in a fixed order and batch size (``runtime``'s device, memory format and autocast),
    so a resumed run reads the same values as an uninterrupted one. CPU tensors only: on a GPU the
    teacher's forward costs less than the host copy a lookup would need."""

    def __init__(self, teacher: nn.Module, images: torch.Tensor, runtime, batch_size: int = 256):
        chunks = []
        with torch.no_grad(), runtime.autocast():
            for start in range(0, len(images), batch_size):
                x = runtime.inputs(images[start:start + batch_size])
                chunks.append(teacher(x))
        self.logits = torch.cat(chunks)
        self.rows = {_image_key(image): i for i, image in enumerate(images)}

    def lookup(self, x: torch.Tensor) -> torch.Tensor | None:
        """The cached logits of the batch ``x`` (on the CPU, where ``run_tailor`` alone builds a cache),
        or None if any of its images is not cached."""
        rows = [self.rows.get(_image_key(image)) for image in x]
        if None in rows:
            return None
        return self.logits[torch.tensor(rows)]


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
        self.cache: TeacherLogits | None = None  # set by run_tailor where it applies
        self.cache_hits = 0

    def distill(self, student_logits: torch.Tensor, teacher_logits: torch.Tensor) -> torch.Tensor:
        if self.kind == "mse":
            return F.mse_loss(student_logits, teacher_logits)
        return kl_distillation(student_logits, teacher_logits, self.temperature)

    def __call__(self, student: nn.Module, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        # The trainer's autocast covers this forward too; inference tensors cannot be
        # saved for backward, hence the clone.
        teacher_logits = self.cache.lookup(x) if self.cache is not None else None
        if teacher_logits is None:
            with torch.inference_mode():
                teacher_logits = self.teacher(x)
            teacher_logits = teacher_logits.clone()
        else:
            self.cache_hits += 1
        logits = student(x)
        loss = self.alpha * self.distill(logits, teacher_logits) + (1 - self.alpha) * F.cross_entropy(logits, y)
        return loss, logits
