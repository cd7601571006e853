"""Jobs of Tailor's hardware side: the dataflow resource estimate and the hls4ml export."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal, Optional

from pydantic import ConfigDict, Field

from ..errors import SkipswitchError
from ..io import OutDir
from .base import JobConfig, JobResult


class EstimateJob(JobConfig):
    model: str = Field("resnet20", description="Registry model name (ignored with --checkpoint).")
    checkpoint: Optional[Path] = Field(None, description="Estimate this checkpoint's architecture instead, with its weights "
                                       "(reuse factor 1: a zero weight needs no product, a one- or two-digit weight a shift or an adder) in every skip mode's "
                                       "layers that the checkpoint holds.")
    precision: int = Field(16, ge=2, le=32, description="Fixed-point bits of weights and activations (8 and 16 are the defaults studied).")
    part: str = Field("zu7ev", description="FPGA part: zu3eg, zu7ev, xcu280, xcvu13p.")
    reuse_factor: Optional[int] = Field(None, ge=1, le=1_000_000, description="hls4ml reuse factor for every layer [default: the layer's fan-in].")
    srl_max_bits: int = Field(1024, ge=0, description="FIFOs up to this many bits become shift registers (Vitis auto_srl_max_bits).")
    skip_fifo_impl: str = Field("auto", description="Skip FIFOs: auto (the memory rule), srl, lutram or bram (forced).")
    fifo_depth_policy: str = Field("optimized", description="default (hls4ml: every stream H*W deep) or optimized (the FIFO optimiser's depths).")
    lutram_max_depth: int = Field(0, ge=0, description="Non-SRL FIFOs up to this depth use LUTRAM (0: never, Vitis' automatic rule).")
    strategy: str = Field("resource", description="hls4ml Strategy for reuse factors > 1: latency or resource.")
    lut_mult_max_bits: int = Field(8, ge=0, le=64, description="Multipliers up to this width use LUTs instead of DSPs.")
    num_classes: int = Field(10, ge=1, le=100_000, description="Classes of the registry model.")
    in_channels: int = Field(3, ge=1, le=1024, description="Input channels of the registry model.")
    input_size: int = Field(32, ge=8, le=1024, description="Input height = width of the registry model.")
    out: Optional[OutDir] = Field(None, description="Write estimate.json, estimate.md and estimate.png here.")


class EstimateResult(JobResult):
    """``estimate.json``: per skip mode the design's resources, and the savings against long skips."""

    kind: Literal["hw-estimate"] = "hw-estimate"
    model_config = ConfigDict(extra="allow")  # the comparison's remaining fields
    modes: dict[str, dict[str, Any]]
    savings_percent_vs_long: dict[str, dict[str, float]]

    def total(self, mode: str, resource: str) -> int:
        return self.modes[mode]["total"][resource]


class Hls4mlJob(JobConfig):
    checkpoint: Path = Field(..., description="A model checkpoint (.safetensors).")
    out: OutDir = Field(..., description="Directory for the hls4ml project and hls4ml_report.json.")
    precision: int = Field(16, ge=2, le=64, description="Total fixed-point bits (ap_fixed<precision, integer-bits>).")
    integer_bits: int = Field(6, ge=1, le=64, description="Integer bits of the fixed-point type, sign included.")
    reuse_factor: int = Field(1, ge=1, le=1_000_000, description="hls4ml reuse factor (>1 selects the Resource strategy).")
    part: str = Field("zu7ev", description="FPGA part: zu3eg, zu7ev, xcu280, xcvu13p.")
    images: int = Field(100, ge=1, le=100_000, description="Test images to compare C simulation with PyTorch on.")
    hls4ml_depths: bool = Field(False, description="FIFO depth policy 'default': keep hls4ml's H*W stream depths instead of the estimator's ('optimized').")
    synth: bool = Field(False, description="Also run Vitis HLS synthesis (needs vitis_hls on PATH).")
    data_dir: Optional[Path] = Field(None, description="Directory holding a local dataset.")


class Hls4mlResult(JobResult):
    """``hls4ml_report.json``: C simulation of the exported design against PyTorch."""

    kind: Literal["hw-hls4ml"] = "hw-hls4ml"
    checkpoint: str
    dataset: str
    skip_modes: Optional[list[str]]
    hls4ml_version: str
    output_dir: str
    precision: str
    reuse_factor: int
    images: int
    argmax_agreement: float
    max_abs_error: float
    stream_depths: dict[str, int]
    skip_stream_depths: dict[str, int]
    synthesis: Optional[dict[str, Any]] = None


def _graphs_from_checkpoint(checkpoint: Path) -> tuple[dict, dict]:
    """The checkpoint's architecture in long/short/none (plus its own skip modes when they are mixed),
    and per mode the checkpoint's weights of the layers that mode shares with it (same IR name and
    shape; a layer the checkpoint lacks, e.g. a shortened bottleneck's new projection, gets none)."""
    from ..checkpoint import load_model
    from ..fpga.dataflow import layer_weights
    from ..graph import trace
    from ..models import create_model_from_config

    model, _ = load_model(checkpoint)
    config = getattr(model, "config", None)
    if config is None:
        raise SkipswitchError(f"checkpoint {checkpoint} holds a model without a skip-mode config")
    own = trace(model, name=config["name"])
    held = layer_weights(model, own)
    graphs, weights = {}, {}
    for mode in ("long", "short", "none"):
        variant = create_model_from_config({**config, "skip_modes": [mode] * len(config["skip_modes"])})
        graphs[mode] = trace(variant, name=config["name"])
        weights[mode] = {name: held[name] for name, w in layer_weights(variant, graphs[mode]).items()
                         if name in held and held[name].shape == w.shape}
    if len(set(config["skip_modes"])) > 1:
        graphs["checkpoint"], weights["checkpoint"] = own, held
    return graphs, weights


def estimate(job: EstimateJob):
    """The comparison (for printing) and its result model; with ``out``, writes estimate.json/.md/.png."""
    from ..checkpoint import atomic_write_text
    from ..fpga.dataflow import EstimatorConfig, compare_graphs
    from ..fpga.parts import get_part
    from ..fpga.report import bar_chart, comparison_markdown
    from ..graph import trace
    from ..models import create_model

    part = get_part(job.part)
    config = EstimatorConfig(precision=job.precision, reuse_factor=job.reuse_factor, srl_max_bits=job.srl_max_bits,
                             skip_fifo_impl=job.skip_fifo_impl, lut_mult_max_bits=job.lut_mult_max_bits,
                             fifo_depth_policy=job.fifo_depth_policy, lutram_max_depth=job.lutram_max_depth,
                             strategy=job.strategy)
    weights = None
    if job.checkpoint is not None:
        graphs, weights = _graphs_from_checkpoint(job.checkpoint)
    else:
        graphs = {mode: trace(create_model(job.model, num_classes=job.num_classes, in_channels=job.in_channels,
                                           input_size=job.input_size, skip_mode=mode), name=job.model)
                  for mode in ("long", "short", "none")}
    comparison = compare_graphs(graphs, config, part, weights)
    result = EstimateResult(**comparison.to_dict())
    if job.out is not None:
        result.save(job.out / "estimate.json")
        atomic_write_text(job.out / "estimate.md", comparison_markdown(comparison) + "\n")
        bar_chart(comparison, job.out / "estimate.png")
    return comparison, result


def hls4ml(job: Hls4mlJob) -> Hls4mlResult:
    import hls4ml as hls4ml_lib

    from ..checkpoint import load_model
    from ..data import load_dataset
    from ..fpga.hls4ml_export import export_hls4ml

    model, meta = load_model(job.checkpoint)
    ds_meta = meta.get("dataset", {})
    dataset = load_dataset(ds_meta.get("name", "digits"), job.data_dir, seed=ds_meta.get("seed", 0))
    export = export_hls4ml(model, job.out / "project", dataset.test.images[:job.images], precision=job.precision,
                           integer_bits=job.integer_bits, reuse_factor=job.reuse_factor, part=job.part,
                           fifo_depth_policy="default" if job.hls4ml_depths else "optimized", synth=job.synth)
    result = Hls4mlResult(checkpoint=str(job.checkpoint), dataset=dataset.name,
                          skip_modes=getattr(model, "skip_modes", None), hls4ml_version=hls4ml_lib.__version__,
                          **export.to_dict())
    result.save(job.out / "hls4ml_report.json")
    return result


class CompareJob(JobConfig):
    report_dir: Path = Field(..., description="hls4ml project (or any) directory with csynth.rpt / vivado_synth.rpt.")
    model: str = Field("resnet8", description="Registry model name (ignored with --checkpoint).")
    checkpoint: Optional[Path] = Field(None, description="Estimate this checkpoint's model (its weights included).")
    precision: int = Field(16, description="Fixed-point bits of weights and activations.")
    reuse_factor: Optional[int] = Field(None, description="hls4ml reuse factor [default: each layer's fan-in].")
    strategy: str = Field("resource", description="hls4ml Strategy: latency or resource.")
    fifo_depth_policy: str = Field("default", description="default (hls4ml H*W) or optimized.")
    part: Optional[str] = Field(None, description="FPGA part [default: the report's device when known].")
    num_classes: int = Field(10, description="Classes of the registry model.")
    in_channels: int = Field(3, description="Input channels of the registry model.")
    input_size: int = Field(32, description="Input height = width of the registry model.")


def compare(job: CompareJob):
    """The synthesis reports under ``report_dir`` and the estimate of the same model:
    ``(reports, estimate)``; the CLI prints them side by side."""
    from ..fpga.dataflow import EstimatorConfig, estimate_graph, layer_weights
    from ..fpga.parts import get_part
    from ..fpga.synth_report import read_report_dir
    from ..graph import trace

    reports = read_report_dir(job.report_dir)
    if job.checkpoint is not None:
        from ..checkpoint import load_model

        net, _ = load_model(job.checkpoint)
    else:
        from ..models import create_model

        net = create_model(job.model, num_classes=job.num_classes, in_channels=job.in_channels,
                           input_size=job.input_size)
    graph = trace(net, name=job.model if job.checkpoint is None else str(job.checkpoint))
    part = job.part or next((r.device for r in reports if _known_part(r.device)), "zu7ev")
    config = EstimatorConfig(precision=job.precision, reuse_factor=job.reuse_factor, strategy=job.strategy,
                             fifo_depth_policy=job.fifo_depth_policy)
    return reports, estimate_graph(graph, config, get_part(part), weights=layer_weights(net, graph))


def _known_part(device: str) -> bool:
    from ..fpga.parts import get_part

    try:
        return bool(device) and get_part(device) is not None
    except SkipswitchError:
        return False
