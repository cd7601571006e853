"""``skipswitch hw``: FPGA resource estimates by skip mode and hls4ml export."""

from __future__ import annotations

import typer

from ..jobs.fpga import CompareJob, EstimateJob, Hls4mlJob
from .options import options_from

app = typer.Typer(help="FPGA cost of skip connections: dataflow resource estimate and hls4ml export.",
                  no_args_is_help=True)


@app.command()
@options_from(EstimateJob)
def estimate(job: EstimateJob):
    """Estimate BRAM18/DSP/FF/LUT of the hls4ml io_stream design in long, short and none skip modes."""
    from ..fpga.report import print_rich
    from ..jobs.fpga import estimate

    comparison, _ = estimate(job)
    print_rich(comparison)
    if job.out is not None:
        typer.echo(f"wrote {job.out / 'estimate.json'}, {job.out / 'estimate.md'}, {job.out / 'estimate.png'}")


@app.command("hls4ml")
@options_from(Hls4mlJob, arguments=("checkpoint",))
def hls4ml_cmd(job: Hls4mlJob):
    """Convert CHECKPOINT with hls4ml (io_stream, Vitis), compile its C simulation and compare with PyTorch."""
    from ..jobs.fpga import hls4ml

    r = hls4ml(job)
    typer.echo(f"C-sim vs PyTorch on {r.images} test images at {r.precision}: argmax agreement "
               f"{r.argmax_agreement:.3f}, max abs error {r.max_abs_error:.4f}; skip stream depths "
               f"{r.skip_stream_depths}  -> {job.out / 'hls4ml_report.json'}")


@app.command()
@options_from(CompareJob, arguments=("report_dir",))
def compare(job: CompareJob):
    """Print the synthesis reports under REPORT_DIR beside the estimate of the same model."""
    from ..fpga.synth_report import comparison_header, comparison_rows
    from ..io import markdown_table
    from ..jobs.fpga import compare

    reports, estimate = compare(job)
    typer.echo(markdown_table(comparison_header(reports), comparison_rows(reports, estimate)))
    typer.echo(f"estimate: {estimate.fit_message()}; reports: " + ", ".join(r.source for r in reports))
