"""Dynamic layers (as in OFA's ``DynamicConv2d`` / ``DynamicBatchNorm2d``): a layer that,
given an active weight shape, computes with the prefix slice (a view) of its own weights.

With ``active`` unset they are their torch.nn base classes unchanged (same parameters,
buffers and names), so a model keeps its state_dict keys and ``make_dynamic`` can turn the
layers of an existing model into dynamic ones in place.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F


class DynamicLayer:
    active: tuple[slice, ...] | None = None  # the active weight's prefix box, one slice a dimension; None: all

    def _slice(self, tensor: torch.Tensor | None) -> torch.Tensor | None:
        # Bias and BN vectors take the leading (output-channel) slice.
        return None if tensor is None else tensor[self.active[: tensor.dim()]]


class DynamicConv2d(DynamicLayer, nn.Conv2d):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.active is None:
            return super().forward(x)
        return self._conv_forward(x, self._slice(self.weight), self._slice(self.bias))


class DynamicLinear(DynamicLayer, nn.Linear):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.active is None:
            return super().forward(x)
        return F.linear(x, self._slice(self.weight), self._slice(self.bias))


class DynamicBatchNorm2d(DynamicLayer, nn.BatchNorm2d):
    # Statistics of the active subnet (mean, var) that replace the sliced running ones in eval.
    active_stats: tuple[torch.Tensor, torch.Tensor] | None = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.active is None:
            return super().forward(x)
        if self.training:
            # Active subnets train on batch statistics without touching the shared running
            # statistics, which then track the whole layer (the plain forward).
            mean = var = None
        elif self.active_stats is not None:
            mean, var = self.active_stats
        else:
            mean, var = self._slice(self.running_mean), self._slice(self.running_var)
        return F.batch_norm(x, mean, var, self._slice(self.weight), self._slice(self.bias), self.training,
                            0.1 if self.momentum is None else self.momentum, self.eps)


_DYNAMIC = {nn.Conv2d: DynamicConv2d, nn.Linear: DynamicLinear, nn.BatchNorm2d: DynamicBatchNorm2d}


def make_dynamic(model: nn.Module) -> nn.Module:
    """Turn ``model``'s Conv2d, Linear and BatchNorm2d layers into their dynamic subclasses in
    place; parameters, buffers and their names are kept (only the class, hence the forward, changes)."""
    for module in model.modules():
        module.__class__ = _DYNAMIC.get(type(module), type(module))
    return model
