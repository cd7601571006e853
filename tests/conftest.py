import os
import sys
from pathlib import Path

import pytest
import torch

from skipswitch.cli import main as cli_main
from skipswitch.data import load_dataset
from skipswitch.training import TrainConfig

if os.environ.get("PYTEST_XDIST_WORKER"):
    # One torch thread per xdist worker: two workers with two OpenMP threads each on two
    # cores spin against each other and run several times slower.
    torch.set_num_threads(1)


@pytest.fixture(scope="session")
def digits():
    return load_dataset("digits", seed=0)


@pytest.fixture
def tiny_config():
    return TrainConfig(epochs=2, batch_size=128, lr=0.05, seed=0)


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


def run_cli(argv, capsys):
    """Run the real CLI entry point in-process; return (exit code, stdout, stderr)."""
    old = sys.argv
    sys.argv = ["skipswitch", *map(str, argv)]
    try:
        cli_main()
        code = 0
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    finally:
        sys.argv = old
    out = capsys.readouterr()
    return code, out.out, out.err


@pytest.fixture
def cli(capsys):
    return lambda *argv: run_cli(argv, capsys)


@pytest.fixture
def teacher_ckpt(tmp_path_factory):
    """A resnet8 teacher trained 2 epochs on digits (shared per test session would leak state; it is cheap)."""
    from skipswitch.training.run import train_model

    out = tmp_path_factory.mktemp("teacher")
    train_model("resnet8", "digits", config=TrainConfig(epochs=2, batch_size=128, lr=0.05), out_dir=out, quiet=True)
    return Path(out) / "model.safetensors"
