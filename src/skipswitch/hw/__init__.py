"""Hardware models read from the graph IR: FPGA part table, hls4ml io_stream dataflow estimator,
hls4ml export, and the FastSwitch accelerator template, latency model and DSE (``hw.accelerator``)."""

from .dataflow import (
    Comparison,
    Estimate,
    EstimatorConfig,
    bram18_count,
    compare_graphs,
    compare_model,
    estimate_graph,
    fifo_is_srl,
)
from .parts import PARTS, Part, get_part, list_parts

__all__ = [
    "Comparison", "Estimate", "EstimatorConfig", "PARTS", "Part", "bram18_count", "compare_graphs", "compare_model",
    "estimate_graph", "fifo_is_srl", "get_part", "list_parts",
]
