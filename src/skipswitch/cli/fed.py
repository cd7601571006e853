"""``skipswitch fed ...``: federated weight-shared supernet training on Flower."""

from __future__ import annotations

import typer

from ..federated.config import load_fed_config
from ..jobs.federated import FedRunJob
from .options import options_from

app = typer.Typer(help="Federated weight-shared supernet training (Flower simulation).", no_args_is_help=True)

# FedConfig (federated/config.py) leaves these without a description.
FED_HELP = {
    "rounds": "Federated rounds.", "dataset": "digits, mnist5k, cifar10, cifar100, svhn or imagefolder.",
    "data_dir": "Directory holding a local dataset.", "partition": "iid or dirichlet (label skew).",
    "seed": "Seed for partition, sampling, faults and training.", "space": "Supernet search space.",
    "skip_mode": "long, short or none.", "local_epochs": "Local epochs per round (E).",
    "batch_size": "Client mini-batch size.", "lr": "Client learning rate (cosine-decayed over the rounds).",
    "weighting": "Aggregation weights: samples (FjORD) or count (HeteroFL).",
    "on_too_few": "retry (then skip) or skip a round below --min-clients.",
}


def _round_line(record: dict) -> str:
    if record.get("status") == "too-few":
        return record["message"]
    attempt = record["attempts"][-1] if record.get("attempts") else {}
    parts = [f"round {record['round']:>3}: {record['status']}"]
    if attempt:
        parts.append(f"{len(attempt['survivors'])}/{len(attempt['sampled'])} clients")
        lost = len(attempt["failed"]) + len(attempt["timed_out"]) + len(attempt["rejected"])
        if lost:
            parts.append(f"({len(attempt['failed'])} failed, {len(attempt['timed_out'])} timed out"
                         f"{', %d rejected' % len(attempt['rejected']) if attempt['rejected'] else ''})")
    if "train-loss" in record:
        parts.append(f"train loss {record['train-loss']:.3f} acc {record['train-acc']:.3f}")
    if "largest_val_acc" in record:
        parts.append(f"val acc largest {record['largest_val_acc']:.3f} smallest {record['smallest_val_acc']:.3f}")
    parts.append(f"{record['seconds']:.1f} s")
    return "  ".join(parts)


@app.command("run")
@options_from(FedRunJob, exclude=("min_partition_size", "space_args", "momentum", "weight_decay", "lr_schedule"),
              decls={"round_timeout_s": ("--round-timeout",), "quiet": ("--quiet", "-q")}, help=FED_HELP,
              config_file=load_fed_config,
              interrupted="interrupted; rerun with --resume to continue from the last finished round")
def run_cmd(job: FedRunJob):
    """Train a weight-sharing supernet federated; writes supernet.safetensors and results.json in --out."""
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from ..jobs.federated import check_engine, run

    check_engine(job.engine)  # before the progress bar starts
    progress = Progress(TextColumn("[bold]federated rounds"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                        console=Console(stderr=True), disable=job.quiet)
    with progress:
        task = progress.add_task("rounds", total=job.rounds)

        def on_round(record: dict) -> None:
            if record.get("status") != "too-few":
                progress.update(task, completed=record["round"])
            if not job.quiet:
                progress.console.print(_round_line(record))

        r = run(job, on_round=on_round)
    typer.echo(f"{r.rounds_aggregated} rounds aggregated, {r.rounds_skipped} skipped; "
               f"val acc largest {r.last_val_acc('largest'):.4f} smallest {r.last_val_acc('smallest'):.4f}  "
               f"-> {r.checkpoint}")
