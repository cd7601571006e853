"""Search spaces of elastic ResNets and the subnet configs that pick one member.

A subnet is chosen by three elastic dimensions (as in Once-for-All's ResNets):

* ``depths``  - blocks kept per stage (the first ``d`` blocks of the supernet stage);
* ``expands`` - one expand ratio per kept block: the block's inner (mid) channels are
  ``make_divisible(round(out * e))``, the first channels of the supernet's conv;
* ``widths``  - one width multiplier per stage: the stage's output channels (and, for
  stage 0, the stem's) are the first ``make_divisible(base * w)`` channels.

Every slice is a prefix, so a subnet's weights are boxes ``[0, n)`` in every
dimension of the supernet's tensors: that is what makes shared-byte counts exact.
"""

from __future__ import annotations

import itertools
import math
import re
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator, Sequence

import torch

from ..errors import SkipswitchError
from ..models.resnet import BasicBlock, Bottleneck, ResNet, check_skip_mode


def make_divisible(value: float, divisor: int) -> int:
    """Round to the nearest multiple of ``divisor``, never below it or 10% under ``value``
    (the MobileNet/OFA rule)."""
    out = max(divisor, int(value + divisor / 2) // divisor * divisor)
    if out < 0.9 * value:
        out += divisor
    return out


@dataclass(frozen=True)
class SubnetConfig:
    """One subnet: ``depths`` per stage, ``expands`` per kept block (one tuple per stage),
    ``widths`` per stage. A plain value; ``ElasticSpace.validate`` checks it against a space."""

    depths: tuple[int, ...]
    expands: tuple[tuple[float, ...], ...]
    widths: tuple[float, ...]

    def to_dict(self) -> dict[str, Any]:
        return {"depths": list(self.depths), "expands": [list(e) for e in self.expands], "widths": list(self.widths)}

    @classmethod
    def from_dict(cls, data: Any, space: "ElasticSpace | None" = None) -> "SubnetConfig":
        """Parse (and, given ``space``, validate) a config dict; bad input is a SkipswitchError."""
        if not isinstance(data, dict):
            raise SkipswitchError(f"a subnet config must be a mapping with depths, expands, widths; got {data!r}")
        missing = [k for k in ("depths", "expands", "widths") if k not in data]
        extra = sorted(set(data) - {"depths", "expands", "widths"})
        if missing or extra:
            raise SkipswitchError(f"subnet config {data!r}: missing {missing}, unexpected {extra}; "
                                  "fields are depths, expands, widths")
        try:
            config = cls(
                depths=tuple(_as_int(d, f"depths[{i}]") for i, d in enumerate(data["depths"])),
                expands=tuple(tuple(float(e) for e in stage) for stage in data["expands"]),
                widths=tuple(float(w) for w in data["widths"]),
            )
        except (TypeError, ValueError):
            raise SkipswitchError(f"subnet config {data!r} has non-numeric entries") from None
        return space.validate(config) if space is not None else config

    @classmethod
    def from_key(cls, key: str, space: "ElasticSpace | None" = None) -> "SubnetConfig":
        """The config whose ``key()`` is ``key``; ``;`` may stand for ``|`` (as in markdown
        tables, where ``|`` splits a cell). Bad input is a SkipswitchError naming it."""
        match = re.fullmatch(r"d([^-]+)-e([^-]+)-w([^-]+)", key.strip().replace(";", "|"))
        if match is None:
            raise SkipswitchError(f"invalid subnet name {key!r}: expected d<depths>-e<expands>-w<widths>, "
                                  "e.g. d1,1-e0.5|0.5-w1,1")
        depths, expands, widths = match.groups()
        try:
            data = {"depths": [float(d) for d in depths.split(",")],
                    "expands": [[float(e) for e in stage.split(",")] for stage in expands.split("|")],
                    "widths": [float(w) for w in widths.split(",")]}
        except ValueError:
            raise SkipswitchError(f"invalid subnet name {key!r}: non-numeric entries") from None
        return cls.from_dict(data, space)

    def key(self) -> str:
        """A short stable string, used to index per-subnet BN statistics (``from_key`` reads it back)."""
        return "d{}-e{}-w{}".format(
            ",".join(map(str, self.depths)),
            "|".join(",".join(f"{e:g}" for e in stage) for stage in self.expands),
            ",".join(f"{w:g}" for w in self.widths),
        )


def _as_int(value: Any, name: str) -> int:
    if isinstance(value, bool) or not float(value).is_integer():
        raise SkipswitchError(f"invalid {name}={value!r}: must be an integer")
    return int(value)


@dataclass(frozen=True)
class ElasticSpace:
    """An elastic ResNet family. ``depth_choices[s]`` are the allowed block counts of stage s."""

    name: str
    block: str  # "basic" or "bottleneck"
    stem: str  # "cifar" or "imagenet"
    stem_width: int  # stem output channels at width 1.0
    stage_widths: tuple[int, ...]  # stage output channels at width 1.0
    depth_choices: tuple[tuple[int, ...], ...]
    expand_choices: tuple[float, ...]
    width_choices: tuple[float, ...]
    num_classes: int
    in_channels: int
    input_size: tuple[int, int]
    divisor: int = 8
    args: dict[str, Any] = field(default_factory=dict, compare=False)

    # -- channel arithmetic ----------------------------------------------------------------
    @property
    def num_stages(self) -> int:
        return len(self.stage_widths)

    @property
    def block_class(self) -> type:
        return BasicBlock if self.block == "basic" else Bottleneck

    def stem_channels(self, config: SubnetConfig) -> int:
        return make_divisible(self.stem_width * config.widths[0], self.divisor)

    def stage_out(self, stage: int, width: float) -> int:
        return make_divisible(self.stage_widths[stage] * width, self.divisor)

    def mid_channels(self, out: int, expand: float) -> int:
        return make_divisible(round(out * expand), self.divisor)

    def block_channels(self, config: SubnetConfig) -> list[list[tuple[int, int]]]:
        """(mid, out) channels of every kept block, per stage."""
        out = []
        for s in range(self.num_stages):
            stage_out = self.stage_out(s, config.widths[s])
            out.append([(self.mid_channels(stage_out, e), stage_out) for e in config.expands[s]])
        return out

    # -- configs ----------------------------------------------------------------------------
    def validate(self, config: SubnetConfig) -> SubnetConfig:
        """Return ``config`` if it belongs to this space, else raise naming field and allowed values."""
        if len(config.depths) != self.num_stages:
            raise SkipswitchError(f"invalid depths={list(config.depths)}: {self.name} has {self.num_stages} stages")
        if len(config.widths) != self.num_stages:
            raise SkipswitchError(f"invalid widths={list(config.widths)}: {self.name} needs one per stage "
                                  f"({self.num_stages})")
        if len(config.expands) != self.num_stages:
            raise SkipswitchError(f"invalid expands: {self.name} needs one list per stage ({self.num_stages})")
        for s, depth in enumerate(config.depths):
            if depth not in self.depth_choices[s]:
                raise SkipswitchError(f"invalid depths[{s}]={depth}: allowed {_fmt(self.depth_choices[s])}")
        for s, width in enumerate(config.widths):
            if not _member(width, self.width_choices):
                raise SkipswitchError(f"invalid widths[{s}]={width:g}: allowed {_fmt(self.width_choices)}")
        for s, stage in enumerate(config.expands):
            if len(stage) != config.depths[s]:
                raise SkipswitchError(f"invalid expands[{s}]: {len(stage)} ratios for depths[{s}]={config.depths[s]} "
                                      "blocks (one per kept block)")
            for b, e in enumerate(stage):
                if not _member(e, self.expand_choices):
                    raise SkipswitchError(f"invalid expands[{s}][{b}]={e:g}: allowed {_fmt(self.expand_choices)}")
        return config

    def config(self, depths: Sequence[int], expands: Sequence[Sequence[float]] | float, widths: Sequence[float] | float) -> SubnetConfig:
        """Build and validate a config; a scalar ``expands``/``widths`` applies to every block/stage."""
        if isinstance(expands, (int, float)):
            expands = [[expands] * d for d in depths]
        if isinstance(widths, (int, float)):
            widths = [widths] * self.num_stages
        return SubnetConfig.from_dict(
            {"depths": list(depths), "expands": [list(e) for e in expands], "widths": list(widths)}, self
        )

    def largest(self) -> SubnetConfig:
        return self.config([max(c) for c in self.depth_choices], max(self.expand_choices), max(self.width_choices))

    def smallest(self) -> SubnetConfig:
        return self.config([min(c) for c in self.depth_choices], min(self.expand_choices), min(self.width_choices))

    def sample(self, rng: torch.Generator | int | None = None) -> SubnetConfig:
        """A uniformly random config (each choice independently)."""
        gen = _generator(rng)

        def pick(choices):
            return choices[int(torch.randint(len(choices), (1,), generator=gen))]

        depths = [pick(c) for c in self.depth_choices]
        return self.config(depths, [[pick(self.expand_choices) for _ in range(d)] for d in depths],
                           [pick(self.width_choices) for _ in range(self.num_stages)])

    def size(self) -> int:
        """Number of distinct subnets."""
        per_stage = [sum(len(self.expand_choices) ** d for d in c) for c in self.depth_choices]
        return math.prod(per_stage) * len(self.width_choices) ** self.num_stages

    def enumerate(self, limit: int = 100_000) -> Iterator[SubnetConfig]:
        """Every config (refuses spaces larger than ``limit``)."""
        if self.size() > limit:
            raise SkipswitchError(f"space {self.name} has {self.size():,} subnets, more than limit={limit:,}")
        stage_options = []
        for s in range(self.num_stages):
            opts = []
            for d in self.depth_choices[s]:
                opts.extend(itertools.product(self.expand_choices, repeat=d))
            stage_options.append(opts)
        for expands in itertools.product(*stage_options):
            for widths in itertools.product(self.width_choices, repeat=self.num_stages):
                yield SubnetConfig(tuple(len(e) for e in expands), tuple(expands), tuple(widths))

    # -- models -----------------------------------------------------------------------------
    def build(self, config: SubnetConfig, skip_mode: str = "long", name: str | None = None) -> ResNet:
        """A freshly initialised standalone ResNet with this subnet's architecture."""
        self.validate(config)
        check_skip_mode(skip_mode)
        channels = self.block_channels(config)
        return ResNet(
            self.block_class, list(config.depths), [stage[-1][1] for stage in channels],
            num_classes=self.num_classes, in_channels=self.in_channels, input_size=self.input_size,
            stem=self.stem, stem_channels=self.stem_channels(config), skip_mode=skip_mode,
            name=name or f"{self.name}-subnet", block_channels=channels,
        )

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "args": dict(self.args)}


def _member(value: float, choices: Sequence[float]) -> bool:
    return any(abs(value - c) < 1e-9 for c in choices)


def _fmt(choices: Sequence) -> str:
    return ", ".join(f"{c:g}" if isinstance(c, float) else str(c) for c in choices)


def _generator(rng: torch.Generator | int | None) -> torch.Generator:
    if isinstance(rng, torch.Generator):
        return rng
    return torch.Generator().manual_seed(0 if rng is None else int(rng))


# -- the registry of named spaces -------------------------------------------------------------
_SPACES: dict[str, Callable[..., ElasticSpace]] = {}


def register_space(name: str):
    def wrap(fn: Callable[..., ElasticSpace]) -> Callable[..., ElasticSpace]:
        _SPACES[name] = fn
        return fn

    return wrap


def list_spaces() -> list[str]:
    return sorted(_SPACES)


def get_space(name: str, **args) -> ElasticSpace:
    """The named space; ``args`` (e.g. num_classes, in_channels, input_size) are stored with it."""
    if name not in _SPACES:
        raise SkipswitchError(f"unknown search space {name!r}; choose one of {', '.join(list_spaces())}")
    try:
        return _SPACES[name](**args)
    except TypeError as exc:
        raise SkipswitchError(f"bad arguments {args!r} for search space {name!r}: {exc}") from None


def _size(input_size) -> tuple[int, int]:
    return (int(input_size), int(input_size)) if isinstance(input_size, (int, float)) else tuple(int(v) for v in input_size)


@register_space("resnet-cifar")
def resnet_cifar(
    num_classes: int = 10, in_channels: int = 1, input_size=8, base_width: int = 16, max_depth: int = 3,
    expand_choices: Sequence[float] = (0.5, 0.75, 1.0), width_choices: Sequence[float] = (0.5, 0.75, 1.0),
    skip_mode: str = "long",
) -> ElasticSpace:
    """CIFAR-style basic-block ResNet (resnet8..resnet20 at base width 16): 3 stages of
    1..``max_depth`` blocks, widths base, 2x, 4x. Short skips add a block's inner tensor to
    its output unprojected, so a short-skip space has expand ratio 1.0 only."""
    if skip_mode == "short":
        expand_choices = (1.0,)
    args = {"num_classes": num_classes, "in_channels": in_channels, "input_size": list(_size(input_size)),
            "base_width": base_width, "max_depth": max_depth, "expand_choices": list(expand_choices),
            "width_choices": list(width_choices), "skip_mode": skip_mode}
    return ElasticSpace(
        name="resnet-cifar", block="basic", stem="cifar", stem_width=base_width,
        stage_widths=(base_width, 2 * base_width, 4 * base_width),
        depth_choices=(tuple(range(1, max_depth + 1)),) * 3,
        expand_choices=tuple(sorted(float(e) for e in expand_choices)),
        width_choices=tuple(sorted(float(w) for w in width_choices)),
        num_classes=num_classes, in_channels=in_channels, input_size=_size(input_size), divisor=4, args=args,
    )


@register_space("ofa-resnet50")
def ofa_resnet50(num_classes: int = 1000, in_channels: int = 3, input_size=224, skip_mode: str = "long") -> ElasticSpace:
    """OFA-ResNet50-like (Cai et al., "Once-for-All: Train One Network and Specialize it for
    Efficient Deployment", ICLR 2020; its ResNet-50 space in mit-han-lab/once-for-all): depth {0,1,2} extra bottlenecks over base [2,2,4,2],
    expand {0.2,0.25,0.35}, width multiplier {0.65,0.8,1.0}; torchvision stem and layout."""
    args = {"num_classes": num_classes, "in_channels": in_channels, "input_size": list(_size(input_size)),
            "skip_mode": skip_mode}
    base = (2, 2, 4, 2)
    size = _size(input_size)
    return ElasticSpace(
        name="ofa-resnet50", block="bottleneck", stem="imagenet" if min(size) >= 64 else "cifar", stem_width=64,
        stage_widths=(256, 512, 1024, 2048), depth_choices=tuple(tuple(b + x for x in (0, 1, 2)) for b in base),
        expand_choices=(0.2, 0.25, 0.35), width_choices=(0.65, 0.8, 1.0),
        num_classes=num_classes, in_channels=in_channels, input_size=size, divisor=8, args=args,
    )
