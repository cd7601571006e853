"""torchvision ResNets with Tailor-alterable skips, rewritten block by block with torch.fx.

``create_model("torchvision:resnet18", num_classes=, in_channels=, input_size=, skip_mode=)``
builds torchvision's network (untrained), adapts it to the dataset (stem for the input
channels, a 3x3/1 stem without max pool below 64 px as our CIFAR-style models do, a fixed
AvgPool2d head so hls4ml can convert it) and replaces every residual block by an fx
GraphModule written for its skip mode. The GraphModule keeps the block's own submodules
(``conv1``, ``bn1``, ..., ``downsample``) under their torchvision names, so state dicts and
checkpoints keep torchvision's layout; the skip is an out-of-place add (hls4ml rejects ``+=``).

* ``long``:  relu(bn2(conv2(relu(bn1(conv1(x))))) + downsample(x)) - torchvision's block.
* ``short`` (basic blocks only): h = relu(bn1(conv1(x))) + downsample(x);
  out = relu(bn2(conv2(h))) + h - Tailor's shortened block, reusing the projection.
* ``none``:  the block without its skip; the projection is dropped.

Skips can be altered from ``long`` only (as Tailor does); bottleneck shortening would need new
projections and is not supported.
"""

from __future__ import annotations

from typing import Sequence

import torch
from torch import fx, nn

from ..errors import SkipswitchError
from .registry import _MODEL_FACTORIES
from .resnet import check_skip_mode

_ARCHS = ("resnet18", "resnet34", "resnet50")


def _block_graph(block: nn.Module, mode: str) -> fx.GraphModule:
    """An fx GraphModule computing ``block`` in skip ``mode`` with the block's own submodules."""
    bottleneck = hasattr(block, "conv3")
    if mode == "short" and bottleneck:
        raise SkipswitchError("shortening torchvision bottleneck blocks is not supported; use remove")
    g = fx.Graph()
    x = g.placeholder("x")
    has_proj = getattr(block, "downsample", None) is not None

    def conv_bn(inp, i: int):
        return g.call_module(f"bn{i}", (g.call_module(f"conv{i}", (inp,)),))

    def shortcut(inp):
        return g.call_module("downsample", (inp,)) if has_proj else inp

    relu = lambda inp: g.call_module("relu", (inp,))  # noqa: E731  (torchvision shares one ReLU module)
    if mode == "short":
        h = g.call_function(torch.add, (relu(conv_bn(x, 1)), shortcut(x)))
        out = g.call_function(torch.add, (relu(conv_bn(h, 2)), h))
    else:
        out = relu(conv_bn(x, 1))
        out = conv_bn(out, 2)
        if bottleneck:
            out = conv_bn(relu(out), 3)
        if mode == "long":
            out = g.call_function(torch.add, (out, shortcut(x)))
        out = relu(out)
    g.output(out)
    return fx.GraphModule(block, g, class_name=f"{type(block).__name__}_{mode}")


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
        self._modes = ["long"] * n
        for i, mode in enumerate(modes):
            self._rewrite(i, check_skip_mode(mode))

    def _torchvision_blocks(self) -> list[tuple[nn.Sequential, int]]:
        return [(layer, j) for layer in (self.net.layer1, self.net.layer2, self.net.layer3, self.net.layer4)
                for j in range(len(layer))]

    def _rewrite(self, index: int, mode: str) -> None:
        layer, j = self._torchvision_blocks()[index]
        layer[j] = _block_graph(layer[j], mode)
        self._modes[index] = mode

    def blocks(self) -> list[nn.Module]:
        return [layer[j] for layer, j in self._torchvision_blocks()]

    @property
    def skip_modes(self) -> list[str]:
        return list(self._modes)

    def set_skip_mode(self, block_index: int, mode: str) -> list[nn.Parameter]:
        check_skip_mode(mode)
        if not 0 <= block_index < len(self._modes):
            raise SkipswitchError(f"block index {block_index} out of range 0..{len(self._modes) - 1}")
        current = self._modes[block_index]
        if mode != current:
            if current != "long":
                raise SkipswitchError(f"block {block_index} is {current}; torchvision blocks alter only from long")
            self._rewrite(block_index, mode)
        return []  # shortening reuses the projection; removal drops it

    @property
    def config(self) -> dict:
        return {"name": self.name, "num_classes": self.num_classes, "in_channels": self.in_channels,
                "input_size": list(self.input_size), "skip_modes": self.skip_modes}

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


def _register(arch: str) -> None:
    def factory(**kwargs) -> TorchvisionResNet:
        return TorchvisionResNet(arch, **kwargs)

    # registry names are factory names (timm convention); "torchvision:" cannot be a Python name
    _MODEL_FACTORIES[f"torchvision:{arch}"] = factory


for _arch in _ARCHS:
    _register(_arch)
