"""Client capability profiles and the subnet each one can train.

A profile states a training-memory budget (MB) and a compute budget (millions of
multiply-accumulates per forward pass of one image). A client gets the largest subnet
of a ladder of nested uniform configs (same depth index, expand ratio and width in every
stage) whose estimated cost fits both budgets. Two ladders: ``depth-width`` grows depth,
expand ratio and width in turn; ``width`` (HeteroFL) keeps the full depth on every rung and
grows width and expand ratio only. The cost comes from the graph IR (``trace``):

* compute  = forward MACs of one image;
* memory   = 4 bytes x (3 x parameters  [weights, gradients, SGD momentum]
                        + batch_size x activation elements  [every traced layer's output,
                          kept for the backward pass]).

The memory figure is an estimate for ranking subnets, not an allocator measurement.

Profiles file (JSON or TOML)::

    {"profiles": [{"name": "phone", "memory_mb": 4, "mmacs": 0.5}, ...],
     "assignment": ["phone", "laptop", ...]}   # one name per client, optional (default: cycle)
"""

from __future__ import annotations

import json
import tomllib
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Literal, Optional

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from ..errors import SkipswitchError
from ..io import validation_line

BYTES_PER_ELEMENT = 4
LadderKind = Literal["depth-width", "width"]


class ClientProfile(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1)
    memory_mb: float = Field(gt=0, description="Training memory budget in MB (10^6 bytes).")
    mmacs: float = Field(gt=0, description="Compute budget: forward MACs per image, in millions.")


class ProfileSet(BaseModel):
    model_config = ConfigDict(extra="forbid")

    profiles: list[ClientProfile] = Field(min_length=1)
    assignment: Optional[list[str]] = None

    def for_clients(self, clients: int) -> list[ClientProfile]:
        """The profile of every client id 0..clients-1."""
        by_name = {p.name: p for p in self.profiles}
        if len(by_name) != len(self.profiles):
            raise SkipswitchError("profile names must be unique")
        if self.assignment is None:
            return [self.profiles[i % len(self.profiles)] for i in range(clients)]
        if len(self.assignment) != clients:
            raise SkipswitchError(f"profiles assignment lists {len(self.assignment)} clients but the run has {clients}")
        unknown = sorted(set(self.assignment) - set(by_name))
        if unknown:
            raise SkipswitchError(f"profiles assignment names unknown profile {unknown[0]!r}; known: {', '.join(by_name)}")
        return [by_name[name] for name in self.assignment]


def load_profiles(path: str | Path) -> ProfileSet:
    path = Path(path)
    if not path.is_file():
        raise SkipswitchError(f"profiles file {path} not found")
    text = path.read_text()
    try:
        data = tomllib.loads(text) if path.suffix == ".toml" else json.loads(text)
    except (json.JSONDecodeError, tomllib.TOMLDecodeError) as exc:
        raise SkipswitchError(f"profiles file {path} is not valid {path.suffix.lstrip('.') or 'JSON'}: "
                              f"{str(exc).splitlines()[0]}") from None
    try:
        return ProfileSet.model_validate(data)
    except ValidationError as exc:
        raise SkipswitchError(f"profiles file {path}: {validation_line(exc)}") from None


@dataclass(frozen=True)
class SubnetCost:
    params: int
    macs: int
    memory_bytes: int

    @property
    def memory_mb(self) -> float:
        return self.memory_bytes / 1e6

    @property
    def mmacs(self) -> float:
        return self.macs / 1e6


def ladder(space, kind: LadderKind = "depth-width") -> list:
    """A chain of nested subnets ordered by cost; a budget picks a prefix.

    Each step raises one elastic dimension (width, then expand ratio, then depth, in turn)
    to its next choice in every stage, so each config contains the previous one and its
    cost is at least as large. ``depth-width`` starts from the space's smallest config.
    ``width`` starts at the full depth and raises width and expand ratio only: HeteroFL's tiers
    (Diao et al., "HeteroFL", ICLR 2021, arXiv 2010.01264) give every client the whole depth at a
    reduced width, so the deep blocks are trained by every client's data, not only the top tier's.
    """
    steps = {"width": len(space.width_choices), "expand": len(space.expand_choices),
             "depth": max(len(c) for c in space.depth_choices)}
    index = {dim: 0 for dim in steps}
    if kind == "width":
        index["depth"] = steps["depth"] - 1

    def make():
        depths = [c[min(index["depth"], len(c) - 1)] for c in space.depth_choices]
        return space.config(depths, space.expand_choices[index["expand"]], space.width_choices[index["width"]])

    configs = [make()]
    while any(index[d] < steps[d] - 1 for d in steps):
        for dim in ("width", "expand", "depth"):
            if index[dim] < steps[dim] - 1:
                index[dim] += 1
                configs.append(make())
    return configs


@lru_cache(maxsize=512)
def cost_of(space, config, batch_size: int, skip_mode: str = "long") -> SubnetCost:
    """Cost of ``config`` from its traced graph (cached: spaces and configs are frozen values)."""
    from ..graph import trace

    graph = trace(space.build(config, skip_mode=skip_mode))
    activations = sum(layer.output_elements for layer in graph.layers if layer.op not in ("input", "output"))
    params = graph.total_params
    memory = BYTES_PER_ELEMENT * (3 * params + batch_size * activations)
    return SubnetCost(params=params, macs=graph.total_macs, memory_bytes=memory)


def fits_profile(cost: SubnetCost, profile: ClientProfile) -> bool:
    return cost.memory_mb <= profile.memory_mb and cost.mmacs <= profile.mmacs


def assign_subnet(space, profile: ClientProfile, batch_size: int, skip_mode: str = "long",
                  kind: LadderKind = "depth-width"):
    """The largest config of the ``kind`` ladder that fits ``profile`` (walked from the top, so
    only the configs down to the answer are traced)."""
    chain = ladder(space, kind)
    for config in reversed(chain):
        if fits_profile(cost_of(space, config, batch_size, skip_mode), profile):
            return config
    smallest = cost_of(space, chain[0], batch_size, skip_mode)
    raise SkipswitchError(
        f"profile {profile.name!r} (memory_mb={profile.memory_mb:g}, mmacs={profile.mmacs:g}) fits no subnet of the "
        f"{kind} ladder; its smallest needs memory_mb={smallest.memory_mb:.3f}, mmacs={smallest.mmacs:.3f}")


def default_profiles(space, batch_size: int, skip_mode: str = "long", kind: LadderKind = "depth-width") -> ProfileSet:
    """Three tiers derived from the ``kind`` ladder: its first rung (for ``depth-width`` the space's
    smallest subnet), its middle one and the largest subnet."""
    configs = ladder(space, kind)
    picks = {name: cost_of(space, configs[i], batch_size, skip_mode)
             for name, i in (("small", 0), ("medium", len(configs) // 2), ("large", len(configs) - 1))}
    # Budgets a hair above the picked cost, so the tier fits it despite float rounding.
    return ProfileSet(profiles=[ClientProfile(name=name, memory_mb=c.memory_mb * 1.0001, mmacs=c.mmacs * 1.0001)
                                for name, c in picks.items()])
