"""DSE throughput: design points evaluated per second (resources + feasibility + sequence latency).

    PYTHONPATH=src python benchmarks/dse_speed.py [--workload runs/accel/ofa-resnet50-9.json] [--repeats 5]

Writes docs/results/dse_speed.md: the default grid under each preset (accel.presets). The workload JSON comes from benchmarks/accelerator_results.py
(building ofa-resnet50 needs skipswitch.supernet); the name ``ofa-resnet50`` builds it here.
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from skipswitch.checkpoint import atomic_write_text  # noqa: E402
from skipswitch.accel.dse import default_grid, explore  # noqa: E402
from skipswitch.accel.latency import unique_layers  # noqa: E402
from skipswitch.accel.presets import PRESETS  # noqa: E402
from skipswitch.fpga.parts import get_part  # noqa: E402
from skipswitch.accel.workload import get_workload, save_workload  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--workload", default=str(ROOT / "runs/accel/ofa-resnet50-9.json"))
    ap.add_argument("--part", default="zu3eg")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--out", default=str(ROOT / "docs/results/dse_speed.md"))
    args = ap.parse_args()
    if args.workload.endswith(".json") and not Path(args.workload).exists():
        work = get_workload("ofa-resnet50", sequence=9)  # an untrained skipswitch.supernet ofa-resnet50
        save_workload(work, args.workload)
    work = get_workload(args.workload)
    part = get_part(args.part)
    table, loads = [], []
    for name, cond in PRESETS.items():
        grid = default_grid(work, cond.dw)
        runs, cpu_rates = [], []
        for _ in range(args.repeats):
            cpu = time.process_time()
            runs.append(explore(work, part, grid, conditions=cond))
            cpu_rates.append(runs[-1].points / (time.process_time() - cpu))
        loads.append(os.getloadavg())
        rates = [r.points_per_second for r in runs]
        table.append(f"| {name} ({cond.label()}) | {runs[0].points:,} | {int(runs[0].feasible.sum()):,} | {len(rates)} | "
                     f"{statistics.median(rates):,.0f} | {min(rates):,.0f} | {max(rates):,.0f} | "
                     f"{statistics.median(r.seconds for r in runs):.3f} | {statistics.median(cpu_rates):,.0f} | "
                     f"{' / '.join(f'{v:.1f}' for v in loads[-1])} |")
        table[-1] = (table[-1], statistics.median(rates))
    worst = min(rate for _, rate in table)
    n_layers = len(unique_layers(work))
    cmd = "PYTHONPATH=src python benchmarks/dse_speed.py " + " ".join(sys.argv[1:])
    text = f"""# DSE speed (FastSwitch accelerator model)

Date: {datetime.date.today()} · machine: {platform.machine()}, {os.cpu_count()} CPU cores (load averages 1 / 5 / 15 min,
read after each preset's runs, in the table: a load above {os.cpu_count()} means other processes held the cores, so the
rates are floors for an idle machine) · numpy,
single process · command: `{cmd.strip()}`

Workload: {work.name} ({len(work.trace)} queries, {n_layers} distinct layer instances after merging identical
shape + weight region); part {part.name}; default grid {' x '.join(f"{k}:{len(v)}" for k, v in grid.items())}.

| preset (conditions) | points | feasible | runs | median points/s | min | max | median seconds per grid | median points per CPU-second | load average |
|---|---|---|---|---|---|---|---|---|---|
""" + "\n".join(row for row, _ in table) + f"""

Target: >= 1,000,000 points/s on 2 cores with the new knobs -> {'met' if worst >= 1e6 else 'MISSED'} (slowest preset's
median {worst:,.0f}).
A point = one full design (K_p, Y_p, T_K, T_C, T_X, T_Y, PB bytes) evaluated on the whole query
sequence: Table-2 buffers, BRAM/URAM/DSP/LUT feasibility (with the preset's DSP packing and LUT MACs), and the
latency of every layer of every query. Infeasible designs are rejected from their resources; with double
buffering the full latency pass runs only for DPE-array sizes (K_p, Y_p) with at least one fitting design, and
within those only where a layer's bound (compute or transfer) is not the same for the whole block; single-buffered
latency is a sum of terms on sub-grids with no full-grid pass (latency.fast_latency). *Points per CPU-second*
divides by the process's CPU time instead of wall time: on a shared machine it leaves out the time the process
waited for a core (not the slowdown from shared caches), so it estimates the rate on an idle core.
"""
    atomic_write_text(args.out, text)
    print(text)


if __name__ == "__main__":
    main()
