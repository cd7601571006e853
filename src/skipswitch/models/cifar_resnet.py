"""CIFAR-style ResNets (He et al. 2016, Sec. 4.2): 6n+2 layers, 16/32/64 channels, 3 stages."""

from __future__ import annotations

from .registry import register_model
from .resnet import BasicBlock, ResNet


def _cifar_resnet(depth: int, **kwargs) -> ResNet:
    blocks_per_stage = (depth - 2) // 6
    return ResNet(BasicBlock, [blocks_per_stage] * 3, [16, 32, 64], stem="cifar", name=f"resnet{depth}", **kwargs)


@register_model
def resnet8(**kwargs) -> ResNet:
    return _cifar_resnet(8, **kwargs)


@register_model
def resnet20(**kwargs) -> ResNet:
    return _cifar_resnet(20, **kwargs)


@register_model
def resnet32(**kwargs) -> ResNet:
    return _cifar_resnet(32, **kwargs)


@register_model
def resnet56(**kwargs) -> ResNet:
    return _cifar_resnet(56, **kwargs)


@register_model
def resnet110(**kwargs) -> ResNet:
    return _cifar_resnet(110, **kwargs)
