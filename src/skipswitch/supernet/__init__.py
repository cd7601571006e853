"""Weight-sharing supernets: elastic ResNets, subnet configs, extraction, exact weight sets,
BN recalibration, sandwich training and Pareto search (Once-for-All / CompOFA style).

Names are loaded on first use, so ``skipswitch --help`` does not import torch.
"""

from __future__ import annotations

from .._lazy import lazy_exports

_EXPORTS = {
    "ElasticResNet": "elastic", "supernet_for": "elastic", "weight_regions": "elastic",
    "ElasticSpace": "space", "SubnetConfig": "space", "get_space": "space", "list_spaces": "space",
    "make_divisible": "space", "register_space": "space",
    "recalibrate_bn": "bn", "sort_channels": "bn",
    "save_supernet": "io", "load_supernet": "io",
    "SandwichLoss": "train", "train_supernet": "train", "subnet_accuracy": "train",
    "search": "search", "register_cost": "search", "get_cost": "search", "COSTS": "search",
}
__getattr__, __all__ = lazy_exports(__name__, _EXPORTS)
