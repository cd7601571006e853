"""``skipswitch hw``: FPGA resource estimates by skip mode and hls4ml export."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from ..errors import SkipswitchError

app = typer.Typer(help="FPGA cost of skip connections: dataflow resource estimate and hls4ml export.",
                  no_args_is_help=True)


def _graphs_from_checkpoint(checkpoint: Path) -> dict:
    """The checkpoint's architecture in long/short/none (plus its own skip modes when they are mixed)."""
    from ..checkpoint import load_model
    from ..graph import trace
    from ..models import create_model_from_config

    model, _ = load_model(checkpoint)
    config = getattr(model, "config", None)
    if config is None:
        raise SkipswitchError(f"checkpoint {checkpoint} holds a model without a skip-mode config")
    graphs = {}
    for mode in ("long", "short", "none"):
        variant = create_model_from_config({**config, "skip_modes": [mode] * len(config["skip_modes"])})
        graphs[mode] = trace(variant, name=config["name"])
    if len(set(config["skip_modes"])) > 1:
        graphs["checkpoint"] = trace(model, name=config["name"])
    return graphs


@app.command()
def estimate(
    model: str = typer.Option("resnet20", help="Registry model name (ignored with --checkpoint)."),
    checkpoint: Optional[Path] = typer.Option(None, help="Estimate this checkpoint's architecture instead."),
    precision: int = typer.Option(16, help="Fixed-point bits of weights and activations (8 and 16 are the defaults studied)."),
    part: str = typer.Option("zu7ev", help="FPGA part: zu3eg, zu7ev, xcu280, xcvu13p."),
    reuse_factor: Optional[int] = typer.Option(None, "--reuse-factor", help="hls4ml reuse factor for every layer [default: the layer's fan-in]."),
    srl_max_bits: int = typer.Option(1024, "--srl-max-bits", help="FIFOs up to this many bits become shift registers (Vitis auto_srl_max_bits)."),
    skip_fifo_impl: str = typer.Option("auto", "--skip-fifo-impl", help="Skip FIFOs: auto (the memory rule), srl, lutram or bram (forced)."),
    fifo_depth_policy: str = typer.Option("optimized", "--fifo-depth-policy", help="default (hls4ml: every stream H*W deep) or optimized (the FIFO optimiser's depths)."),
    lutram_max_depth: int = typer.Option(0, "--lutram-max-depth", help="Non-SRL FIFOs up to this depth use LUTRAM (0: never, Vitis' automatic rule)."),
    strategy: str = typer.Option("resource", help="hls4ml Strategy for reuse factors > 1: latency or resource."),
    lut_mult_max_bits: int = typer.Option(8, "--lut-mult-max-bits", help="Multipliers up to this width use LUTs instead of DSPs."),
    num_classes: int = typer.Option(10, "--num-classes", help="Classes of the registry model."),
    in_channels: int = typer.Option(3, "--in-channels", help="Input channels of the registry model."),
    input_size: int = typer.Option(32, "--input-size", help="Input height = width of the registry model."),
    out: Optional[Path] = typer.Option(None, help="Write estimate.json, estimate.md and estimate.png here."),
):
    """Estimate BRAM18/DSP/FF/LUT of the hls4ml io_stream design in long, short and none skip modes."""
    from ..checkpoint import atomic_write_json, atomic_write_text
    from ..graph import trace
    from ..models import create_model
    from .dataflow import EstimatorConfig, compare_graphs
    from .parts import get_part
    from .report import bar_chart, comparison_markdown, print_rich

    part_obj = get_part(part)
    config = EstimatorConfig(precision=precision, reuse_factor=reuse_factor, srl_max_bits=srl_max_bits,
                             skip_fifo_impl=skip_fifo_impl, lut_mult_max_bits=lut_mult_max_bits,
                             fifo_depth_policy=fifo_depth_policy, lutram_max_depth=lutram_max_depth, strategy=strategy)
    if checkpoint is not None:
        graphs = _graphs_from_checkpoint(checkpoint)
    else:
        graphs = {mode: trace(create_model(model, num_classes=num_classes, in_channels=in_channels,
                                           input_size=input_size, skip_mode=mode), name=model)
                  for mode in ("long", "short", "none")}
    comparison = compare_graphs(graphs, config, part_obj)
    print_rich(comparison)
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
        atomic_write_json(out / "estimate.json", comparison.to_dict())
        atomic_write_text(out / "estimate.md", comparison_markdown(comparison) + "\n")
        bar_chart(comparison, out / "estimate.png")
        typer.echo(f"wrote {out / 'estimate.json'}, {out / 'estimate.md'}, {out / 'estimate.png'}")


@app.command("hls4ml")
def hls4ml_cmd(
    checkpoint: Path = typer.Argument(..., help="A model checkpoint (.safetensors)."),
    out: Path = typer.Option(..., help="Directory for the hls4ml project and hls4ml_report.json."),
    precision: int = typer.Option(16, help="Total fixed-point bits (ap_fixed<precision, integer-bits>)."),
    integer_bits: int = typer.Option(6, "--integer-bits", help="Integer bits of the fixed-point type, sign included."),
    reuse_factor: int = typer.Option(1, "--reuse-factor", help="hls4ml reuse factor (>1 selects the Resource strategy)."),
    part: str = typer.Option("zu7ev", help="FPGA part: zu3eg, zu7ev, xcu280, xcvu13p."),
    images: int = typer.Option(100, help="Test images to compare C simulation with PyTorch on."),
    hls4ml_depths: bool = typer.Option(False, "--hls4ml-depths", help="FIFO depth policy 'default': keep hls4ml's H*W stream depths instead of the estimator's ('optimized')."),
    synth: bool = typer.Option(False, "--synth", help="Also run Vitis HLS synthesis (needs vitis_hls on PATH)."),
    data_dir: Optional[Path] = typer.Option(None, "--data-dir", help="Directory holding a local dataset."),
):
    """Convert CHECKPOINT with hls4ml (io_stream, Vitis), compile its C simulation and compare with PyTorch."""
    from ..checkpoint import atomic_write_json, load_model
    from ..data import load_dataset
    from .hls4ml_export import export_hls4ml

    if images < 1:
        raise SkipswitchError(f"--images must be positive, got {images}")
    model, meta = load_model(checkpoint)
    ds_meta = meta.get("dataset", {})
    dataset = load_dataset(ds_meta.get("name", "digits"), data_dir, seed=ds_meta.get("seed", 0))
    result = export_hls4ml(model, out / "project", dataset.test.images[:images], precision=precision,
                           integer_bits=integer_bits, reuse_factor=reuse_factor, part=part,
                           fifo_depth_policy="default" if hls4ml_depths else "optimized", synth=synth)
    report = {"checkpoint": str(checkpoint), "dataset": dataset.name, "skip_modes": getattr(model, "skip_modes", None),
              "hls4ml_version": _hls4ml_version(), **result.to_dict()}
    atomic_write_json(out / "hls4ml_report.json", report)
    typer.echo(f"C-sim vs PyTorch on {result.images} test images at {result.precision}: argmax agreement "
               f"{result.argmax_agreement:.3f}, max abs error {result.max_abs_error:.4f}; skip stream depths "
               f"{result.skip_stream_depths}  -> {out / 'hls4ml_report.json'}")


def _hls4ml_version() -> str:
    import hls4ml

    return hls4ml.__version__


@app.command()
def compare(
    report_dir: Path = typer.Argument(..., help="hls4ml project (or any) directory with csynth.rpt / vivado_synth.rpt."),
    model: str = typer.Option("resnet8", help="Registry model name (ignored with --checkpoint)."),
    checkpoint: Optional[Path] = typer.Option(None, help="Estimate this checkpoint's model (its weights included)."),
    precision: int = typer.Option(16, help="Fixed-point bits of weights and activations."),
    reuse_factor: Optional[int] = typer.Option(None, "--reuse-factor", help="hls4ml reuse factor [default: each layer's fan-in]."),
    strategy: str = typer.Option("resource", help="hls4ml Strategy: latency or resource."),
    fifo_depth_policy: str = typer.Option("default", "--fifo-depth-policy", help="default (hls4ml H*W) or optimized."),
    part: Optional[str] = typer.Option(None, help="FPGA part [default: the report's device when known]."),
    num_classes: int = typer.Option(10, "--num-classes"),
    in_channels: int = typer.Option(3, "--in-channels"),
    input_size: int = typer.Option(32, "--input-size"),
):
    """Print the synthesis reports under REPORT_DIR beside the estimate of the same model."""
    from ..graph import trace
    from .dataflow import EstimatorConfig, estimate_graph, layer_weights
    from .parts import get_part
    from .report import markdown_table
    from .synth_report import comparison_header, comparison_rows, read_report_dir

    reports = read_report_dir(report_dir)
    if checkpoint is not None:
        from ..checkpoint import load_model

        net, _ = load_model(checkpoint)
    else:
        from ..models import create_model

        net = create_model(model, num_classes=num_classes, in_channels=in_channels, input_size=input_size)
    graph = trace(net, name=model if checkpoint is None else str(checkpoint))
    if part is None:
        part = next((r.device for r in reports if _known_part(r.device)), "zu7ev")
    config = EstimatorConfig(precision=precision, reuse_factor=reuse_factor, strategy=strategy,
                             fifo_depth_policy=fifo_depth_policy)
    estimate = estimate_graph(graph, config, get_part(part), weights=layer_weights(net, graph))
    typer.echo(markdown_table(comparison_header(reports), comparison_rows(reports, estimate)))
    typer.echo(f"estimate: {estimate.fit_message()}; reports: " + ", ".join(r.source for r in reports))


def _known_part(device: str) -> bool:
    from .parts import get_part

    try:
        return bool(device) and get_part(device) is not None
    except SkipswitchError:
        return False
