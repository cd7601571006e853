"""How long the dataflow estimate of ResNet-110 (16-bit, CIFAR 32x32) takes: estimator alone,
and trace + estimator. Median of several runs; writes docs/results/hw_estimate_speed.md.

    PYTHONPATH=src python benchmarks/hw_estimate_speed.py [--runs 7]
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import platform
import statistics
import time
from pathlib import Path

import torch

from skipswitch.checkpoint import atomic_write_text
from skipswitch.graph import trace
from skipswitch.fpga import EstimatorConfig, estimate_graph
from skipswitch.models import create_model

TARGET_S = 0.2


def _median(fn, runs: int) -> tuple[float, list[float], float]:
    """Median wall time, all wall times, and median CPU time of this process (less sensitive to a
    shared machine: it does not count time spent waiting for a core)."""
    times, cpu = [], []
    for _ in range(runs):
        t, c = time.perf_counter(), time.process_time()
        fn()
        times.append(time.perf_counter() - t)
        cpu.append(time.process_time() - c)
    return statistics.median(times), times, statistics.median(cpu)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--out", type=Path, default=Path("docs/results/hw_estimate_speed.md"))
    args = parser.parse_args()
    torch.set_num_threads(1)
    model = create_model("resnet110", num_classes=10, input_size=32)
    graph = trace(model, name="resnet110")  # warm-up (imports, fx)
    config = EstimatorConfig(precision=16)
    estimate_graph(graph, config)
    load_before = os.getloadavg()
    est_med, est_all, est_cpu = _median(lambda: estimate_graph(graph, config), args.runs)
    both_med, both_all, both_cpu = _median(lambda: estimate_graph(trace(model, name="resnet110"), config), args.runs)
    trace_med = both_med - est_med
    load = os.getloadavg()
    lines = [
        "# Dataflow estimator speed",
        "",
        f"Date: {dt.date.today().isoformat()}. Machine: {os.cpu_count()} CPU cores ({platform.processor() or platform.machine()}), "
        f"shared with other engineers' jobs during this run: load average (1/5/15 min) "
        f"{load_before[0]:.1f}/{load_before[1]:.1f}/{load_before[2]:.1f} before and "
        f"{load[0]:.1f}/{load[1]:.1f}/{load[2]:.1f} after, i.e. several runnable processes per core, so wall "
        "times include waiting for a core; the CPU-time column does not. torch 1 thread.",
        f"Command: `PYTHONPATH=src python benchmarks/hw_estimate_speed.py --runs {args.runs}`",
        "",
        f"ResNet-110, 16-bit, 32x32 input: {len(graph.layers)} IR layers, {len(graph.skips)} skips.",
        "",
        "| what | median wall (s) | median CPU (s) | all runs, wall (s) | target (wall) |",
        "|---|---|---|---|---|",
        f"| estimate_graph (graph already traced) | {est_med:.4f} | {est_cpu:.4f} | {', '.join(f'{t:.3f}' for t in est_all)} | "
        f"< {TARGET_S} s: {'met' if est_med < TARGET_S else 'MISSED'} |",
        f"| trace + estimate_graph | {both_med:.4f} | {both_cpu:.4f} | {', '.join(f'{t:.3f}' for t in both_all)} | "
        f"< {TARGET_S} s: {'met' if both_med < TARGET_S else 'MISSED'} |",
        "",
        f"Tracing alone is about {trace_med:.3f} s of that: torch.fx symbolic tracing plus a batch-1 forward pass "
        "(ShapeProp) through 110 layers on the CPU.",
    ]
    atomic_write_text(args.out, "\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
