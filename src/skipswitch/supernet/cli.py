"""``skipswitch supernet ...``: train a weight-sharing supernet, search its Pareto set, inspect it."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import typer

# Not importing the root CLI's shared options: ``python -m skipswitch.cli`` would import it twice.
DataDirOpt = typer.Option(None, "--data-dir", help="Directory holding a local dataset (CIFAR, SVHN, ImageFolder).")
SeedOpt = typer.Option(0, help="Seed for weights, splits, sampling and search.")

app = typer.Typer(help="Weight-sharing supernets: elastic ResNets, sandwich training, NSGA-II Pareto search.",
                  no_args_is_help=True)


@app.command("train")
def train_cmd(
    space: str = typer.Option("resnet-cifar", help="Search space: resnet-cifar or ofa-resnet50."),
    dataset: str = typer.Option("digits", help="digits, mnist5k, cifar10, cifar100, svhn or imagefolder."),
    skip_mode: str = typer.Option("long", "--skip-mode", help="Skip mode of every block: long, short or none."),
    strategy: str = typer.Option("sandwich", help="sandwich (in-place distillation), progressive (OFA) or compound (CompOFA)."),
    n_random: int = typer.Option(2, "--n-random", help="Random subnets per step besides the largest and smallest."),
    sort_every: int = typer.Option(1, "--sort-every", help="Sort inner channels by importance every K epochs (0: never)."),
    base_width: Optional[int] = typer.Option(None, "--base-width", help="resnet-cifar: channels of stage 1 at width 1.0 [16]."),
    max_depth: Optional[int] = typer.Option(None, "--max-depth", help="resnet-cifar: most blocks per stage [3]."),
    out: Optional[Path] = typer.Option(None, help="Run directory [default: runs/supernet-<space>-<dataset>-<skip-mode>]."),
    epochs: int = typer.Option(30, help="Training epochs (> 0)."),
    batch_size: int = typer.Option(64, "--batch-size", help="Mini-batch size (> 0)."),
    lr: float = typer.Option(0.1, help="Initial learning rate (cosine schedule, SGD with Nesterov momentum 0.9)."),
    weight_decay: float = typer.Option(1e-4, "--weight-decay", help="L2 weight decay."),
    seed: int = SeedOpt, data_dir: Optional[Path] = DataDirOpt,
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bars."),
    resume: bool = typer.Option(False, "--resume", help="Continue the run in --out from its last finished epoch."),
):
    """Train a supernet; writes supernet.safetensors (weights, BN statistics, metadata) and results.json."""
    from ..models import check_skip_mode
    from ..training import TrainConfig, validated
    from .train import train_supernet

    check_skip_mode(skip_mode)
    config = validated(TrainConfig, epochs=epochs, batch_size=batch_size, lr=lr, weight_decay=weight_decay, seed=seed)
    space_args = {k: v for k, v in (("base_width", base_width), ("max_depth", max_depth)) if v is not None}
    out = out or Path("runs") / f"supernet-{space}-{dataset}-{skip_mode}"
    _, result = train_supernet(space, dataset, config=config, out_dir=out, skip_mode=skip_mode, strategy=strategy,
                               n_random=n_random, sort_every=sort_every, space_args=space_args,
                               data_dir=data_dir, quiet=quiet, resume=resume)
    m = result.results["supernet_metrics"]
    typer.echo(f"largest subnet test accuracy {m['largest_test_acc']:.4f}  smallest {m['smallest_test_acc']:.4f}  "
               f"-> {out / 'supernet.safetensors'}")


@app.command("search")
def search_cmd(
    checkpoint: Path = typer.Argument(..., help="A supernet checkpoint (supernet.safetensors)."),
    cost: str = typer.Option("macs", help="Cost objective: macs, params, cpu-latency (or a registered one)."),
    population: int = typer.Option(16, help="NSGA-II population size."),
    generations: int = typer.Option(8, help="NSGA-II generations."),
    calibration: int = typer.Option(4, help="Training batches used to recalibrate each subnet's BatchNorm."),
    out: Optional[Path] = typer.Option(None, help="Output directory [default: the checkpoint's directory / search-<cost>]."),
    dataset: Optional[str] = typer.Option(None, help="Dataset [default: the checkpoint's]."),
    data_dir: Optional[Path] = DataDirOpt, seed: int = SeedOpt,
):
    """NSGA-II over subnets of CHECKPOINT; writes pareto.json, pareto.png and supernet.safetensors
    holding the Pareto set's BN statistics."""
    from ..data import load_dataset
    from .io import load_supernet, save_supernet
    from .search import get_cost, search, write_search

    get_cost(cost)  # fail on a bad name before loading anything
    supernet, meta = load_supernet(checkpoint)
    ds_meta = meta.get("dataset", {})
    ds = load_dataset(dataset or ds_meta.get("name", "digits"), data_dir, seed=ds_meta.get("seed", 0))
    out = out or checkpoint.parent / f"search-{cost}"
    supernet.bn_stats.clear()
    supernet.bn_configs.clear()
    result = search(supernet, ds, cost=cost, population=population, generations=generations, seed=seed,
                    calibration=calibration)
    json_path, png_path = write_search(result, out)
    save_supernet(out / "supernet.safetensors", supernet, {**{k: v for k, v in meta.items() if k != "bn_configs"},
                                                           "pareto": str(json_path)})
    for p in result["pareto"]:
        typer.echo(f"{p['cost']:10.3f} {result['cost_unit']:>12}  val {p['val_acc']:.4f}  test {p['test_acc']:.4f}  {p['key']}")
    typer.echo(f"{len(result['pareto'])} Pareto subnets of {len(result['evaluated'])} evaluated -> {json_path}, {png_path}")


@app.command("info")
def info_cmd(
    checkpoint: Path = typer.Argument(..., help="A supernet checkpoint."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
):
    """Describe a supernet checkpoint: space, skip mode, size of the largest/smallest subnet, stored BN sets."""
    from .io import load_supernet

    supernet, meta = load_supernet(checkpoint)
    space = supernet.space
    report = {"space": space.to_dict(), "skip_mode": supernet.supernet_skip_mode, "subnets": space.size(),
              "largest_bytes": supernet.weight_bytes(space.largest()),
              "smallest_bytes": supernet.weight_bytes(space.smallest()),
              "bn_subnets": [c.to_dict() for c in supernet.bn_configs.values()],
              "dataset": meta.get("dataset", {}).get("name"), "metrics": meta.get("metrics", {})}
    if as_json:
        typer.echo(json.dumps(report, indent=2))
    else:
        typer.echo(f"{checkpoint}: {space.name} ({supernet.supernet_skip_mode} skips), {report['subnets']:,} subnets, "
                   f"{report['largest_bytes']:,} B largest, {report['smallest_bytes']:,} B smallest, "
                   f"{len(report['bn_subnets'])} subnets with stored BN statistics")
