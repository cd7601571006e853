import json

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from skipswitch.errors import SkipswitchError
from skipswitch.graph import trace
from skipswitch.fpga import (EstimatorConfig, compare_model, estimate_graph, fifo_is_srl, finn_bram18_count, get_part,
                            list_parts)
from skipswitch.fpga.dataflow import RESOURCES, lut_multiplier_luts
from skipswitch.models import create_model


def _graph(name="resnet8", mode="long", size=16):
    return trace(create_model(name, num_classes=10, in_channels=3, input_size=size, skip_mode=mode), name=name)


@pytest.mark.parametrize(
    "width,depth,expected",
    [
        (1, 16384, 1), (1, 16385, 2), (2, 8192, 1), (2, 8193, 2), (4, 4096, 1), (3, 4097, 2),
        (5, 2048, 1), (9, 2048, 1), (9, 2049, 2), (10, 1024, 1), (18, 1024, 1), (18, 1025, 2),
        (19, 512, 1), (36, 512, 1), (37, 512, 2), (36, 513, 2),  # deeper than 512: 1Kx18 ports
        (256, 65, 8), (1024, 16, 29), (0, 10, 0),
    ],
)
def test_bram18_port_geometry(width, depth, expected):
    assert finn_bram18_count(width, depth) == expected


@pytest.mark.parametrize(
    "width,depth,srl",
    [(32, 32, True), (32, 33, False), (1024, 1, True), (341, 3, True), (342, 3, False),
     (4096, 2, True), (1, 1024, True), (1, 1025, False)],
)
def test_srl_rule_at_the_1024_bit_boundary(width, depth, srl):
    assert fifo_is_srl(width, depth) is srl


def test_srl_threshold_is_configurable():
    assert fifo_is_srl(32, 33, srl_max_bits=1056)
    assert not fifo_is_srl(1025, 1, srl_max_bits=1024, srl_max_depth=0)
    assert fifo_is_srl(1024, 1, srl_max_bits=1024, srl_max_depth=0)


def test_skip_fifo_flips_from_bram_to_srl_exactly_at_the_threshold():
    graph = _graph("resnet8", "short")
    skip = estimate_graph(graph, EstimatorConfig(precision=8)).skips[0]
    bits = skip.fifo_depth * skip.width_bits
    at = estimate_graph(graph, EstimatorConfig(precision=8, srl_max_bits=bits)).skips[0]
    below = estimate_graph(graph, EstimatorConfig(precision=8, srl_max_bits=bits - 1)).skips[0]
    assert at.impl == "srl" and at.bram18 == 0
    assert below.impl == "bram" and below.bram18 == finn_bram18_count(skip.width_bits, skip.fifo_depth) > 0


def test_single_conv_costs_by_hand():
    """A 3x3 conv 2->4 on 6x6 at reuse factor 1: 72 multipliers, DSPs at 16 bit, LUTs at 8 bit."""
    model = nn.Sequential(nn.Conv2d(2, 4, 3, padding=1, bias=False), nn.BatchNorm2d(4), nn.ReLU())
    graph = trace(model, (2, 6, 6))
    e16 = estimate_graph(graph, EstimatorConfig(precision=16, reuse_factor=1))
    e8 = estimate_graph(graph, EstimatorConfig(precision=8, reuse_factor=1))
    conv16 = next(s for s in e16.stages if s.kind == "conv")
    conv8 = next(s for s in e8.stages if s.kind == "conv")
    assert conv16.multipliers == 72 and conv16.cost.dsp == 72 and conv16.cost.bram18 == 0
    assert conv8.cost.dsp == 0 and conv8.cost.lut >= 72 * lut_multiplier_luts(8)
    assert conv16.layers == ("_0", "bn:_1")  # BN folded into the conv stage; ReLU is its own stage (hls4ml)
    assert [s.kind for s in e16.stages].count("relu") == 1
    assert conv16.cycles_per_image == 8 * 8  # padded 8x8 pixels at II = 1
    assert e16.skips == []
    # reuse factor 4: a quarter of the multipliers; Latency strategy pipelines the pixel loop at
    # II = 4, Resource strategy waits for the whole multiply-accumulate per pixel (nnet_conv2d_stream.h)
    latency = estimate_graph(graph, EstimatorConfig(precision=16, reuse_factor=4, strategy="latency"))
    conv = next(s for s in latency.stages if s.kind == "conv")
    assert conv.multipliers == 18 and conv.cycles_per_image == 4 * 64
    resource = estimate_graph(graph, EstimatorConfig(precision=16, reuse_factor=4, strategy="resource"))
    conv = next(s for s in resource.stages if s.kind == "conv")
    assert conv.depth_cycles > 4 and conv.cycles_per_image == conv.depth_cycles * 64


@pytest.mark.parametrize("name", ["resnet8", "resnet20"])
@pytest.mark.parametrize("mode", ["long", "short"])
@pytest.mark.parametrize("reuse", [None, 1, 10_000])
def test_skip_fifo_depth_at_most_h_times_w(name, mode, reuse):
    estimate = estimate_graph(_graph(name, mode, 16), EstimatorConfig(reuse_factor=reuse))
    assert estimate.skips
    for skip in estimate.skips:
        assert 1 <= skip.fifo_depth <= skip.max_depth == skip.shape[1] * skip.shape[2]
        assert skip.lifetime_cycles > 0


def test_short_skips_live_shorter_than_long_ones():
    longs = estimate_graph(_graph("resnet20", "long", 32)).skips
    shorts = estimate_graph(_graph("resnet20", "short", 32)).skips
    for shape in {s.shape for s in longs}:
        long_life = [s.lifetime_cycles for s in longs if s.shape == shape]
        short_life = [s.lifetime_cycles for s in shorts if s.shape == shape]
        assert short_life and max(short_life) < min(long_life)
        # about half: one conv instead of two (paper, Tab. VII: "a little less than half")
        assert 0.3 < sum(short_life) / len(short_life) / (sum(long_life) / len(long_life)) < 0.6
        long_depth = [s.fifo_depth for s in longs if s.shape == shape]
        assert max(s.fifo_depth for s in shorts if s.shape == shape) <= min(long_depth)


@pytest.mark.parametrize("precision", [8, 16])
@pytest.mark.parametrize("name", ["resnet8", "resnet20"])
def test_removing_all_skips_never_increases_any_resource(name, precision):
    comparison = compare_model(name, precision=precision, input_size=16)
    long, none = comparison.estimates["long"].total, comparison.estimates["none"].total
    for r in RESOURCES:
        assert getattr(none, r) <= getattr(long, r)
    assert comparison.savings("none")["bram18"] > 0 and comparison.savings("none")["ff"] > 0


@settings(max_examples=8, deadline=None)
@given(modes=st.lists(st.sampled_from(["long", "none"]), min_size=3, max_size=3), block=st.integers(0, 2))
def test_removing_one_skip_never_increases_any_resource(modes, block):
    def total(ms):
        model = create_model("resnet8", num_classes=10, in_channels=1, input_size=8, skip_mode=ms)
        return estimate_graph(trace(model), EstimatorConfig(precision=8)).total

    before = total(modes)
    after = total([m if i != block else "none" for i, m in enumerate(modes)])
    for r in RESOURCES:
        assert getattr(after, r) <= getattr(before, r)


def test_estimates_torchvision_resnet18_from_its_graph():
    torchvision = pytest.importorskip("torchvision")
    graph = trace(torchvision.models.resnet18(num_classes=10), (3, 32, 32), name="torchvision:resnet18")
    estimate = estimate_graph(graph, EstimatorConfig(precision=8), part="xcu280")
    assert len(estimate.skips) == 8 and estimate.total.bram18 > 0
    assert sum(s.kind == "clone" for s in estimate.stages) == 8


@pytest.mark.parametrize("bad", [dict(precision=1), dict(precision=64), dict(reuse_factor=0), dict(srl_max_bits=-1)])
def test_bad_config_is_a_skipswitch_error(bad):
    with pytest.raises(SkipswitchError):
        EstimatorConfig(**bad)


def test_parts_table():
    assert get_part("ZCU104").dsp == 1728 and get_part("zu7ev").bram18 == 624
    assert get_part("xcu280").lut == 1_303_680 and get_part("zu3eg").uram == 0
    with pytest.raises(SkipswitchError, match="unknown FPGA part 'zu9000'"):
        get_part("zu9000")


def test_cli_estimate_writes_json_markdown_and_png(cli, tmp_path):
    code, out, err = cli("hw", "estimate", "--model", "resnet8", "--precision", "8", "--part", "zu7ev",
                         "--input-size", "16", "--out", tmp_path)
    assert code == 0, err
    assert "BRAM18" in out and "saved by" in out
    report = json.loads((tmp_path / "estimate.json").read_text())
    assert set(report["modes"]) == {"long", "short", "none"}
    assert report["modes"]["long"]["total"]["bram18"] > report["modes"]["none"]["total"]["bram18"]
    assert (tmp_path / "estimate.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "| BRAM18 |" in (tmp_path / "estimate.md").read_text()


def test_cli_estimate_from_checkpoint(cli, tmp_path):
    from skipswitch.checkpoint import save_model

    model = create_model("resnet8", num_classes=10, in_channels=1, input_size=8, skip_mode=["long", "short", "none"])
    save_model(tmp_path / "m.safetensors", model, {})
    code, out, err = cli("hw", "estimate", "--checkpoint", tmp_path / "m.safetensors", "--out", tmp_path / "o")
    assert code == 0, err
    report = json.loads((tmp_path / "o" / "estimate.json").read_text())
    assert set(report["modes"]) == {"long", "short", "none", "checkpoint"}
    assert len(report["modes"]["checkpoint"]["skips"]) == 1 + 2


def test_cli_estimate_from_checkpoint_uses_its_weights_at_reuse_factor_1(cli, tmp_path):
    """With --checkpoint the constant-coefficient rule sees the checkpoint's weights: every weight a power
    of two (a shift) leaves no multiplier in any skip mode's shared layers, where the same architecture
    without weights needs one per product; the long mode equals the API's estimate with those weights."""
    from skipswitch.checkpoint import save_model
    from skipswitch.fpga.dataflow import EstimatorConfig, estimate_graph, layer_weights

    model = create_model("resnet8", num_classes=10, in_channels=1, input_size=8)
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, (torch.nn.Conv2d, torch.nn.Linear)):
                module.weight.fill_(0.25)
    save_model(tmp_path / "m.safetensors", model, {})
    args = ("--reuse-factor", "1", "--precision", "16")
    code, _, err = cli("hw", "estimate", "--checkpoint", tmp_path / "m.safetensors", *args, "--out", tmp_path / "w")
    assert code == 0, err
    code, _, err = cli("hw", "estimate", "--model", "resnet8", "--num-classes", "10", "--in-channels", "1",
                       "--input-size", "8", *args, "--out", tmp_path / "n")
    assert code == 0, err
    weighted, bare = (json.loads((tmp_path / d / "estimate.json").read_text())["modes"] for d in ("w", "n"))
    for mode in ("long", "short", "none"):
        assert weighted[mode]["total"]["dsp"] < bare[mode]["total"]["dsp"] or \
            weighted[mode]["total"]["lut"] < bare[mode]["total"]["lut"], mode
    graph = trace(model)
    api = estimate_graph(graph, EstimatorConfig(precision=16, reuse_factor=1), "zu7ev", weights=layer_weights(model, graph))
    assert weighted["long"]["total"] == api.total.to_dict()


@pytest.mark.parametrize(
    "argv,message",
    [(["--part", "zu9000"], "unknown FPGA part 'zu9000'"), (["--precision", "1"], "invalid precision=1"),
     (["--model", "resnet7"], "unknown model 'resnet7'")],
)
def test_cli_bad_input_exits_2_with_one_line(cli, argv, message):
    code, out, err = cli("hw", "estimate", *argv)
    assert code == 2 and message in err and len(err.strip().splitlines()) == 1


def test_hls4ml_part_resolution_covers_every_part():
    from skipswitch.fpga.hls4ml_export import vivado_part

    # the HBM entry is the same U280 device, only the accelerator model's bandwidth differs
    assert vivado_part("xcu280-hbm") == vivado_part("xcu280") == "xcu280-fsvh2892-2L-e"
    assert vivado_part("u280-hbm") == "xcu280-fsvh2892-2L-e"
    assert all(vivado_part(name).startswith("xc") for name in list_parts())
    with pytest.raises(SkipswitchError, match="unknown FPGA part 'kintex'"):
        vivado_part("kintex")
