"""One rank of the 2-process runs in test_distributed.py, started by torchrun's agent.

    ddp_worker.py die OUT           rank 1 exits mid-epoch 2 of a `train` run
    ddp_worker.py runs OUT TEACHER  train (through the CLI), the killed run resumed,
                                    tailor and supernet train, each also interrupted
                                    mid-epoch on every rank and resumed
"""

import os
import sys
from pathlib import Path

import torch

import skipswitch.training.trainer as trainer_module
from skipswitch.cli import main as cli_main
from skipswitch.supernet.train import train_supernet
from skipswitch.tailor import run_tailor
from skipswitch.training import TrainConfig
from skipswitch.training.run import train_model

TRAIN = TrainConfig(epochs=2, batch_size=128, lr=0.05)
TAILOR = TrainConfig(epochs=4, batch_size=128, lr=0.02)
SUPERNET = TrainConfig(epochs=2, batch_size=128, lr=0.05)
SPACE = {"base_width": 8, "max_depth": 2}
_batches = trainer_module.iterate_batches


def stop_at(epoch: int, step: int, action) -> None:
    """Make the trainer's batch iterator call ``action`` before step ``step`` of ``epoch``."""

    def batches(*args, **kwargs):
        for i, batch in enumerate(_batches(*args, **kwargs)):
            if kwargs.get("epoch") == epoch and i == step:
                trainer_module.iterate_batches = _batches
                action()
            yield batch

    trainer_module.iterate_batches = batches


def interrupt():
    raise KeyboardInterrupt


def interrupted_then_resumed(run, out: Path, epoch: int, step: int) -> None:
    stop_at(epoch, step, interrupt)
    try:
        run(out, False)
    except KeyboardInterrupt:
        pass
    else:
        raise AssertionError("the interruption did not happen")
    run(out, True)


def main(scenario: str, out: Path, teacher: str | None = None) -> None:
    torch.set_num_threads(1)  # as the 1-process reference: kernels sum in the same order
    rank = int(os.environ["RANK"])
    train = lambda o, resume: train_model("resnet8", config=TRAIN, out_dir=o, quiet=True, resume=resume)  # noqa: E731
    if scenario == "die":
        stop_at(1, 3, lambda: os._exit(3) if rank == 1 else None)
        train(out / "died", False)
        return
    sys.argv = ["skipswitch", "train", "--model", "resnet8", "--epochs", "2", "--batch-size", "128", "--lr", "0.05",
                "--quiet", "--nproc", "2", "--out", str(out / "train")]
    try:
        cli_main()
    except SystemExit as exc:
        assert not exc.code, exc.code
    train(out / "died", True)
    tailor = lambda o, resume: run_tailor(teacher, "remove", config=TAILOR, out_dir=o, every=1,  # noqa: E731
                                          quiet=True, resume=resume)
    tailor(out / "tailor", False)
    interrupted_then_resumed(tailor, out / "tailor-interrupted", 2, 4)
    supernet = lambda o, resume: train_supernet(config=SUPERNET, out_dir=o, space_args=SPACE,  # noqa: E731
                                                quiet=True, resume=resume)
    supernet(out / "supernet", False)
    interrupted_then_resumed(supernet, out / "supernet-interrupted", 1, 2)


if __name__ == "__main__":
    main(sys.argv[1], Path(sys.argv[2]), *sys.argv[3:])
