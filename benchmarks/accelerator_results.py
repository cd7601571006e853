"""FastSwitch switching study on Ultra96, ZCU104 and U280 -> docs/results/accelerator.md (+ PNGs).

    PYTHONPATH=src python benchmarks/accelerator_results.py [--workload runs/accel/ofa-resnet50-9.json]

Per part: joint DSE (policy most-used) -> best design; on that design the temporal baseline
(no PB), FastSwitch with the paper's PB content (smallest subnet) and with the most-used
weights, spatial switching; plus the best design with no PB at all, and the joint DSE's best
under the paper's policy against its own no-PB baseline.
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

import numpy as np  # noqa: E402

from skipswitch.checkpoint import atomic_write_json, atomic_write_text  # noqa: E402
from skipswitch.accel.dse import explore, to_design, two_phase  # noqa: E402
from skipswitch.accel.latency import evaluate  # noqa: E402
from skipswitch.fpga.parts import get_part  # noqa: E402
from skipswitch.accel.plots import breakdown_plot, dse_plot  # noqa: E402
from skipswitch.accel.study import part_report  # noqa: E402
from skipswitch.accel.workload import get_workload, save_workload  # noqa: E402

MB = 1e6


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--workload", default=str(ROOT / "runs/accel/ofa-resnet50-9.json"))
    ap.add_argument("--parts", nargs="+", default=["zu3eg", "zu7ev", "xcu280", "xcu280-hbm"])
    ap.add_argument("--out", default=str(ROOT / "docs/results/accelerator.md"))
    args = ap.parse_args()
    out = Path(args.out)
    if args.workload.endswith(".json") and not Path(args.workload).exists():
        work = get_workload("ofa-resnet50", sequence=9)  # an untrained skipswitch.supernet ofa-resnet50
        save_workload(work, args.workload)
    work = get_workload(args.workload)
    results, rows = {}, []
    for name in args.parts:
        part = get_part(name)
        joint = explore(work, part, policy="most-used")
        design = to_design(joint.best(), part, stride_max=work.stride_max)
        report = part_report(design, work, part)
        own = explore(work, part, policy="smallest")
        d_small = to_design(own.best(), part, stride_max=work.stride_max)
        small_lat = evaluate(d_small, work, "smallest").latency
        small_base = evaluate(d_small.replace(pb_bytes=0), work).latency
        report["paper_policy_own_design"] = {"design": d_small.to_dict(), "gain": 1 - small_lat / small_base,
                                             "latency_ms": small_lat / (part.clock_mhz * 1e3)}
        # Largest relative gain any design of the grid gets from its best PB over its own no-PB version
        # (the grid is a full product; PB is the last axis and its first value is 0).
        lat = joint.latency.reshape([len(joint.grid[a]) for a in joint.grid])
        base, with_pb = lat[..., 0], lat.min(axis=-1)
        gains = np.where(np.isfinite(base), 1 - with_pb / np.where(np.isfinite(base), base, 1), -np.inf)
        at = np.unravel_index(int(np.argmax(gains)), gains.shape)
        report["max_gain_any_design"] = {"gain": float(gains[at]),
                                         "design": {a: int(joint.grid[a][i]) for a, i in zip(joint.grid, at)},
                                         "latency_ms": float(with_pb[at]) / (part.clock_mhz * 1e3)}
        report["dse"] = {"points": joint.points, "feasible": int(joint.feasible.sum()),
                         "points_per_second": joint.points_per_second, "pareto": len(joint.pareto())}
        if name == "zu3eg":
            p1, p2 = two_phase(work, part)
            report["two_phase"] = {"array": p1.best(), "best": p2.best()}
            dse_plot(joint, out.with_name("accelerator_dse_zu3eg.png"))
            idx = np.flatnonzero(joint.feasible)
            idx = idx[np.argsort(joint.latency[idx], kind="stable")]
            tenth = max(1, idx.size // 10)
            from skipswitch.accel.template import BUFFERS

            def shares(sel):
                counts = np.bincount(joint.dominant[sel], minlength=len(BUFFERS)) / sel.size
                return ", ".join(f"{b} {c:.0%}" for b, c in zip(BUFFERS, counts) if c > 0)

            report["fig6"] = {"fastest_decile": shares(idx[:tenth]), "slowest_decile": shares(idx[-tenth:])}
        results[name] = report
    atomic_write_json(out.with_name("accelerator.json"), {"workload": work.name, "parts": results})
    breakdown_plot({p: {m: r[m] for m in ("baseline", "smallest", "most-used")} for p, r in results.items()},
                   out.with_name("accelerator_breakdown.png"), title=f"{work.name}: latency breakdown per part")
    atomic_write_text(out, render(work, results, " ".join(sys.argv[1:]), args.workload))
    print(out.read_text())


def render(work, results: dict, argv: str, source: str = "") -> str:
    sizes = [s.weight_elements for s in work.subnets]
    small = work.subnets[work.smallest()]
    lines = [
        "# FastSwitch accelerator model: switching latency on Ultra96, ZCU104, U280",
        "",
        f"Generated {datetime.date.today()} by `PYTHONPATH=src python benchmarks/accelerator_results.py {argv}`"
        f" · {platform.machine()}, {os.cpu_count()} CPU cores, shared with other jobs during this run.",
        "",
        "## Workload",
        "",
        f"Read from `{Path(source).name}` (built by `get_workload('ofa-resnet50', sequence=9)`, which needs "
        "`skipswitch.supernet`; this run's file was built before issue 4 was merged, on a copy of its working "
        "tree with this branch's `hw/` package on top).",
        "",
        f"`{work.name}`: an untrained `ofa-resnet50` supernet (issue 4), 9 subnets with weight sizes spread uniformly "
        "from the smallest to the largest (paper Sec. 4), each traced through the graph IR; shared weights from the "
        "exact weight regions. Conv + FC weights per subnet (M elements = MB at DW = 8 bit): "
        + ", ".join(f"{n / MB:.2f}" for n in sizes) + ".",
        f"Distinct weights over the sequence: {work.union_elements() / MB:.2f} M; weights every subnet shares "
        f"(the smallest subnet): {small.weight_elements / MB:.2f} M. Paper: 24.95 MB smallest to 183.51 MB largest "
        f"(at 4 bytes per weight these are 6.2 M and 45.9 M weights; ours: {sizes[work.smallest()] / MB:.2f} M and "
        f"{max(sizes) / MB:.2f} M).",
        "",
        "## Latency of the 9-query sequence (best joint-DSE design per part, DW 8 bit, ODW 32 bit, 300 MHz)",
        "",
        "| part | off-chip GB/s | design | PB | baseline (no PB) ms | FastSwitch, PB = smallest subnet | "
        "FastSwitch, PB = most-used | spatial switching | best no-PB design ms |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for name, r in results.items():
        part = get_part(name)
        d = r["design"]
        lines.append(
            f"| {part.name} ({part.board}) | {part.bandwidth_gbps:g} | K_p={d['kp']} Y_p={d['yp']} "
            f"T=({d['tk']},{d['tc']},{d['tx']},{d['ty']}) | {d['pb_bytes'] / MB:.2f} MB | "
            f"{r['baseline']['latency_ms']:.2f} | {r['smallest']['latency_ms']:.2f} (-{r['gain_smallest']:.1%}) | "
            f"{r['most-used']['latency_ms']:.2f} (-{r['gain_most_used']:.1%}) | "
            f"{r['spatial']['latency_ms']:.2f} ({'fits' if r['spatial_fits'] else 'does not fit'}, "
            f"{r['spatial']['pb_bytes'] / MB:.1f} MB) | {r['best_no_pb_latency_ms']:.2f} |")
    lines += ["", "Breakdown (ms over the sequence): compute / exposed weight loading (switching) / exposed "
              "activation traffic.", "", "| part | mode | compute | weights (switching) | activations | "
              "weight MB fetched |", "|---|---|---|---|---|---|"]
    for name, r in results.items():
        for mode in ("baseline", "smallest", "most-used"):
            m = r[mode]
            lines.append(f"| {name} | {mode} | {m['compute_ms']:.2f} | {m['weight_exposed_ms']:.2f} | "
                         f"{m['act_exposed_ms']:.2f} | {m['weight_bytes'] / MB:.1f} |")
    lines += ["", "The paper's policy on its own best design (joint DSE with PB = smallest subnet's weights), and the "
              "largest gain any grid design gets from its best PB (most-used) over the same design without PB, at "
              "what absolute latency:", "",
              "| part | paper policy, own best design | largest gain in the grid | that design | its latency ms |",
              "|---|---|---|---|---|"]
    for name, r in results.items():
        m = r["max_gain_any_design"]
        d = m["design"]
        lines.append(f"| {name} | {r['paper_policy_own_design']['gain']:.1%} | {m['gain']:.1%} | K_p={d['kp']} "
                     f"Y_p={d['yp']} T=({d['tk']},{d['tc']},{d['tx']},{d['ty']}) | {m['latency_ms']:.2f} |")
    if "zu3eg" in results and "two_phase" in results["zu3eg"]:
        tp = results["zu3eg"]["two_phase"]
        lines += ["", f"Two-phase DSE on zu3eg: array K_p={tp['array']['kp']}, Y_p={tp['array']['yp']}, "
                  f"best {tp['best']['latency_ms']:.2f} ms vs joint {results['zu3eg']['most-used']['latency_ms']:.2f} ms."]
    if "zu3eg" in results and "fig6" in results["zu3eg"]:
        f6 = results["zu3eg"]["fig6"]
        lines += ["", f"Fig.-6-like view (zu3eg, feasible designs ranked by latency): dominant buffer in the fastest "
                  f"tenth: {f6['fastest_decile']}; in the slowest tenth: {f6['slowest_decile']}. The paper finds OB "
                  "dominating the slow end; in our sizing the SB (a whole T_C x T_X x T_Y iAct tile, double-buffered) "
                  "is the largest buffer in most designs, and the slow end is set by small arrays, not by a buffer."]
    lines += ["", "DSE speed: docs/results/dse_speed.md; compute cycles against SCALE-Sim: "
              "docs/results/accelerator_scalesim.md."]
    lines += ["", "DSE grids: " + "; ".join(f"{n}: {r['dse']['points']:,} points, {r['dse']['feasible']:,} feasible, "
                                            f"{r['dse']['points_per_second']:,.0f} points/s, Pareto {r['dse']['pareto']}"
                                            for n, r in results.items()),
              "", "![breakdown](accelerator_breakdown.png)", "", "![dse](accelerator_dse_zu3eg.png)", "",
              explanation(results)]
    return "\n".join(lines) + "\n"


def explanation(results: dict) -> str:
    bounds = {n: 1 - r["spatial"]["latency"] / r["baseline"]["latency"] for n, r in results.items()}
    shares = {n: r["baseline"]["weight_exposed"] / r["baseline"]["latency"] for n, r in results.items()}
    best = max(results, key=lambda n: results[n]["gain_most_used"])
    fmt = ", ".join(f"{n} {bounds[n]:.1%}" for n in results)
    share = ", ".join(f"{n} {shares[n]:.1%}" for n in results)
    r = results[best]
    top = max(results, key=lambda n: results[n]["max_gain_any_design"]["gain"])
    m = results[top]["max_gain_any_design"]
    reach = ("so 25 % is reached only by designs" if m["gain"] >= 0.25 else
             "so no design of the grid reaches 25 %; the larger gains belong to designs")
    grid_note = (f"Over every design of the grids, the largest gain a PB gives over the same design without one is "
                 f"{m['gain']:.1%} ({top}, at {m['latency_ms']:.2f} ms against {results[top]['most-used']['latency_ms']:.2f} ms "
                 f"for the best design), {reach} whose weight traffic is a large share of their latency, which are "
                 "not the fastest designs.")
    u280 = results.get("xcu280")
    u280_gain = f"{u280['gain_most_used']:.1%} (most-used), {u280['gain_smallest']:.1%} (smallest)" if u280 else "n/a"
    return f"""## Against the paper (8-12 %) and SUSHI (25 %)

Best FastSwitch gain in our model: **{r['gain_most_used']:.1%} on {best}** with the most-used policy
({r['gain_smallest']:.1%} with the paper's smallest-subnet PB on the same design). The paper reports 8-12 %
(Ultra96, ZCU104, U280; Fig. 5); SUSHI up to 25 %. **The 25 % target is missed, and the model says why it
cannot be reached on this workload:** no PB policy can save more than the weight traffic the array waits for.
Putting *every* weight of the sequence on chip (spatial switching, ignoring that it does not fit) lowers the
latency of the same design by at most: {fmt}. Exposed weight loading is only {share} of the baseline
latency, because (1) DB and SB are double-buffered, so a layer's weight fetch overlaps its compute (Sec. 3's
dataflow) and only layers whose transfer exceeds their compute expose it; (2) at batch 1 the OFA-ResNet50
subnets are compute-heavy for these arrays. {grid_note}

Why our figures differ from the paper's, item by item:

* **Ultra96 and ZCU104 gain ~0 here, 8-12 % in the paper.** The smallest subnet is 6.5 MB at 8 bit; the
  ZU3EG has 0.97 MB of BRAM18 in total and the ZU7EV 1.4 MB BRAM + 3.4 MB URAM. A PB can hold at most a
  fraction of the shared weights, and the DSE prefers spending BRAM on tiles (fewer iAct/partial-sum
  transfers) over a PB: on zu3eg its best design has no PB at all. The paper does not give its DW, tile
  sizes, PB size or how switching overlaps inference, so its 8-12 % cannot be reproduced from the text;
  a baseline that loads each subnet's weights *before* running it (switching wholly on the critical path,
  as Sec. 1 describes temporal switching) would expose all weight traffic and give larger gains, but such a
  design would have to hold a whole subnet on chip, which none of these parts can (Table 2's DB holds one tile).
* **U280: {u280_gain}** (DDR4 at 38.5 GB/s, 34 MB of URAM for the PB): compute is short
  (896 DPEs), so weight loading is exposed, and the most-used policy keeps 24 MB of weights read by most
  queries on chip, beyond the 6.5 MB every subnet shares. With HBM2 (460 GB/s) nothing is exposed and the
  gain is 0: switching cost is a bandwidth problem.
* **most-used beats smallest** whenever the PB is larger than the shared (smallest-subnet) weights: the
  paper's content leaves the rest of the PB empty, while weights read by 8 of 9 queries save 8 loads each.
* **Sizes**: our supernet is untrained and built by issue 4's `ofa-resnet50` space (width multipliers on
  the stage widths, expand on the bottleneck mid channels); its weight counts match the paper's family
  (24.95-183.51 MB at 4 bytes per weight = 6.2-45.9 M weights; ours 6.5-48.0 M).

Modelling choices the paper leaves open (see `src/skipswitch/accel/template.py` and
`latency.py`): DB depth uses T_K T_C / K_p (the paper prints T_C T_C); OB counts T_Y - S + 1 output
columns in groups of Y_p at ODW bits; R = S = 3 (the DPE) with 1x1 kernels packing 9 channels into a DPE
and the 7x7 stem split into nine 3x3 pieces; DB and SB double-buffered (their BRAM counted twice); PB in
URAM first; DSP = 9 per DPE (no int8 packing of two MACs per DSP); LUTs a rough adder-tree estimate;
DW = 8, ODW = 32, 300 MHz (the clock Xilinx DPU designs run at on these boards); ZCU104 bandwidth assumes DDR4-2400 (not confirmed).
"""


if __name__ == "__main__":
    main()
