"""hls4ml export + g++ C simulation of ResNet-8 (digits, briefly trained) in each skip mode:
agreement with PyTorch, skip stream depths from the estimator, convert+compile time.
Writes docs/results/hls4ml_csim.md.

    PYTHONPATH=src python benchmarks/hls4ml_csim.py [--epochs 3] [--images 144]
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import tempfile
import time
from pathlib import Path

import hls4ml

from skipswitch.checkpoint import atomic_write_text, load_model
from skipswitch.data import load_dataset
from skipswitch.fpga.hls4ml_export import export_hls4ml
from skipswitch.io import markdown_table
from skipswitch.training import TrainConfig, evaluate
from skipswitch.training.run import train_model


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--images", type=int, default=144)
    parser.add_argument("--out", type=Path, default=Path("docs/results/hls4ml_csim.md"))
    args = parser.parse_args()
    dataset = load_dataset("digits", seed=0)
    images = dataset.test.images[: args.images]
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for mode in ("long", "short", "none"):
            run = Path(tmp) / mode
            train_model("resnet8", "digits", config=TrainConfig(epochs=args.epochs, batch_size=128, lr=0.05),
                        out_dir=run, skip_mode=mode, quiet=True)
            model, _ = load_model(run / "model.safetensors")
            _, acc = evaluate(model, dataset.test)
            t = time.perf_counter()
            r = export_hls4ml(model, run / "prj", images, precision=16, integer_bits=6)
            seconds = time.perf_counter() - t
            rows.append([mode, f"{acc:.3f}", f"{r.argmax_agreement:.3f}", f"{r.max_abs_error:.4f}",
                         ", ".join(str(d) for d in r.skip_stream_depths.values()) or "-", f"{seconds:.0f}"])
    text = "\n".join([
        "# hls4ml export: C simulation vs PyTorch",
        "",
        f"Date: {dt.date.today().isoformat()}. hls4ml {hls4ml.__version__}, io_stream, Vitis backend, g++ C simulation. "
        f"Machine: {os.cpu_count()} CPU cores shared with other jobs (compile times are indicative only).",
        f"Command: `PYTHONPATH=src python benchmarks/hls4ml_csim.py --epochs {args.epochs} --images {args.images}`",
        "",
        f"ResNet-8 trained {args.epochs} epochs on digits (8x8x1) in each skip mode; first {len(images)} test images; "
        "ap_fixed<16,6,AP_RND_CONV,AP_SAT>; reuse factor 1; stream depths from the dataflow estimator.",
        "",
        markdown_table(["skip mode", "PyTorch test acc", "argmax agreement", "max abs logit error",
                        "skip stream depths (pixels)", "convert+compile (s)"], rows),
        "",
    ])
    atomic_write_text(args.out, text)
    print(text)


if __name__ == "__main__":
    main()
