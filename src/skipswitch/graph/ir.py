"""The network IR: layers in execution order with shapes, parameters, MACs and skip edges.

Built once by tracing a model with torch.fx and propagating a batch-1 input through it.
Every consumer of layer shapes (hardware estimator, accelerator model, exports, tests)
reads this graph; nothing else re-derives shapes.

A *skip edge* is found from the graph structure, not from any flag on the model: for
each two-input add, the fork is the latest common ancestor of the two inputs; the
*residual* side is the one with more compute layers between fork and add, the other
side is the *shortcut* (identity or a projection). A skip belongs to the module whose
forward does the add (its residual block), as fx records it.
"""

from __future__ import annotations

import operator
from dataclasses import dataclass, field
from typing import Any, Sequence

import torch
from torch import fx, nn
from torch.fx.passes.shape_prop import ShapeProp

from ..errors import SkipswitchError

_ADD_TARGETS = {operator.add, operator.iadd, torch.add}
_COMPUTE_OPS = ("conv", "linear")


@dataclass(frozen=True)
class Layer:
    """One fx node: a module call, a function (add, flatten, ...) or the graph input/output."""

    name: str
    op: str  # conv, linear, bn, relu, add, avgpool, maxpool, softmax, flatten, input, output, other
    target: str
    inputs: tuple[str, ...]
    input_shapes: tuple[tuple[int, ...], ...]
    output_shape: tuple[int, ...]  # without the batch dimension
    params: int
    macs: int
    attrs: dict[str, Any] = field(default_factory=dict, compare=False)

    @property
    def output_elements(self) -> int:
        n = 1
        for d in self.output_shape:
            n *= d
        return n


@dataclass(frozen=True)
class SkipEdge:
    """A skip connection: ``fork``'s output is read again by the add ``join``."""

    fork: str
    join: str
    shortcut_input: str
    residual_input: str
    residual_layers: tuple[str, ...]  # layers strictly after the fork on the residual side, up to the add
    shortcut_layers: tuple[str, ...]  # projection layers on the shortcut side (empty for identity)
    shape: tuple[int, ...]  # shape of the forked tensor, without batch

    residual_convs: int = 0
    block: str = ""  # module path of the module (residual block) whose forward does the add; "" for the model's own


    @property
    def is_long(self) -> bool:
        """Spans more than one compute layer, i.e. its data must outlive a whole conv stage chain."""
        return self.residual_convs > 1


@dataclass
class NetworkGraph:
    layers: list[Layer]
    skips: list[SkipEdge]
    input_shape: tuple[int, ...]
    model_name: str = ""

    def __post_init__(self) -> None:
        self._by_name = {layer.name: layer for layer in self.layers}

    def layer(self, name: str) -> Layer:
        return self._by_name[name]

    def index(self, name: str) -> int:
        return self.layers.index(self._by_name[name])

    @property
    def total_params(self) -> int:
        return sum(layer.params for layer in self.layers)

    @property
    def total_macs(self) -> int:
        return sum(layer.macs for layer in self.layers)

    def layers_of(self, op: str) -> list[Layer]:
        return [layer for layer in self.layers if layer.op == op]

    def to_dict(self) -> dict:
        return {
            "model": self.model_name,
            "input_shape": list(self.input_shape),
            "layers": len(self.layers),
            "params": self.total_params,
            "macs": self.total_macs,
            "skips": len(self.skips),
            "long_skips": sum(s.is_long for s in self.skips),
        }


def _module_kind(module: nn.Module) -> str:
    if isinstance(module, nn.Conv2d):
        return "conv"
    if isinstance(module, nn.Linear):
        return "linear"
    if isinstance(module, nn.modules.batchnorm._BatchNorm):
        return "bn"
    if isinstance(module, (nn.ReLU, nn.ReLU6)):
        return "relu"
    if isinstance(module, (nn.AvgPool2d, nn.AdaptiveAvgPool2d)):
        return "avgpool"
    if isinstance(module, (nn.MaxPool2d, nn.AdaptiveMaxPool2d)):
        return "maxpool"
    if isinstance(module, nn.Flatten):
        return "flatten"
    if isinstance(module, nn.Softmax):
        return "softmax"
    return "other"


def _function_kind(node: fx.Node) -> str:
    target = node.target
    if target in _ADD_TARGETS or (node.op == "call_method" and target in ("add", "add_")):
        return "add"
    if target in (torch.flatten,) or (node.op == "call_method" and target in ("flatten", "view", "reshape")):
        return "flatten"
    if target in (torch.relu, nn.functional.relu) or (node.op == "call_method" and target == "relu"):
        return "relu"
    return "other"


def _module_attrs(module: nn.Module) -> dict[str, Any]:
    if isinstance(module, nn.Conv2d):
        return {
            "in_channels": module.in_channels,
            "out_channels": module.out_channels,
            "kernel_size": tuple(module.kernel_size),
            "stride": tuple(module.stride),
            "padding": tuple(module.padding) if not isinstance(module.padding, str) else module.padding,
            "groups": module.groups,
            "bias": module.bias is not None,
        }
    if isinstance(module, nn.Linear):
        return {"in_features": module.in_features, "out_features": module.out_features, "bias": module.bias is not None}
    if isinstance(module, (nn.AvgPool2d, nn.MaxPool2d)):
        return {"kernel_size": module.kernel_size, "stride": module.stride}
    return {}


def _macs(kind: str, module: nn.Module | None, out_shape: tuple[int, ...]) -> int:
    if kind == "conv" and module is not None:
        kh, kw = module.kernel_size
        per_output = (module.in_channels // module.groups) * kh * kw
        out = 1
        for d in out_shape:
            out *= d
        return out * per_output
    if kind == "linear" and module is not None:
        return module.in_features * module.out_features
    return 0


def _shape(meta: Any) -> tuple[int, ...]:
    tm = getattr(meta, "shape", None)
    if tm is None:
        return ()
    return tuple(int(d) for d in tm)[1:]


class _Tracer(fx.Tracer):
    """Keeps every conv, linear and BN layer one node, subclasses (dynamic layers) included."""

    def is_leaf_module(self, m: nn.Module, module_qualified_name: str) -> bool:
        return isinstance(m, (nn.Conv2d, nn.Linear, nn.modules.batchnorm._BatchNorm)) or super().is_leaf_module(
            m, module_qualified_name)


def trace(model: nn.Module, input_shape: Sequence[int] | None = None, name: str | None = None) -> NetworkGraph:
    """Trace ``model`` with torch.fx and build the IR.

    ``input_shape`` is (C, H, W) without batch; models of ours know their own
    (``in_channels``, ``input_size``) so it may be omitted for them.
    """
    if input_shape is None:
        if not hasattr(model, "input_size") or not hasattr(model, "in_channels"):
            raise SkipswitchError("input_shape (C, H, W) is required for models that do not declare their input size")
        input_shape = (model.in_channels, *model.input_size)
    input_shape = tuple(int(d) for d in input_shape)
    try:
        gm = fx.GraphModule(model, _Tracer().trace(model), type(model).__name__)
    except Exception as exc:  # fx raises many types for untraceable control flow
        raise SkipswitchError(f"model {type(model).__name__} is not traceable by torch.fx: {exc}".splitlines()[0]) from None
    was_training = model.training
    gm.eval()
    with torch.no_grad():
        param = next(model.parameters(), None)
        device = param.device if param is not None else torch.device("cpu")
        ShapeProp(gm).propagate(torch.zeros((1, *input_shape), device=device))
    gm.train(was_training)

    modules = dict(gm.named_modules())
    layers: list[Layer] = []
    node_index: dict[str, int] = {}
    for node in gm.graph.nodes:
        module = modules.get(node.target) if node.op == "call_module" else None
        if node.op == "placeholder":
            kind = "input"
        elif node.op == "output":
            kind = "output"
        elif module is not None:
            kind = _module_kind(module)
        elif node.op in ("call_function", "call_method"):
            kind = _function_kind(node)
        else:
            kind = "other"
        inputs = tuple(a.name for a in node.all_input_nodes)
        input_shapes = tuple(_shape(a.meta.get("tensor_meta")) for a in node.all_input_nodes)
        out_shape = _shape(node.meta.get("tensor_meta")) if kind != "input" else input_shape
        if kind == "output":
            out_shape = input_shapes[0] if input_shapes else ()
        params = sum(p.numel() for p in module.parameters(recurse=False)) if module is not None else 0
        target = node.target if isinstance(node.target, str) else getattr(node.target, "__name__", str(node.target))
        layers.append(
            Layer(
                name=node.name,
                op=kind,
                target=str(target),
                inputs=inputs,
                input_shapes=input_shapes,
                output_shape=out_shape,
                params=params,
                macs=_macs(kind, module, out_shape),
                attrs=_module_attrs(module) if module is not None else {},
            )
        )
        node_index[node.name] = len(layers) - 1

    # fx records the module call stack of every node; the innermost module owns the add
    owner = {node.name: next(reversed(node.meta.get("nn_module_stack", {})), "") for node in gm.graph.nodes}
    skips = _find_skips(layers, node_index, owner)
    return NetworkGraph(layers=layers, skips=skips, input_shape=input_shape, model_name=name or getattr(model, "name", type(model).__name__))


def _find_skips(layers: list[Layer], node_index: dict[str, int], owner: dict[str, str]) -> list[SkipEdge]:
    # Ancestor sets as Python int bitsets (bit i = layer i): cheap even for ResNet-110.
    ancestors: list[int] = []
    for i, layer in enumerate(layers):
        bits = 1 << i
        for inp in layer.inputs:
            bits |= ancestors[node_index[inp]]
        ancestors.append(bits)

    def members(bits: int) -> list[int]:
        out, i = [], 0
        while bits:
            if bits & 1:
                out.append(i)
            bits >>= 1
            i += 1
        return out

    skips: list[SkipEdge] = []
    for i, layer in enumerate(layers):
        if layer.op != "add" or len(layer.inputs) != 2:
            continue
        a, b = (node_index[n] for n in layer.inputs)
        common = ancestors[a] & ancestors[b]
        if not common:
            continue  # two independent inputs: an add, not a skip
        fork = common.bit_length() - 1
        fork_anc = ancestors[fork]
        side_a = [layers[j] for j in members(ancestors[a] & ~fork_anc)]
        side_b = [layers[j] for j in members(ancestors[b] & ~fork_anc)]
        convs_a = sum(x.op in _COMPUTE_OPS for x in side_a)
        convs_b = sum(x.op in _COMPUTE_OPS for x in side_b)
        if (convs_b, len(side_b)) > (convs_a, len(side_a)):
            a, b, side_a, side_b, convs_a = b, a, side_b, side_a, convs_b
        skips.append(
            SkipEdge(
                fork=layers[fork].name,
                join=layer.name,
                shortcut_input=layers[b].name,
                residual_input=layers[a].name,
                residual_layers=tuple(x.name for x in side_a),
                shortcut_layers=tuple(x.name for x in side_b),
                shape=layers[fork].output_shape,
                residual_convs=convs_a,
                block=owner[layer.name],
            )
        )
    return skips
