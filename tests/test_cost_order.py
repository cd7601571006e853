"""Tailor's ``--order cost`` on a bottleneck ResNet whose blocks are in mixed skip modes:
a short bottleneck block has three skips, so skips cannot be mapped to blocks by counting."""

from skipswitch.fpga import EstimatorConfig, estimate_graph
from skipswitch.fpga.order import cost_order
from skipswitch.graph import trace
from skipswitch.models import create_model

MODES = ["short", "long", "none", "long", "short", "none", "long", "none",
         "short", "long", "short", "none", "long", "long", "short", "none"]


def test_cost_order_ranks_exactly_the_long_blocks_of_a_mixed_bottleneck_resnet():
    model = create_model("resnet50", num_classes=10, input_size=16, skip_mode=MODES)
    paths = [f"stages.{s}.{b}" for s, n in enumerate([3, 4, 6, 3]) for b in range(n)]
    graph = trace(model)
    reports = {r.join: r for r in estimate_graph(graph, EstimatorConfig()).skips}
    target = {layer.name: layer.target for layer in graph.layers}

    def spans(edge):
        return {target[name] for name in edge.residual_layers}

    # every skip belongs to the block whose convs it spans: three per short block, one per long
    for edge in graph.skips:
        assert {t.rsplit(".", 1)[0] for t in spans(edge) if ".conv" in t} == {edge.block}
    counts = {"long": 1, "short": 3, "none": 0}
    assert [sum(e.block == p for e in graph.skips) for p in paths] == [counts[m] for m in MODES]

    # per long block, its skip found independently: the skip over the block's last conv
    cost = {}
    for index, mode in enumerate(MODES):
        if mode == "long":
            (edge,) = [e for e in graph.skips if f"{paths[index]}.conv3" in spans(e)]
            report = reports[edge.join]
            cost[index] = (report.bram18, report.fifo_depth * report.width_bits)
    expected = sorted(cost, key=lambda b: (-cost[b][0], -cost[b][1], b))
    order = cost_order(model)
    assert order == expected
    assert sorted(order) == [i for i, m in enumerate(MODES) if m == "long"]
    assert cost[order[0]] > cost[order[-1]]
