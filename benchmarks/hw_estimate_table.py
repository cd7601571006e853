"""The dataflow estimator's table for ResNet-8/20/56 at 8 and 16 bits in long/short/none,
next to Tailor's reported reductions. Writes docs/results/hw_estimate.md (and a PNG per row).

    PYTHONPATH=src python benchmarks/hw_estimate_table.py [--part xcu280]
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
from pathlib import Path

from skipswitch.checkpoint import atomic_write_text
from skipswitch.graph import trace
from skipswitch.fpga import EstimatorConfig, compare_graphs, get_part
from skipswitch.fpga.dataflow import RESOURCES
from skipswitch.fpga.report import bar_chart, skip_rows, SKIP_HEADER
from skipswitch.io import markdown_table
from skipswitch.models import create_model

NETWORKS = ("resnet8", "resnet20", "resnet56")
PRECISIONS = (8, 16)
# Tailor (Weng et al., arXiv 2301.07247) abstract: "up to" reductions; the paper gives no per-network tables we could use.
PAPER_UP_TO = {"bram18": 34.0, "ff": 13.0, "lut": 16.0}
LABEL = {"bram18": "BRAM18", "dsp": "DSP", "ff": "FF", "lut": "LUT"}


POLICIES = ("default", "optimized")
MODES = ("long", "short", "none")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--part", default="xcu280")
    parser.add_argument("--out", type=Path, default=Path("docs/results"))
    args = parser.parse_args()
    part = get_part(args.part)
    rows, best = [], {}
    skip_tables = {}
    for name in NETWORKS:
        graphs = {m: trace(create_model(name, num_classes=10, input_size=32, skip_mode=m), name=name) for m in MODES}
        for bits in PRECISIONS:
            for policy in POLICIES:
                # one configuration for all three modes: same depth policy, same memory rule
                comp = compare_graphs(graphs, EstimatorConfig(precision=bits, fifo_depth_policy=policy), part)
                for mode, est in comp.estimates.items():
                    total, util = est.total, est.utilization()
                    saving = comp.savings(mode)
                    cells = [f"{getattr(total, r):,} ({util[r]:.1f}%)" + ("" if mode == "long" else f" [{saving[r]:+.1f}%]")
                             for r in RESOURCES]
                    rows.append([name, str(bits), policy, mode, *cells, str(len(est.skips))])
                    if mode != "long":
                        for r in RESOURCES:
                            key = (mode, policy, r)
                            if key not in best or saving[r] > best[key][0]:
                                best[key] = (saving[r], f"{name} {bits}-bit")
                if policy == "optimized":
                    bar_chart(comp, args.out / f"hw_estimate_{name}_{bits}bit.png")
                if name == "resnet20" and bits == 16:
                    skip_tables[policy] = markdown_table(SKIP_HEADER, skip_rows(comp))
    header = ["network", "bits", "FIFO depths", "skip mode",
              *(f"{LABEL[r]} (% of part) [saved vs long]" for r in RESOURCES), "skips"]
    best_rows = [[f"{mode} ({policy} depths)", *(f"{best[(mode, policy, r)][0]:+.1f}% ({best[(mode, policy, r)][1]})"
                                                 for r in RESOURCES)]
                 for mode in ("short", "none") for policy in POLICIES]
    best_rows.append(["Tailor paper (up to)", f"{PAPER_UP_TO['bram18']:.0f}%", "not reported", f"{PAPER_UP_TO['ff']:.0f}%",
                      f"{PAPER_UP_TO['lut']:.0f}%"])
    text = TEMPLATE.format(
        date=dt.date.today().isoformat(), cores=os.cpu_count(), part=part.name, board=part.board,
        table=markdown_table(header, rows),
        best=markdown_table(["design", *(LABEL[r] for r in RESOURCES)], best_rows),
        skip_default=skip_tables["default"], skip_optimized=skip_tables["optimized"],
        cmd=f"PYTHONPATH=src python benchmarks/hw_estimate_table.py --part {args.part}",
    )
    atomic_write_text(args.out / "hw_estimate.md", text)
    print(text)


TEMPLATE = """# FPGA cost of skip connections: dataflow estimate vs Tailor

Generated {date} by `{cmd}` ({cores} CPU cores, shared with other jobs; the estimate itself is
deterministic). Estimator: `skipswitch.fpga.dataflow` (hls4ml 1.3.0 io_stream design, model and
per-operation sources in its module docstring; how it compares with real synthesis:
`hw_validation.md`). Part: {part} ({board}) — percentages of the part in parentheses; the savings in
brackets do not depend on the part. CIFAR-style ResNets, 32x32x3 input, 10 classes, reuse factor = each
layer's fan-in (one multiplier per output channel, Resource strategy), multipliers in LUTs at 8 bit and in
DSPs at 16 bit, activations as their own stages. No coefficient was fitted to any figure of the paper.

**Like for like:** the long, short and none designs of a row group share one configuration: the same
FIFO depth policy and the same FIFO memory rule (Vitis' automatic rule: SRL up to 1024 bits, else BRAM;
no forced implementation for any mode). Two depth policies are shown: `default` (hls4ml without its FIFO
optimiser: every stream, skip FIFOs included, as deep as its tensor has pixels) and `optimized` (skip
FIFOs as deep as the timing model's occupancy, other streams 2 deep: what the optimiser finds). How the
picture changes with the SRL threshold, a LUTRAM option and the precision: `hw_skip_sweep.md`.

## Estimates

{table}

## Skips of ResNet-20, 16-bit

`default` depths:

{skip_default}

`optimized` depths:

{skip_optimized}

## Largest reductions vs the long-skip design, next to the paper

Positive = saved, negative = the design costs more than the long-skip one (then the least bad case is shown).

{best}

## Differences from the paper, explained

* **Skip Remover (none): same direction as the paper.** Removing every skip removes the clone and add
  stages, their streams and the skip FIFOs, and the 1x1 projection convs on the stage-transition shortcuts
  (hence the DSP saving at 16 bit). The BRAM saving is the skip FIFOs' share of all BRAM, diluted by the
  weight ROMs (in BRAM for every layer with reuse factor > 64) and, with `default` depths, by the H*W-deep
  ordinary streams. Our FF/LUT savings at ResNet-8 are above the paper's 13% / 16% most likely because our
  model leaves out fixed costs that a synthesised design has in every mode (dataflow control, AXI
  interfaces, Vivado's own overheads), and because per-stream register and FIFO-control costs are our
  assumptions; `hw_validation.md` shows the FF and LUT model under-counting real designs at reuse
  factor > 1, which would dilute these percentages further.
* **Skip Shortener (short) costs more than the long design under either depth policy with the automatic
  memory rule.** With `default` depths every skip FIFO is H*W deep whatever the skip's length, so twice as
  many skips means about twice the skip-FIFO BRAM. With `optimized` depths each shortened skip holds about
  half as many pixels as a long one (one conv's line-buffer delay instead of two; the paper's Tab. VII says
  "a little less than half"), but a FIFO of ~19-33 pixels x 16 channels x 8-16 bits is still far above the
  1024-bit SRL threshold, so it stays in BRAM18s whose count is set by port width, not depth, and there are
  twice as many. The earlier version of this table compared a shortened design with its skip FIFOs forced
  into shift registers against a long design left on the automatic rule; with one rule for both, that
  BRAM saving disappears. The sweep (`hw_skip_sweep.md`) shows the conditions under which the shortener
  does save BRAM: optimized depths plus a memory between SRL and BRAM (LUTRAM) for FIFOs up to a depth that
  the short skips fit under and the long ones do not; it never saves LUT or FF in our model (each extra
  clone/add stage and FIFO control costs logic). We did not find the paper's per-design tables, part,
  reuse factors or FIFO settings (the paper publishes no full per-network result tables).
* **The absolute shares depend on how much of the design is not skip-related.** A design that keeps
  weights in LUTs or URAM, or uses a different reuse factor, has a larger skip share of BRAM and so larger
  percentage savings. The per-operation LUT/FF costs are from Xilinx documents (DS255, UG574, UG579) or
  marked as assumptions in the code; they are not synthesis results.
* **Not modelled:** control logic of the dataflow region, AXI interfaces, the zero-padding stages as
  separate streams, and Vivado's optimisations after HLS. None of these differ between skip modes except the
  padding stages (one per 3x3 conv, identical in all modes).
"""


if __name__ == "__main__":
    main()
