"""Exact weight sets of the OFA-ResNet50-like space, compared with FastSwitch's figures.

FastSwitch (FACTS.md): its elastic ResNet-50 family spans 24.95 MB (smallest subnet) to
183.51 MB (largest), and two subnets share 13%-100% of their weights. We compute the same
quantities from ``weight_regions`` (fp32, parameters plus BN running statistics), for the
smallest, largest, standard ResNet-50 member and 9 subnets spread over the size range
(FastSwitch's evaluation sequence: sizes uniformly from the smallest to the largest).
No training, no timing: shapes only (meta device), runs in seconds.

    PYTHONPATH=src python benchmarks/supernet_weight_sets.py
"""

from __future__ import annotations

import argparse
import platform
import shlex
import sys
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from skipswitch.checkpoint import atomic_write_text
from skipswitch.regions import region_bytes, shared_bytes
from skipswitch.supernet import get_space, weight_regions

ROOT = Path(__file__).resolve().parents[1]
FASTSWITCH_MB = {"smallest": 24.95, "largest": 183.51}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=300, help="random subnets to draw the 9-subnet sequence from")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "results" / "supernet_weight_sets.md")
    args = parser.parse_args()
    space = get_space("ofa-resnet50")
    mb = lambda config: region_bytes(weight_regions(space, config)) / 1e6  # noqa: E731
    smallest, largest = space.smallest(), space.largest()
    resnet50 = space.config([3, 4, 6, 3], 0.25, 1.0)
    pool = [space.sample(args.seed * 100_000 + i) for i in range(args.samples)]
    sizes = np.array([mb(c) for c in pool])
    targets = np.linspace(mb(smallest), mb(largest), 9)
    sequence = [smallest] + [pool[int(np.argmin(np.abs(sizes - t)))] for t in targets[1:-1]] + [largest]
    regions = [weight_regions(space, c) for c in sequence]
    fractions = []
    for i, a in enumerate(regions):
        for b in regions[i + 1:]:
            fractions.append(shared_bytes(a, b) / max(region_bytes(a), region_bytes(b)))
    command = "PYTHONPATH=src python benchmarks/supernet_weight_sets.py " + shlex.join(sys.argv[1:])
    lines = [
        "# OFA-ResNet50 weight sets (exact, from `weight_regions`)",
        "",
        f"- Date: {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC; machine: {platform.machine()}, 2 CPU cores (shapes only, "
        "no timing)",
        f"- Command: `{command.strip()}`",
        f"- Space: depth {{0,1,2}} extra bottlenecks over [2,2,4,2], expand {{0.2,0.25,0.35}}, width multiplier "
        f"{{0.65,0.8,1.0}} per stage (stem follows stage 0), 224x224x3 input, 1000 classes; {space.size():,} subnets.",
        "- Bytes: fp32, every parameter plus BN running mean/variance the subnet reads.",
        "",
        "| subnet | ours (MB) | FastSwitch (MB) |",
        "|---|---:|---:|",
        f"| smallest | {mb(smallest):.2f} | {FASTSWITCH_MB['smallest']} |",
        f"| largest | {mb(largest):.2f} | {FASTSWITCH_MB['largest']} |",
        f"| ResNet-50 member (d [3,4,6,3], e 0.25, w 1.0) | {mb(resnet50):.2f} | - (torchvision: 102.2 MB of parameters) |",
        "",
        f"- Smallest / largest: ours {mb(smallest) / mb(largest):.1%}, FastSwitch "
        f"{FASTSWITCH_MB['smallest'] / FASTSWITCH_MB['largest']:.1%} (its \"shared weights take up 13% ~ 100%\").",
        f"- 9-subnet sequence (sizes spread uniformly from smallest to largest, drawn from {args.samples} random "
        f"subnets): sizes {', '.join(f'{mb(c):.1f}' for c in sequence)} MB; pairwise shared bytes over the larger "
        f"subnet's bytes range {min(fractions):.1%} - {max(fractions):.1%} (median {np.median(fractions):.1%}).",
        f"- Miss and reason: our smallest and largest are {mb(smallest) / FASTSWITCH_MB['smallest'] - 1:.1%} and "
        f"{mb(largest) / FASTSWITCH_MB['largest'] - 1:.1%} above FastSwitch's. Our space keeps the torchvision stem (one 7x7 conv)",
        "  and 1x1-conv projections; OFA's ResNet-50 has a three-conv 3x3 stem and average-pool + 1x1 downsampling, and",
        "  FastSwitch does not say whether its figures include BN statistics. We did not tune anything to match.",
        "",
    ]
    atomic_write_text(args.out, "\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
