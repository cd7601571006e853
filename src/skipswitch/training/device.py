"""Where and how training steps run: device, mixed precision, channels-last, torch.compile,
and the process group (training/distributed.py). The Trainer holds one ``Runtime``.

Checkpoints stay device-free: ``checkpoint.save_tensors`` writes CPU copies, so a run
written on a GPU loads and resumes on a CPU-only machine.
"""

from __future__ import annotations

import contextlib
import os

import torch
from torch import nn

from ..errors import SkipswitchError
from .config import TrainConfig
from .distributed import process_group

AMP_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}


def resolve_device(spec: str, local_rank: int = 0) -> torch.device:
    """auto: this process's GPU when CUDA is available, else the CPU. ``cuda`` means the
    local rank's GPU (``cuda:0`` outside torchrun)."""
    if spec == "cpu" or (spec == "auto" and not torch.cuda.is_available()):
        return torch.device("cpu")
    if not torch.cuda.is_available():
        raise SkipswitchError(f"device {spec!r} requested but CUDA is not available here (torch {torch.__version__}); "
                              "use --device cpu or auto")
    index = int(spec.split(":")[1]) if ":" in spec else local_rank
    if index >= torch.cuda.device_count():
        raise SkipswitchError(f"device cuda:{index} requested but this machine has {torch.cuda.device_count()} CUDA devices")
    return torch.device("cuda", index)


class Runtime:
    """Device placement, autocast and gradient scaling for one training process."""

    def __init__(self, config: TrainConfig):
        self.device = resolve_device(config.device, int(os.environ.get("LOCAL_RANK", "0")))
        if config.sync_bn and self.device.type != "cuda":
            raise SkipswitchError("sync_bn needs CUDA devices (torch's SyncBatchNorm runs on GPUs only)")
        self.group = process_group(self.device.type, config.nproc)
        self.config = config
        self.memory_format = torch.channels_last if config.channels_last else torch.contiguous_format
        # fp16 overflows without loss scaling; bf16 has fp32's range and needs none.
        self.scaler = torch.amp.GradScaler(self.device.type, enabled=config.amp == "fp16")
        self._compiled: dict[int, nn.Module] = {}

    def place(self, model: nn.Module) -> nn.Module:
        """Move ``model`` (and modules an epoch hook added since) to the device, in place:
        parameters keep their identity, so the optimizer keeps tracking them."""
        if self.config.sync_bn and self.group.world > 1:
            model = nn.SyncBatchNorm.convert_sync_batchnorm(model)
        return model.to(self.device, memory_format=self.memory_format)

    def forward_model(self, model: nn.Module) -> nn.Module:
        """What the loss function calls: ``torch.compile(model)`` with ``compile``."""
        if not self.config.compile:
            return model
        if id(model) not in self._compiled:
            self._compiled[id(model)] = torch.compile(model)
        return self._compiled[id(model)]

    def batch(self, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Host batch -> device, asynchronously from pinned memory on CUDA."""
        return self.inputs(x), self._to_device(y)

    def inputs(self, x: torch.Tensor) -> torch.Tensor:
        """Host images -> device, in the runtime's memory format."""
        return self._to_device(x, memory_format=self.memory_format)

    def _to_device(self, t: torch.Tensor, **kwargs) -> torch.Tensor:
        if self.device.type != "cuda":
            return t.contiguous(**kwargs)
        return (t if t.is_pinned() else t.pin_memory()).to(self.device, non_blocking=True, **kwargs)

    def autocast(self) -> contextlib.AbstractContextManager:
        amp = self.config.amp
        return torch.autocast(self.device.type, dtype=AMP_DTYPES.get(amp, torch.bfloat16), enabled=amp != "off")

    def step(self, loss: torch.Tensor, optimizer: torch.optim.Optimizer, model: nn.Module, weight: float = 1.0) -> None:
        """Backward of ``weight * loss`` (``weight``: this shard's share of the global
        batch, so the summed gradient is the global batch's), the all-reduce over ranks,
        and an optimizer step through the fp16 gradient scaler."""
        self.scaler.scale(loss * weight if self.group.world > 1 else loss).backward()
        self.group.reduce_step([p for g in optimizer.param_groups for p in g["params"]], model)
        self.scaler.step(optimizer)
        self.scaler.update()

    def state(self) -> dict:
        return self.scaler.state_dict()

    def load_state(self, state: dict | None) -> None:
        if state:
            self.scaler.load_state_dict(state)
