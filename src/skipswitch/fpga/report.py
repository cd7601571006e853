"""Renderings of a skip-mode comparison: markdown tables, a rich table and a PNG bar chart."""

from __future__ import annotations

from pathlib import Path

from ..io import atomic_write_figure, markdown_table
from .dataflow import RESOURCES, Comparison

_LABELS = {"bram18": "BRAM18", "dsp": "DSP", "ff": "FF", "lut": "LUT"}


def resource_rows(comparison: Comparison) -> list[list[str]]:
    """One row per resource: count (% of part) per mode, then savings of the other modes vs long."""
    rows = []
    modes = list(comparison.estimates)
    others = [m for m in modes if m != "long"] if "long" in modes else []
    for r in RESOURCES:
        row = [_LABELS[r]]
        for m in modes:
            e = comparison.estimates[m]
            row.append(f"{getattr(e.total, r):,} ({e.utilization()[r]:.1f}%)")
        for m in others:
            row.append(f"{comparison.savings(m)[r]:+.1f}%")
        rows.append(row)
    return rows


def resource_header(comparison: Comparison) -> list[str]:
    modes = list(comparison.estimates)
    others = [m for m in modes if m != "long"] if "long" in modes else []
    return ["resource", *modes, *(f"saved by {m}" for m in others)]


def skip_rows(comparison: Comparison) -> list[list[str]]:
    rows = []
    for m, e in comparison.estimates.items():
        n = len(e.skips)
        bram = sum(s.bram18 for s in e.skips)
        srl = sum(s.impl != "bram" for s in e.skips)
        life = (sum(s.lifetime_cycles for s in e.skips) / n) if n else 0.0
        depth = (sum(s.fifo_depth for s in e.skips) / n) if n else 0.0
        rows.append([m, str(n), f"{life:,.0f}", f"{depth:.1f}", f"{srl}/{n}", str(bram)])
    return rows


SKIP_HEADER = ["mode", "skips", "mean lifetime (cycles)", "mean FIFO depth (pixels)", "SRL/LUTRAM FIFOs", "skip FIFO BRAM18"]


def comparison_markdown(comparison: Comparison) -> str:
    cfg = comparison.config
    rf = "fan-in per layer" if cfg.reuse_factor is None else str(cfg.reuse_factor)
    return "\n\n".join([
        f"### {comparison.model}, {cfg.precision}-bit, {comparison.part.name} ({comparison.part.board}), "
        f"reuse factor {rf}, {cfg.fifo_depth_policy} FIFO depths, SRL threshold {cfg.srl_max_bits} bits, "
        f"LUTRAM up to {cfg.lutram_max_depth} deep",
        markdown_table(resource_header(comparison), resource_rows(comparison)),
        markdown_table(SKIP_HEADER, skip_rows(comparison)),
        "\n".join(f"* {mode}: {e.fit_message()}" for mode, e in comparison.estimates.items()),
    ])


def print_rich(comparison: Comparison) -> None:
    from rich.console import Console
    from rich.table import Table

    cfg = comparison.config
    table = Table(title=f"{comparison.model} {cfg.precision}-bit on {comparison.part.name} ({comparison.part.board})")
    for h in resource_header(comparison):
        table.add_column(h, justify="right")
    for row in resource_rows(comparison):
        table.add_row(*row)
    skips = Table(title="skip connections")
    for h in SKIP_HEADER:
        skips.add_column(h, justify="right")
    for row in skip_rows(comparison):
        skips.add_row(*row)
    console = Console()
    console.print(table)
    console.print(skips)
    for mode, estimate in comparison.estimates.items():
        console.print(f"{mode}: {estimate.fit_message()}")


def bar_chart(comparison: Comparison, path: str | Path) -> None:
    """Grouped bars: % of the part per resource, one bar per skip mode."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    modes = list(comparison.estimates)
    width = 0.8 / max(len(modes), 1)
    fig, ax = plt.subplots(figsize=(7, 4))
    for i, m in enumerate(modes):
        util = comparison.estimates[m].utilization()
        xs = [j + (i - (len(modes) - 1) / 2) * width for j in range(len(RESOURCES))]
        ax.bar(xs, [util[r] for r in RESOURCES], width, label=m)
    ax.set_xticks(range(len(RESOURCES)), [_LABELS[r] for r in RESOURCES])
    ax.set_xlabel("FPGA resource")
    ax.set_ylabel(f"utilisation of {comparison.part.name} (% of part)")
    ax.set_title(f"{comparison.model}, {comparison.config.precision}-bit: hls4ml io_stream estimate by skip mode")
    ax.legend(title="skip mode")
    fig.tight_layout()
    atomic_write_figure(path, fig)
