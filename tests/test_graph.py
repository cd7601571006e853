import operator

import pytest
import torch
from torch import fx, nn

from skipswitch.errors import SkipswitchError
from skipswitch.graph import trace
from skipswitch.models import create_model


def _resnet20(mode):
    return create_model("resnet20", num_classes=10, in_channels=1, input_size=8, skip_mode=mode)


@pytest.mark.parametrize("mode,skips", [("long", 9), ("short", 18), ("none", 0)])
def test_resnet20_skip_counts(mode, skips):
    graph = trace(_resnet20(mode))
    assert len(graph.skips) == skips
    assert sum(s.is_long for s in graph.skips) == (skips if mode == "long" else 0)


@pytest.mark.parametrize("mode", ["short", "none"])
def test_short_and_none_have_no_long_skip_in_the_fx_graph(mode):
    """Checked on the raw fx graph, independently of the IR's skip finder: no add has an
    input that reaches back over more than one conv to the other input's source."""
    gm = fx.symbolic_trace(_resnet20(mode))
    modules = dict(gm.named_modules())

    def chain(node):
        # (node, convs passed so far) along first inputs; the residual paths here are chains
        out, convs = [], 0
        while True:
            if node.op == "call_module" and isinstance(modules[node.target], nn.Conv2d):
                convs += 1
            out.append((node, convs))
            if not node.all_input_nodes:
                return out
            node = node.all_input_nodes[0]

    adds = [n for n in gm.graph.nodes if n.target in (operator.add, torch.add)]
    assert len(adds) == (18 if mode == "short" else 0)
    for add in adds:
        a, b = (chain(n) for n in add.all_input_nodes)
        b_nodes = {n: c for n, c in b}
        # the fork is the first node on a's chain that b's chain also reaches; a conv that
        # produces the fork's tensor is not inside the skip, hence the strict prefix counts
        index = next(i for i, (n, _) in enumerate(a) if n in b_nodes)
        fork = a[index][0]
        convs_a = a[index - 1][1] if index else 0
        b_index = [n for n, _ in b].index(fork)
        convs_b = b[b_index - 1][1] if b_index else 0
        assert max(convs_a, convs_b) <= 1


def test_long_skips_span_two_convs():
    graph = trace(_resnet20("long"))
    assert {s.residual_convs for s in graph.skips} == {2}
    # three stage transitions... two of them need a projection on the shortcut
    assert sum(bool(s.shortcut_layers) for s in graph.skips) == 2


def test_torchvision_resnets_trace_with_their_skips():
    torchvision = pytest.importorskip("torchvision")
    g18 = trace(torchvision.models.resnet18(num_classes=10), (3, 64, 64))
    assert len(g18.skips) == 8 and all(s.is_long for s in g18.skips)
    assert g18.total_params == sum(p.numel() for p in torchvision.models.resnet18(num_classes=10).parameters())
    g50 = trace(torchvision.models.resnet50(num_classes=10), (3, 64, 64))
    assert len(g50.skips) == 16 and all(s.residual_convs == 3 for s in g50.skips)


def test_shapes_match_a_real_forward_pass():
    model = _resnet20("short").eval()
    graph = trace(model)
    out = model(torch.zeros(1, 1, 8, 8))
    assert graph.layers[-1].output_shape == tuple(out.shape[1:])


def test_untraceable_model_is_a_skipswitch_error():
    class Branchy(nn.Module):
        def forward(self, x):
            return x if x.sum() > 0 else -x

    with pytest.raises(SkipswitchError, match="not traceable"):
        trace(Branchy(), (1, 4, 4))
