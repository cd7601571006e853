"""Real-time serving of a weight-shared supernet's Pareto set: in-place subnet switching
(SuperServe's SubNetAct), temporal/spatial baselines, FastSwitch-style persistent/dynamic
buffers, an SLO-aware policy, an HTTP server and a load generator.

Names load lazily so that the CLI imports without torch."""

from __future__ import annotations

_EXPORTS = {
    "MODES": "engine", "ServingEngine": "engine", "Subnet": "engine", "load_pareto": "engine",
    "SlackFitPolicy": "policy", "FixedPolicy": "policy", "make_policy": "policy", "register_policy": "policy",
    "Scheduler": "scheduler", "create_app": "server", "run_in_thread": "server",
    "make_trace": "loadgen", "run_load": "loadgen",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name in _EXPORTS:
        import importlib

        return getattr(importlib.import_module(f".{_EXPORTS[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
