"""The ``skipswitch`` command line: thin commands over the jobs (skipswitch.jobs).

Each command's options are its job config's fields (cli.options); every user error is a
``SkipswitchError``, printed as one ``error:`` line with exit code 2; the jobs import the heavy
libraries when they run, so ``--help`` stays instant.
"""

from __future__ import annotations

import signal
import sys
from pathlib import Path
from typing import Optional

import click
import typer

from pydantic import Field

from ..errors import SkipswitchError
from ..io import OutDir
from ..jobs.base import JobConfig
from ..jobs.training import EvalJob, TailorJob, TrainJob
from ..training.config import MAX_EPOCHS
from .options import options_from

app = typer.Typer(
    name="skipswitch",
    help="Resource-efficient DNN inference: Tailor skip alteration and FastSwitch weight-sharing supernets.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)

# Help of TrainConfig's fields (the training library's config carries no UI text).
TRAIN_HELP = {
    "epochs": "Training epochs (> 0).", "batch_size": "Mini-batch size (> 0).", "lr": "Initial learning rate.",
    "momentum": "SGD momentum (Nesterov).", "weight_decay": "L2 weight decay.",
    "schedule": "Learning-rate schedule: cosine or step.", "step_size": "Epochs per decay with --schedule step.",
    "gamma": "Decay factor with --schedule step.", "seed": "Seed for weights, splits, order and augmentation.",
}
TRAIN_EXCLUDE = ("nesterov", "warmup_epochs")
QUIET = {"quiet": ("--quiet", "-q")}
EPOCH_RESUME = "interrupted; rerun with --resume to continue from the last finished epoch"


def _echo_result(result, out: Path) -> None:
    typer.echo(f"test accuracy {result.test_acc:.4f}  params {result.params:,}  MACs {result.macs:,}  "
               f"-> {out / 'model.safetensors'}")


@app.command()
@options_from(TrainJob, exclude=TRAIN_EXCLUDE, decls=QUIET, help=TRAIN_HELP, interrupted=EPOCH_RESUME)
def train(job: TrainJob):
    """Train a network from scratch and write model.safetensors and results.json."""
    from ..jobs.training import train
    from ..training.distributed import is_main_process

    result = train(job)
    if is_main_process():
        _echo_result(result, job.run_dir())


@app.command()
@options_from(TailorJob, exclude=TRAIN_EXCLUDE, decls=QUIET, help=TRAIN_HELP, interrupted=EPOCH_RESUME)
def tailor(job: TailorJob):
    """Retrain a student from TEACHER while removing or shortening its skips under KD."""
    from ..jobs.training import tailor, tailor_run_dir

    from ..training.distributed import is_main_process

    result = tailor(job)
    if is_main_process():
        typer.echo(f"teacher test accuracy {result.teacher_test_acc:.4f}")
        _echo_result(result, tailor_run_dir(job))


@app.command("eval")
@options_from(EvalJob, exclude=("quiet", "resume"), arguments=("checkpoint",))
def evaluate_cmd(job: EvalJob, as_json: bool = typer.Option(False, "--json", help="Print JSON instead of a line of text.")):
    """Report test accuracy, parameters and MACs of CHECKPOINT."""
    from ..jobs.training import evaluate

    r = evaluate(job)
    if as_json:
        typer.echo(r.to_json())
    else:
        typer.echo(f"{job.checkpoint}: test accuracy {r.test_acc:.4f}  params {r.params:,}  MACs {r.macs:,}  "
                   f"skips {r.skips} ({r.long_skips} long)")


@app.command("models")
def models_cmd():
    """List the registered model names."""
    from ..models import list_models

    typer.echo("\n".join(list_models()))


class DemoOptions(JobConfig):
    out: OutDir = Field(Path("runs/demo"), description="Directory for every step's outputs and the report; a rerun resumes.")
    model: Optional[str] = Field(None, description="Model for the Tailor steps [default: resnet20, resnet8 with --quick].")
    dataset: str = Field("digits", description="Dataset (digits is embedded: no download).")
    epochs: Optional[int] = Field(None, ge=1, le=MAX_EPOCHS,
                                  description="Epochs per Tailor training step [default: 30, or blocks + 3 with --quick].")
    quick: bool = Field(False, description="Every step with small budgets (about 2 minutes on 2 cores).")
    quiet: bool = Field(False, description="No progress bars.")


@app.command()
@options_from(DemoOptions, decls=QUIET,
              interrupted="interrupted; rerun the same command to resume from the unfinished step")
def demo(job: DemoOptions):
    """Run the whole system on digits and write report.html / report.md with every figure."""
    from ..demo import DemoSettings, run_demo
    from ..models import list_models

    model = job.model or ("resnet8" if job.quick else "resnet20")
    if model not in list_models():
        raise SkipswitchError(f"unknown model {model!r}; known models: {', '.join(list_models())}")
    settings = DemoSettings(out=job.out, model=model, dataset=job.dataset, quick=job.quick, quiet=job.quiet)
    # --quick: one alteration per epoch and three epochs to recover.
    settings.epochs = job.epochs or (settings.n_blocks + 3 if job.quick else 30)
    run_demo(settings)


# Sub-command groups, imported after `app` (their modules import only typer, pydantic and the job configs).
from . import accel, fed, hw, serve, supernet  # noqa: E402

app.command("serve")(serve.serve)
app.command("loadgen")(serve.loadgen)
app.add_typer(hw.app, name="hw")
app.add_typer(supernet.app, name="supernet")
app.add_typer(accel.app, name="accel")
app.add_typer(fed.app, name="fed")


def _interrupt(sig, frame) -> None:
    raise KeyboardInterrupt


def main() -> None:
    # Progress lines reach a pipe or a log file as they happen, not when the run ends.
    for stream in (sys.stdout, sys.stderr):
        if not stream.isatty() and hasattr(stream, "reconfigure"):
            stream.reconfigure(line_buffering=True)
    # SIGTERM stops a command as Ctrl-C does: it says where it stopped and how to resume
    # (serve and fed run install their own, draining, handlers while they run).
    previous = signal.signal(signal.SIGTERM, _interrupt)
    try:
        _main()
    finally:
        signal.signal(signal.SIGTERM, previous)
        _forget_caught_interrupts()


def _forget_caught_interrupts() -> None:
    """CPython (3.8+) ends a process by SIGINT when its flag for an unhandled Ctrl-C is set, and
    ``exec`` of a string sets that flag whenever a KeyboardInterrupt leaves it, even one caught later:
    our SIGTERM handler's KeyboardInterrupt landing while, say, an import builds a dataclass from
    source made the demo exit by SIGINT (rc -2) after it had printed its line and chosen 130. A string
    ``exec`` that completes clears the flag; a KeyboardInterrupt that really leaves main() sets it again."""
    exec("")


def _main() -> None:
    try:
        code = app(standalone_mode=False)  # click's usage errors come here, printed as our one line
        sys.exit(code if isinstance(code, int) else 0)
    except click.exceptions.NoArgsIsHelpError as exc:
        exc.ctx and typer.echo(exc.ctx.get_help())
        sys.exit(0)
    except click.UsageError as exc:
        typer.echo(f"error: {' '.join(exc.format_message().split())}"
                   f"{f' (see {exc.ctx.command_path} --help)' if exc.ctx else ''}", err=True)
        sys.exit(2)
    except click.ClickException as exc:  # e.g. click.FileError
        typer.echo(f"error: {' '.join(exc.format_message().split())}", err=True)
        sys.exit(exc.exit_code or 1)
    except (click.Abort, KeyboardInterrupt):
        typer.echo("interrupted", err=True)
        sys.exit(130)
    except SkipswitchError as exc:
        typer.echo(f"error: {exc}", err=True)
        sys.exit(2)


if __name__ == "__main__":
    main()
