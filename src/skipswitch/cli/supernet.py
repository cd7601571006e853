"""``skipswitch supernet ...``: train a weight-sharing supernet, search its Pareto set, inspect it."""

from __future__ import annotations

import typer

from ..jobs.supernet import InfoJob, SearchJob, SupernetTrainJob
from .options import options_from

app = typer.Typer(help="Weight-sharing supernets: elastic ResNets, sandwich training, NSGA-II Pareto search.",
                  no_args_is_help=True)


@app.command("train")
@options_from(SupernetTrainJob, decls={"quiet": ("--quiet", "-q")},
              interrupted="interrupted; rerun with --resume to continue from the last finished epoch")
def train_cmd(job: SupernetTrainJob):
    """Train a supernet; writes supernet.safetensors (weights, BN statistics, metadata) and results.json."""
    from ..jobs.supernet import train

    m = train(job).supernet_metrics
    typer.echo(f"largest subnet test accuracy {m.largest_test_acc:.4f}  smallest {m.smallest_test_acc:.4f}  "
               f"-> {job.run_dir() / 'supernet.safetensors'}")


@app.command("search")
@options_from(SearchJob, arguments=("checkpoint",), interrupted="interrupted; the search starts over when rerun")
def search_cmd(job: SearchJob):
    """NSGA-II over subnets of CHECKPOINT; writes pareto.json, pareto.png and supernet.safetensors
    holding the Pareto set's BN statistics."""
    from ..jobs.supernet import search

    r = search(job)
    for p in r.pareto:
        typer.echo(f"{p.cost:10.3f} {r.cost_unit:>12}  val {p.val_acc:.4f}  test {p.test_acc:.4f}  {p.key}")
    typer.echo(f"{len(r.pareto)} Pareto subnets of {len(r.evaluated)} evaluated -> {r.pareto_json}, {r.pareto_png}")


@app.command("info")
@options_from(InfoJob, arguments=("checkpoint",))
def info_cmd(job: InfoJob, as_json: bool = typer.Option(False, "--json", help="Print JSON.")):
    """Describe a supernet checkpoint: space, skip mode, size of the largest/smallest subnet, stored BN sets."""
    from ..jobs.supernet import info

    r = info(job)
    if as_json:
        typer.echo(r.to_json())
    else:
        typer.echo(f"{job.checkpoint}: {r.space['name']} ({r.skip_mode} skips), {r.subnets:,} subnets, "
                   f"{r.largest_bytes:,} B largest, {r.smallest_bytes:,} B smallest, "
                   f"{len(r.bn_subnets)} subnets with stored BN statistics")
