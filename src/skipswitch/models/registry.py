"""A timm-style model registry: ``@register_model`` on a factory, ``create_model(name, ...)``."""

from __future__ import annotations

from typing import Callable, Sequence

from torch import nn

from ..errors import SkipswitchError

_MODEL_FACTORIES: dict[str, Callable[..., nn.Module]] = {}


def register_model(fn: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
    """Register a factory under its function name (timm convention)."""
    name = fn.__name__
    if name in _MODEL_FACTORIES:
        raise ValueError(f"model {name!r} registered twice")
    _MODEL_FACTORIES[name] = fn
    return fn


def list_models() -> list[str]:
    return sorted(_MODEL_FACTORIES)


def create_model(
    name: str,
    *,
    num_classes: int,
    in_channels: int = 3,
    input_size: int | Sequence[int] = 32,
    skip_mode: str | Sequence[str] = "long",
    **kwargs,
) -> nn.Module:
    """Build a registered model. ``skip_mode`` is one mode for all blocks or one per block."""
    if name not in _MODEL_FACTORIES:
        raise SkipswitchError(f"unknown model {name!r}; known models: {', '.join(list_models())}")
    return _MODEL_FACTORIES[name](
        num_classes=num_classes, in_channels=in_channels, input_size=input_size, skip_mode=skip_mode, **kwargs
    )


def create_model_from_config(config: dict) -> nn.Module:
    """Rebuild a model from the ``config`` dict our models expose (as stored in checkpoints)."""
    try:
        if "arch" in config:
            return _from_arch(config)
        return create_model(
            config["name"],
            num_classes=int(config["num_classes"]),
            in_channels=int(config["in_channels"]),
            input_size=tuple(config["input_size"]),
            skip_mode=list(config["skip_modes"]),
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise SkipswitchError(f"malformed model config {config!r}: {exc}") from None


def _from_arch(config: dict) -> nn.Module:
    """Rebuild a model with explicit per-block channels (e.g. an extracted supernet subnet)."""
    from .resnet import BLOCK_TYPES, ResNet

    arch = config["arch"]
    if arch["block"] not in BLOCK_TYPES:
        raise SkipswitchError(f"unknown block type {arch['block']!r} in model config; choose {', '.join(BLOCK_TYPES)}")
    stage_widths = [stage[-1][1] if stage else 0 for stage in arch["block_channels"]]
    return ResNet(
        BLOCK_TYPES[arch["block"]], list(arch["stage_blocks"]), stage_widths,
        num_classes=int(config["num_classes"]), in_channels=int(config["in_channels"]),
        input_size=tuple(config["input_size"]), stem=arch["stem"], stem_channels=int(arch["stem_channels"]),
        skip_mode=list(config["skip_modes"]), name=config["name"], block_channels=arch["block_channels"],
    )
