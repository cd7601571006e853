"""Supernet checkpoints: shared weights, per-subnet BN statistics and metadata in one
safetensors file (space name and arguments, skip mode, dataset, package version)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..checkpoint import load_tensors, save_tensors
from ..errors import SkipswitchError
from .elastic import ElasticResNet
from .space import SubnetConfig, get_space

BN_PREFIX = "bn_stats."


def save_supernet(path: str | Path, supernet: ElasticResNet, metadata: dict[str, Any] | None = None) -> None:
    tensors = dict(supernet.state_dict())
    bn_configs = []
    for index, (key, stats) in enumerate(supernet.bn_stats.items()):
        bn_configs.append(supernet.bn_configs[key].to_dict())
        for name, value in stats.items():
            tensors[f"{BN_PREFIX}{index}.{name}"] = value
    meta = {
        **(metadata or {}),
        "kind": "supernet",
        "space": supernet.space.to_dict(),
        "skip_mode": supernet.supernet_skip_mode,
        "bn_configs": bn_configs,
    }
    save_tensors(path, tensors, meta)


def load_supernet(path: str | Path) -> tuple[ElasticResNet, dict[str, Any]]:
    """Rebuild the supernet from its metadata and load weights and per-subnet BN statistics."""
    tensors, meta = load_tensors(path)
    if meta.get("kind") != "supernet":
        raise SkipswitchError(f"{path} is not a supernet checkpoint (kind={meta.get('kind')!r})")
    space_meta = meta.get("space")
    if not isinstance(space_meta, dict) or "name" not in space_meta:
        raise SkipswitchError(f"supernet checkpoint {path} has no search-space description")
    space = get_space(space_meta["name"], **dict(space_meta.get("args", {})))
    supernet = ElasticResNet(space, skip_mode=meta.get("skip_mode"))
    state = {k: v for k, v in tensors.items() if not k.startswith(BN_PREFIX)}
    try:
        supernet.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        first = str(exc).splitlines()[0] if str(exc) else "state dict mismatch"
        raise SkipswitchError(f"supernet checkpoint {path} does not match its declared space: {first}") from None
    for index, cfg in enumerate(meta.get("bn_configs", [])):
        config = SubnetConfig.from_dict(cfg, space)
        prefix = f"{BN_PREFIX}{index}."
        stats = {k[len(prefix):]: v for k, v in tensors.items() if k.startswith(prefix)}
        expected = {n: tuple(v) for n, v in _bn_shapes(supernet, config).items()}
        got = {n: tuple(v.shape) for n, v in stats.items()}
        if got != expected:
            raise SkipswitchError(f"supernet checkpoint {path}: BN statistics of subnet {index} do not match "
                                  f"its config {config.key()}")
        supernet.store_bn_stats(config, stats)
    return supernet, meta


def _bn_shapes(supernet: ElasticResNet, config: SubnetConfig) -> dict[str, tuple[int, ...]]:
    regions = supernet.weight_regions(config)
    return {n: tuple(stop - start for start, stop in box) for n, box in regions.items()
            if n.endswith(".running_mean") or n.endswith(".running_var")}
