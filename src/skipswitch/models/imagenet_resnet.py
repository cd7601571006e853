"""ImageNet-style ResNets (torchvision layout) with per-block skip modes.

Inputs smaller than 64 pixels get the CIFAR stem (3x3 conv, no max pool): the 7x7/2
stem plus max pool would shrink an 8x8 digit to 2x2 before the first block.
"""

from __future__ import annotations

from typing import Sequence

from .registry import register_model
from .resnet import BasicBlock, Bottleneck, ResNet

SMALL_INPUT = 64


def _imagenet_resnet(name: str, block, stage_blocks: Sequence[int], input_size=224, stem=None, **kwargs) -> ResNet:
    size = input_size if isinstance(input_size, int) else min(input_size)
    stem = stem or ("imagenet" if size >= SMALL_INPUT else "cifar")
    return ResNet(
        block, stage_blocks, [64, 128, 256, 512], stem=stem, stem_channels=64, name=name, input_size=input_size, **kwargs
    )


@register_model
def resnet18(**kwargs) -> ResNet:
    return _imagenet_resnet("resnet18", BasicBlock, [2, 2, 2, 2], **kwargs)


@register_model
def resnet34(**kwargs) -> ResNet:
    return _imagenet_resnet("resnet34", BasicBlock, [3, 4, 6, 3], **kwargs)


@register_model
def resnet50(**kwargs) -> ResNet:
    return _imagenet_resnet("resnet50", Bottleneck, [3, 4, 6, 3], **kwargs)
