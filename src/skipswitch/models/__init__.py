"""Models: ResNets with per-block skip modes and a timm-style registry."""

from . import cifar_resnet, imagenet_resnet, torchvision_resnet  # noqa: F401  (registers the models)
from .registry import create_model, create_model_from_config, list_models, register_model
from .resnet import SKIP_MODES, BasicBlock, Bottleneck, ResidualBlock, ResNet, check_skip_mode

__all__ = [
    "SKIP_MODES",
    "BasicBlock",
    "Bottleneck",
    "ResNet",
    "ResidualBlock",
    "check_skip_mode",
    "create_model",
    "create_model_from_config",
    "list_models",
    "register_model",
]
