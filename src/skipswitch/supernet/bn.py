"""BatchNorm recalibration per subnet and OFA's channel importance sorting."""

from __future__ import annotations

from typing import Iterable

import torch
from torch import nn

from ..models.resnet import BasicBlock, Bottleneck
from .elastic import BN_BUFFERS, ElasticResNet
from .space import SubnetConfig


@torch.no_grad()
def recalibrate_bn(supernet: ElasticResNet, config: SubnetConfig, batches: Iterable[torch.Tensor],
                   store: bool = True) -> dict[str, torch.Tensor]:
    """Exact mean/variance of every BN input of ``config`` over ``batches`` (OFA's
    ``set_running_statistics``: cumulative average, not momentum). Stored in the supernet
    under the config (used by the active forward in eval mode, ``extract`` and checkpoints)."""
    supernet.bn_stats.pop(config.key(), None)
    model = supernet.extract(config)
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.reset_running_stats()
            m.momentum = None  # cumulative moving average over the calibration batches
    model.train()
    seen = 0
    for x in batches:
        model(x)
        seen += 1
    if seen == 0:
        raise ValueError("recalibrate_bn needs at least one batch")
    stats = {f"{name}.{buf}": getattr(m, buf).clone() for name, m in model.named_modules()
             if isinstance(m, nn.BatchNorm2d) for buf in BN_BUFFERS}
    if store:
        supernet.store_bn_stats(config, stats)
    return stats


def _importance_order(consumer_weight: torch.Tensor) -> torch.Tensor:
    """Input channels of a consumer conv, most important (largest L1 norm) first."""
    importance = consumer_weight.detach().abs().sum(dim=(0, 2, 3))
    return torch.argsort(importance, descending=True, stable=True)


def _permute(param: torch.Tensor, order: torch.Tensor, dim: int, optimizer: torch.optim.Optimizer | None) -> None:
    with torch.no_grad():
        param.copy_(param.index_select(dim, order))
    if optimizer is not None and isinstance(param, nn.Parameter):
        buf = optimizer.state.get(param, {}).get("momentum_buffer")
        if buf is not None:
            buf.copy_(buf.index_select(dim, order))


def _permute_producer(conv: nn.Conv2d, bn: nn.BatchNorm2d, order: torch.Tensor, optimizer) -> None:
    _permute(conv.weight, order, 0, optimizer)
    for t in (bn.weight, bn.bias, bn.running_mean, bn.running_var):
        _permute(t, order, 0, optimizer)


def sort_channels(supernet: ElasticResNet, optimizer: torch.optim.Optimizer | None = None) -> int:
    """Reorder every block's inner channels by importance (L1 norm of the next conv's
    weights for that channel), so that shrinking the expand ratio keeps the most
    important ones (OFA ``re_organize_middle_weights``). The largest subnet's function
    is unchanged. SGD momentum is permuted with its parameters when ``optimizer`` is given.

    Short-skip blocks are left alone: their inner tensors are also skip endpoints, so a
    permutation would have to follow the projections too. Returns the blocks sorted."""
    sorted_blocks = 0
    for block in supernet.blocks():
        if block.skip_mode == "short":
            continue
        if isinstance(block, Bottleneck):
            order = _importance_order(block.conv3.weight)
            _permute(block.conv3.weight, order, 1, optimizer)
            _permute_producer(block.conv2, block.bn2, order, optimizer)
            order = _importance_order(block.conv2.weight)
            _permute(block.conv2.weight, order, 1, optimizer)
            _permute_producer(block.conv1, block.bn1, order, optimizer)
        elif isinstance(block, BasicBlock):
            order = _importance_order(block.conv2.weight)
            _permute(block.conv2.weight, order, 1, optimizer)
            _permute_producer(block.conv1, block.bn1, order, optimizer)
        sorted_blocks += 1
    # Stored per-subnet statistics index channels by their old positions.
    supernet.bn_stats.clear()
    supernet.bn_configs.clear()
    return sorted_blocks
