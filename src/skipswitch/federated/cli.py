"""``skipswitch fed ...``: federated weight-shared supernet training on Flower."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

app = typer.Typer(help="Federated weight-shared supernet training (Flower simulation).", no_args_is_help=True)


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
def run_cmd(
    clients: int = typer.Option(10, help="Number of clients (virtual SuperNodes)."),
    rounds: int = typer.Option(20, help="Federated rounds."),
    dataset: str = typer.Option("digits", help="digits, mnist5k, cifar10, cifar100, svhn or imagefolder."),
    partition: str = typer.Option("dirichlet", help="iid or dirichlet (label skew)."),
    alpha: float = typer.Option(0.5, help="Dirichlet concentration (smaller: more skewed)."),
    local_epochs: int = typer.Option(1, "--local-epochs", help="Local epochs per round (E)."),
    batch_size: int = typer.Option(32, "--batch-size", help="Client mini-batch size."),
    lr: float = typer.Option(0.05, help="Client learning rate (cosine-decayed over the rounds)."),
    fraction: float = typer.Option(1.0, help="Fraction of clients sampled per round."),
    weighting: str = typer.Option("samples", help="Aggregation weights: samples (FjORD) or count (HeteroFL)."),
    largest_weight: Optional[float] = typer.Option(None, "--largest-weight", help="SuperFedNAS share of the largest subnet's clients, e.g. 0.9."),
    largest_weight_end: Optional[float] = typer.Option(None, "--largest-weight-end", help="Decay --largest-weight linearly to this, e.g. 0.125."),
    profiles: Optional[Path] = typer.Option(None, help="Capability profiles (JSON/TOML) [default: small/medium/large tiers]."),
    fail_fraction: float = typer.Option(0.0, "--fail-fraction", help="Fraction of sampled clients that crash each round."),
    timeout_fraction: float = typer.Option(0.0, "--timeout-fraction", help="Fraction that answer after the deadline."),
    round_timeout: float = typer.Option(600.0, "--round-timeout", help="Seconds the server waits for replies."),
    min_clients: int = typer.Option(1, "--min-clients", help="Fewest valid replies for a round to count."),
    on_too_few: str = typer.Option("retry", "--on-too-few", help="retry (then skip) or skip a round below --min-clients."),
    max_retries: int = typer.Option(2, "--max-retries", help="Retries before a round is skipped."),
    eval_every: int = typer.Option(1, "--eval-every", help="Evaluate largest/smallest subnet every K rounds (0: at the end)."),
    space: str = typer.Option("resnet-cifar", help="Supernet search space."),
    skip_mode: str = typer.Option("long", "--skip-mode", help="long, short or none."),
    engine: str = typer.Option("flower", help="flower (Flower simulation on Ray) or local (same apps, in-process grid)."),
    out: Optional[Path] = typer.Option(None, help="Run directory [default: runs/fed-<dataset>-<clients>c]."),
    seed: int = typer.Option(0, help="Seed for partition, sampling, faults and training."),
    data_dir: Optional[Path] = typer.Option(None, "--data-dir", help="Directory holding a local dataset."),
    resume: bool = typer.Option(False, "--resume", help="Continue from the last round checkpointed in --out."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No per-round output."),
    verbose: bool = typer.Option(False, "--verbose", help="Show Flower's and Ray's logs."),
):
    """Train a weight-sharing supernet federated; writes supernet.safetensors and results.json in --out."""
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from ..errors import SkipswitchError
    from .config import fed_config
    from .simulate import ENGINES, run_federated

    if engine not in ENGINES:
        raise SkipswitchError(f"unknown engine {engine!r}; choose flower or local")
    config = fed_config(
        clients=clients, rounds=rounds, dataset=dataset, data_dir=str(data_dir) if data_dir else None,
        partition=partition, alpha=alpha, local_epochs=local_epochs, batch_size=batch_size, lr=lr, fraction=fraction,
        weighting=weighting, largest_weight=largest_weight, largest_weight_end=largest_weight_end,
        profiles=str(profiles) if profiles else None, fail_fraction=fail_fraction, timeout_fraction=timeout_fraction,
        round_timeout_s=round_timeout, min_clients=min_clients, on_too_few=on_too_few, max_retries=max_retries,
        eval_every=eval_every, space=space, skip_mode=skip_mode, seed=seed,
    )
    out = out or Path("runs") / f"fed-{dataset}-{clients}c"
    console = Console(stderr=True)
    progress = Progress(TextColumn("[bold]federated rounds"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                        console=console, disable=quiet)

    with progress:
        task = progress.add_task("rounds", total=rounds)

        def on_round(record: dict) -> None:
            if record.get("status") != "too-few":
                progress.update(task, completed=record["round"])
            if not quiet:
                progress.console.print(_round_line(record))

        results = run_federated(config, out, engine=engine, resume=resume, on_round=on_round, verbose=verbose)
    last = results["history"][-1] if results["history"] else {}
    typer.echo(f"{results['rounds_aggregated']} rounds aggregated, {results['rounds_skipped']} skipped; "
               f"val acc largest {last.get('largest_val_acc', float('nan')):.4f} "
               f"smallest {last.get('smallest_val_acc', float('nan')):.4f}  -> {out / 'supernet.safetensors'}")
