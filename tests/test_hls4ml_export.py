"""hls4ml export + g++ C simulation of a small ResNet in every skip mode (slow: ~30-80 s per compile)."""

import json
import shutil
from pathlib import Path

import pytest
import torch
from torch import nn

pytest.importorskip("hls4ml")
pytestmark = pytest.mark.skipif(shutil.which("g++") is None, reason="hls4ml C simulation needs g++")

# ap_fixed<16,6,AP_RND_CONV,AP_SAT> has 10 fractional bits (LSB ~0.001); rounding every layer's
# weights and outputs over 8 layers of up to 576-term sums left a max logit error of 0.024 on logits
# up to 11 in a trial (with hls4ml's default truncation it was 1.2). Stated tolerance: >= 95% of
# argmaxes agree (near-ties may flip) and no logit is off by more than 0.1.
MIN_AGREEMENT = 0.95
MAX_ABS_ERROR = 0.1


@pytest.fixture(scope="module")
def digits_test():
    from skipswitch.data import load_dataset

    return load_dataset("digits", seed=0).test.images[:64]


@pytest.mark.slow
@pytest.mark.parametrize("mode", ["long", "none"])  # short: through the CLI below (one compile less)
def test_export_and_csim_agree_with_pytorch(mode, tmp_path, digits_test):
    from skipswitch.checkpoint import load_model
    from skipswitch.fpga.hls4ml_export import export_hls4ml
    from skipswitch.training import TrainConfig
    from skipswitch.training.run import train_model

    # briefly trained, so logits are far enough apart for argmax to be meaningful
    train_model("resnet8", "digits", config=TrainConfig(epochs=2, batch_size=128, lr=0.05), out_dir=tmp_path / "t",
                skip_mode=mode, quiet=True)
    model, _ = load_model(tmp_path / "t" / "model.safetensors")
    result = export_hls4ml(model, tmp_path / "prj", digits_test, precision=16, integer_bits=6)
    assert result.argmax_agreement >= MIN_AGREEMENT
    assert result.max_abs_error <= MAX_ABS_ERROR
    skips = {"long": 3, "short": 6, "none": 0}[mode]
    assert len(result.skip_stream_depths) == skips
    # the estimator's skip depths went into the written project (hls4ml's default would be H*W)
    source = (tmp_path / "prj" / "firmware" / "myproject.cpp").read_text()
    assert "#pragma HLS STREAM" in source
    if skips:
        assert all(1 <= d <= 64 for d in result.skip_stream_depths.values())


@pytest.mark.slow
def test_cli_hls4ml_short_mode_agrees_and_writes_report(cli, tmp_path):
    from skipswitch.training import TrainConfig
    from skipswitch.training.run import train_model

    train_model("resnet8", "digits", config=TrainConfig(epochs=2, batch_size=128, lr=0.05), out_dir=tmp_path / "t",
                skip_mode="short", quiet=True)
    code, out, err = cli("hw", "hls4ml", tmp_path / "t" / "model.safetensors", "--out", tmp_path / "o",
                         "--images", "64")
    assert code == 0, err
    report = json.loads((tmp_path / "o" / "hls4ml_report.json").read_text())
    assert report["hls4ml_version"].startswith("1.") and report["images"] == 64
    assert report["skip_modes"] == ["short"] * 3 and len(report["skip_stream_depths"]) == 6
    assert report["argmax_agreement"] >= MIN_AGREEMENT and report["max_abs_error"] <= MAX_ABS_ERROR
    assert (tmp_path / "o" / "project" / "firmware" / "myproject.cpp").exists()


def test_bad_precision_is_a_skipswitch_error(tmp_path):
    from skipswitch.errors import SkipswitchError
    from skipswitch.fpga.hls4ml_export import export_hls4ml
    from skipswitch.models import create_model

    model = create_model("resnet8", num_classes=10, in_channels=1, input_size=8)
    with pytest.raises(SkipswitchError, match="ap_fixed<8,9>"):
        export_hls4ml(model, tmp_path, torch.zeros(1, 1, 8, 8), precision=8, integer_bits=9)


class _IdentityShortcut(nn.Module):
    """A residual block as many ResNets write it: an nn.Identity module for the shortcut."""

    def __init__(self):
        super().__init__()
        self.conv, self.bn, self.relu = nn.Conv2d(4, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU()
        self.shortcut = nn.Identity()

    def forward(self, x):
        return self.relu(self.bn(self.conv(x)) + self.shortcut(x))


def _identity_net():
    return nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(), _IdentityShortcut(), nn.Flatten(),
                         nn.Linear(4 * 8 * 8, 10)).eval()


def test_a_model_with_an_identity_shortcut_converts_without_it():
    """hls4ml rejects nn.Identity ('Unsupported layer Identity'); the export converts an fx copy without
    its calls, which must compute the same function."""
    import hls4ml

    from skipswitch.fpga.hls4ml_export import hls4ml_traceable
    from skipswitch.models import create_model

    torch.manual_seed(0)
    model = _identity_net()
    convertible = hls4ml_traceable(model)
    assert not any(n.op == "call_module" and isinstance(convertible.get_submodule(n.target), nn.Identity)
                   for n in convertible.graph.nodes)
    x = torch.randn(3, 1, 8, 8)
    with torch.no_grad():
        assert torch.equal(convertible(x), model(x))  # the same modules, one no-op call fewer
    config = hls4ml.utils.config_from_pytorch_model(convertible, (1, 8, 8), granularity="name", backend="Vitis")
    hls_model = hls4ml.converters.convert_from_pytorch_model(convertible, hls_config=config, backend="Vitis",
                                                             io_type="io_stream")
    assert sum(layer.class_name == "Merge" for layer in hls_model.get_layers()) == 1  # the shortcut's add
    small = create_model("resnet8", num_classes=10, in_channels=1, input_size=8)
    assert hls4ml_traceable(small) is small  # nothing to remove: the model itself


@pytest.mark.slow
def test_export_of_a_model_with_an_identity_agrees_in_csim(tmp_path, digits_test):
    from skipswitch.fpga.hls4ml_export import export_hls4ml

    torch.manual_seed(0)
    model = _identity_net()
    result = export_hls4ml(model, tmp_path / "prj", digits_test, precision=16, integer_bits=6)
    assert result.argmax_agreement >= MIN_AGREEMENT and result.max_abs_error <= MAX_ABS_ERROR
