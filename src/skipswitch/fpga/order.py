"""Tailor skip order by hardware cost: alter the skip whose buffer costs most first.

Importing this module registers it as Tailor's ``cost`` order (registered from above, so that
tailor/ imports nothing from the hardware layer)."""

from __future__ import annotations

from torch import nn

from ..tailor.schedule import register_order
from .dataflow import EstimatorConfig, estimate_graph


def cost_order(model: nn.Module, config: EstimatorConfig | None = None) -> list[int]:
    """Indices of the model's long-skip blocks, the largest estimated skip buffer first.

    Buffer cost = (BRAM18, FIFO bits) of the block's skip FIFO in the hls4ml io_stream estimate
    (16-bit by default); ties keep the input-side-first order. A skip belongs to the block whose
    forward does its add (``SkipEdge.block``), whatever the skip modes of the other blocks."""
    from ..graph import trace

    graph = trace(model)
    block_of = {edge.join: edge.block for edge in graph.skips}
    cost = {block_of[s.join]: (s.bram18, s.fifo_depth * s.width_bits)
            for s in estimate_graph(graph, config or EstimatorConfig()).skips}
    path = {id(m): name for name, m in model.named_modules()}
    costs = {i: cost[path[id(block)]] for i, block in enumerate(model.blocks()) if block.skip_mode == "long"}
    return sorted(costs, key=lambda b: (-costs[b][0], -costs[b][1], b))


register_order("cost", cost_order)
