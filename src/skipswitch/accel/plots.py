"""Figures like the paper's Fig. 5 (latency breakdown) and Fig. 6 (DSE points by latency)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..io import atomic_write_figure
from .template import BUFFERS

BREAKDOWN = (("compute", "compute"), ("weight_exposed", "weight loading / switching (exposed)"),
             ("act_exposed", "iAct/oAct/psum transfer (exposed)"))


def breakdown_plot(reports: dict[str, dict], path: Path, title: str = "") -> None:
    """Stacked bars per part and mode: {part: {mode: summary with *_ms keys}}."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    # One panel per part: the parts differ by 20x in latency, a shared axis would flatten the small ones.
    fig, axes = plt.subplots(1, len(reports), figsize=(3.2 * len(reports), 4), squeeze=False)
    for ax, (part, modes) in zip(axes[0], reports.items()):
        labels = list(modes)
        bottom = np.zeros(len(labels))
        for key, label in BREAKDOWN:
            values = np.array([modes[m][f"{key}_ms"] for m in labels])
            ax.bar(labels, values, bottom=bottom, label=label)
            bottom += values
        base = modes[labels[0]]["latency_ms"]
        for i, m in enumerate(labels[1:], start=1):
            ax.text(i, bottom[i], f"-{1 - modes[m]['latency_ms'] / base:.1%}", ha="center", va="bottom", fontsize=7)
        ax.set_title(part, fontsize=9)
        ax.set_xlabel("switching mode")
        ax.tick_params(axis="x", labelsize=7)
    axes[0][0].set_ylabel("latency of the query sequence (ms)")
    axes[0][0].legend(fontsize=7, loc="lower left")
    fig.suptitle(title or "FastSwitch vs. temporal baseline: latency breakdown")
    atomic_write_figure(path, fig)


def dse_plot(result, path: Path, max_points: int = 20_000) -> None:
    """Feasible designs ranked by latency (x), latency (y), coloured by the dominant buffer."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    idx = np.flatnonzero(result.feasible)
    idx = idx[np.argsort(result.latency[idx], kind="stable")]
    ranks = np.arange(idx.size)
    if idx.size > max_points:  # thin evenly along the ranking so the picture stays readable
        keep = np.linspace(0, idx.size - 1, max_points).astype(np.int64)
        idx, ranks = idx[keep], ranks[keep]
    fig, ax = plt.subplots(figsize=(7, 4))
    ms = result.latency[idx] / (result.clock_mhz * 1e3)
    for b, name in enumerate(BUFFERS):
        mask = result.dominant[idx] == b
        if mask.any():
            ax.scatter(ranks[mask], ms[mask], s=3, label=f"{name} dominates")
    ax.set_xlabel("design rank by latency (0 = fastest)")
    ax.set_ylabel("sequence latency (ms)")
    ax.set_yscale("log")
    ax.set_title(f"DSE on {result.part}: {int(result.feasible.sum()):,} feasible of {result.points:,} designs")
    ax.legend(markerscale=4, fontsize=8)
    atomic_write_figure(path, fig)


def sweep_plot(rows: list[dict], path: Path, target: float = 0.25) -> None:
    """Gain of the trace-optimal PB (solid) and its upper bound, every weight on chip (dotted), against
    off-chip bandwidth; one panel per part, one colour per (DW, overlap), batch 1 and 4."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    import matplotlib.ticker  # noqa: F401  (log-axis tick labels)

    rows = [r for r in rows if not r.get("array_sweep")]
    parts = list(dict.fromkeys(r["part"] for r in rows))
    fig, axes = plt.subplots(1, len(parts), figsize=(4.2 * len(parts), 4), squeeze=False, sharey=True)
    for ax, part in zip(axes[0], parts):
        mine = [r for r in rows if r["part"] == part]
        for n, key in enumerate(sorted({(r["dw"], r["overlap"]) for r in mine})):
            for batch, style in ((1, "o-"), (4, "s--")):
                sel = sorted((r for r in mine if (r["dw"], r["overlap"]) == key and r["batch"] == batch),
                             key=lambda r: r["bandwidth_gbps"])
                bw = [r["bandwidth_gbps"] for r in sel]
                ax.plot(bw, [r["gain"] for r in sel], style, color=f"C{n}", ms=3,
                        label=f"DW {key[0]}, {key[1]}, batch {batch}")
                if batch == 1:
                    ax.plot(bw, [r["upper_bound"] for r in sel], ":", color=f"C{n}", lw=1)
        ax.axhline(target, color="k", lw=0.8)
        ax.set_xscale("log")
        ax.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
        ax.xaxis.set_major_formatter(matplotlib.ticker.ScalarFormatter())
        ax.set_title(part, fontsize=9)
        ax.set_xlabel("off-chip bandwidth (GB/s)")
    axes[0][0].set_ylabel("latency gain over the same design without PB")
    axes[0][0].legend(fontsize=6)
    fig.suptitle(f"Trace-optimal PB gain (solid/dashed) and its upper bound (dotted); line = {target:.0%}")
    atomic_write_figure(path, fig)
