"""Real-time serving of a weight-shared supernet's Pareto set: in-place subnet switching
(SuperServe's SubNetAct), temporal/spatial baselines, FastSwitch-style persistent/dynamic
buffers, an SLO-aware policy, an HTTP server and a load generator."""

from .engine import MODES, ServingEngine, Subnet, load_pareto

__all__ = ["MODES", "ServingEngine", "Subnet", "load_pareto"]
