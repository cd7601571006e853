"""ResNets whose residual blocks each have a skip mode: ``long``, ``short`` or ``none``.

* ``long``  - the traditional skip over the whole block (He et al.).
* ``short`` - Tailor's Skip Shortener: one skip around each conv, so no tensor has
  to be buffered across more than one conv.
* ``none``  - Tailor's Skip Remover: a plain feed-forward block.

A block's mode can change in place (``set_skip_mode``) during training; the method
returns the parameters it created so a trainer can add them to its optimizer.

The models stay torch.fx-traceable and hls4ml-friendly: fixed ``AvgPool2d`` instead of
adaptive pooling, ``nn.Flatten`` instead of ``view``, out-of-place adds on skips and
one ``nn.ReLU`` module per use.
"""

from __future__ import annotations

from typing import Sequence

import torch
from torch import nn

from ..errors import SkipswitchError

SKIP_MODES: tuple[str, ...] = ("long", "short", "none")


def check_skip_mode(mode: str) -> str:
    if mode not in SKIP_MODES:
        raise SkipswitchError(f"unknown skip mode {mode!r}; choose one of {', '.join(SKIP_MODES)}")
    return mode


def _projection(in_channels: int, out_channels: int, stride: int, zero_init: bool) -> nn.Sequential:
    """1x1 conv + BN that maps a skip's source tensor to the shape of its destination."""
    proj = nn.Sequential(
        nn.Conv2d(in_channels, out_channels, kernel_size=1, stride=stride, bias=False),
        nn.BatchNorm2d(out_channels),
    )
    if zero_init:
        # A freshly added skip then contributes exactly zero at the moment it appears,
        # so the switch perturbs the block no more than its identity skips do.
        nn.init.zeros_(proj[1].weight)
    return proj


class ResidualBlock(nn.Module):
    """Common skip-mode bookkeeping for basic and bottleneck blocks."""

    skip_mode: str
    # Projections (by attribute name) that the active subnet of an elastic supernet does not
    # use, because its own shapes match where the supernet's do not: those skips are identities.
    bypassed: frozenset[str] = frozenset()

    def set_skip_mode(self, mode: str, zero_init_new: bool = True) -> list[nn.Parameter]:
        """Switch this block's skip topology in place; return the parameters created.

        ``zero_init_new`` zeroes the BN scale of projections created by the switch, so
        a skip added mid-training starts by adding nothing; at construction it is off."""
        raise NotImplementedError

    def _new_params(self, modules: Sequence[nn.Module | None]) -> list[nn.Parameter]:
        return [p for m in modules if m is not None for p in m.parameters()]

    def _skip(self, projection: str, x: torch.Tensor) -> torch.Tensor:
        proj = getattr(self, projection)
        return x if proj is None or projection in self.bypassed else proj(x)


class BasicBlock(ResidualBlock):
    """Two 3x3 convs. Long: relu(bn2(conv2(h)) + sc(x)). Short (Tailor reference):
    h = relu(bn1(conv1(x))) + sc(x); out = relu(bn2(conv2(h))) + h.

    ``mid_channels`` (conv1's output, default ``out_channels``) lets elastic supernets
    shrink a block's inner width; short mode needs it equal to ``out_channels``
    because its second skip adds ``h`` to the block output unprojected."""

    expansion = 1

    def __init__(
        self, in_channels: int, out_channels: int, stride: int = 1, skip_mode: str = "long",
        mid_channels: int | None = None,
    ):
        super().__init__()
        mid_channels = out_channels if mid_channels is None else mid_channels
        self.in_channels, self.mid_channels, self.out_channels, self.stride = in_channels, mid_channels, out_channels, stride
        self.conv1 = nn.Conv2d(in_channels, mid_channels, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(mid_channels)
        self.relu1 = nn.ReLU()
        self.conv2 = nn.Conv2d(mid_channels, out_channels, 3, stride=1, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(out_channels)
        self.relu2 = nn.ReLU()
        self.needs_projection = stride != 1 or in_channels != out_channels
        self.shortcut: nn.Module | None = None
        self.skip_mode = "none"
        self.set_skip_mode(skip_mode, zero_init_new=False)

    def set_skip_mode(self, mode: str, zero_init_new: bool = True) -> list[nn.Parameter]:
        check_skip_mode(mode)
        if mode == "short" and self.mid_channels != self.out_channels:
            raise SkipswitchError(
                f"short skip mode needs mid_channels == out_channels in a basic block, "
                f"got {self.mid_channels} and {self.out_channels}"
            )
        created: list[nn.Module | None] = []
        # The long shortcut and the first short skip map x to the same shape, so
        # shortening reuses the teacher's projection: basic blocks gain no parameters.
        if mode != "none" and self.needs_projection and self.shortcut is None:
            self.shortcut = _projection(self.in_channels, self.out_channels, self.stride, zero_init=zero_init_new)
            created.append(self.shortcut)
        if mode == "none":
            self.shortcut = None
        self.skip_mode = mode
        return self._new_params(created)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.skip_mode == "short":
            h = self.relu1(self.bn1(self.conv1(x))) + self._skip("shortcut", x)
            return self.relu2(self.bn2(self.conv2(h))) + h
        h = self.relu1(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(h))
        if self.skip_mode == "long":
            out = out + self._skip("shortcut", x)
        return self.relu2(out)


class Bottleneck(ResidualBlock):
    """1x1 -> 3x3 (stride) -> 1x1 with 4x expansion (torchvision ResNet-50 v1.5 layout).

    Short mode puts one skip around each of the three convs, with a 1x1 projection
    wherever the conv changes channels or resolution (the Tailor reference code
    defines this but never schedules it)."""

    expansion = 4

    def __init__(
        self, in_channels: int, width: int, stride: int = 1, skip_mode: str = "long",
        out_channels: int | None = None,
    ):
        super().__init__()
        # ``width`` is the inner (mid) width; elastic supernets set ``out_channels``
        # explicitly because their expand ratio is not always 1/4.
        out_channels = width * self.expansion if out_channels is None else out_channels
        self.in_channels, self.width, self.out_channels, self.stride = in_channels, width, out_channels, stride
        self.mid_channels = width
        self.conv1 = nn.Conv2d(in_channels, width, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        self.relu1 = nn.ReLU()
        self.conv2 = nn.Conv2d(width, width, 3, stride=stride, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(width)
        self.relu2 = nn.ReLU()
        self.conv3 = nn.Conv2d(width, out_channels, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(out_channels)
        self.relu3 = nn.ReLU()
        self.needs_projection = stride != 1 or in_channels != out_channels
        self.shortcut: nn.Module | None = None
        self.short_proj1: nn.Module | None = None
        self.short_proj2: nn.Module | None = None
        self.short_proj3: nn.Module | None = None
        self.skip_mode = "none"
        self.set_skip_mode(skip_mode, zero_init_new=False)

    def set_skip_mode(self, mode: str, zero_init_new: bool = True) -> list[nn.Parameter]:
        check_skip_mode(mode)
        created: list[nn.Module | None] = []
        if mode == "long":
            if self.needs_projection and self.shortcut is None:
                self.shortcut = _projection(self.in_channels, self.out_channels, self.stride, zero_init=zero_init_new)
                created.append(self.shortcut)
            self.short_proj1 = self.short_proj2 = self.short_proj3 = None
        elif mode == "short":
            specs = (
                ("short_proj1", self.in_channels, self.width, 1),
                ("short_proj2", self.width, self.width, self.stride),
                ("short_proj3", self.width, self.out_channels, 1),
            )
            for attr, cin, cout, stride in specs:
                if (cin != cout or stride != 1) and getattr(self, attr) is None:
                    proj = _projection(cin, cout, stride, zero_init=zero_init_new)
                    setattr(self, attr, proj)
                    created.append(proj)
            self.shortcut = None
        else:
            self.shortcut = self.short_proj1 = self.short_proj2 = self.short_proj3 = None
        self.skip_mode = mode
        return self._new_params(created)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.skip_mode == "short":
            h1 = self.relu1(self.bn1(self.conv1(x))) + self._skip("short_proj1", x)
            h2 = self.relu2(self.bn2(self.conv2(h1))) + self._skip("short_proj2", h1)
            return self.relu3(self.bn3(self.conv3(h2))) + self._skip("short_proj3", h2)
        h = self.relu1(self.bn1(self.conv1(x)))
        h = self.relu2(self.bn2(self.conv2(h)))
        out = self.bn3(self.conv3(h))
        if self.skip_mode == "long":
            out = out + self._skip("shortcut", x)
        return self.relu3(out)


def _make_block(block: type, in_channels: int, mid: int, out: int, stride: int, mode: str) -> ResidualBlock:
    if block is BasicBlock:
        return BasicBlock(in_channels, out, stride, mode, mid_channels=mid)
    if block is Bottleneck:
        return Bottleneck(in_channels, mid, stride, mode, out_channels=out)
    raise SkipswitchError(f"unknown block type {block.__name__}; choose BasicBlock or Bottleneck")


BLOCK_TYPES = {"BasicBlock": BasicBlock, "Bottleneck": Bottleneck}


def _downsampled(size: int, stride: int) -> int:
    # Output size of a 3x3/pad-1 conv (and of the 7x7/pad-3 stem and 3x3/pad-1 max pool).
    return (size - 1) // stride + 1


class ResNet(nn.Module):
    """A ResNet built from stages of residual blocks, each block with its own skip mode.

    ``stem='cifar'`` is a 3x3 conv (stride 1); ``stem='imagenet'`` is the 7x7/2 conv plus
    3x3/2 max pool. The head is a fixed AvgPool2d over the final feature map.
    """

    def __init__(
        self,
        block: type[BasicBlock] | type[Bottleneck],
        stage_blocks: Sequence[int],
        stage_widths: Sequence[int],
        *,
        num_classes: int,
        in_channels: int = 3,
        input_size: int | Sequence[int] = 32,
        stem: str = "cifar",
        stem_channels: int | None = None,
        skip_mode: str | Sequence[str] = "long",
        name: str = "resnet",
        block_channels: Sequence[Sequence[Sequence[int]]] | None = None,
    ):
        """``block_channels`` (optional) gives every block's ``(mid, out)`` channels, one
        list per stage with ``stage_blocks[s]`` entries; it overrides ``stage_widths``.
        Subnets extracted from an elastic supernet are built this way."""
        super().__init__()
        if num_classes < 1:
            raise SkipswitchError(f"num_classes must be positive, got {num_classes}")
        if in_channels < 1:
            raise SkipswitchError(f"in_channels must be positive, got {in_channels}")
        height, width = (input_size, input_size) if isinstance(input_size, int) else tuple(input_size)
        if height < 1 or width < 1:
            raise SkipswitchError(f"input_size must be positive, got {input_size}")
        self.name = name
        self.num_classes, self.in_channels, self.input_size = num_classes, in_channels, (height, width)
        self.stem_type = stem
        stem_channels = stem_channels or stage_widths[0]
        if stem == "imagenet":
            self.stem = nn.Sequential(
                nn.Conv2d(in_channels, stem_channels, 7, stride=2, padding=3, bias=False),
                nn.BatchNorm2d(stem_channels),
                nn.ReLU(),
                nn.MaxPool2d(3, stride=2, padding=1),
            )
            height, width = _downsampled(_downsampled(height, 2), 2), _downsampled(_downsampled(width, 2), 2)
        elif stem == "cifar":
            self.stem = nn.Sequential(
                nn.Conv2d(in_channels, stem_channels, 3, stride=1, padding=1, bias=False),
                nn.BatchNorm2d(stem_channels),
                nn.ReLU(),
            )
        else:
            raise SkipswitchError(f"unknown stem {stem!r}; choose cifar or imagenet")

        n_blocks = sum(stage_blocks)
        modes = [skip_mode] * n_blocks if isinstance(skip_mode, str) else list(skip_mode)
        if len(modes) != n_blocks:
            raise SkipswitchError(f"{name} has {n_blocks} blocks but {len(modes)} skip modes were given")
        for mode in modes:
            check_skip_mode(mode)

        if block_channels is not None:
            block_channels = [[(int(mid), int(out)) for mid, out in stage] for stage in block_channels]
            if [len(stage) for stage in block_channels] != list(stage_blocks):
                raise SkipswitchError(
                    f"block_channels has {[len(stage) for stage in block_channels]} blocks per stage "
                    f"but stage_blocks is {list(stage_blocks)}"
                )
        self.block_type = block.__name__
        self.stage_blocks = [int(c) for c in stage_blocks]
        self.block_channels = block_channels
        self.stem_channels = stem_channels

        stages = []
        channels, index = stem_channels, 0
        for stage_index, count in enumerate(stage_blocks):
            blocks = []
            for block_index in range(count):
                stride = 2 if (stage_index > 0 and block_index == 0) else 1
                if block_channels is None:
                    blocks.append(block(channels, stage_widths[stage_index], stride, modes[index]))
                else:
                    mid, out = block_channels[stage_index][block_index]
                    blocks.append(_make_block(block, channels, mid, out, stride, modes[index]))
                channels = blocks[-1].out_channels
                height, width = _downsampled(height, stride), _downsampled(width, stride)
                index += 1
            stages.append(nn.Sequential(*blocks))
        self.stages = nn.Sequential(*stages)
        self.pool = nn.AvgPool2d(kernel_size=(height, width))
        self.flatten = nn.Flatten()
        self.fc = nn.Linear(channels, num_classes)
        self.feature_channels = channels

        for m in self.modules():
            # Skipped on the meta device (shape-only builds): meta normal_ pulls in torch._dynamo.
            if isinstance(m, nn.Conv2d) and not m.weight.is_meta:
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")

    # -- skip-mode API -----------------------------------------------------------------
    def blocks(self) -> list[ResidualBlock]:
        """Residual blocks from the input side to the output side."""
        return [b for stage in self.stages for b in stage]

    @property
    def skip_modes(self) -> list[str]:
        return [b.skip_mode for b in self.blocks()]

    def set_skip_mode(self, block_index: int, mode: str) -> list[nn.Parameter]:
        blocks = self.blocks()
        if not 0 <= block_index < len(blocks):
            raise SkipswitchError(f"block index {block_index} out of range 0..{len(blocks) - 1}")
        new = blocks[block_index].set_skip_mode(mode)
        device = next(self.parameters()).device
        for p in new:
            p.data = p.data.to(device)
        return new

    @property
    def config(self) -> dict:
        """Everything ``create_model`` needs to rebuild this architecture.

        Models built with explicit ``block_channels`` (not in the registry) carry an
        ``arch`` entry that ``create_model_from_config`` rebuilds them from."""
        config = {
            "name": self.name,
            "num_classes": self.num_classes,
            "in_channels": self.in_channels,
            "input_size": list(self.input_size),
            "skip_modes": self.skip_modes,
        }
        if self.block_channels is not None:
            config["arch"] = {
                "block": self.block_type,
                "stage_blocks": list(self.stage_blocks),
                "block_channels": [[list(pair) for pair in stage] for stage in self.block_channels],
                "stem": self.stem_type,
                "stem_channels": self.stem_channels,
            }
        return config

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stem(x)
        x = self.stages(x)
        return self.fc(self.flatten(self.pool(x)))


@torch.no_grad()
def zero_init_residuals(model: nn.Module) -> int:
    """Zero the scale of the last BN in every long-skip block's residual branch, so each
    block starts as (relu of) its shortcut: BigNAS's initialization for training a
    single-stage supernet at large learning rates (Yu et al., ECCV 2020, Sec. 3.2; from
    Goyal et al. 2017). Short-skip blocks are left alone (their skips sit elsewhere).
    Returns the blocks changed."""
    changed = 0
    for block in model.modules():
        if isinstance(block, (BasicBlock, Bottleneck)) and block.skip_mode == "long":
            nn.init.zeros_((block.bn3 if isinstance(block, Bottleneck) else block.bn2).weight)
            changed += 1
    return changed
