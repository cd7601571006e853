"""Federated vs centralized weight-sharing supernet training, over several seeds.

Federated: 10 clients, Dirichlet(alpha) label-skewed partitions of the training split,
heterogeneous capability profiles (default small / medium / large tiers, cycled over the
clients), every client every round, E local epochs, HeteroFL/FjORD slice aggregation
(sample-weighted), then a server optimizer on the aggregate. Variants: the server optimizer
(FedAvg, FedAvgM, FedAdam), fixed subnets (each client its largest allowed subnet) vs
sampled ones (the sandwich rule within the client's capability), with and without client
in-place distillation. Tuning candidates: the FedAvgM variant with client lr, SuperFedNAS
largest-subnet weighting, 1 local epoch per round (twice the rounds, the same images) or a
logit-adjusted client loss changed, or HeteroFL's width-only capability ladder. A diagnostic:
every client may train the largest subnet.

Centralized: the supernet package's sandwich training (``train_supernet``) on the union of
the same training data, ``--central-epochs`` epochs.

Both are scored alike: test accuracy of the largest and the smallest subnet after
recalibrating each one's BatchNorm statistics on the same 4 training batches; the
federated runs also record the validation accuracy of both after every round (the plot).

Seeds: every variant and candidate runs ``--seeds[0]``; the baseline (FedAvg, fixed), the
variant or candidate with the best final validation accuracy on that seed (the worse of its two
subnets; the test split plays no part; a chosen candidate brings its parent variant along) and
the diagnostic then run the remaining seeds, and so does the centralized training.

    python benchmarks/federated.py                           # in-process grid, 3 seeds
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import shlex
import sys
import time
from pathlib import Path

import numpy as np
import torch

from skipswitch.data import load_dataset
from skipswitch.federated.config import fed_config
from skipswitch.federated.partition import label_histogram, partition_indices
from skipswitch.federated.simulate import run_federated
from skipswitch.io import atomic_write_figure, atomic_write_text, markdown_table
from skipswitch.supernet import load_supernet
from skipswitch.supernet.train import calibration_batches, subnet_accuracy, train_supernet
from skipswitch.training import TrainConfig

BASELINE = "FedAvg, fixed subnets"
# name -> FedConfig fields; ``local_epochs`` overrides the command line's and then the rounds scale so that
# rounds x local epochs, and so the images seen, stay the same. Server settings, one
# each: FedAvgM momentum 0.5 at server lr 1 (the first round is FedAvg's step, later ones up to 2x;
# momentum 0.9 built up too slowly for a handful of rounds in a 5-round pilot), FedAdam server lr 0.01
# and tau 1e-3.
VARIANTS = {
    BASELINE: {"server_optimizer": "fedavg", "client_subnets": "fixed"},
    "FedAvg, sampled, no KD": {"server_optimizer": "fedavg", "client_subnets": "sampled", "client_targets": "labels"},
    "FedAvg, sampled + KD": {"server_optimizer": "fedavg", "client_subnets": "sampled"},
    "FedAvgM, sampled + KD": {"server_optimizer": "fedavgm", "client_subnets": "sampled", "server_lr": 1.0,
                              "server_momentum": 0.5},
    "FedAdam, sampled + KD": {"server_optimizer": "fedadam", "client_subnets": "sampled", "server_lr": 0.01,
                              "server_tau": 1e-3},
    # Reddi et al.'s other adaptive server optimizer, at FedAdam's setting: Yogi's additive second moment
    # grows more slowly than Adam's, so its steps stay larger when the aggregated updates shrink.
    "FedYogi, sampled + KD": {"server_optimizer": "fedyogi", "client_subnets": "sampled", "server_lr": 0.01,
                              "server_tau": 1e-3},
}
# Tuning candidates: FedAvgM, sampled + KD with one setting changed (or two), at the same image budget.
# Like the variants they run the first seed and compete on its validation accuracy; the test split
# plays no part in the choice.
PARENT = "FedAvgM, sampled + KD"
TUNED = VARIANTS[PARENT]
CANDIDATES = {
    "FedAvgM + KD, client lr 0.1": {**TUNED, "lr": 0.1},
    # Khare et al., SuperFedNAS (ECCV 2024, arXiv 2301.10879), MaxNet: the largest subnet's clients get a share
    # beta of the overlapping weights, decayed from 0.9 to 0.125 over training.
    "FedAvgM + KD, largest weight 0.9 -> 0.125": {**TUNED, "largest_weight": 0.9, "largest_weight_end": 0.125},
    # Aggregate twice as often, each round half as long.
    "FedAvgM + KD, 1 local epoch": {**TUNED, "local_epochs": 1},
    "FedAvgM + KD, 1 local epoch, client lr 0.1": {**TUNED, "local_epochs": 1, "lr": 0.1},
    # The large tier's labels are skewed (seed 0: 10 of its 336 images are 9s), and only it trains the
    # largest subnet's wide channels and deep blocks: each client's loss discounts its own label prior.
    "FedAvgM + KD, 1 local epoch, logit-adjusted": {**TUNED, "local_epochs": 1, "logit_adjustment": 1.0},
    # HeteroFL's tiers (Diao et al. ICLR 2021): every client trains the full depth, the tiers scale width and
    # expand ratio, so the deep blocks see every client's data (`profiles.ladder`, kind "width").
    "FedAvgM + KD, width ladder": {**TUNED, "ladder": "width"},
    "FedAvgM + KD, 1 local epoch, width ladder": {**TUNED, "local_epochs": 1, "ladder": "width"},
}
# A chosen candidate runs every seed with its parent, the setting it changes (default PARENT): the change's
# effect, seed by seed.
PARENTS = {"FedAvgM + KD, 1 local epoch, width ladder": "FedAvgM + KD, 1 local epoch"}
# Not a competitor: every client gets the largest subnet (no capability limits), to measure what the
# tiers cost; its profiles file is written into the work folder.
DIAGNOSTIC = "FedAvgM + KD, every client large (diagnostic)"
EVERY_CLIENT_LARGE = {"profiles": [{"name": "large", "memory_mb": 1e6, "mmacs": 1e6}]}


def slug(name: str) -> str:
    return "".join(c if c.isalnum() else "-" for c in name.lower()).strip("-")


def score(supernet, dataset, seed: int) -> dict[str, float]:
    supernet.bn_stats.clear()
    supernet.bn_configs.clear()
    calibration = calibration_batches(dataset, seed=seed)
    space = supernet.space
    return {label: subnet_accuracy(supernet, cfg, dataset, "test", calibration)
            for label, cfg in (("largest", space.largest()), ("smallest", space.smallest()))}


def settings(name: str, args) -> dict:
    """The FedConfig fields of a variant, candidate or the diagnostic (all but the seed)."""
    values = {"clients": args.clients, "rounds": args.rounds, "dataset": args.dataset, "alpha": args.alpha,
              "local_epochs": args.local_epochs, "batch_size": args.client_batch_size, "lr": args.lr,
              "eval_every": 1, "amp": args.amp}
    if name == DIAGNOSTIC:
        profiles = args.work / "every-client-large.json"
        atomic_write_text(profiles, json.dumps(EVERY_CLIENT_LARGE))
        values.update(TUNED, profiles=str(profiles))
    else:
        values.update({**VARIANTS, **CANDIDATES}[name])
    # Same images: rounds x local epochs as on the command line.
    values["rounds"] = args.rounds * args.local_epochs // values["local_epochs"]
    return values


def run_fed(name: str, seed: int, args, dataset) -> dict:
    work = args.work / f"seed{seed}" / slug(name)
    cached = work / "row.json"
    if cached.exists():
        return json.loads(cached.read_text())
    config = fed_config(**settings(name, args), seed=seed)
    start = time.perf_counter()
    results = run_federated(config, work, engine="local", on_round=lambda r: print(
        f"  seed {seed} {name} round {r['round']} {r['status']} {r.get('largest_val_acc', '')} "
        f"{r.get('smallest_val_acc', '')}", file=sys.stderr))
    seconds = time.perf_counter() - start
    supernet, _ = load_supernet(work / "supernet.safetensors")
    history = results["history"]
    row = {"name": name, "seed": seed, "seconds": seconds, **score(supernet, dataset, seed),
           "images": int(sum(r.get("samples-seen", 0) for r in history)),
           "subnet_samples": int(sum(r.get("subnet-samples", 0) for r in history)),
           "curve": [[r.get("largest_val_acc"), r.get("smallest_val_acc")] for r in history],
           "load": os.getloadavg()}
    atomic_write_text(cached, json.dumps(row))
    return row


def run_central(seed: int, args, dataset) -> dict:
    work = args.work / f"seed{seed}" / "central"
    cached = work / "row.json"
    if cached.exists():
        return json.loads(cached.read_text())
    config = TrainConfig(epochs=args.central_epochs, batch_size=args.batch_size, lr=args.lr, seed=seed, amp=args.amp)
    start = time.perf_counter()
    supernet, result = train_supernet("resnet-cifar", args.dataset, config=config, out_dir=work, quiet=True)
    seconds = time.perf_counter() - start
    metrics = result.results["supernet_metrics"]
    images = args.central_epochs * len(dataset.train)
    row = {"name": "centralized sandwich", "seed": seed, "seconds": seconds, **score(supernet, dataset, seed),
           "images": images, "subnet_samples": 4 * images,  # sandwich: largest + smallest + 2 random per image
           "val": [metrics["largest_val_acc"], metrics["smallest_val_acc"]], "load": os.getloadavg()}
    atomic_write_text(cached, json.dumps(row))
    return row


def mean_std(values: list[float]) -> str:
    values = [100 * v for v in values]
    if len(values) == 1:
        return f"{values[0]:.1f} (1 seed)"
    return f"{np.mean(values):.1f} ± {np.std(values, ddof=1):.1f}"


def plot(path: Path, rows: list[dict], central: list[dict], names: list[str], args) -> None:
    """Validation accuracy against local epochs per client (rounds x local epochs), so that runs with
    different round lengths line up at equal images seen."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(12, 4.5), sharey=True)
    for index, (ax, label) in enumerate(zip(axes, ("largest", "smallest"))):
        for name in names:
            curves = [r["curve"] for r in rows if r["name"] == name]
            if not curves:
                continue
            acc = np.array([[point[index] for point in curve] for curve in curves], dtype=float) * 100
            epochs = np.arange(1, acc.shape[1] + 1) * settings(name, args)["local_epochs"]
            line, = ax.plot(epochs, acc.mean(0), label=f"{name} ({len(curves)} seed{'s' * (len(curves) > 1)})",
                            linestyle=":" if name == DIAGNOSTIC else "-")
            if len(curves) > 1:
                ax.fill_between(epochs, acc.min(0), acc.max(0), color=line.get_color(), alpha=0.15)
        ax.axhline(np.mean([c["val"][index] for c in central]) * 100, color="black", linestyle="--",
                   label="centralized sandwich (final)")
        ax.set_title(f"{label} subnet")
        ax.set_xlabel("local epochs per client (rounds x local epochs)")
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("validation accuracy (%)")
    axes[0].set_ylim(bottom=max(0, axes[0].get_ylim()[0]))
    axes[1].legend(fontsize=7, loc="lower right")
    atomic_write_figure(path, fig)


def write_report(path: Path, rows: list[dict], central: list[dict], args, command: str, skew: str,
                 wall: float, loads: list[float], best: str) -> None:
    c_images = central[0]["images"]
    table = []
    verdicts = []
    for name in dict.fromkeys(r["name"] for r in rows):
        mine = [r for r in rows if r["name"] == name]
        pairs = [(r, next(c for c in central if c["seed"] == r["seed"])) for r in mine]
        gap = {label: [100 * (r[label] - c[label]) for r, c in pairs] for label in ("largest", "smallest")}
        first_val = next(r for r in mine if r["seed"] == args.seeds[0])["curve"][-1]
        table.append([name + (" **(chosen)**" if name == best else ""), ", ".join(str(r["seed"]) for r in mine),
                      f"{mine[0]['images']:,}", f"{mine[0]['images'] / c_images:.1f}x", f"{mine[0]['subnet_samples']:,}",
                      f"{100 * first_val[0]:.1f} / {100 * first_val[1]:.1f}",
                      mean_std([r["largest"] for r in mine]), mean_std([r["smallest"] for r in mine]),
                      f"{np.mean(gap['largest']):+.1f}", f"{np.mean(gap['smallest']):+.1f}",
                      f"{np.mean([r['seconds'] for r in mine]):.0f}"])
        met = min(np.mean(gap["largest"]), np.mean(gap["smallest"])) >= -2 and mine[0]["images"] <= 3 * c_images
        verdicts.append(f"- {name} ({len(mine)} seed{'s' * (len(mine) > 1)}): largest {np.mean(gap['largest']):+.1f},"
                        f" smallest {np.mean(gap['smallest']):+.1f} points against centralized (mean over seeds of the"
                        f" per-seed gap) at {mine[0]['images'] / c_images:.1f}x its images: "
                        + ("not a candidate (no capability limits)." if name == DIAGNOSTIC
                           else "**target met**." if met else "**target missed**."))
    table.append(["centralized sandwich", ", ".join(str(c["seed"]) for c in central), f"{c_images:,}", "1.0x",
                  f"{central[0]['subnet_samples']:,}", " / ".join(f"{100 * v:.1f}" for v in central[0]["val"]),
                  mean_std([c["largest"] for c in central]), mean_std([c["smallest"] for c in central]), "", "",
                  f"{np.mean([c['seconds'] for c in central]):.0f}"])
    lines = [
        "# Federated vs centralized weight-sharing supernet training",
        "",
        f"- Date: {dt.date.today().isoformat()}",
        f"- Machine: {platform.machine()}, {os.cpu_count()} CPU cores, no GPU, **shared with ~8 other engineers' jobs**"
        f" during this run: load average {min(loads):.1f}-{max(loads):.1f} (1-minute, sampled at each run's end);"
        f" torch CPU threads: 1. Whole benchmark: {wall / 60:.0f} min wall time (sum of its runs). Wall times below are"
        " therefore only indicative.",
        f"- Command: `{command}`",
        f"- Data: {args.dataset}; federated: {args.clients} clients, Dirichlet(alpha={args.alpha}) label skew ({skew});"
        f" every client every round, {args.rounds} rounds x {args.local_epochs} local epochs (candidates with 1 local"
        f" epoch: {args.rounds * args.local_epochs} rounds; the same images), client batch {args.client_batch_size}"
        " (clients hold 40-200 images: small batches give them SGD steps),"
        f" client SGD lr {args.lr} (unless a candidate says otherwise) cosine over rounds, momentum 0.9 (restarted every"
        " round: clients are stateless Flower apps and may train another subnet next round; momentum across rounds is"
        " the server's, FedAvgM/FedAdam), wd 1e-4; engine `local` (the same ServerApp/ClientApp in one process)"
        + (f"; every training run (clients and centralized) under {args.amp} autocast (mixed precision)"
           if args.amp != "off" else "") + ".",
        "- Subnets: default capability tiers cycled over the clients (small = the smallest subnet, medium, large ="
        " the largest: clients 2, 5, 8); *width ladder* (HeteroFL): the tiers are full-depth subnets at the space's"
        " width and expand-ratio choices, raised together (`profiles.ladder`, kind width) instead. *fixed*: a client trains its largest allowed subnet. *sampled*: the"
        " sandwich rule within its capability every step (its largest allowed subnet on the labels, the smallest and 2 subnets"
        " drawn within its capability afresh each step, loss averaged); *+ KD*: the drawn subnets learn from the largest"
        " allowed subnet's soft outputs (`kl_distillation`, T=1), *no KD*: from the labels.",
        "- Server optimizers (`federated/server_opt.py`, Flower's FedAvgM/FedAdam/FedYogi math applied per element of"
        " the aggregated slices, each element over the clients that held it): FedAvg (server lr 1), FedAvgM (Hsu et al."
        " 2019; momentum 0.5, server lr 1), FedAdam and FedYogi (Reddi et al. ICLR 2021; server lr 0.01, beta1 0.9,"
        " beta2 0.99, tau 1e-3): one setting each.",
        f"- Tuning: the candidates (FedAvgM, sampled + KD with one or two settings changed, same images) run seed"
        f" {args.seeds[0]} like the variants; the best challenger of the baseline on seed {args.seeds[0]}'s *validation*"
        " split (144 images; final round; the worse of its two subnets, ties by the better) is **chosen** and runs"
        f" every seed; its settings are the same for every seed. The diagnostic (every client large: no capability"
        " limits) is not a candidate.",
        f"- Centralized: `train_supernet` sandwich rule (largest on labels + smallest + 2 random subnets distilled),"
        f" {args.central_epochs} epochs, batch {args.batch_size}, lr {args.lr} cosine, momentum 0.9 (Nesterov), wd 1e-4.",
        f"- Seeds: every variant and candidate ran seed {args.seeds[0]}; "
        + ("every named variant (FedAvg, FedAvgM, FedAdam, FedYogi; fixed and sampled; with and without KD), "
           if args.every_seed else f"the baseline ({BASELINE}), ")
        + f"the chosen challenger (if a candidate, with its parent: {PARENT} or the same settings with the"
        " depth-width ladder) and the diagnostic ran seeds"
        f" {', '.join(map(str, args.seeds))}"
        + ("" if args.every_seed else " (the CPU budget did not allow all variants x 3 seeds)")
        + ". The seed sets the partition, the initial weights and all sampling.",
        "- Accuracy: test split (360 images: one image = 0.28 points), each subnet's BatchNorm recalibrated on"
        " the same 4 batches of 128 images of the pooled training split, for federated and centralized alike (data"
        " the centralized baseline has; a deployed federated server would not). *Images* = training images seen"
        " (all clients, all rounds);"
        " *subnet-images* = images x subnets trained on them (compute).",
        "",
        markdown_table(["training", "seeds", "images", "vs central", "subnet-images",
                        f"val acc % seed {args.seeds[0]} (largest / smallest)", "largest test acc %",
                        "smallest test acc %", "gap largest", "gap smallest", "wall s"], table),
        "",
        f"![accuracy vs rounds]({path.with_suffix('.png').name})",
        "",
        "Validation accuracy of the largest and smallest subnet after every round (mean over the seeds run;"
        " band: min-max), against local epochs per client, so that runs with 1 and 2 local epochs per round line up"
        " at equal images; dashed: the centralized run's final validation accuracy (mean over seeds).",
        "",
        "## Target: largest and smallest subnet within 2 points of centralized at <= 3x its images",
        "",
        *verdicts,
    ]
    atomic_write_text(path, "\n".join(lines) + "\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset", default="digits")
    parser.add_argument("--clients", type=int, default=10)
    parser.add_argument("--alpha", type=float, default=0.5)
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--local-epochs", type=int, default=2)
    parser.add_argument("--central-epochs", type=int, default=6)
    parser.add_argument("--batch-size", type=int, default=32, help="Centralized batch size.")
    parser.add_argument("--client-batch-size", type=int, default=16,
                        help="Client batch size: clients hold ~130 images, so small batches give them steps.")
    parser.add_argument("--lr", type=float, default=0.05)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--variants", nargs="+", default=[*VARIANTS, *CANDIDATES, DIAGNOSTIC],
                        help="Subset of the variants, tuning candidates and diagnostic, by name.")
    parser.add_argument("--every-seed", action="store_true",
                        help="every named variant (not only the baseline and the chosen one) runs every seed; the "
                             "tuning candidates still run the first seed only")
    parser.add_argument("--amp", choices=("off", "bf16", "fp16"), default="off",
                        help="mixed precision of every training run, federated clients and centralized (on a CPU with "
                        "AMX, bf16 trains ~2x faster; docs/tailor.md); its runs are cached apart from fp32's")
    parser.add_argument("--work", type=Path, default=Path("runs/bench-federated"))
    parser.add_argument("--out", type=Path, default=Path("docs/results/federated.md"))
    args = parser.parse_args()
    # Finished runs are cached per seed and variant under a folder named by the budget.
    args.work = args.work / (f"{args.dataset}-r{args.rounds}-e{args.local_epochs}-b{args.client_batch_size}"
                              f"-c{args.central_epochs}" + ("" if args.amp == "off" else f"-{args.amp}"))
    torch.set_num_threads(1)
    command = "python " + shlex.join(sys.argv)

    dataset = load_dataset(args.dataset, seed=args.seeds[0])
    parts = partition_indices(dataset.train.labels, args.clients, "dirichlet", args.alpha, args.seeds[0], 8)
    share = (lambda h: h.max(1) / h.sum(1))(label_histogram(dataset.train.labels, parts, dataset.num_classes))
    skew = (f"seed {args.seeds[0]}: client sizes {min(len(p) for p in parts)}-{max(len(p) for p in parts)}, largest"
            f" class share per client {share.min():.2f}-{share.max():.2f} (mean {share.mean():.2f})")

    first, rest = args.seeds[0], args.seeds[1:]
    central = [run_central(first, args, dataset)]
    rows = [run_fed(name, first, args, dataset) for name in args.variants]
    # The best challenger of the baseline on the first seed's validation split: the worse subnet's final
    # validation accuracy, ties broken by the better subnet's.
    best = max((r for r in rows if r["name"] not in (BASELINE, DIAGNOSTIC)), key=lambda r: sorted(r["curve"][-1]),
               default=rows[0])["name"]
    for seed in rest:
        data = load_dataset(args.dataset, seed=seed)
        central.append(run_central(seed, args, data))
        # A chosen candidate's parent variant runs every seed too: the tuning's effect, seed by seed.
        parent = [PARENTS.get(best, PARENT)] if best in CANDIDATES else []
        every = list(VARIANTS) if args.every_seed else []
        rows += [run_fed(name, seed, args, data) for name in dict.fromkeys([BASELINE, *every, best, *parent, DIAGNOSTIC])
                 if name in args.variants]
    for r in rows + central:
        print(json.dumps({k: v for k, v in r.items() if k != "curve"}))
    # The full grid plots the variants, the chosen one and the diagnostic; a --variants subset all it ran.
    full_grid = set(args.variants) == {*VARIANTS, *CANDIDATES, DIAGNOSTIC}
    plot(args.out.with_suffix(".png"), rows, central,
         list(dict.fromkeys([*VARIANTS, best, DIAGNOSTIC] if full_grid else args.variants)), args)
    # Runs are cached: the benchmark's wall time is the sum of its runs' (plus start-up and scoring).
    write_report(args.out, rows, central, args, command, skew, sum(r["seconds"] for r in rows + central),
                 [r["load"][0] for r in rows + central], best)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
