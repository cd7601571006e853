"""Tailor skip order by hardware cost: alter the skip whose buffer costs most first.

Importing this module registers it as Tailor's ``cost`` order (registered from above, so that
tailor/ imports nothing from the hardware layer)."""

from __future__ import annotations

from torch import nn

from ..tailor.schedule import register_order
from .dataflow import EstimatorConfig, estimate_graph

_SKIPS_PER_MODE = {"long": 1, "short": 2, "none": 0}


def cost_order(model: nn.Module, config: EstimatorConfig | None = None) -> list[int]:
    """Indices of the model's long-skip blocks, the largest estimated skip buffer first.

    Buffer cost = (BRAM18, FIFO bits) of the block's skip FIFO in the hls4ml io_stream estimate
    (16-bit by default); ties keep the input-side-first order. Skips in the graph follow the
    blocks' execution order, one per long block and two per short block."""
    from ..graph import trace

    estimate = estimate_graph(trace(model), config or EstimatorConfig())
    skips = estimate.skips  # in execution order
    costs: dict[int, tuple[int, int]] = {}
    cursor = 0
    for block, mode in enumerate(model.skip_modes):
        n = _SKIPS_PER_MODE[mode]
        if mode == "long":
            s = skips[cursor]
            costs[block] = (s.bram18, s.fifo_depth * s.width_bits)
        cursor += n
    return sorted(costs, key=lambda b: (-costs[b][0], -costs[b][1], b))


register_order("cost", cost_order)
