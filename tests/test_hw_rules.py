"""Each estimator rule on a small case computed by hand (fpga/dataflow.py states the rules)."""

import pytest
import torch
from torch import nn

from skipswitch.errors import SkipswitchError
from skipswitch.fpga import EstimatorConfig, estimate_graph
from skipswitch.fpga.dataflow import (
    finn_bram18_count, constant_products, csd_digits, fifo_memory, layer_weights, lutram_luts, softmax_cost, srl_luts,
)
from skipswitch.graph import trace


def _stage(estimate, kind):
    return next(s for s in estimate.stages if s.kind == kind)


@pytest.mark.parametrize("value,digits", [(0, 0), (1, 1), (-8, 1), (3, 2), (7, 2), (5, 2), (11, 3), (-11, 3)])
def test_csd_digits(value, digits):
    assert csd_digits(value) == digits


def test_1x1_conv_with_power_of_two_and_zero_weights_needs_no_multiplier():
    """Conv 2->3, 1x1, reuse factor 1, ap_fixed<16,6>: 2 zero weights vanish, 4 powers of two are
    wires; each of the 4 remaining products is accumulated (16-bit accumulator), plus 3 bias adds."""
    conv = nn.Conv2d(2, 3, 1, bias=False)
    with torch.no_grad():
        conv.weight.copy_(torch.tensor([1.0, 0.5, 0.0, -2.0, 0.25, 0.0]).reshape(3, 2, 1, 1))
    model = nn.Sequential(conv)
    graph = trace(model, (2, 4, 4))
    cfg = EstimatorConfig(precision=16, reuse_factor=1, accum_bits=16)
    stage = _stage(estimate_graph(graph, cfg, weights=layer_weights(model, graph)), "conv")
    assert stage.cost.dsp == 0 and stage.cost.bram18 == 0
    assert stage.cost.lut == 4 * 16 + 3 * 16
    assert stage.cost.ff == 3 * 16 + 3 * 16  # accumulator and output registers only
    # without weights every product is assumed a full multiplier: 6 DSPs at 16 bit
    assert _stage(estimate_graph(graph, cfg), "conv").cost.dsp == 6


def test_constant_products_classify_by_quantised_weight():
    # ap_fixed<8,2>: step 1/64; 0.75 = 48/64 = 64-16 (two digits); 0.703125 = 45/64 (three digits)
    kinds = constant_products([0.0, 0.001, 0.5, 0.75, 0.703125], bits=8, integer_bits=2)
    assert kinds == {"zero": 2, "shift": 1, "add": 1, "mult": 1}


def test_dsp_products_have_no_fabric_product_register():
    """At 16 bit (> lut_mult_max_bits) the product register is the DSP48E2's own."""
    graph = trace(nn.Sequential(nn.Conv2d(1, 2, 1, bias=False)), (1, 4, 4))
    dsp = _stage(estimate_graph(graph, EstimatorConfig(precision=16, reuse_factor=1, accum_bits=20)), "conv")
    lut = _stage(estimate_graph(graph, EstimatorConfig(precision=8, reuse_factor=1, accum_bits=20)), "conv")
    assert dsp.cost.ff == 2 * 20 + 2 * 16
    assert lut.cost.ff == 2 * (2 * 8) + 2 * 20 + 2 * 8


@pytest.mark.parametrize(
    "width,depth,lutram_max_depth,memory",
    [(16, 64, 0, "srl"), (16, 65, 0, "bram"), (16, 65, 128, "lutram"), (16, 128, 128, "lutram"),
     (16, 129, 128, "bram"), (1024, 1, 0, "srl"), (1025, 2, 0, "srl"), (1025, 3, 0, "bram")],
)
def test_fifo_memory_at_each_boundary(width, depth, lutram_max_depth, memory):
    """SRL up to 1024 bits (or depth <= 2), then LUTRAM up to lutram_max_depth, then BRAM."""
    assert fifo_memory(width, depth, EstimatorConfig(lutram_max_depth=lutram_max_depth)) == memory


def test_fifo_storage_costs():
    assert srl_luts(16, 64) == 16 * 2  # SRLC32E: 32 deep per LUT
    assert lutram_luts(16, 65) == 8 * 3 * 2  # RAM64M8: 7 bits x 64 deep per 8 LUTs
    assert finn_bram18_count(16, 65) == 1


def test_softmax_tables_and_multipliers():
    """n = 10 at 16 bit: 5 dual-port exp ROMs + 1 inverse ROM of 1024x18 (1 BRAM18 each), 10 DSPs,
    max tree 9x16 + subtract 10x16 + sum tree 9x18 LUTs."""
    cost = softmax_cost(10, 16)
    assert (cost.bram18, cost.dsp, cost.lut) == (6, 10, 9 * 16 + 10 * 16 + 9 * 18)
    graph = trace(nn.Sequential(nn.Flatten(), nn.Linear(8, 10), nn.Softmax(dim=1)), (2, 2, 2))
    estimate = estimate_graph(graph, EstimatorConfig(precision=16, reuse_factor=1))
    assert _stage(estimate, "softmax").cost == cost


def test_max_pool_2x2_by_hand():
    """4 channels, 8x8 input, 16 bit: 3 comparators per channel, one 8-pixel line-buffer row (SRL),
    the 2x2 window and an output register; the first output after row 1, column 1."""
    graph = trace(nn.Sequential(nn.MaxPool2d(2)), (4, 8, 8))
    stage = _stage(estimate_graph(graph, EstimatorConfig(precision=16)), "maxpool")
    assert stage.cost.lut == 4 * 3 * 16 + 1 * 4 * srl_luts(16, 8)
    assert stage.cost.ff == 4 * 4 * 16 + 4 * 16
    assert stage.delay_pixels == 1 * 8 + 1 and stage.cycles_per_image == 64


def test_fifo_depth_policies():
    """default: every internal stream as deep as its tensor has pixels (hls4ml's io_stream writer);
    optimized: ordinary streams ``stream_depth``. Top-level ports are not FIFOs."""
    graph = trace(nn.Sequential(nn.Conv2d(1, 4, 3), nn.ReLU(), nn.MaxPool2d(2)), (1, 10, 10))
    default = estimate_graph(graph, EstimatorConfig(fifo_depth_policy="default"))
    optimized = estimate_graph(graph, EstimatorConfig(fifo_depth_policy="optimized"))
    assert [f.depth for f in default.fifos] == [64, 64]  # conv->relu, relu->pool at 8x8
    assert [f.depth for f in optimized.fifos] == [2, 2]
    with pytest.raises(SkipswitchError, match="FIFO depth policy"):
        EstimatorConfig(fifo_depth_policy="deep")


def test_per_channel_fifos_count_one_memory_per_channel():
    """A 4-channel 16-bit stream 100 deep: four 1600-bit FIFOs (BRAM18 each) or one 64-bit one (2)."""
    graph = trace(nn.Sequential(nn.Conv2d(1, 4, 1), nn.ReLU()), (1, 10, 10))
    split = estimate_graph(graph, EstimatorConfig(fifo_depth_policy="default", per_channel_fifos=True))
    packed = estimate_graph(graph, EstimatorConfig(fifo_depth_policy="default"))
    assert split.fifos[0].cost.bram18 == 4 and packed.fifos[0].cost.bram18 == finn_bram18_count(64, 100) == 2


def test_per_layer_precision_moves_one_layer_to_luts():
    graph = trace(nn.Sequential(nn.Conv2d(1, 2, 1), nn.Conv2d(2, 2, 1)), (1, 4, 4))
    names = [l.name for l in graph.layers if l.op == "conv"]
    estimate = estimate_graph(graph, EstimatorConfig(precision=16, reuse_factor=1, layer_precision={names[0]: 6}))
    first, second = (s for s in estimate.stages if s.kind == "conv")
    assert first.cost.dsp == 0 and second.cost.dsp == 4


def test_a_design_too_large_says_by_how_much_and_which_resource():
    from skipswitch.models import create_model

    graph = trace(create_model("resnet20", num_classes=10, in_channels=3, input_size=32), name="resnet20")
    estimate = estimate_graph(graph, EstimatorConfig(precision=16, reuse_factor=1), "zu3eg")
    over = estimate.overflow()
    assert "dsp" in over and over["dsp"] == estimate.total.dsp - 360
    assert estimate.fit_message().startswith("does not fit zu3eg: ") and "dsp" in estimate.fit_message()
    assert estimate_graph(trace(nn.Sequential(nn.Conv2d(1, 1, 1)), (1, 4, 4))).fit_message() == "fits zu7ev"
