"""Export a model to an hls4ml 1.3.0 project (io_stream, Vitis backend) and check it by C simulation.

Model constraints (hls4ml 1.3.0's PyTorch front end): the model must trace with torch.fx;
skips must be out-of-place ``x + y`` adds (``+=`` is unsupported); pooling must have a fixed
kernel (no adaptive pooling) and flattening must be ``nn.Flatten`` / ``torch.flatten``. Our
registry ResNets satisfy all of this in every skip mode.

Stream depths follow the FIFO depth policy of the estimate the project is compared with:
``default`` keeps hls4ml's H*W pixels for every stream; ``optimized`` writes the dataflow
estimator's depths instead (skip FIFOs sized by their lifetime, ordinary streams
``stream_depth``), mapping hls4ml's layer names (which are the fx node names, plus
``clone_*``, ``zp2d_*`` and ``transpose_*`` helpers) to the estimator's stages. Helper
streams the estimator does not model keep hls4ml's default depth. C simulation treats streams
as unbounded queues, so it checks the arithmetic, not that the depths are deadlock-free; that
needs RTL co-simulation with vendor tools.

hls4ml is imported lazily: the rest of skipswitch does not need it.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import nn

from ..errors import SkipswitchError
from .dataflow import Estimate, EstimatorConfig, estimate_graph

_HELPER_PREFIXES = ("zp2d_", "transpose_input_for_")


@dataclass
class ExportResult:
    output_dir: str
    precision: str
    reuse_factor: int
    images: int
    argmax_agreement: float  # fraction of images where C-sim and PyTorch pick the same class
    max_abs_error: float  # over all logits of all images
    stream_depths: dict[str, int] = field(default_factory=dict)
    skip_stream_depths: dict[str, int] = field(default_factory=dict)
    synthesis: dict | None = None
    fifo_depth_policy: str = "optimized"

    def to_dict(self) -> dict:
        from dataclasses import asdict

        return asdict(self)


def _import_hls4ml():
    try:
        import hls4ml  # noqa: F401
    except ImportError as exc:  # pragma: no cover - installed here
        raise SkipswitchError(f"hls4ml is not installed ({exc}); it is a dependency of skipswitch: pip install 'hls4ml>=1.0,<1.4'") from None
    return hls4ml


def _ir_name(name: str) -> str:
    for prefix in _HELPER_PREFIXES:
        if name.startswith(prefix):
            return name[len(prefix):]
    return name


def estimator_stream_depths(hls_model, estimate: Estimate) -> tuple[dict[str, int], set[str]]:
    """hls4ml output-variable name -> depth from the estimate; also the names of skip streams."""
    fifo = {(f.producer, f.consumer): f for f in estimate.fifos}
    stage_of = estimate.tensor_stage
    consumers: dict[str, list] = {}
    for layer in hls_model.get_layers():
        for inp in layer.inputs:
            consumers.setdefault(inp, []).append(layer)
    def stage(layer) -> str | None:
        if layer.class_name == "Clone":
            return "clone_" + stage_of.get(_ir_name(layer.inputs[0]), "?")
        return stage_of.get(_ir_name(layer.name))

    depths: dict[str, int] = {}
    skips: set[str] = set()
    for layer in hls_model.get_layers():
        if layer.name.startswith(_HELPER_PREFIXES) or layer.class_name == "Input":
            continue  # helper streams keep hls4ml's default depth
        producer = stage(layer)
        for out in layer.outputs:
            for consumer in consumers.get(out, []):
                f = fifo.get((producer, stage(consumer)))
                if f is None and stage(consumer) == producer:
                    depths[out] = estimate.config.stream_depth  # inside a folded stage (conv -> activation)
                elif f is not None:
                    depths[out] = max(depths.get(out, 0), f.depth)
                    if f.skip:
                        skips.add(out)
    return depths, skips


def hls4ml_traceable(model: nn.Module) -> nn.Module:
    """``model`` without its ``nn.Identity`` calls (an fx copy sharing its modules), else ``model``
    itself: hls4ml has no handler for Identity, the no-op that many ResNets use as an identity
    shortcut or in place of a left-out layer."""
    if not any(isinstance(m, nn.Identity) for m in model.modules()):
        return model
    from hls4ml.utils.torch import CustomFXTracer  # the tracer hls4ml converts with: the same leaves

    graph = CustomFXTracer().trace(model)
    for node in list(graph.nodes):
        if node.op == "call_module" and isinstance(model.get_submodule(node.target), nn.Identity):
            node.replace_all_uses_with(node.args[0])
            graph.erase_node(node)
    return torch.fx.GraphModule(model, graph, type(model).__name__)


def export_hls4ml(
    model: nn.Module,
    output_dir: str | Path,
    images: torch.Tensor,
    *,
    precision: int = 16,
    integer_bits: int = 6,
    reuse_factor: int = 1,
    part: str = "zu7ev",
    rounding: bool = True,
    fifo_depth_policy: str = "optimized",
    synth: bool = False,
) -> ExportResult:
    """Convert ``model`` with hls4ml, write and compile the project (g++ C-sim) and compare with PyTorch."""
    from ..graph import trace

    hls4ml = _import_hls4ml()
    vivado = vivado_part(part)  # before conversion: its broad except would hide a bad part
    if not 2 <= precision <= 32 or not 1 <= integer_bits <= precision:
        raise SkipswitchError(f"bad fixed-point precision ap_fixed<{precision},{integer_bits}>")
    if reuse_factor < 1:
        raise SkipswitchError(f"reuse factor must be positive, got {reuse_factor}")
    # the same policy and settings as the estimate this project is compared with
    estimator_config = EstimatorConfig(precision=precision, integer_bits=integer_bits, reuse_factor=reuse_factor,
                                       strategy="resource" if reuse_factor > 1 else "latency",
                                       fifo_depth_policy=fifo_depth_policy)
    if shutil.which("g++") is None:
        raise SkipswitchError("g++ not found on PATH: hls4ml's C simulation needs it")
    model = model.eval()
    convertible = hls4ml_traceable(model)
    input_shape = tuple(images.shape[1:])
    # round-to-nearest and saturation: hls4ml's default truncation biases every layer's output down
    fixed = f"ap_fixed<{precision},{integer_bits},AP_RND_CONV,AP_SAT>" if rounding else f"ap_fixed<{precision},{integer_bits}>"
    config = hls4ml.utils.config_from_pytorch_model(
        convertible, input_shape, granularity="name", backend="Vitis", default_precision=fixed,
        default_reuse_factor=reuse_factor,
    )
    if reuse_factor > 1:
        config["Model"]["Strategy"] = "Resource"
    output_dir = Path(output_dir)
    try:
        hls_model = hls4ml.converters.convert_from_pytorch_model(
            convertible, hls_config=config, output_dir=str(output_dir), backend="Vitis", io_type="io_stream",
            part=vivado,
        )
    except Exception as exc:  # hls4ml raises bare Exceptions for unsupported layers
        raise SkipswitchError(f"hls4ml could not convert the model: {exc}".splitlines()[0]) from None
    depths: dict[str, int] = {}
    skip_streams: set[str] = set()
    if fifo_depth_policy == "optimized":  # "default" keeps hls4ml's own H*W depths, which the estimate models
        graph = trace(model, input_shape)
        estimate = estimate_graph(graph, estimator_config, part)
        depths, skip_streams = estimator_stream_depths(hls_model, estimate)
        for name, depth in depths.items():
            var = hls_model.output_vars.get(name)
            if var is not None and getattr(var, "pragma", None):
                var.pragma = (var.pragma[0], int(depth))
    hls_model.compile()  # writes the project and builds the C-sim library with g++

    x = images.detach().float()
    with torch.no_grad():
        reference = model(x).numpy()
    predicted = np.asarray(hls_model.predict(np.ascontiguousarray(x.numpy()))).reshape(reference.shape)
    result = ExportResult(
        output_dir=str(output_dir), precision=fixed, reuse_factor=reuse_factor, images=int(x.shape[0]),
        argmax_agreement=float((predicted.argmax(1) == reference.argmax(1)).mean()),
        max_abs_error=float(np.abs(predicted - reference).max()),
        stream_depths={k: int(v) for k, v in depths.items()},
        skip_stream_depths={k: int(depths[k]) for k in sorted(skip_streams)},
    )
    result.fifo_depth_policy = fifo_depth_policy
    if synth:
        result.synthesis = _synthesize(hls_model, output_dir)
    return result


# Vivado part strings of the boards' devices; xcu280-hbm is the same U280 silicon (the entry
# differs only in the off-chip bandwidth the accelerator model uses).
_VIVADO_PARTS = {"zu3eg": "xczu3eg-sbva484-1-i", "zu7ev": "xczu7ev-ffvc1156-2-e", "xcu50": "xcu50-fsvh2104-2-e",
                 "xc7z020": "xc7z020clg400-1", "xcu280": "xcu280-fsvh2892-2L-e",
                 "xcu280-hbm": "xcu280-fsvh2892-2L-e", "xcvu13p": "xcvu13p-flga2577-2-e"}


def vivado_part(part: str) -> str:
    """The Vivado part string hls4ml targets for a part name or board alias of ``parts``."""
    from .parts import get_part

    name = get_part(part).name
    if name not in _VIVADO_PARTS:
        raise SkipswitchError(f"part {part!r} has no Vivado part string for hls4ml export; choose one of "
                              f"{', '.join(_VIVADO_PARTS)}")
    return _VIVADO_PARTS[name]


def _synthesize(hls_model, output_dir: Path) -> dict:
    """Run Vitis HLS C synthesis (needs ``vitis_hls`` on PATH); the project's reports as
    :mod:`.synth_report` reads them, next to hls4ml's own parsed report."""
    from .synth_report import read_report_dir

    if shutil.which("vitis_hls") is None:
        raise SkipswitchError("--synth needs Vitis HLS: vitis_hls was not found on PATH")
    report = hls_model.build(csim=False, synth=True, vsynth=False)
    return {"hls4ml": report if isinstance(report, dict) else str(report),
            "reports": [r.to_dict() for r in read_report_dir(output_dir)]}
