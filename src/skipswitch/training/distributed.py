"""Data-parallel training across processes started by torchrun (``torch.distributed``).

torchrun sets ``RANK``/``WORLD_SIZE``/``LOCAL_RANK`` and the rendezvous; the same code
runs one machine (``--standalone``) or several (``--nnodes --rdzv-backend c10d``).
Gloo on CPUs, NCCL on GPUs.

Every rank builds the same model from the same seed and sees the same global batch
order (data/datasets.py shards each global batch), so the data order depends only on
(seed, epoch) whatever the number of ranks. Gradients are averaged with one all-reduce
per step, weighted by each shard's share of the global batch. We average gradients
ourselves rather than wrapping the model in ``DistributedDataParallel``: Tailor adds
parameters and unused skips between epochs, and the supernet runs several forwards
(subnets) per backward, both of which DDP's reducer only allows by re-wrapping or
``find_unused_parameters`` graph walks. BatchNorm statistics are per shard (as in
DDP without SyncBN); running statistics are averaged over ranks with the gradients
at every step, so every rank, and the checkpoint, holds the same state.
"""

from __future__ import annotations

import datetime as dt
import os
import sys
import uuid
from dataclasses import dataclass

import torch
from torch import distributed as dist
from torch import nn

from ..errors import SkipswitchError

# A rank that dies leaves the others blocked in a collective; gloo notices a closed
# peer at once, this bounds the other cases (NCCL, a hung peer).
COLLECTIVE_TIMEOUT = dt.timedelta(seconds=int(os.environ.get("SKIPSWITCH_DIST_TIMEOUT", "300")))


def is_main_process() -> bool:
    return os.environ.get("RANK", "0") == "0"


def under_torchrun() -> bool:
    return "TORCHELASTIC_RUN_ID" in os.environ or "LOCAL_RANK" in os.environ


@dataclass(frozen=True)
class ProcessGroup:
    rank: int = 0
    world: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def shard(self) -> tuple[int, int]:
        return self.rank, self.world

    def sum(self, values: list[float]) -> list[float]:
        """Element-wise sum of ``values`` over ranks (metrics: loss sums, counts)."""
        if self.world == 1:
            return values
        t = torch.tensor(values, dtype=torch.float64, device=_collective_device())
        dist.all_reduce(t)
        return t.tolist()

    def reduce_step(self, params: list[nn.Parameter], model: nn.Module) -> None:
        """After a backward: gradients <- their sum over ranks (each rank's loss was
        weighted by its share of the global batch) and floating-point buffers (BN running
        statistics) <- their mean, in one flat all-reduce. Every rank runs the same graph,
        so the set of parameters with gradients is the same everywhere."""
        if self.world == 1:
            return
        grads = [p.grad for p in params if p.grad is not None]
        buffers = [b for b in model.buffers() if b.is_floating_point()]
        tensors = grads + buffers
        flat = torch.cat([t.reshape(-1) for t in tensors])
        dist.all_reduce(flat)
        for i, (t, chunk) in enumerate(zip(tensors, flat.split([t.numel() for t in tensors]))):
            t.copy_(chunk.view_as(t) if i < len(grads) else chunk.view_as(t) / self.world)


SINGLE = ProcessGroup()


def _collective_device() -> torch.device:
    return torch.device("cuda", torch.cuda.current_device()) if dist.get_backend() == "nccl" else torch.device("cpu")


def process_group(device_type: str, expected_world: int | None = None) -> ProcessGroup:
    """The process group torchrun set up in the environment (joined on first call), or
    ``SINGLE`` outside torchrun."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world == 1:
        return SINGLE
    local_world = int(os.environ.get("LOCAL_WORLD_SIZE", world))
    if expected_world not in (None, 1, local_world):
        raise SkipswitchError(f"--nproc {expected_world} but torchrun started {local_world} processes per node")
    if not dist.is_initialized():
        backend = "nccl" if device_type == "cuda" else "gloo"
        if backend == "nccl":
            torch.cuda.set_device(int(os.environ["LOCAL_RANK"]))
        dist.init_process_group(backend, timeout=COLLECTIVE_TIMEOUT)
    return ProcessGroup(dist.get_rank(), dist.get_world_size(), int(os.environ.get("LOCAL_RANK", "0")))


def check_nproc(nproc: int, device: str) -> None:
    """``--nproc`` must not exceed the GPUs (CUDA) or CPU cores (CPU) of this machine."""
    wants_cuda = device.startswith("cuda") or (device == "auto" and torch.cuda.is_available())
    available, what = (torch.cuda.device_count(), "CUDA devices") if wants_cuda else (os.cpu_count() or 1, "CPU cores")
    if nproc > available:
        raise SkipswitchError(f"--nproc {nproc} exceeds the {available} {what} on this machine")


def launch(nproc: int, device: str, args: list[str] | None = None) -> None:
    """Run ``python ARGS`` (default: ``-m skipswitch`` and this command's arguments) in
    ``nproc`` processes under torchrun's elastic agent on this machine (what ``torchrun
    --standalone --nproc-per-node N`` does). A rank that fails stops the others (SIGTERM);
    that is one error line naming the rank."""
    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError
    from torch.distributed.launcher.api import LaunchConfig, elastic_launch

    check_nproc(nproc, device)
    config = LaunchConfig(min_nodes=1, max_nodes=1, nproc_per_node=nproc, run_id=str(uuid.uuid4()),
                          rdzv_backend="c10d", rdzv_endpoint="localhost:0", max_restarts=0)
    args = ["-m", "skipswitch", *sys.argv[1:]] if args is None else args
    # torchrun's CLI sets 1 thread per process; sharing the cores keeps more CPU rows useful.
    os.environ.setdefault("OMP_NUM_THREADS", str(max(1, (os.cpu_count() or 1) // nproc)))
    try:
        elastic_launch(config, sys.executable)(*args)
    except ChildFailedError as exc:
        rank, failure = exc.get_first_failure()
        raise SkipswitchError(f"rank {rank} of {nproc} failed with exit code {failure.exitcode}; "
                              "the other ranks were stopped (see the log above)") from None
