"""FastSwitch accelerator model (Tong et al., Sec. 3-4): template and
Table-2 buffers (``template``), workloads of weight-sharing subnets (``workload``), the latency
and switching model (``latency``), design-space exploration (``dse``), named operating conditions
(``presets``), trace-optimal persistent-buffer content (``pb_policy``) and figures (``plots``).

Names load on first use so that ``skipswitch --help`` (which imports ``.cli``) stays fast.
"""

from __future__ import annotations

from .._lazy import lazy_exports

_EXPORTS = {
    "DseResult": "dse", "default_grid": "dse", "explore": "dse", "two_phase": "dse",
    "Evaluation": "latency", "compute_bound": "latency", "evaluate": "latency", "layer_terms": "latency",
    "switching_report": "latency",
    "AcceleratorDesign": "template", "buffer_shapes": "template", "check_fits": "template",
    "design_resources": "template",
    "ConvWork": "workload", "PersistentPlan": "workload", "SubnetWork": "workload", "Workload": "workload",
    "get_workload": "workload", "pb_plan": "workload", "spread_configs": "workload",
    "Conditions": "presets", "PRESETS": "presets", "get_preset": "presets", "resolve_conditions": "presets",
    "group_by_subnet": "pb_policy", "trace_optimal_plan": "pb_policy",
    "subnet_from_graph": "workload", "workload_from_supernet": "workload",
}
__getattr__, __all__ = lazy_exports(__name__, _EXPORTS)
