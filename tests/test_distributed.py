"""2-process data-parallel runs (gloo, CPU, digits) against 1-process runs.

Equality achievable: each rank's BatchNorm normalises its own shard, so the 1-process
reference runs every global batch as the same shards ("ghost batches": BN statistics
per shard, running statistics averaged, loss weighted by shard size, one backward per
shard). With that, and one thread per process, the weights are bit-identical
(``torch.equal``), not just close.
"""

import os
import sys
import time
from pathlib import Path

import pytest
import torch

import ddp_worker
from skipswitch.checkpoint import load_tensors, read_metadata
from skipswitch.errors import SkipswitchError
from skipswitch.training import Trainer, TrainConfig
from skipswitch.training.device import Runtime
from skipswitch.training.distributed import check_nproc, launch
from skipswitch.training.run import train_model

WORKER = str(Path(ddp_worker.__file__))


def ghost_batches(loss_fn, world=2):
    """``loss_fn`` over ``world`` contiguous shards of each batch, as the ranks compute it."""

    def loss(model, x, y):
        parts = torch.tensor_split(torch.arange(len(y)), world)
        # BN saves its running statistics for backward: swap in fresh tensors, never copy_.
        slots = [(m._buffers, k) for m in model.modules() for k, b in m._buffers.items() if b is not None]
        start = [bufs[k] for bufs, k in slots]
        sampler = getattr(loss_fn, "generator", None)  # the supernet: the same subnets on every shard
        sampler_state = sampler.get_state() if sampler is not None else None
        shard_losses, logits, ends = [], [], []
        for part in parts:
            for (bufs, k), s in zip(slots, start):
                bufs[k] = s.clone()
            if sampler is not None:
                sampler.set_state(sampler_state)
            part_loss, part_logits = loss_fn(model, x[part], y[part])
            shard_losses.append(part_loss * (len(part) / len(y)))
            logits.append(part_logits)
            ends.append([bufs[k] for bufs, k in slots])
        for i, (bufs, k) in enumerate(slots):  # counters (num_batches_tracked) count steps, not shards
            bufs[k] = sum(e[i] for e in ends) / world if bufs[k].is_floating_point() else ends[-1][i]
        total = sum(shard_losses)
        total.shard_losses = shard_losses  # backward per shard: see one_process_ghost
        return total, torch.cat(logits)

    return loss


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """The 2-process runs (two launches of tests/ddp_worker.py) and 1-process references."""
    out = tmp_path_factory.mktemp("ddp")
    teacher = out / "teacher"
    train_model("resnet8", config=ddp_worker.TRAIN, out_dir=teacher, quiet=True)
    start = time.perf_counter()
    with pytest.raises(SkipswitchError) as died:
        launch(2, "cpu", [WORKER, "die", str(out)])
    died_after = time.perf_counter() - start
    died_tmp = sorted(p.name for p in (out / "died").iterdir())
    launch(2, "cpu", [WORKER, "runs", str(out), str(teacher / "model.safetensors")])
    return {"out": out, "teacher": teacher / "model.safetensors", "died": died, "died_after": died_after,
            "died_files": died_tmp}


@pytest.fixture
def one_process_ghost(monkeypatch):
    """Trainers in this process run each batch as the 2 ranks' shards, on one thread.
    One backward per shard: a parameter used by several forwards (the supernet's
    subnets) gets its contributions summed per shard first, then across shards, in the
    order the ranks and their all-reduce sum them."""
    original = Trainer.__init__

    def init(self, *args, loss_fn=None, **kwargs):
        from skipswitch.training import cross_entropy_loss

        original(self, *args, loss_fn=ghost_batches(loss_fn or cross_entropy_loss), **kwargs)

    monkeypatch.setattr(Trainer, "__init__", init)

    def step(self, loss, optimizer, model, weight=1.0):
        for shard_loss in loss.shard_losses:
            shard_loss.backward()
        optimizer.step()

    monkeypatch.setattr(Runtime, "step", step)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def weights(run_dir: Path) -> dict[str, torch.Tensor]:
    tensors, meta = load_tensors(run_dir / "resume.safetensors")
    assert meta["world_size"] in (1, 2)
    return {k: v for k, v in tensors.items() if k.startswith("model.")}


def assert_same(a: dict, b: dict) -> None:
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), (k, float((a[k].double() - b[k].double()).abs().max()))


def test_a_dying_rank_stops_the_run_with_one_line_and_whole_files(runs):
    message = str(runs["died"].value)
    assert "\n" not in message and "of 2 failed with exit code" in message
    assert runs["died_after"] < 120  # the agent stops the surviving rank (SIGTERM) at once
    # Killed in epoch 2: the epoch-1 state is whole, nothing half-written remains.
    assert runs["died_files"] == ["results.json", "resume.safetensors"] or runs["died_files"] == ["resume.safetensors"]


def test_two_processes_equal_one_process_with_the_same_global_batch(runs, one_process_ghost, tmp_path):
    train_model("resnet8", config=ddp_worker.TRAIN, out_dir=tmp_path, quiet=True)
    assert_same(weights(runs["out"] / "train"), weights(tmp_path))
    assert read_metadata(runs["out"] / "train" / "resume.safetensors")["world_size"] == 2


def test_killed_two_process_run_resumes_to_the_uninterrupted_weights(runs):
    assert_same(weights(runs["out"] / "died"), weights(runs["out"] / "train"))


def test_tailor_two_processes_across_alterations(runs, one_process_ghost, tmp_path):
    from skipswitch.tailor import run_tailor

    run_tailor(runs["teacher"], "remove", config=ddp_worker.TAILOR, out_dir=tmp_path, every=1, quiet=True)
    assert_same(weights(runs["out"] / "tailor"), weights(tmp_path))
    assert_same(weights(runs["out"] / "tailor-interrupted"), weights(runs["out"] / "tailor"))


def test_supernet_sandwich_two_processes(runs, one_process_ghost, tmp_path):
    from skipswitch.supernet.train import train_supernet

    train_supernet(config=ddp_worker.SUPERNET, out_dir=tmp_path, space_args=ddp_worker.SPACE, quiet=True)
    assert_same(weights(runs["out"] / "supernet"), weights(tmp_path))
    assert_same(weights(runs["out"] / "supernet-interrupted"), weights(runs["out"] / "supernet"))


def test_resume_with_another_world_size_is_refused(runs, tmp_path):
    with pytest.raises(SkipswitchError, match="it ran on 2 processes, this run has 1"):
        train_model("resnet8", config=ddp_worker.TRAIN, out_dir=runs["out"] / "train", quiet=True, resume=True)


def test_nproc_beyond_this_machine_is_refused():
    with pytest.raises(SkipswitchError, match=f"--nproc {os.cpu_count() + 1} exceeds the {os.cpu_count()} CPU cores"):
        check_nproc(os.cpu_count() + 1, "cpu")
