"""Training throughput at scale -> docs/results/train_scaling.md (raw: train_scaling.json).

images/s of the skipswitch Trainer against a bare PyTorch loop with the same settings
(device, AMP, channels-last, batch) for ResNet-20 at 32x32 and ResNet-50 at 224x224 on
synthetic tensors (random images and labels: the data path is not what is measured).
Each figure: one untimed pass over ``steps`` batches (warm-up: allocator, kernels,
autotuning), then one timed pass over the same batches.

* CPU (default): 1 process against 2 processes (torchrun agent, gloo). The 2-process bare
  loop is what a PyTorch user writes: the model in ``DistributedDataParallel``.
* GPU (``--gpu``): 1 process, AMP off/bf16/fp16 x channels-last off/on, then the serving
  engine's in-place and budget modes (pinned host memory, asynchronous copies) switch
  latency on CUDA (benchmarks/serving.py's measurement). Its section replaces the
  previous GPU section; the CPU rows stay.

    PYTHONPATH=src python benchmarks/train_scaling.py            # CPU rows
    PYTHONPATH=src python benchmarks/train_scaling.py --gpu      # GPU rows, a few minutes
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from skipswitch.checkpoint import atomic_write_json, atomic_write_text  # noqa: E402
from skipswitch.data import Dataset, Split, iterate_batches  # noqa: E402
from skipswitch.models import create_model  # noqa: E402
from skipswitch.training import TrainConfig, Trainer, make_optimizer  # noqa: E402
from skipswitch.training.device import Runtime  # noqa: E402
from skipswitch.training.progress import TrainProgress  # noqa: E402

# (model, input size, classes, CPU batch, CPU steps, GPU batch, GPU steps)
WORKLOADS = {
    "resnet20": (32, 10, 32, 8, 256, 40),
    "resnet50": (224, 1000, 4, 2, 64, 20),
}
RESULTS = ROOT / "docs" / "results" / "train_scaling.json"
GPU_COMMAND = "PYTHONPATH=src python benchmarks/train_scaling.py --gpu"


def synthetic(size: int, classes: int, n: int) -> Dataset:
    g = torch.Generator().manual_seed(0)
    split = Split(torch.randn(n, 3, size, size, generator=g), torch.randint(classes, (n,), generator=g))
    return Dataset("synthetic", split, split, split, classes, "none", 0)


def bare(model, dataset: Dataset, config: TrainConfig) -> tuple[int, float]:
    """A bare PyTorch loop: device, autocast, GradScaler, channels-last; DDP across ranks."""
    runtime = Runtime(config)  # only for the device and the process group, as a user would set them up
    model = model.to(runtime.device, memory_format=runtime.memory_format)
    forward = model
    if runtime.group.world > 1:
        forward = torch.nn.parallel.DistributedDataParallel(model)
    optimizer = make_optimizer(model, config)
    scaler = torch.amp.GradScaler(runtime.device.type, enabled=config.amp == "fp16")
    dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(config.amp, torch.bfloat16)

    def one_pass(epoch: int) -> int:
        seen = 0
        for x, y in iterate_batches(dataset.train, config.batch_size, shuffle=True, seed=0, epoch=epoch,
                                    shard=runtime.group.shard):
            x = x.to(runtime.device, non_blocking=True, memory_format=runtime.memory_format)
            y = y.to(runtime.device, non_blocking=True)
            with torch.autocast(runtime.device.type, dtype=dtype, enabled=config.amp != "off"):
                loss = torch.nn.functional.cross_entropy(forward(x), y)
            optimizer.zero_grad(set_to_none=True)
            scaler.scale(loss).backward()
            scaler.step(optimizer)
            scaler.update()
            seen += len(y)
        return seen

    return _timed(one_pass, runtime)


def _timed(one_pass, runtime: Runtime) -> tuple[int, float]:
    one_pass(0)  # warm-up
    _sync(runtime)
    start = time.perf_counter()
    seen = one_pass(1)
    _sync(runtime)
    elapsed = time.perf_counter() - start
    return seen, elapsed


def _sync(runtime: Runtime) -> None:
    if runtime.device.type == "cuda":
        torch.cuda.synchronize(runtime.device)
    if runtime.group.world > 1:
        torch.distributed.barrier()


def measure(name: str, loop: str, device: str, amp: str, channels_last: bool) -> float:
    size, classes, cpu_batch, cpu_steps, gpu_batch, gpu_steps = WORKLOADS[name]
    batch, steps = (gpu_batch, gpu_steps) if device == "cuda" else (cpu_batch, cpu_steps)
    dataset = synthetic(size, classes, batch * steps)
    config = TrainConfig(epochs=2, batch_size=batch, device=device, amp=amp, channels_last=channels_last)
    torch.manual_seed(0)
    model = create_model(name, num_classes=classes, in_channels=3, input_size=size)
    if loop == "bare":
        seen, elapsed = bare(model, dataset, config)
    else:
        with tempfile.TemporaryDirectory() as tmp:
            t = Trainer(model, dataset, config, tmp, quiet=True)
            with TrainProgress("bench", 1, enabled=False) as bar:
                t._train_epoch(0, bar)
                _sync(t.runtime)
                start = time.perf_counter()
                t._train_epoch(1, bar)
                _sync(t.runtime)
                seen, elapsed = len(dataset.train), time.perf_counter() - start
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if loop == "bare" and world > 1:
        seen *= world  # each rank counted its shard
    return seen / elapsed


CPU_REPEATS = 3  # bare and Trainer interleaved, so load drifts hit both alike; the table gives medians


def cpu_rows(nprocs: list[int]) -> list[dict]:
    from skipswitch.training.distributed import launch

    rows = []
    for name in WORKLOADS:
        for nproc in nprocs:
            for loop in ("bare", "trainer") * CPU_REPEATS:
                if nproc == 1:
                    value = measure(name, loop, "cpu", "off", False)
                else:
                    with tempfile.TemporaryDirectory() as tmp:
                        out = Path(tmp) / "r.json"
                        launch(nproc, "cpu", [__file__, "--worker", name, loop, str(out)])
                        value = json.loads(out.read_text())
                rows.append({"model": name, "processes": nproc, "loop": loop, "images_per_s": value,
                             "threads_per_process": torch.get_num_threads() if nproc == 1 else 1,
                             "loadavg": os.getloadavg()})
                print(rows[-1], flush=True)
    return rows


def gpu_rows() -> dict:
    rows = []
    for name in WORKLOADS:
        for amp in ("off", "bf16", "fp16"):
            for channels_last in (False, True):
                for loop in ("bare", "trainer"):
                    rows.append({"model": name, "amp": amp, "channels_last": channels_last, "loop": loop,
                                 "images_per_s": measure(name, loop, "cuda", amp, channels_last)})
                    print(rows[-1], flush=True)
    sys.path.insert(0, str(ROOT / "benchmarks"))
    from serving import prepare, switch_latency

    with tempfile.TemporaryDirectory() as tmp:
        ckpt, pareto = prepare(Path(tmp), epochs=2, base_width=32)
        switch = switch_latency(ckpt, pareto, 3, "cuda")
    return {"device": torch.cuda.get_device_name(0), "torch": torch.__version__, "rows": rows,
            "switch": {m: switch[m] for m in ("inplace", "budget") if m in switch}}


def render(results: dict) -> str:
    cpu = results.get("cpu")
    lines = ["# Training throughput at scale: Trainer against a bare PyTorch loop", "",
             f"- Command: `PYTHONPATH=src python benchmarks/train_scaling.py` (CPU), `{GPU_COMMAND}` (GPU); "
             "raw figures in train_scaling.json.",
             "- Workload: synthetic tensors (random images, random labels), SGD with Nesterov momentum; one untimed "
             "pass over the batches, then one timed pass over the same batches. Figures are images/s of the whole "
             "job (all processes)."]
    if cpu:
        lines += ["", "## CPU", "",
                  f"- Date: {cpu['date']}; machine: {cpu['machine']}; torch {cpu['torch']}.",
                  f"- Load average (1/5/15 min) before: {cpu['load_before']}, after: {cpu['load_after']}. A "
                  "load average above 2 would mean other jobs shared the 2 cores; 2 processes on 2 cores (one thread "
                  "each, against two threads in the 1-process rows) cannot show a 2x scaling.",
                  f"- ResNet-20: batch {WORKLOADS['resnet20'][2]}, {WORKLOADS['resnet20'][3]} steps; ResNet-50: batch "
                  f"{WORKLOADS['resnet50'][2]}, {WORKLOADS['resnet50'][3]} steps (a ResNet-50 step at 224x224 takes "
                  f"seconds on these cores); each figure the median of {CPU_REPEATS} repetitions, bare and Trainer "
                  "interleaved. 2 processes: one thread each, gloo; the bare loop wraps the model in "
                  "DistributedDataParallel, the Trainer all-reduces the gradients once per step (training/distributed.py).",
                  "", "| model | processes | bare loop images/s | Trainer images/s | Trainer / bare |", "|---|---|---|---|---|"]
        table: dict = {}
        for r in cpu["rows"]:
            table.setdefault((r["model"], r["processes"]), {}).setdefault(r["loop"], []).append(r["images_per_s"])
        table = {k: {loop: statistics.median(vals) for loop, vals in v.items()} for k, v in table.items()}
        lines_after = ["", "- With several processes the Trainer's all-reduce (gradients and BatchNorm buffers, one flat "
                       "tensor) runs after the backward pass, where DDP overlaps bucketed all-reduces with it: a cost "
                       "the multi-process rows can show, within the spread of the repetitions (train_scaling.json)."]
        for (model, procs), v in table.items():
            lines.append(f"| {model} | {procs} | {v['bare']:.3g} | {v['trainer']:.3g} | {v['trainer'] / v['bare']:.3f} |")
        lines += lines_after
    lines += ["", "## GPU", ""]
    gpu = results.get("gpu")
    if not gpu:
        lines += ["GPU: not run (no GPU machine was available). One command runs every GPU row below in a few "
                  f"minutes and fills this section: `{GPU_COMMAND}`. Rows it measures: ResNet-20 at 32x32 "
                  "(batch 256) and ResNet-50 at 224x224 (batch 64), AMP off/bf16/fp16 x channels-last off/on, "
                  "bare loop and Trainer (target: Trainer >= 0.95x the bare loop; AMP speed-up against AMP off); "
                  "then the serving engine's in-place and budget (pinned host memory, asynchronous copies) switch "
                  "latency on CUDA."]
    else:
        lines += [f"- Date: {gpu['date']}; device: {gpu['device']}; torch {gpu['torch']}.", "",
                  "| model | AMP | channels-last | bare images/s | Trainer images/s | Trainer / bare | AMP speed-up (Trainer) |",
                  "|---|---|---|---|---|---|---|"]
        table = {}
        for r in gpu["rows"]:
            table.setdefault((r["model"], r["amp"], r["channels_last"]), {})[r["loop"]] = r["images_per_s"]
        for (model, amp, cl), v in table.items():
            base = table[(model, "off", cl)]["trainer"]
            lines.append(f"| {model} | {amp} | {'on' if cl else 'off'} | {v['bare']:,.0f} | {v['trainer']:,.0f} | "
                         f"{v['trainer'] / v['bare']:.3f} | {v['trainer'] / base:.2f}x |")
        worst = min(v["trainer"] / v["bare"] for v in table.values())
        lines += ["", f"- Lowest Trainer / bare ratio: {worst:.3f} (target >= 0.95: {'met' if worst >= 0.95 else 'MISSED'}).",
                  "", "| serving mode (CUDA) | median switch ms | switch + first forward ms | resident bytes |",
                  "|---|---|---|---|"]
        for mode, s in gpu["switch"].items():
            lines.append(f"| {mode} | {s['switch_s'] * 1e3:.3f} | {s['switch_plus_forward_s'] * 1e3:.3f} | "
                         f"{s['resident_bytes']:,} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--gpu", action="store_true", help="measure the GPU rows (needs CUDA)")
    parser.add_argument("--nproc", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--render", action="store_true", help="only rewrite the .md from the .json")
    parser.add_argument("--worker", nargs=3, metavar=("MODEL", "LOOP", "OUT"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:  # one rank of a multi-process CPU row, under the torchrun agent
        name, loop, out = args.worker
        value = measure(name, loop, "cpu", "off", False)
        if os.environ.get("RANK") == "0":
            atomic_write_json(out, value)
        return
    results = json.loads(RESULTS.read_text()) if RESULTS.exists() else {}
    date = datetime.now(timezone.utc).date().isoformat()
    if args.render:
        pass
    elif args.gpu:
        results["gpu"] = {"date": date, **gpu_rows()}
    else:
        before = os.getloadavg()
        rows = cpu_rows(args.nproc)
        results["cpu"] = {"date": date, "machine": f"{platform.machine()}, {os.cpu_count()} CPU cores",
                          "torch": torch.__version__, "rows": rows,
                          "load_before": ", ".join(f"{x:.1f}" for x in before),
                          "load_after": ", ".join(f"{x:.1f}" for x in os.getloadavg())}
    atomic_write_json(RESULTS, results)
    atomic_write_text(RESULTS.with_suffix(".md"), render(results))
    print(render(results))


if __name__ == "__main__":
    main()
