"""The elastic ResNet supernet: our ``ResNet`` at the space's largest config, built of dynamic
layers (``models.dynamic``) so that the same block forward runs any active subnet on prefix
slices (views) of the shared weights.

It *is* a ``ResNet`` (same module tree), so its parameter names are the names of the
standalone subnets that ``extract`` builds: ``stages.0.1.conv1.weight`` in both.

With no active config the layers are plain ones (the largest subnet), which keeps the
supernet torch.fx-traceable for the shared trainer's summary.

A skip projection exists in the supernet where the largest subnet needs one; a subnet
uses it only where its own shapes differ (channels or stride), the same rule our
``ResNet`` blocks follow, so the extracted model has exactly the projections used.
"""

from __future__ import annotations

import json
from typing import Any

import torch
from torch import nn

from ..errors import SkipswitchError
from ..models.dynamic import DynamicBatchNorm2d, DynamicLayer, make_dynamic
from ..models.resnet import ResidualBlock, ResNet, check_skip_mode
from ..regions import Regions, region_bytes, shared_bytes, unique_bytes
from .space import ElasticSpace, SubnetConfig

BN_BUFFERS = ("running_mean", "running_var")


class ElasticResNet(ResNet):
    def __init__(self, space: ElasticSpace, skip_mode: str | None = None):
        skip_mode = check_skip_mode(skip_mode or space.args.get("skip_mode", "long"))
        largest = space.largest()
        channels = space.block_channels(largest)
        super().__init__(
            space.block_class, list(largest.depths), [stage[-1][1] for stage in channels],
            num_classes=space.num_classes, in_channels=space.in_channels, input_size=space.input_size,
            stem=space.stem, stem_channels=space.stem_channels(largest), skip_mode=skip_mode,
            name=f"supernet:{space.name}", block_channels=channels,
        )
        make_dynamic(self)
        self.space = space
        self.supernet_skip_mode = skip_mode
        self.active: SubnetConfig | None = None
        # Per-subnet BatchNorm statistics (config key -> {buffer name: tensor}), used in eval mode.
        self.bn_stats: dict[str, dict[str, torch.Tensor]] = {}
        self.bn_configs: dict[str, SubnetConfig] = {}

    @property
    def config(self) -> dict:
        # Not rebuildable from the model registry: supernets load with ``load_supernet``.
        return {**super().config, "space": self.space.to_dict(), "supernet_skip_mode": self.supernet_skip_mode}

    # -- activation ------------------------------------------------------------------------------
    def set_active(self, config: SubnetConfig | dict | None) -> SubnetConfig | None:
        """Route the forward pass through ``config``'s slices; ``None`` means the largest subnet."""
        if isinstance(config, dict):
            config = SubnetConfig.from_dict(config, self.space)
        elif config is not None:
            self.space.validate(config)
        self.active = config
        return config

    def set_skip_mode(self, block_index: int, mode: str) -> list[nn.Parameter]:
        # Weight regions, extraction and stored BN sets all assume one skip mode for every block.
        raise SkipswitchError(f"a supernet's skip mode is fixed ({self.supernet_skip_mode}); "
                              f"build one with supernet_for(..., skip_mode={mode!r}) instead")

    def store_bn_stats(self, config: SubnetConfig, stats: dict[str, torch.Tensor]) -> None:
        key = config.key()
        self.bn_stats[key] = {k: v.detach().clone() for k, v in stats.items()}
        self.bn_configs[key] = config

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self._configure(self.active)
        if self.active is None:
            return super().forward(x)
        x = self.stem(x)
        for stage, depth in zip(self.stages, self.active.depths):
            x = stage[:depth](x)  # elastic depth: a stage's first blocks
        return self.fc(self.flatten(self.pool(x)))

    def _configure(self, config: SubnetConfig | None) -> None:
        """Point every dynamic layer at ``config``'s weight shapes, and its BN layers at the
        config's stored statistics (if any); ``None`` restores the plain layers.

        Done on every forward, not on activation, because ``active`` is assigned directly
        (the serve engine) and stored statistics change (recalibration, search, checkpoints).
        The shapes are the extracted subnet's, so a projection the subnet does not have
        (its own shapes match there) is bypassed as an identity."""
        shapes = {} if config is None else weight_regions(self.space, config, self.supernet_skip_mode)
        stats = None if config is None else self.bn_stats.get(config.key())
        used = 0
        for name, module in self.named_modules():
            if isinstance(module, DynamicLayer):
                region = shapes.get(f"{name}.weight")
                used += region is not None
                module.active = None if region is None else tuple(slice(*r) for r in region)
                if isinstance(module, DynamicBatchNorm2d):
                    module.active_stats = None if stats is None or region is None else (
                        stats[f"{name}.running_mean"], stats[f"{name}.running_var"])
            elif isinstance(module, ResidualBlock):
                module.bypassed = frozenset() if config is None else frozenset(
                    child for child, m in module.named_children()
                    if isinstance(m, nn.Sequential) and f"{name}.{child}.0.weight" not in shapes)
        if used != sum(name.endswith(".weight") for name in shapes):
            # cannot happen for prefix-sliced spaces; guards a space that breaks it
            raise SkipswitchError(f"subnet {config.key()} reads layers that the supernet does not have")

    # -- extraction and weight sets -----------------------------------------------------------------
    def extract(self, config: SubnetConfig | dict | None = None) -> ResNet:
        """A standalone ``ResNet`` holding copies of ``config``'s slices (default: the active one).

        BN running statistics come from the stored per-subnet statistics when present,
        else from the supernet's shared buffers, exactly as the active forward uses them."""
        config = self._resolve(config)
        model = self.space.build(config, skip_mode=self.supernet_skip_mode)
        stats = self.bn_stats.get(config.key(), {})
        own = self.state_dict()
        state = {}
        for name, target in model.state_dict().items():
            if name not in own:
                raise SkipswitchError(f"subnet tensor {name} has no counterpart in the supernet")
            source = stats.get(name, own[name])
            state[name] = source[tuple(slice(0, n) for n in target.shape)].clone()
        model.load_state_dict(state, strict=True)
        model.train(self.training)
        return model

    def weight_regions(self, config: SubnetConfig | dict | None = None) -> Regions:
        """Index ranges of every supernet tensor the subnet reads (params and BN running stats)."""
        return weight_regions(self.space, self._resolve(config), self.supernet_skip_mode)

    def weight_bytes(self, config: SubnetConfig | dict, bytes_per_element: int = 4) -> int:
        return region_bytes(self.weight_regions(config), bytes_per_element)

    def shared_bytes(self, a: SubnetConfig | dict, b: SubnetConfig | dict, bytes_per_element: int = 4) -> int:
        return shared_bytes(self.weight_regions(a), self.weight_regions(b), bytes_per_element)

    def unique_bytes(self, a: SubnetConfig | dict, b: SubnetConfig | dict, bytes_per_element: int = 4) -> tuple[int, int]:
        return unique_bytes(self.weight_regions(a), self.weight_regions(b), bytes_per_element)

    def _resolve(self, config: SubnetConfig | dict | None) -> SubnetConfig:
        if config is None:
            return self.active or self.space.largest()
        if isinstance(config, dict):
            return SubnetConfig.from_dict(config, self.space)
        return self.space.validate(config)


_REGION_CACHE: dict[tuple, Regions] = {}
_REGION_CACHE_SIZE = 4096


def weight_regions(space: ElasticSpace, config: SubnetConfig, skip_mode: str = "long") -> Regions:
    """Regions without a supernet: the subnet is built on the meta device (no memory), so
    the same code that builds extracted models defines which tensors and shapes are used.
    Cached per (space, config, skip mode): building an OFA-ResNet50 even on meta takes ~1 s."""
    space.validate(config)
    cache_key = (space.name, json.dumps(space.args, sort_keys=True), config.key(), skip_mode)
    if cache_key not in _REGION_CACHE:
        with torch.device("meta"):
            model = space.build(config, skip_mode=skip_mode)
        regions: Regions = {}
        for name, tensor in model.state_dict().items():
            if name.endswith("num_batches_tracked"):
                continue  # a training counter, not part of inference weights
            regions[name] = tuple((0, int(n)) for n in tensor.shape)
        if len(_REGION_CACHE) >= _REGION_CACHE_SIZE:
            _REGION_CACHE.pop(next(iter(_REGION_CACHE)))
        _REGION_CACHE[cache_key] = regions
    return dict(_REGION_CACHE[cache_key])


def supernet_for(space_name: str, skip_mode: str = "long", **space_args: Any) -> ElasticResNet:
    """Build an untrained supernet for a named space."""
    from .space import get_space

    return ElasticResNet(get_space(space_name, skip_mode=skip_mode, **space_args))
