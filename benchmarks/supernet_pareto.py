"""Weight-shared subnets vs the same subnets trained from scratch, over several seeds, with
the training compute of both.

For each dataset: train one resnet-cifar supernet per seed (default: OFA progressive
shrinking, ``skipswitch.supernet.train``), run the NSGA-II search (validation accuracy vs
MACs) on the first seed's supernet, pick up to K Pareto subnets spread over the MAC range,
then for every seed evaluate those subnets in that seed's supernet (after BN recalibration)
and train each from scratch with the same epochs, batch size, learning rate and seed.
Compares test accuracy (target: every subnet's mean gap within 1 point) and training
compute (target: the supernet's MACs <= the sum of the scratch runs').

Every finished run is cached under --work, so a stopped benchmark resumes, and a rerun over
cached runs only re-evaluates the shared subnets and writes the report (e.g. after running
the datasets in separate processes).

    PYTHONPATH=src python benchmarks/supernet_pareto.py                    # digits and mnist5k, 3 seeds
    PYTHONPATH=src python benchmarks/supernet_pareto.py --datasets digits --seeds 0   # quick look
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shlex
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import torch

from skipswitch.checkpoint import atomic_write_json, atomic_write_text, load_model
from skipswitch.data import load_dataset
from skipswitch.graph import trace
from skipswitch.io import atomic_write_figure
from skipswitch.supernet import SubnetConfig, get_space, load_supernet
from skipswitch.supernet.search import search
from skipswitch.supernet.train import ComputeMeter, calibration_batches, subnet_accuracy, train_supernet
from skipswitch.training import TrainConfig, Trainer, evaluate
from skipswitch.training.trainer import cross_entropy_loss

ROOT = Path(__file__).resolve().parents[1]

# Per dataset: space arguments, batch size, learning rate, epochs of every scratch run (and of
# the supernet's full-network phase), epochs of the shrinking phases, subnets retrained.
# Sized for 3 seeds x both datasets in ~40 min on 2 shared CPU cores (mnist5k, 28x28, costs
# ~12x digits per image: smaller space).
SETTINGS = {
    "digits": {"space_args": {"base_width": 16, "max_depth": 3}, "batch_size": 64, "lr": 0.05, "epochs": 10,
               "shrink_epochs": 6, "subnets": 5},
    "mnist5k": {"space_args": {"base_width": 8, "max_depth": 2}, "batch_size": 128, "lr": 0.05, "epochs": 6,
                "shrink_epochs": 5, "subnets": 4},
}


def pick_spread(front: list[dict], k: int) -> list[dict]:
    """Up to ``k`` Pareto points spread evenly over the cost range (cheapest and dearest included)."""
    if len(front) <= k:
        return list(front)
    costs = np.array([p["cost"] for p in front])
    targets = np.linspace(costs.min(), costs.max(), k)
    chosen: list[int] = []
    for t in targets:
        order = np.argsort(np.abs(costs - t))
        chosen.append(next(int(i) for i in order if int(i) not in chosen))
    return [front[i] for i in sorted(chosen)]


def cached(path: Path, make) -> dict:
    """``make()``'s JSON result, computed once (a run stopped half-way is redone whole, so
    its compute count is complete)."""
    if path.exists():
        return json.loads(path.read_text())
    load_before = os.getloadavg()[0]
    start = time.perf_counter()
    result = {**make(), "wall_s": time.perf_counter() - start, "load_1min": [load_before, os.getloadavg()[0]]}
    atomic_write_json(path, result)
    return result


def train_shared(name: str, seed: int, s: dict, args, work: Path) -> dict:
    epochs = s["epochs"] if args.strategy == "ofa" else s["supernet_epochs"]  # ofa: the full network's
    config = TrainConfig(epochs=epochs, batch_size=s["batch_size"], lr=s["lr"], seed=seed, amp=args.amp)
    meter = ComputeMeter()
    run_dir = work / f"{name}-s{seed}-supernet"
    _, run = train_supernet("resnet-cifar", name, config=config, out_dir=run_dir, space_args=s["space_args"],
                            strategy=args.strategy, shrink_epochs=s["shrink_epochs"], n_random=args.n_random,
                            lr_per_subnet=args.lr_per_subnet, zero_init_residual=args.zero_init_residual,
                            sort_every=args.sort_every, quiet=True, meter=meter)
    return {"checkpoint": str(run_dir / "supernet.safetensors"), "compute": meter.to_dict(),
            "phases": run.results.get("phases", []), "metrics": run.results["supernet_metrics"],
            "lr": run.history[0]["lr"]}


def train_scratch(name: str, seed: int, s: dict, config_dict: dict, space, out: Path, amp: str = "off") -> dict:
    config = TrainConfig(epochs=s["epochs"], batch_size=s["batch_size"], lr=s["lr"], seed=seed, amp=amp)
    cfg = SubnetConfig.from_dict(config_dict, space)
    dataset = load_dataset(name, seed=seed)
    meter = ComputeMeter()

    def counted_loss(model, x, y):
        meter.add(model, x)
        return cross_entropy_loss(model, x, y)

    torch.manual_seed(seed)
    run = Trainer(space.build(cfg), dataset, config, out, loss_fn=counted_loss, quiet=True,
                  metadata={"run": "scratch", "subnet": cfg.to_dict()}).fit()
    return {"test_acc": run.test_acc, "val_acc": run.history[-1]["val_acc"], "compute": meter.to_dict()}


def _space_args(name: str, s: dict) -> dict:
    dataset = load_dataset(name)
    return {"num_classes": dataset.num_classes, "in_channels": dataset.in_channels,
            "input_size": list(dataset.input_size), **s["space_args"]}


def recalibrated_accuracy(path: Path, dataset, calibration: list[torch.Tensor]) -> dict:
    """Val and test accuracy of a scratch run's model after its BN statistics are recomputed
    exactly over ``calibration`` (cumulative average, as the shared subnets get them)."""
    model, _ = load_model(path)
    torch.optim.swa_utils.update_bn(calibration, model)
    return {"val_acc": evaluate(model, dataset.val)[1], "test_acc": evaluate(model, dataset.test)[1]}


def fitted_epochs(name: str, s: dict, picks: list[dict], n_random: int) -> int:
    """``--supernet-epochs fit``: the most whole sandwich epochs whose expected training MACs
    fit the scratch runs' budget. Per image, the scratch runs cost the picks' MACs times the
    scratch epochs (exact); a supernet epoch costs the largest, the smallest and ``n_random``
    uniformly sampled subnets (their mean over 100 draws of a fixed generator). Both sides
    x3 for forward+backward and x the training images, which cancel."""
    space = get_space("resnet-cifar", **_space_args(name, s))

    def macs(config: SubnetConfig) -> int:
        return trace(space.build(config)).to_dict()["macs"]

    budget = s["epochs"] * sum(macs(SubnetConfig.from_dict(c, space)) for c in picks)
    gen = torch.Generator().manual_seed(0)
    per_epoch = (macs(space.largest()) + macs(space.smallest())
                 + n_random * np.mean([macs(space.sample(gen)) for _ in range(100)]))
    return max(1, int(budget // per_epoch))


def run_dataset(name: str, args, work: Path) -> dict:
    s = {**SETTINGS[name], **{k: v for k, v in (("epochs", args.epochs), ("shrink_epochs", args.shrink_epochs),
                                                 ("subnets", args.subnets)) if v is not None}}
    space = ""  # the default space (and fp32) keeps the cache names of earlier runs
    precision = "" if args.amp == "off" else f"-{args.amp}"
    if args.space_args and args.space_args != s["space_args"]:
        s["space_args"] = args.space_args
        space = "-" + "-".join(f"{k}{v}" for k, v in sorted(args.space_args.items()))
    # the same subnets (and search plot) as another run of this dataset, e.g. to compare strategies
    picks_from = next((p for p in args.picks_from or [] if p.startswith(f"{name}-")), None)
    if picks_from:
        found = json.loads((args.work / picks_from / "search.json").read_text())
    if args.picks:  # the subnets by name, as the report's table prints them
        elastic = get_space("resnet-cifar", **_space_args(name, s))
        found = {"picked": [SubnetConfig.from_key(key, elastic).to_dict() for key in args.picks]}
    if args.supernet_epochs == "fit":
        if not (picks_from or args.picks) or args.strategy == "ofa":
            raise SystemExit("--supernet-epochs fit needs --picks or --picks-from (the scratch budget) and a sandwich"
                             " strategy")
        s["supernet_epochs"] = fitted_epochs(name, s, found["picked"], args.n_random)
        s["supernet_epochs_rule"] = "fit"
    else:
        s["supernet_epochs"] = int(args.supernet_epochs or s["epochs"])
    tag = f"{name}{space}-e{s['epochs']}-" + (
        f"sh{s['shrink_epochs']}-ofa" if args.strategy == "ofa" else
        f"{args.strategy}{s['supernet_epochs']}-r{args.n_random}" + ("-lrxn" if args.lr_per_subnet else "")
        + ("-zr" if args.zero_init_residual else "") + (f"-sort{args.sort_every}" if args.sort_every != 1 else "")
    ) + precision
    work = work / tag
    def shared(seed: int) -> dict:  # seed by seed, so a stopped run has whole seeds to report
        return cached(work / f"s{seed}-supernet.json", lambda: train_shared(name, seed, s, args, work))

    def run_search() -> dict:
        supernet, _ = load_supernet(shared(args.seeds[0])["checkpoint"])
        supernet.bn_stats.clear()
        supernet.bn_configs.clear()
        found = search(supernet, load_dataset(name, seed=args.seeds[0]), cost="macs", population=args.population,
                       generations=args.generations, seed=args.seeds[0])
        picked = pick_spread(found["pareto"], s["subnets"])
        return {"evaluated": found["evaluated"], "pareto": found["pareto"], "picked": [p["config"] for p in picked]}

    if not (picks_from or args.picks):
        found = cached(work / "search.json", run_search)
    # scratch runs do not depend on the strategy
    scratch_dir = args.work / f"{name}{space}-e{s['epochs']}-scratch{precision}"
    seeds = {}
    for seed in args.seeds:
        supernet, _ = load_supernet(shared(seed)["checkpoint"])
        dataset = load_dataset(name, seed=seed)
        # --calibration-batches 0: the whole training split (len(train) exceeds its batch count)
        calibration = calibration_batches(dataset, args.calibration_batches or len(dataset.train), seed=seed)
        supernet.bn_stats.clear()  # the checkpoint's stored statistics (largest, smallest) used 4 batches
        supernet.bn_configs.clear()
        rows = []
        for config_dict in found["picked"]:
            cfg = SubnetConfig.from_dict(config_dict, supernet.space)
            run_name = f"s{seed}-{cfg.key().replace('|', ';')}"
            scratch = cached(scratch_dir / f"{run_name}.json",
                             lambda: train_scratch(name, seed, s, config_dict, supernet.space, scratch_dir / run_name,
                                                   args.amp))
            if args.calibrate_scratch:  # the twin's BN statistics computed as the shared subnet's are
                scratch = {**scratch, **recalibrated_accuracy(scratch_dir / run_name / "model.safetensors",
                                                              dataset, calibration)}
            rows.append({"shared": subnet_accuracy(supernet, cfg, dataset, "test", calibration),
                         "shared_val": subnet_accuracy(supernet, cfg, dataset, "val", calibration),
                         "scratch": scratch["test_acc"], "scratch_val": scratch.get("val_acc"),
                         "scratch_macs": scratch["compute"]["train_macs"],
                         "scratch_wall_s": scratch["wall_s"], "load_1min": scratch["load_1min"]})
        seeds[seed] = {"rows": rows, "supernet": shared(seed)}
    subnets = []
    for config_dict in found["picked"]:
        model = SubnetConfig.from_dict(config_dict, supernet.space)
        summary = trace(supernet.space.build(model)).to_dict()
        subnets.append({"config": config_dict, "key": model.key(), "macs": summary["macs"],
                        "params": summary["params"], "weight_bytes": supernet.weight_bytes(model)})
    largest_macs = trace(supernet.space.build(supernet.space.largest())).to_dict()["macs"]
    return {"name": name, "tag": tag, "picks_from": picks_from, "settings": s, "subnets": subnets, "seeds": seeds, "search": found,
            "largest_macs": largest_macs,
            "dataset": load_dataset(name, seed=args.seeds[0]).to_dict()}


def plot(results: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(results), figsize=(5.5 * len(results), 4), squeeze=False)
    for ax, res in zip(axes[0], results):
        ev = res["search"].get("evaluated", [])
        if ev:  # none when the subnets were given by name (--picks)
            ax.scatter([r["cost"] for r in ev], [100 * r["val_acc"] for r in ev], s=8, c="lightgrey",
                       label=f"searched subnets (val, seed {min(res['seeds'])})")
        macs = [sub["macs"] / 1e6 for sub in res["subnets"]]
        for key, style, label in (("shared", "o-", "weight-shared (test)"), ("scratch", "x--", "from scratch (test)")):
            acc = np.array([[100 * r["rows"][i][key] for i in range(len(macs))] for r in res["seeds"].values()])
            ax.errorbar(macs, acc.mean(0), yerr=acc.std(0), fmt=style, capsize=3, label=f"{label}, mean ± std")
        ax.set_xlabel("MACs per image (millions)")
        ax.set_ylabel("accuracy (%)")
        ax.set_title(f"{res['name']}: {len(res['seeds'])} seeds")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    fig.tight_layout()
    atomic_write_figure(path, fig, dpi=110)


def _pm(values) -> str:
    values = np.asarray(values, dtype=float)
    return f"{values.mean():.1f} ± {values.std():.1f}"


def report(results: list[dict], args, command: str) -> str:
    loads = [load for res in results for seed in res["seeds"].values()
             for load in [*seed["supernet"]["load_1min"], *(l for r in seed["rows"] for l in r["load_1min"])]]
    lines = [
        "# Weight-shared subnets vs the same subnets trained from scratch",
        "",
        f"- Date: {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC",
        f"- Machine: {platform.machine()}, 2 CPU cores shared with other engineers' jobs during this run (1-minute load "
        f"average {min(loads):.1f} to {max(loads):.1f} at the runs' starts and ends; torch threads = 1), "
        f"Python {platform.python_version()}, torch {torch.__version__}. Wall times below are on that shared machine.",
        f"- Command: `{command}`",
        f"- Method: per seed one resnet-cifar supernet trained with strategy `{args.strategy}`"
        + (" (OFA progressive shrinking: the full network trained alone for the scratch epochs, then frozen as the"
           " KD teacher; then elastic depth, expand, width phases, each its own run with OFA's learning-rate ratios,"
           " epoch ratios and subnets per step (`OFA_PHASES` in `src/skipswitch/supernet/train.py`, from"
           " mit-han-lab/once-for-all `train_ofa_net.py`); per step the sum over the sampled subnets of"
           " CE + KL to the teacher's soft targets, as OFA's per-subnet backward passes accumulate; channels sorted"
           " when expand and width open)" if args.strategy == "ofa" else
           f" (per step the mean over the largest, the smallest and {args.n_random} random subnets of CE, plus KL to"
           " the largest's detached logits for all but the largest; "
           + {0: "no channel sorting", 1: "channel sorting every epoch"}.get(args.sort_every,
                                                                           f"channel sorting every {args.sort_every} epochs")
           + (f"; learning rate x{args.n_random + 2}, the subnets per step (`lr_per_subnet`): the step a summed loss"
              " takes at the scratch learning rate" if args.lr_per_subnet else "")
           + ("; every block's last BN scale initialized to 0 (BigNAS, `zero_init_residuals`)"
              if args.zero_init_residual else "") + ")") + ".",
        ("  The subnets are given by name (`--picks`)" if args.picks else
         f"  NSGA-II (population {args.population}, {args.generations} generations) over validation accuracy (after"
         f" per-subnet BN recalibration on 4 training batches) and MACs on seed {args.seeds[0]}'s supernet picks the"
         " subnets" + "".join(f" ({res['name']}: those picked for `{res['picks_from']}`)"
                              for res in results if res["picks_from"])) + ";"
        " every seed then evaluates them in its own supernet (BN statistics recomputed per subnet over "
        + (f"{args.calibration_batches} training batches of 128" if args.calibration_batches else
           "the whole training split") + ") and trains each from scratch with the same epochs, batch size, learning"
        " rate and seed; the scratch twins are evaluated "
        + ("after the same BN recomputation" if args.calibrate_scratch else
           "with the running BN statistics of their training") + ". Test-split accuracy, mean ± std over seeds"
        f" {', '.join(map(str, args.seeds))}"
        + (f"; every training run (supernet and scratch) under {args.amp} autocast (mixed precision)"
           if args.amp != "off" else "") + ".",
        "- Compute: multiply-accumulates of training, counted by `ComputeMeter` (`torch.utils.flop_counter` forward"
        " MACs per image of each architecture run, x3 for a trained forward+backward, x1 for the teacher's no-grad"
        " forward); per-epoch validation, BN recalibration and the search are not counted on either side.",
        "",
    ]
    for res in results:
        s = res["settings"]
        seeds = list(res["seeds"].values())
        phases = seeds[0]["supernet"].get("phases") or []
        budget = ", ".join(f"{p['name']} {p['epochs']} ep lr {p['lr']:.4g} x{p['subnets']}" for p in phases)
        lines += [
            f"## {res['name']} ({res['dataset']['train']} train / {res['dataset']['val']} val / "
            f"{res['dataset']['test']} test images, space args {s['space_args']}, batch {s['batch_size']}, lr {s['lr']})",
            "",
            f"- Scratch budget: {s['epochs']} epochs per subnet, cosine schedule.",
            f"- Supernet budget: {(n := sum(p['epochs'] for p in phases) or s['supernet_epochs'])} epoch{'s' * (n != 1)} in all"
            + (f" ({budget})." if budget else f", strategy {args.strategy}, {args.n_random + 2} subnets per step,"
               f" lr {seeds[0]['supernet']['lr']:.4g}, cosine schedule"
               + (" (epochs: `fit`, the most whole epochs whose expected MACs fit the scratch runs' sum)."
                  if s.get("supernet_epochs_rule") == "fit" else ".")),
            "",
            "| subnet (depths / expands / widths) | MACs | params | weight KB | shared test % | scratch test % "
            "| shared - scratch | per seed | val: shared - scratch |",
            "|---|---:|---:|---:|---:|---:|---:|---|---:|",
        ]
        gaps_by_subnet = []
        for i, sub in enumerate(res["subnets"]):
            shared = [100 * seed["rows"][i]["shared"] for seed in seeds]
            scratch = [100 * seed["rows"][i]["scratch"] for seed in seeds]
            gaps = np.subtract(shared, scratch)
            val_gaps = [100 * (seed["rows"][i]["shared_val"] - seed["rows"][i]["scratch_val"]) for seed in seeds]
            gaps_by_subnet.append(gaps.mean())
            label = f"`{sub['key'].replace('|', ';')}`"  # '|' would split the table cell
            lines.append(f"| {label} | {sub['macs']:,} | {sub['params']:,} | {sub['weight_bytes'] / 1024:.1f} | "
                         f"{_pm(shared)} | {_pm(scratch)} | {gaps.mean():+.1f} ± {gaps.std():.1f} | "
                         f"{', '.join(f'{g:+.1f}' for g in gaps)} | {np.mean(val_gaps):+.1f} |")
        worst = min(gaps_by_subnet)
        supernet_macs = np.mean([seed["supernet"]["compute"]["train_macs"] for seed in seeds])
        scratch_macs = np.mean([sum(r["scratch_macs"] for r in seed["rows"]) for seed in seeds])
        supernet_wall = np.mean([seed["supernet"]["wall_s"] for seed in seeds])
        scratch_wall = np.mean([sum(r["scratch_wall_s"] for r in seed["rows"]) for seed in seeds])
        compute = seeds[0]["supernet"]["compute"]
        epoch_of_largest = 3 * res["largest_macs"] * res["dataset"]["train"]
        lines += [
            "",
            f"- Accuracy target (every subnet's mean gap within 1 point of its scratch twin): "
            f"**{'met' if worst >= -1.0 else 'missed'}**; worst mean gap {worst:+.1f} points, mean over subnets "
            f"{np.mean(gaps_by_subnet):+.1f}.",
            f"- Compute target (supernet training MACs <= the {len(res['subnets'])} scratch runs' together): "
            f"**{'met' if supernet_macs <= scratch_macs else 'missed'}**; supernet {supernet_macs / 1e12:.2f} TMACs vs "
            f"scratch {scratch_macs / 1e12:.2f} TMACs ({supernet_macs / scratch_macs:.2f}x), mean per seed. The supernet "
            f"ran {compute['trained_images']:,} image forward+backward passes and {compute['teacher_images']:,} "
            f"teacher forwards (seed {min(res['seeds'])}). One epoch of the largest subnet"
            f" ({res['largest_macs']:,} MACs) alone costs {100 * epoch_of_largest / scratch_macs:.0f} % of the scratch"
            f" runs' sum; the supernet pays for itself from"
            f" {supernet_macs / (scratch_macs / len(res['subnets'])):.1f} scratch runs of these subnets' mean cost.",
            f"- Wall time per seed (shared machine): supernet {supernet_wall:.0f} s vs scratch runs {scratch_wall:.0f} s "
            f"together" + (f"; search {res['search']['wall_s']:.0f} s ({len(res['search']['evaluated'])} subnets"
                           f" evaluated, {len(res['search']['pareto'])} on the front)" if "wall_s" in res["search"]
                           else "") + ".",
            "",
        ]
    lines += [f"![Pareto fronts]({args.out.with_suffix('.png').name})", ""]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--datasets", nargs="+", default=["digits", "mnist5k"], choices=sorted(SETTINGS))
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--strategy", default="ofa", help="supernet training strategy (see skipswitch.supernet.train)")
    parser.add_argument("--epochs", type=int, default=None, help="scratch epochs [per dataset: digits 10, mnist5k 6]")
    parser.add_argument("--shrink-epochs", type=int, default=None, help="ofa shrinking epochs [digits 6, mnist5k 5]")
    parser.add_argument("--supernet-epochs", default=None,
                        help="epochs of a non-ofa supernet, or 'fit': as many as the scratch runs' MACs pay for [--epochs]")
    parser.add_argument("--n-random", type=int, default=2, help="random subnets per sandwich step (not ofa)")
    parser.add_argument("--lr-per-subnet", action="store_true",
                        help="multiply the lr by the subnets per step (averaged sandwich losses; not ofa)")
    parser.add_argument("--zero-init-residual", action="store_true",
                        help="start every supernet block as its shortcut (last BN scale 0; BigNAS initialization)")
    parser.add_argument("--sort-every", type=int, default=1,
                        help="sort channels by importance every N supernet epochs (0: never; not ofa)")
    parser.add_argument("--space-args", type=json.loads, default=None,
                        help='resnet-cifar space arguments as JSON, e.g. \'{"base_width": 8, "max_depth": 2}\'')
    parser.add_argument("--subnets", type=int, default=None, help="Pareto subnets retrained [digits 5, mnist5k 4]")
    parser.add_argument("--population", type=int, default=12)
    parser.add_argument("--generations", type=int, default=4)
    parser.add_argument("--picks-from", nargs="+", help="evaluate the subnets picked by another run of the same"
                        " dataset (a directory under --work named DATASET-...; one per dataset)")
    parser.add_argument("--picks", nargs="+", help="evaluate these subnets, named as the report's table prints them"
                        " (e.g. 'd1,1,1-e0.5;0.5;0.5-w0.5,0.5,0.5'); needs a single --datasets")
    parser.add_argument("--calibration-batches", type=int, default=4,
                        help="training batches (of 128) over which each shared subnet's BN statistics are recomputed"
                        " before evaluation; 0: the whole training split")
    parser.add_argument("--calibrate-scratch", action="store_true",
                        help="recompute the scratch twins' BN statistics the same way before evaluating them"
                        " (default: the running statistics their training left)")
    parser.add_argument("--amp", choices=("off", "bf16", "fp16"), default="off",
                        help="mixed precision of every training run, supernet and scratch (on a CPU with AMX, bf16 "
                        "trains ~2x faster; docs/tailor.md); its runs are cached apart from fp32's")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (1 avoids contention on shared cores)")
    parser.add_argument("--work", type=Path, default=ROOT / "runs" / "bench-supernet-pareto")
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "results" / "supernet_pareto.md")
    args = parser.parse_args()
    if args.picks and len(args.datasets) != 1:
        parser.error("--picks names subnets of one space: give a single --datasets")
    torch.set_num_threads(args.threads)
    command = "PYTHONPATH=src python benchmarks/supernet_pareto.py " + shlex.join(sys.argv[1:])
    results = []
    for name in args.datasets:
        print(f"[{name}] supernets, search, scratch subnets ...", flush=True)
        results.append(run_dataset(name, args, args.work))
        for sub, i in zip(results[-1]["subnets"], range(len(results[-1]["subnets"]))):
            gaps = [100 * (s["rows"][i]["shared"] - s["rows"][i]["scratch"]) for s in results[-1]["seeds"].values()]
            print(f"  {sub['macs']:>10,} MACs  gap {np.mean(gaps):+.2f} ({', '.join(f'{g:+.1f}' for g in gaps)})",
                  flush=True)
    if results:
        plot(results, args.out.with_suffix(".png"))
        atomic_write_text(args.out, report(results, args, command.strip()))
        print(f"-> {args.out}", flush=True)


if __name__ == "__main__":
    main()
