"""Hold the dataflow estimate against published Vivado synthesis results of hls4ml io_stream
designs (benchmarks/hw_validation/*.yaml, sources there); writes docs/results/hw_validation.md.

    PYTHONPATH=src python benchmarks/hw_validation.py

No coefficient is fitted: every design is estimated with the estimator's fixed rules and the
design's own hls4ml settings.
"""

from __future__ import annotations

import argparse
import datetime as dt
import sys
from pathlib import Path

import numpy as np
import yaml

from skipswitch.checkpoint import atomic_write_text
from skipswitch.fpga import EstimatorConfig, estimate_graph
from skipswitch.graph import trace

HERE = Path(__file__).resolve().parent / "hw_validation"
sys.path.insert(0, str(HERE))
from models import BUILDERS  # noqa: E402

METRICS = ("bram18", "dsp", "ff", "lut", "latency_cycles")
LABELS = {"bram18": "BRAM18", "dsp": "DSP", "ff": "FF", "lut": "LUT", "latency_cycles": "latency (cycles)"}
RESOURCE_BAND, LATENCY_BAND = (0.67, 1.5), (0.9, 1.1)


def _bits(fixed: str) -> tuple[int, int]:
    total, integer = fixed.split("<")[1].rstrip(">").split(",")[:2]
    return int(total), int(integer)


def load_design(path: Path) -> dict:
    return yaml.safe_load(path.read_text())


def estimate_design(design: dict):
    """The estimate of one suite design under its own hls4ml settings."""
    spec, h = design["model"], design["hls4ml"]
    model = BUILDERS[spec["builder"]](spec["head"])
    graph = trace(model, tuple(spec["input_shape"]), name=design["name"])
    bits, integer = _bits(h["precision"])
    accum = _bits(h["accum"].split()[0])[0]
    config = EstimatorConfig(
        precision=bits, integer_bits=integer, strategy=h["strategy"], accum_bits=accum,
        layer_reuse_factor=dict(h["reuse_factor_per_layer"]), fifo_depth_policy=h["fifo_depth_policy"].split()[0],
        per_channel_fifos=h["streams"].startswith("one FIFO per channel"))
    weights = None
    if design.get("weights"):
        files = sorted((HERE / design["weights"]).glob("w*.txt"), key=lambda p: int(p.stem[1:]))
        mac_layers = [l.name for l in graph.layers if l.op in ("conv", "linear")]
        weights = {name: np.array([float(v) for v in f.read_text().split(",") if v.strip()])
                   for name, f in zip(mac_layers, files)}
    return estimate_graph(graph, config, h["part"], weights=weights)


def ratios(design: dict, estimate) -> dict[str, float]:
    est = {**estimate.total.to_dict(), "latency_cycles": estimate.latency_cycles}
    return {m: est[m] / design["published"][m] if design["published"][m] else float("nan") for m in METRICS}


def _in_band(metric: str, ratio: float) -> bool:
    lo, hi = LATENCY_BAND if metric == "latency_cycles" else RESOURCE_BAND
    return lo <= ratio <= hi


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=Path("docs/results/hw_validation.md"))
    args = ap.parse_args(argv)
    rows, misses = [], []
    for path in sorted(HERE.glob("*.yaml")):
        design = load_design(path)
        estimate = estimate_design(design)
        r = ratios(design, estimate)
        est = {**estimate.total.to_dict(), "latency_cycles": round(estimate.latency_cycles)}
        cells = []
        for m in METRICS:
            ok = _in_band(m, r[m])
            cells.append(f"{est[m]:,} / {design['published'][m]:,} = **{r[m]:.2f}**{'' if ok else ' ✗'}")
            if not ok:
                misses.append((design["name"], m, r[m]))
        h = design["hls4ml"]
        rf = ",".join(str(v) for v in h["reuse_factor_per_layer"].values())
        rows.append(f"| {design['name']} | {h['strategy']}, RF {rf}, {h['part']} | " + " | ".join(cells) + " |")
        print(design["name"], {m: round(v, 2) for m, v in r.items()}, estimate.fit_message())
    in_band = sum(1 for _ in rows) * len(METRICS) - len(misses)
    text = "\n".join([
        "# Dataflow estimate vs published synthesis (hls4ml io_stream)",
        "",
        f"Generated {dt.date.today()} by `PYTHONPATH=src python benchmarks/hw_validation.py` (deterministic;",
        "no timing involved). Designs, settings and sources: `benchmarks/hw_validation/` (one YAML per design,",
        "each citing repository + commit + report files). Each cell: estimate / published = **ratio**;",
        f"✗ marks a miss of the targets (resources {RESOURCE_BAND[0]}–{RESOURCE_BAND[1]}x, latency ±10%).",
        "No coefficient was fitted to any of these designs, globally or per design.",
        "",
        "| design | hls4ml settings | " + " | ".join(LABELS[m] for m in METRICS) + " |",
        "|" + "---|" * (2 + len(METRICS)),
        *rows,
        "",
        f"{in_band} of {len(rows) * len(METRICS)} figures within the targets.",
        "",
        "## Misses and their reasons",
        "",
        *(f"* {name}, {LABELS[m]}: ratio {v:.2f}" for name, m, v in misses),
        "",
        REASONS,
    ])
    atomic_write_text(args.out, text + "\n")
    print(f"wrote {args.out}")


REASONS = """See the section below for what the estimator does and does not model on these designs."""

if __name__ == "__main__":
    main()
