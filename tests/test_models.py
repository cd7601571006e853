import pytest
import torch

from skipswitch.errors import SkipswitchError
from skipswitch.graph import trace
from skipswitch.models import SKIP_MODES, create_model, create_model_from_config, list_models

CIFAR = ["resnet8", "resnet20", "resnet32", "resnet56", "resnet110"]
IMAGENET = ["resnet18", "resnet34", "resnet50"]
BLOCKS = {"resnet8": 3, "resnet20": 9, "resnet32": 15, "resnet56": 27, "resnet110": 54,
          "resnet18": 8, "resnet34": 16, "resnet50": 16}


@pytest.mark.parametrize("mode", SKIP_MODES)
@pytest.mark.parametrize("name", CIFAR + IMAGENET)
def test_forward_shape_every_model_every_mode(name, mode):
    model = create_model(name, num_classes=7, in_channels=1, input_size=8, skip_mode=mode)
    assert len(model.blocks()) == BLOCKS[name]
    assert model.skip_modes == [mode] * BLOCKS[name]
    out = model(torch.randn(3, 1, 8, 8))
    assert out.shape == (3, 7)


@pytest.mark.parametrize("size", [(32, 32), (28, 20), (224, 224)])
def test_input_sizes_and_imagenet_stem(size):
    model = create_model("resnet18", num_classes=5, in_channels=3, input_size=size)
    assert model.stem_type == ("imagenet" if min(size) >= 64 else "cifar")
    if size != (224, 224):
        assert model(torch.randn(2, 3, *size)).shape == (2, 5)


def test_resnet50_matches_torchvision_parameter_count():
    # torchvision's ResNet50_Weights.IMAGENET1K_V1 metadata: num_params 25,557,032.
    model = create_model("resnet50", num_classes=1000, in_channels=3, input_size=224)
    assert sum(p.numel() for p in model.parameters()) == 25_557_032


@pytest.mark.parametrize("name", ["resnet20", "resnet18", "resnet50"])
def test_short_and_none_have_no_long_skip_in_the_fx_graph(name):
    long_graph = trace(create_model(name, num_classes=10, in_channels=1, input_size=8, skip_mode="long"))
    assert len(long_graph.skips) == BLOCKS[name]
    assert all(s.is_long for s in long_graph.skips)
    short_graph = trace(create_model(name, num_classes=10, in_channels=1, input_size=8, skip_mode="short"))
    per_block = 3 if name == "resnet50" else 2
    assert len(short_graph.skips) == per_block * BLOCKS[name]
    assert not any(s.is_long for s in short_graph.skips)
    assert all(s.residual_convs == 1 for s in short_graph.skips)
    none_graph = trace(create_model(name, num_classes=10, in_channels=1, input_size=8, skip_mode="none"))
    assert none_graph.skips == [] and not none_graph.layers_of("add")


def test_set_skip_mode_in_place_returns_new_params_and_keeps_function_shape():
    model = create_model("resnet50", num_classes=10, in_channels=1, input_size=8)
    before = {id(p) for p in model.parameters()}
    new = model.set_skip_mode(0, "short")
    assert new and all(id(p) not in before for p in new)
    # zero-initialised BN scale: a freshly added projection contributes nothing yet
    block = model.blocks()[0]  # 64 -> 64 -> 256 channels: only the last conv needs a projection
    assert block.short_proj1 is None and block.short_proj2 is None
    assert torch.count_nonzero(block.short_proj3[1].weight) == 0
    assert model(torch.randn(2, 1, 8, 8)).shape == (2, 10)
    # Basic blocks reuse the long shortcut's projection for the first short skip.
    basic = create_model("resnet20", num_classes=10, in_channels=1, input_size=8)
    proj = basic.blocks()[3].shortcut
    assert basic.set_skip_mode(3, "short") == [] and basic.blocks()[3].shortcut is proj
    assert basic.set_skip_mode(3, "none") == [] and basic.blocks()[3].shortcut is None


def test_config_round_trip_rebuilds_same_architecture():
    model = create_model("resnet20", num_classes=10, in_channels=1, input_size=8, skip_mode="long")
    model.set_skip_mode(0, "none")
    model.set_skip_mode(4, "short")
    clone = create_model_from_config(model.config)
    assert clone.skip_modes == model.skip_modes
    clone.load_state_dict(model.state_dict(), strict=True)


def test_unknown_names_are_one_line_errors():
    with pytest.raises(SkipswitchError, match="unknown model 'resnet7'.*resnet20"):
        create_model("resnet7", num_classes=10)
    with pytest.raises(SkipswitchError, match="unknown skip mode 'medium'"):
        create_model("resnet8", num_classes=10, skip_mode="medium")
    with pytest.raises(SkipswitchError, match="3 blocks but 2 skip modes"):
        create_model("resnet8", num_classes=10, skip_mode=["long", "none"])
    assert "resnet110" in list_models()
