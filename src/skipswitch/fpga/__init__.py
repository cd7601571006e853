"""Tailor's hardware side, read from the graph IR: FPGA part table, hls4ml io_stream dataflow
estimator, synthesis-report reader, hls4ml export, and the skip order by buffer cost (registered as Tailor's ``cost`` order).

Names are exported lazily (PEP 562) so that importing the CLI group does not import torch.
"""

from .._lazy import lazy_exports

_EXPORTS = {
    "Comparison": "dataflow", "Estimate": "dataflow", "EstimatorConfig": "dataflow", "finn_bram18_count": "dataflow",
    "compare_graphs": "dataflow", "compare_model": "dataflow", "estimate_graph": "dataflow", "fifo_is_srl": "dataflow",
    "fifo_memory": "dataflow", "layer_weights": "dataflow",
    "SynthReport": "synth_report", "read_report_dir": "synth_report",
    "PARTS": "parts", "Part": "parts", "get_part": "parts", "list_parts": "parts",
}
__getattr__, __all__ = lazy_exports(__name__, _EXPORTS)
