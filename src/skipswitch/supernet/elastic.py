"""The elastic ResNet supernet: our ``ResNet`` at the space's largest config, plus an
active-subnet forward that reads prefix slices (views) of the shared weights.

It *is* a ``ResNet`` (same module tree), so its parameter names are the names of the
standalone subnets that ``extract`` builds: ``stages.0.1.conv1.weight`` in both.

With no active config the forward is the plain ``ResNet`` forward (the largest subnet),
which keeps the supernet torch.fx-traceable for the shared trainer's summary.

A skip projection exists in the supernet where the largest subnet needs one; a subnet
uses it only where its own shapes differ (channels or stride), the same rule our
``ResNet`` blocks follow, so the extracted model has exactly the projections used.
"""

from __future__ import annotations

import json
from typing import Any

import torch
from torch import nn
from torch.nn import functional as F

from ..errors import SkipswitchError
from ..models.resnet import BasicBlock, Bottleneck, ResNet, check_skip_mode
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

    def store_bn_stats(self, config: SubnetConfig, stats: dict[str, torch.Tensor]) -> None:
        key = config.key()
        self.bn_stats[key] = {k: v.detach().clone() for k, v in stats.items()}
        self.bn_configs[key] = config

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.active is None:
            return super().forward(x)
        return self._active_forward(x, self.active)

    # -- sliced layers ---------------------------------------------------------------------------
    def _bn(self, x: torch.Tensor, name: str, bn: nn.BatchNorm2d, channels: int, stats) -> torch.Tensor:
        if self.training:
            # Sampled subnets train on batch statistics without touching the shared running
            # statistics, which then track the largest subnet (the plain forward); a subnet's
            # own statistics come from recalibration (``recalibrate_bn``).
            mean = var = None
        elif stats is not None:
            mean, var = stats[f"{name}.running_mean"], stats[f"{name}.running_var"]
        else:
            mean, var = bn.running_mean[:channels], bn.running_var[:channels]
        return F.batch_norm(x, mean, var, bn.weight[:channels], bn.bias[:channels], self.training,
                            bn.momentum if bn.momentum is not None else 0.1, bn.eps)

    def _conv_bn(self, x, prefix: str, conv: nn.Conv2d, bn: nn.BatchNorm2d, out: int, stats) -> torch.Tensor:
        w = conv.weight[:out, : x.shape[1]]
        x = F.conv2d(x, w, None, conv.stride, conv.padding)
        return self._bn(x, prefix, bn, out, stats)

    def _skip(self, x, prefix: str, proj: nn.Module | None, out: int, stride: int, stats) -> torch.Tensor:
        if x.shape[1] == out and stride == 1:
            return x
        if proj is None:  # cannot happen for prefix-sliced spaces; guard against a space that breaks it
            raise SkipswitchError(f"{prefix} needs a projection ({x.shape[1]}->{out}, stride {stride}) "
                                  "that the supernet does not have")
        return self._conv_bn(x, f"{prefix}.1", proj[0], proj[1], out, stats)

    def _active_forward(self, x: torch.Tensor, config: SubnetConfig) -> torch.Tensor:
        stats = self.bn_stats.get(config.key())
        stem_out = self.space.stem_channels(config)
        x = F.relu(self._conv_bn(x, "stem.1", self.stem[0], self.stem[1], stem_out, stats))
        if len(self.stem) > 3:
            x = self.stem[3](x)
        for s, stage_channels in enumerate(self.space.block_channels(config)):
            for b, (mid, out) in enumerate(stage_channels):
                block = self.stages[s][b]
                prefix = f"stages.{s}.{b}"
                if isinstance(block, Bottleneck):
                    x = self._bottleneck(x, block, prefix, mid, out, stats)
                else:
                    x = self._basic(x, block, prefix, mid, out, stats)
        x = self.flatten(self.pool(x))
        return F.linear(x, self.fc.weight[:, : x.shape[1]], self.fc.bias)

    def _basic(self, x, block: BasicBlock, p: str, mid: int, out: int, stats) -> torch.Tensor:
        mode = block.skip_mode
        h = F.relu(self._conv_bn(x, f"{p}.bn1", block.conv1, block.bn1, mid, stats))
        if mode == "short":
            h = h + self._skip(x, f"{p}.shortcut", block.shortcut, mid, block.stride, stats)
            return F.relu(self._conv_bn(h, f"{p}.bn2", block.conv2, block.bn2, out, stats)) + h
        y = self._conv_bn(h, f"{p}.bn2", block.conv2, block.bn2, out, stats)
        if mode == "long":
            y = y + self._skip(x, f"{p}.shortcut", block.shortcut, out, block.stride, stats)
        return F.relu(y)

    def _bottleneck(self, x, block: Bottleneck, p: str, mid: int, out: int, stats) -> torch.Tensor:
        mode = block.skip_mode
        if mode == "short":
            h1 = F.relu(self._conv_bn(x, f"{p}.bn1", block.conv1, block.bn1, mid, stats))
            h1 = h1 + self._skip(x, f"{p}.short_proj1", block.short_proj1, mid, 1, stats)
            h2 = F.relu(self._conv_bn(h1, f"{p}.bn2", block.conv2, block.bn2, mid, stats))
            h2 = h2 + self._skip(h1, f"{p}.short_proj2", block.short_proj2, mid, block.stride, stats)
            h3 = F.relu(self._conv_bn(h2, f"{p}.bn3", block.conv3, block.bn3, out, stats))
            return h3 + self._skip(h2, f"{p}.short_proj3", block.short_proj3, out, 1, stats)
        h = F.relu(self._conv_bn(x, f"{p}.bn1", block.conv1, block.bn1, mid, stats))
        h = F.relu(self._conv_bn(h, f"{p}.bn2", block.conv2, block.bn2, mid, stats))
        y = self._conv_bn(h, f"{p}.bn3", block.conv3, block.bn3, out, stats)
        if mode == "long":
            y = y + self._skip(x, f"{p}.shortcut", block.shortcut, out, block.stride, stats)
        return F.relu(y)

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
