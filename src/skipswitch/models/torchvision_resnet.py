"""torchvision ResNets with Tailor-alterable skips: torchvision's blocks become ours.

``create_model("torchvision:resnet18", num_classes=, in_channels=, input_size=, skip_mode=)``
builds torchvision's network (untrained), adapts it to the dataset (stem for the input
channels, a 3x3/1 stem without max pool below 64 px as our CIFAR-style models do, a fixed
AvgPool2d head so hls4ml can convert it) and replaces every residual block by our
``BasicBlock`` / ``Bottleneck`` (models/resnet.py) with the same weights, so the skip modes
run the one block forward that our ResNets and the elastic supernet run (out-of-place adds,
which hls4ml needs). Stem, head and block layers keep torchvision's names
(``net.layer1.0.conv1.weight``) except the projection: ``downsample`` becomes ``shortcut``.

* ``long``:  torchvision's block (its ``+=`` written as an out-of-place add).
* ``short``: Tailor's shortened block; a basic block reuses the projection, a bottleneck gets a
  new 1x1 projection (zero-initialised BN scale) wherever one of its convs changes shape.
* ``none``:  the block without its skip; the projection is dropped.

Skips can be altered from ``long`` only (as Tailor does).
"""

from __future__ import annotations

from typing import Sequence

import torch
from torch import nn

from ..errors import SkipswitchError
from .registry import _MODEL_FACTORIES
from .resnet import BasicBlock, Bottleneck, ResidualBlock, check_skip_mode

_ARCHS = ("resnet18", "resnet34", "resnet50")


def _our_block(block: nn.Module, mode: str) -> ResidualBlock:
    """Our residual block in skip ``mode`` holding copies of torchvision ``block``'s weights."""
    if hasattr(block, "conv3"):
        ours: ResidualBlock = Bottleneck(block.conv1.in_channels, block.conv1.out_channels, block.stride, mode,
                                         out_channels=block.conv3.out_channels)
    else:
        ours = BasicBlock(block.conv1.in_channels, block.conv2.out_channels, block.stride, mode)
    keys = ours.state_dict().keys()
    state = {k.replace("downsample.", "shortcut."): v for k, v in block.state_dict().items()}
    ours.load_state_dict({k: v for k, v in state.items() if k in keys}, strict=True)
    return ours



class TorchvisionResNet(nn.Module):
    """A torchvision ResNet behind the skip-mode API of our ResNet (``blocks``, ``skip_modes``,
    ``set_skip_mode``, ``config``)."""

    def __init__(self, arch: str, *, num_classes: int, in_channels: int = 3,
                 input_size: int | Sequence[int] = 224, skip_mode: str | Sequence[str] = "long"):
        super().__init__()
        import torchvision

        if arch not in _ARCHS:
            raise SkipswitchError(f"unknown torchvision architecture {arch!r}; choose one of {', '.join(_ARCHS)}")
        height, width = (input_size, input_size) if isinstance(input_size, int) else tuple(input_size)
        net = getattr(torchvision.models, arch)(weights=None, num_classes=num_classes)
        small = min(height, width) < 64
        if small or in_channels != 3:
            kernel, stride = (3, 1) if small else (7, 2)
            net.conv1 = nn.Conv2d(in_channels, 64, kernel, stride=stride, padding=kernel // 2, bias=False)
        if small:
            net.maxpool = nn.Identity()
        h, w = height, width
        for stride in ((1,) if small else (2, 2)) + (1, 2, 2, 2):
            h, w = (h - 1) // stride + 1, (w - 1) // stride + 1
        net.avgpool = nn.AvgPool2d(kernel_size=(h, w))
        self.net = net
        self.name = f"torchvision:{arch}"
        self.num_classes, self.in_channels, self.input_size = num_classes, in_channels, (height, width)
        n = len(self._torchvision_blocks())
        modes = [skip_mode] * n if isinstance(skip_mode, str) else list(skip_mode)
        if len(modes) != n:
            raise SkipswitchError(f"{self.name} has {n} blocks but {len(modes)} skip modes were given")
        for layer, j in self._torchvision_blocks():
            layer[j] = _our_block(layer[j], "long")
        for i, mode in enumerate(modes):
            self.set_skip_mode(i, mode)

    def _torchvision_blocks(self) -> list[tuple[nn.Sequential, int]]:
        return [(layer, j) for layer in (self.net.layer1, self.net.layer2, self.net.layer3, self.net.layer4)
                for j in range(len(layer))]

    def blocks(self) -> list[ResidualBlock]:
        return [layer[j] for layer, j in self._torchvision_blocks()]

    @property
    def skip_modes(self) -> list[str]:
        return [b.skip_mode for b in self.blocks()]

    def set_skip_mode(self, block_index: int, mode: str) -> list[nn.Parameter]:
        check_skip_mode(mode)
        blocks = self.blocks()
        if not 0 <= block_index < len(blocks):
            raise SkipswitchError(f"block index {block_index} out of range 0..{len(blocks) - 1}")
        block = blocks[block_index]
        if mode != block.skip_mode:
            if block.skip_mode != "long":
                raise SkipswitchError(f"block {block_index} is {block.skip_mode}; torchvision blocks alter only from long")
        device = next(self.parameters()).device
        new = block.set_skip_mode(mode)  # a shortened bottleneck's new projections
        for p in new:
            p.data = p.data.to(device)
        return new

    @property
    def config(self) -> dict:
        return {"name": self.name, "num_classes": self.num_classes, "in_channels": self.in_channels,
                "input_size": list(self.input_size), "skip_modes": self.skip_modes}

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # torchvision's forward, without the max pool below 64 px (``net.maxpool`` stays an Identity for
        # code that calls ``self.net``): hls4ml has no Identity layer, so the traced graph must not hold one.
        net = self.net
        x = net.relu(net.bn1(net.conv1(x)))
        if not isinstance(net.maxpool, nn.Identity):
            x = net.maxpool(x)
        x = net.layer4(net.layer3(net.layer2(net.layer1(x))))
        return net.fc(torch.flatten(net.avgpool(x), 1))


def _register(arch: str) -> None:
    def factory(**kwargs) -> TorchvisionResNet:
        return TorchvisionResNet(arch, **kwargs)

    # registry names are factory names (timm convention); "torchvision:" cannot be a Python name
    _MODEL_FACTORIES[f"torchvision:{arch}"] = factory


for _arch in _ARCHS:
    _register(_arch)
