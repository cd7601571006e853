"""Real-time serving of a weight-shared supernet's Pareto set: in-place subnet switching
(SuperServe's SubNetAct), temporal/spatial baselines, FastSwitch-style persistent/dynamic
buffers, an SLO-aware policy, an HTTP server and a load generator.

Names load lazily so that the CLI imports without torch."""

from __future__ import annotations

from .._lazy import lazy_exports

_EXPORTS = {
    "MODES": "engine", "ServingEngine": "engine", "Subnet": "engine", "load_pareto": "engine",
    "SlackFitPolicy": "policy", "FixedPolicy": "policy", "make_policy": "policy", "register_policy": "policy",
    "Scheduler": "scheduler", "create_app": "server", "run_in_thread": "server",
    "make_trace": "loadgen", "run_load": "loadgen",
}
__getattr__, __all__ = lazy_exports(__name__, _EXPORTS)
