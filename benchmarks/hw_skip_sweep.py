"""Where does the Skip Shortener (and the Remover) save BRAM/LUT/FF? A sweep of the dataflow
estimate over FIFO depth policy x FIFO memory rule (SRL threshold, LUTRAM depth) x precision x
network, every configuration applied alike to the long, short and none designs.
Writes docs/results/hw_skip_sweep.md and docs/results/hw_skip_sweep.png.

    PYTHONPATH=src python benchmarks/hw_skip_sweep.py [--networks resnet8 resnet20 resnet56]
"""

from __future__ import annotations

import argparse
import datetime as dt
import io
import itertools
import os
import time
from pathlib import Path

from skipswitch.checkpoint import atomic_write_bytes, atomic_write_text
from skipswitch.fpga import EstimatorConfig, compare_graphs, get_part
from skipswitch.io import markdown_table
from skipswitch.graph import trace
from skipswitch.models import create_model

PRECISIONS = (4, 8, 16)
POLICIES = ("default", "optimized")
SRL_MAX_BITS = (1024, 4096)  # Vitis default; a raised config_storage auto_srl_max_bits
LUTRAM_MAX_DEPTH = (0, 64, 1024)  # none (Vitis auto); LUTRAM for FIFOs up to 64 / 1024 deep
SAVED = ("bram18", "lut", "ff")
LABEL = {"bram18": "BRAM18", "lut": "LUT", "ff": "FF"}


def sweep(networks: list[str], part: str) -> list[dict]:
    rows = []
    for name in networks:
        graphs = {m: trace(create_model(name, num_classes=10, input_size=32, skip_mode=m), name=name)
                  for m in ("long", "short", "none")}
        for bits, policy, srl, lutram in itertools.product(PRECISIONS, POLICIES, SRL_MAX_BITS, LUTRAM_MAX_DEPTH):
            cfg = EstimatorConfig(precision=bits, fifo_depth_policy=policy, srl_max_bits=srl, lutram_max_depth=lutram)
            comp = compare_graphs(graphs, cfg, get_part(part))
            for mode in ("short", "none"):
                rows.append({"network": name, "bits": bits, "policy": policy, "srl_max_bits": srl,
                             "lutram_max_depth": lutram, "mode": mode, **comp.savings(mode)})
    return rows


def conditions(rows: list[dict], mode: str) -> list[list[str]]:
    """For each resource: in how many configurations ``mode`` saves, and under which settings."""
    out = []
    sel = [r for r in rows if r["mode"] == mode]
    for res in SAVED:
        saves = [r for r in sel if r[res] > 0.05]
        by = {}
        for key in ("policy", "srl_max_bits", "lutram_max_depth", "bits", "network"):
            counts = {}
            for r in sel:
                counts.setdefault(r[key], [0, 0])
                counts[r[key]][1] += 1
                counts[r[key]][0] += r[res] > 0.05
            by[key] = ", ".join(f"{k}: {a}/{n}" for k, (a, n) in counts.items())
        values = [r[res] for r in sel]
        out.append([LABEL[res], f"{len(saves)}/{len(sel)}", f"{min(values):+.1f}% .. {max(values):+.1f}%",
                    by["policy"], by["srl_max_bits"], by["lutram_max_depth"], by["bits"]])
    return out


def headline(rows: list[dict]) -> str:
    """The conditions under which the shortener saves BRAM, and what it costs there, in numbers."""
    short = [r for r in rows if r["mode"] == "short"]
    saving = [r for r in short if r["bram18"] > 0.05]
    if not saving:
        return "The Skip Shortener saves BRAM18 in none of the configurations."
    keys = sorted({(r["policy"], r["srl_max_bits"], r["lutram_max_depth"], r["bits"]) for r in saving})
    settings = "; ".join(f"{p} depths, SRL <= {s} bits, LUTRAM <= {l} deep, {b} bit" for p, s, l, b in keys)

    def span(key):
        values = [r[key] for r in saving]
        return f"{min(values):+.1f}% .. {max(values):+.1f}%"

    return (f"The Skip Shortener saves BRAM18 in {len(saving)} of {len(short)} configurations ({span('bram18')}), "
            f"all of them with these settings (for every network swept): {settings}. In those it costs LUT "
            f"({span('lut')}) and FF ({span('ff')}). It saves LUT in {sum(r['lut'] > 0.05 for r in short)} and FF in "
            f"{sum(r['ff'] > 0.05 for r in short)} configurations.")


def plot(rows: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    networks = sorted({r["network"] for r in rows}, key=lambda n: int(n[6:]))
    fig, axes = plt.subplots(1, len(networks), figsize=(5 * len(networks), 4.2), squeeze=False, sharey=True)
    markers = {(0, 1024): "o", (64, 1024): "s", (1024, 1024): "D", (0, 4096): "^", (64, 4096): "v", (1024, 4096): "P"}
    colors = {"default": "tab:red", "optimized": "tab:blue"}
    for ax, name in zip(axes[0], networks):
        for r in rows:
            if r["network"] != name or r["mode"] != "short":
                continue
            ax.scatter(r["bram18"], r["lut"], c=colors[r["policy"]], marker=markers[(r["lutram_max_depth"], r["srl_max_bits"])],
                       s=18 + 2 * r["bits"], alpha=0.75)
        ax.axhline(0, color="grey", lw=0.8)
        ax.axvline(0, color="grey", lw=0.8)
        ax.set_title(f"{name}: Skip Shortener vs long skips")
        ax.set_xlabel("BRAM18 saved vs long (%)")
    axes[0][0].set_ylabel("LUT saved vs long (%)")
    handles = [plt.Line2D([], [], color=c, marker="o", ls="", label=f"{p} FIFO depths") for p, c in colors.items()]
    handles += [plt.Line2D([], [], color="k", marker=m, ls="", label=f"LUTRAM <= {l} deep, SRL <= {s} bits")
                for (l, s), m in markers.items()]
    axes[0][-1].legend(handles=handles, fontsize=7, loc="lower left", title="marker size: 4/8/16 bits", title_fontsize=7)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110)
    plt.close(fig)
    atomic_write_bytes(path, buf.getvalue())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--networks", nargs="+", default=["resnet8", "resnet20", "resnet56"])
    ap.add_argument("--part", default="xcu280")
    ap.add_argument("--out", type=Path, default=Path("docs/results"))
    args = ap.parse_args()
    t0 = time.perf_counter()
    rows = sweep(args.networks, args.part)
    seconds, load = time.perf_counter() - t0, os.getloadavg()
    plot(rows, args.out / "hw_skip_sweep.png")
    header = ["resource", "configs saving", "range", "by FIFO depth policy", "by SRL threshold (bits)",
              "by LUTRAM depth", "by precision (bits)"]
    table_rows = [[r["network"], str(r["bits"]), r["policy"], str(r["srl_max_bits"]), str(r["lutram_max_depth"]),
                   r["mode"], *(f"{r[k]:+.1f}%" for k in SAVED)] for r in rows]
    text = "\n".join([
        "# Where the Skip Shortener and the Skip Remover save FPGA resources: a sweep",
        "",
        f"Generated {dt.date.today()} by `PYTHONPATH=src python benchmarks/hw_skip_sweep.py` "
        f"({len(rows) // 2} configurations x 3 skip modes in {seconds:.0f} s on a shared {os.cpu_count()}-core machine, "
        f"load average {load[0]:.1f}/{load[1]:.1f}/{load[2]:.1f}). Estimator `skipswitch.fpga.dataflow`, part {args.part}; "
        "CIFAR ResNets 32x32x3, reuse factor = fan-in, Resource strategy. Every configuration is applied alike to the "
        "long, short and none designs; savings are percent of the long design (negative = costs more).",
        "",
        "Swept: FIFO depth policy (`default`: hls4ml's H*W for every stream; `optimized`: skip FIFOs by occupancy, "
        f"other streams 2), SRL threshold {', '.join(map(str, SRL_MAX_BITS))} bits, LUTRAM for non-SRL FIFOs up to "
        f"{', '.join(map(str, LUTRAM_MAX_DEPTH))} deep (0 = never: Vitis' automatic rule), precision "
        f"{', '.join(map(str, PRECISIONS))} bits, networks {', '.join(args.networks)}.",
        "",
        "![Skip Shortener savings](hw_skip_sweep.png)",
        "",
        "## Skip Shortener (short) vs long: when it saves",
        "",
        headline(rows),
        "",
        markdown_table(header, conditions(rows, "short")),
        "",
        "## Skip Remover (none) vs long: when it saves",
        "",
        markdown_table(header, conditions(rows, "none")),
        "",
        "## All configurations",
        "",
        markdown_table(["network", "bits", "FIFO depths", "SRL max bits", "LUTRAM max depth", "mode",
                        *(f"{LABEL[k]} saved" for k in SAVED)], table_rows),
    ])
    atomic_write_text(args.out / "hw_skip_sweep.md", text + "\n")
    print(text[:3000])


if __name__ == "__main__":
    main()
