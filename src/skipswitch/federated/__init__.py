"""Federated weight-shared supernet training on Flower (FastSwitch Sec. 2.1; HeteroFL,
FjORD and SuperFedNAS aggregation): partitions, capability profiles, slice aggregation,
the Message-API strategy, the ClientApp, fault injection, checkpoints and resume.

Names load on first use so ``skipswitch --help`` imports neither torch nor flwr.
"""

from __future__ import annotations

from .._lazy import lazy_exports

_EXPORTS = {
    "FedConfig": "config", "fed_config": "config", "load_fed_config": "config",
    "fed_config_from_run_config": "config",
    "partition_indices": "partition", "client_split": "partition", "label_histogram": "partition",
    "ClientProfile": "profiles", "ProfileSet": "profiles", "load_profiles": "profiles", "assign_subnet": "profiles",
    "default_profiles": "profiles", "cost_of": "profiles", "ladder": "profiles",
    "SliceUpdate": "aggregate", "aggregate_slices": "aggregate", "slice_state": "aggregate",
    "local_train": "client", "make_client_app": "client",
    "SupernetStrategy": "strategy",
    "LocalGrid": "simulate", "make_server_app": "simulate", "run_federated": "simulate", "build_strategy": "simulate",
}
__getattr__, __all__ = lazy_exports(__name__, _EXPORTS)
