"""The ``skipswitch`` command line: one sub-command group per package.

Every user error is a ``SkipswitchError`` and is printed as one ``error:`` line with
exit code 2; heavy imports happen inside the commands so ``--help`` stays instant.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Optional

import typer

from .errors import SkipswitchError

app = typer.Typer(
    name="skipswitch",
    help="Resource-efficient DNN inference: Tailor skip alteration and FastSwitch weight-sharing supernets.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)

# Options shared by the training commands.
EpochsOpt = typer.Option(30, help="Training epochs (> 0).")
BatchOpt = typer.Option(64, "--batch-size", help="Mini-batch size (> 0).")
LrOpt = typer.Option(0.1, help="Initial learning rate.")
MomentumOpt = typer.Option(0.9, help="SGD momentum (Nesterov).")
WdOpt = typer.Option(1e-4, "--weight-decay", help="L2 weight decay.")
ScheduleOpt = typer.Option("cosine", help="Learning-rate schedule: cosine or step.")
StepOpt = typer.Option(30, "--step-size", help="Epochs per decay with --schedule step.")
GammaOpt = typer.Option(0.1, help="Decay factor with --schedule step.")
SeedOpt = typer.Option(0, help="Seed for weights, splits, order and augmentation.")
DataDirOpt = typer.Option(None, "--data-dir", help="Directory holding a local dataset (CIFAR, SVHN, ImageFolder).")
QuietOpt = typer.Option(False, "--quiet", "-q", help="No progress bars.")
ResumeOpt = typer.Option(False, "--resume", help="Continue the run in --out from its last finished epoch.")


def _train_config(epochs, batch_size, lr, momentum, weight_decay, schedule, step_size, gamma, seed, **runtime):
    from .training import TrainConfig, validated

    return validated(
        TrainConfig, epochs=epochs, batch_size=batch_size, lr=lr, momentum=momentum,
        weight_decay=weight_decay, schedule=schedule, step_size=step_size, gamma=gamma, seed=seed, **runtime,
    )


def _echo_result(result, out: Path) -> None:
    typer.echo(
        f"test accuracy {result.test_acc:.4f}  params {result.results['params']:,}  "
        f"MACs {result.results['macs']:,}  -> {out / 'model.safetensors'}"
    )


@app.command()
def train(
    model: str = typer.Option("resnet20", help="Model name from the registry (see `skipswitch models`)."),
    dataset: str = typer.Option("digits", help="digits, mnist5k, cifar10, cifar100, svhn or imagefolder."),
    skip_mode: str = typer.Option("long", "--skip-mode", help="long (teacher), short, or none (no-skip baseline)."),
    out: Optional[Path] = typer.Option(None, help="Run directory [default: runs/<model>-<dataset>-<skip-mode>]."),
    epochs: int = EpochsOpt, batch_size: int = BatchOpt, lr: float = LrOpt, momentum: float = MomentumOpt,
    weight_decay: float = WdOpt, schedule: str = ScheduleOpt, step_size: int = StepOpt, gamma: float = GammaOpt,
    seed: int = SeedOpt, data_dir: Optional[Path] = DataDirOpt, quiet: bool = QuietOpt, resume: bool = ResumeOpt,
    device: str = typer.Option("auto", help="auto (CUDA when available), cpu, cuda or cuda:N."),
    amp: str = typer.Option("off", help="Mixed precision: off, bf16 or fp16 (with loss scaling)."),
    channels_last: bool = typer.Option(False, "--channels-last", help="NHWC memory format (faster convs on GPUs)."),
    compile: bool = typer.Option(False, "--compile", help="torch.compile the model."),
    sync_bn: bool = typer.Option(False, "--sync-bn", help="BatchNorm statistics over all ranks (CUDA)."),
    nproc: int = typer.Option(1, help="Data-parallel processes on this machine (launches torchrun)."),
    workers: int = typer.Option(4, help="DataLoader workers for on-disk datasets."),
    image_size: Optional[int] = typer.Option(None, "--image-size", help="imagefolder: training crop size [32]."),
):
    """Train a network from scratch and write model.safetensors and results.json."""
    from .models import check_skip_mode
    from .training import distributed
    from .training.run import train_model

    check_skip_mode(skip_mode)
    config = _train_config(epochs, batch_size, lr, momentum, weight_decay, schedule, step_size, gamma, seed,
                           device=device, amp=amp, channels_last=channels_last, compile=compile, sync_bn=sync_bn,
                           nproc=nproc, workers=workers)
    if config.nproc > 1 and not distributed.under_torchrun():
        return distributed.launch(config.nproc, config.device)
    out = out or Path("runs") / f"{model}-{dataset}-{skip_mode}"
    result = train_model(model, dataset, config=config, out_dir=out, skip_mode=skip_mode,
                         data_dir=data_dir, quiet=quiet, resume=resume, image_size=image_size)
    if distributed.is_main_process():
        _echo_result(result, out)


@app.command()
def tailor(
    teacher: Path = typer.Option(..., help="Teacher checkpoint (model.safetensors from `skipswitch train`)."),
    method: str = typer.Option(..., help="remove (Skip Remover) or shorten (Skip Shortener)."),
    model: Optional[str] = typer.Option(None, help="Student architecture; must equal the teacher's."),
    dataset: Optional[str] = typer.Option(None, help="Dataset [default: the teacher's]."),
    out: Optional[Path] = typer.Option(None, help="Run directory [default: runs/<model>-<dataset>-<method>]."),
    kd: str = typer.Option("mse", help="KD loss: mse (Tailor reference) or kl (softened, with --temperature)."),
    alpha: float = typer.Option(0.35, help="Weight of the distillation term; 1 - alpha weighs cross-entropy."),
    temperature: float = typer.Option(4.0, help="Softmax temperature for --kd kl."),
    every: int = typer.Option(3, help="Alter the next skip every K epochs."),
    order: str = typer.Option("input", help="Which skip first: input (reference), output, or another registered order."),
    epochs: int = EpochsOpt, batch_size: int = BatchOpt, lr: float = typer.Option(0.05, help="Initial learning rate."),
    momentum: float = MomentumOpt, weight_decay: float = WdOpt, schedule: str = ScheduleOpt,
    step_size: int = StepOpt, gamma: float = GammaOpt, seed: int = SeedOpt,
    data_dir: Optional[Path] = DataDirOpt, quiet: bool = QuietOpt, resume: bool = ResumeOpt,
):
    """Retrain a student from TEACHER while removing or shortening its skips under KD."""
    from .checkpoint import read_metadata
    from .tailor import run_tailor

    config = _train_config(epochs, batch_size, lr, momentum, weight_decay, schedule, step_size, gamma, seed)
    meta = read_metadata(teacher)
    name = meta.get("model", {}).get("name", "model")
    ds = dataset or meta.get("dataset", {}).get("name", "digits")
    out = out or Path("runs") / f"{name}-{ds}-{method}"
    result = run_tailor(
        teacher, method, config=config, out_dir=out, model_name=model, dataset_name=dataset, data_dir=data_dir,
        kd=kd, alpha=alpha, temperature=temperature, every=every, order=order, quiet=quiet, resume=resume,
    )
    typer.echo(f"teacher test accuracy {result.results['teacher_test_acc']:.4f}")
    _echo_result(result, out)


@app.command("eval")
def evaluate_cmd(
    checkpoint: Path = typer.Argument(..., help="A model checkpoint (.safetensors)."),
    dataset: Optional[str] = typer.Option(None, help="Dataset [default: the checkpoint's]."),
    data_dir: Optional[Path] = DataDirOpt,
    seed: Optional[int] = typer.Option(None, help="Split seed [default: the checkpoint's]."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON instead of a line of text."),
):
    """Report test accuracy, parameters and MACs of CHECKPOINT."""
    from .checkpoint import load_model
    from .data import load_dataset
    from .graph import trace
    from .training import evaluate

    model, meta = load_model(checkpoint)
    ds_meta = meta.get("dataset", {})
    ds = load_dataset(dataset or ds_meta.get("name", "digits"), data_dir,
                      seed=seed if seed is not None else ds_meta.get("seed", 0))
    loss, acc = evaluate(model, ds.test)
    summary = trace(model).to_dict()
    report = {"checkpoint": str(checkpoint), "dataset": ds.name, "test_acc": acc, "test_loss": loss,
              "params": summary["params"], "macs": summary["macs"], "skip_modes": model.skip_modes,
              "skips": summary["skips"], "long_skips": summary["long_skips"]}
    if as_json:
        typer.echo(json.dumps(report, indent=2))
    else:
        typer.echo(f"{checkpoint}: test accuracy {acc:.4f}  params {report['params']:,}  MACs {report['macs']:,}  "
                   f"skips {report['skips']} ({report['long_skips']} long)")


@app.command("models")
def models_cmd():
    """List the registered model names."""
    from .models import list_models

    typer.echo("\n".join(list_models()))


@app.command()
def demo(
    out: Path = typer.Option(Path("runs/demo"), help="Directory for every step's outputs and the report; a rerun resumes."),
    model: Optional[str] = typer.Option(None, help="Model for the Tailor steps [default: resnet20, resnet8 with --quick]."),
    dataset: str = typer.Option("digits", help="Dataset (digits is embedded: no download)."),
    epochs: Optional[int] = typer.Option(None, help="Epochs per Tailor training step [default: 30, or blocks + 3 with --quick]."),
    quick: bool = typer.Option(False, "--quick", help="Every step with small budgets (about 2 minutes on 2 cores)."),
    quiet: bool = QuietOpt,
):
    """Run the whole system on digits and write report.html / report.md with every figure."""
    from .demo import DemoSettings, run_demo
    from .models import list_models

    if epochs is not None and epochs < 1:
        raise SkipswitchError(f"--epochs must be positive, got {epochs}")
    model = model or ("resnet8" if quick else "resnet20")
    if model not in list_models():
        raise SkipswitchError(f"unknown model {model!r}; known models: {', '.join(list_models())}")
    settings = DemoSettings(out=out, model=model, dataset=dataset, quick=quick, quiet=quiet)
    # --quick: one alteration per epoch and three epochs to recover.
    settings.epochs = epochs or (settings.n_blocks + 3 if quick else 30)
    run_demo(settings)


# Serving: `skipswitch serve` and `skipswitch loadgen` are top-level commands.
from .serve import cli as serve_cli  # noqa: E402

app.command("serve")(serve_cli.serve)
app.command("loadgen")(serve_cli.loadgen)

# Sub-command groups, imported after the shared options above (their modules reuse them;
# each imports only typer at load time, so `skipswitch --help` stays fast).
from .fpga import cli as hw_cli  # noqa: E402
from .accel import cli as accel_cli  # noqa: E402
from .supernet import cli as supernet_cli  # noqa: E402

app.add_typer(hw_cli.app, name="hw")
app.add_typer(supernet_cli.app, name="supernet")
app.add_typer(accel_cli.app, name="accel")
from .federated import cli as fed_cli  # noqa: E402

app.add_typer(fed_cli.app, name="fed")


def main() -> None:
    try:
        app()
    except SkipswitchError as exc:
        typer.echo(f"error: {exc}", err=True)
        sys.exit(2)
    except KeyboardInterrupt:
        typer.echo("interrupted; rerun with --resume to continue from the last finished epoch", err=True)
        sys.exit(130)


if __name__ == "__main__":
    main()
