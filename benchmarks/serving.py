"""Serving benchmark -> docs/results/serving.md.

1. Switch latency of in-place activation vs the temporal (reload from disk) and spatial
   (all materialised) baselines and the budget (persistent + dynamic buffer) mode, with
   the resident weight bytes of each, on the Pareto set of a trained supernet.
2. SLO attainment and mean served accuracy under a bursty open-loop trace over HTTP
   (loopback) for fixed-largest, fixed-smallest, temporal switching with SlackFit and
   in-place switching with SlackFit.

Every figure is the median of ``--runs`` runs. The supernet is trained (sandwich rule)
and searched (NSGA-II) once and cached under ``--work``.

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


def prepare(work: Path, epochs: int, base_width: int) -> tuple[Path, Path]:
    """Train + search once; returns (supernet checkpoint with Pareto BN stats, pareto.json)."""
    from skipswitch.data import load_dataset
    from skipswitch.supernet.io import load_supernet, save_supernet
    from skipswitch.supernet.search import search
    from skipswitch.supernet.train import train_supernet
    from skipswitch.training import TrainConfig, validated

    ckpt, pareto = work / "search" / "supernet.safetensors", work / "search" / "pareto.json"
    if ckpt.is_file() and pareto.is_file():
        return ckpt, pareto
    run = work / "train"
    if not (run / "supernet.safetensors").is_file():
        config = validated(TrainConfig, epochs=epochs, batch_size=64, lr=0.1, seed=0)
        train_supernet("resnet-cifar", "digits", config=config, out_dir=run, space_args={"base_width": base_width},
                       quiet=True)
    supernet, meta = load_supernet(run / "supernet.safetensors")
    dataset = load_dataset("digits", seed=0)
    supernet.bn_stats.clear()
    supernet.bn_configs.clear()
    result = search(supernet, dataset, cost="macs", population=12, generations=4, seed=0)
    save_supernet(ckpt, supernet, {k: v for k, v in meta.items() if k not in ("kind", "space", "skip_mode", "bn_configs")})
    atomic_write_json(pareto, result)
    return ckpt, pareto


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
        x = torch.randn(1, *engine.input_shape)
        first = []  # switch + the first forward on the new subnet
        for i in range(max(10, calls // 10)):
            start = time.perf_counter()
            engine.infer(engine.subnets[i % n], x)
            first.append(time.perf_counter() - start)
        out[mode] = {"switch_s": statistics.median(medians), "runs": medians,
                     "switch_plus_forward_s": statistics.median(first),
                     "resident_bytes": max(engine.resident_bytes(), 0), "memory": engine.backend.to_dict()}
        if mode == "temporal":
            out[mode]["resident_bytes"] = max(s.weight_bytes for s in engine.subnets)  # peak: the largest loaded
    return out


def slo_run(ckpt: Path, pareto: Path, mode: str, policy: str, args, seed: int) -> dict:
    """Start `skipswitch serve` in a subprocess, drive the bursty trace, stop it (SIGINT)."""
    import httpx

    from skipswitch.errors import SkipswitchError
    from skipswitch.serve.loadgen import load_inputs, make_trace, run_load
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
        inputs, labels = load_inputs(url, "digits")
        arrivals = make_trace("bursty", args.rate, args.duration, seed, burst_factor=args.burst_factor)
        report = asyncio.run(run_load(url, arrivals, inputs, labels, deadline_ms=args.deadline_ms, trace_name="bursty"))
        metrics = httpx.get(f"{url}/metrics").text
        switches = next(float(line.split()[-1]) for line in metrics.splitlines()
                        if line.startswith("skipswitch_switches_total"))
    finally:
        server.send_signal(signal.SIGINT)
        server.communicate(timeout=120)
    return {**report.to_dict(), "switches": switches}


def slo_replay(ckpt: Path, pareto: Path, configs, args) -> dict[str, list[dict]]:
    """The same bursty trace submitted straight to the Scheduler (no HTTP, no client process)."""
    from skipswitch.data import load_dataset
    from skipswitch.serve.engine import ServingEngine
    from skipswitch.serve.loadgen import make_trace, replay
    from skipswitch.serve.policy import make_policy
    from skipswitch.serve.scheduler import Scheduler

    ds = load_dataset("digits", seed=0)
    inputs, labels = ds.test.images.numpy(), ds.test.labels.numpy()
    sizes = [b for b in (1, 2, 4, 8, 16, 32, 64) if b < args.max_batch] + [args.max_batch]
    engines = {}
    out = {}
    for label, mode, policy in configs:
        if mode not in engines:
            engines[mode] = ServingEngine.from_checkpoint(ckpt, pareto, mode=mode, batch_sizes=sizes)
        engine = engines[mode]
        out[label] = []
        for seed in range(args.runs):
            engine.active, engine.switches = None, 0
            scheduler = Scheduler(engine, make_policy(policy, engine), capacity=args.queue)
            scheduler.start()
            arrivals = make_trace("bursty", args.replay_rate, args.duration, seed, burst_factor=args.burst_factor)
            report = replay(scheduler, arrivals, inputs, labels, deadline_ms=args.deadline_ms, trace_name="bursty")
            scheduler.stop(drain=True)
            out[label].append({**report.to_dict(), "switches": engine.switches})
    return out


def machine() -> str:
    cores = os.cpu_count()
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    return (f"{platform.processor() or platform.machine()}, {cores} CPU cores, shared with other jobs during this run "
            f"(load average {load:.1f} at the end), torch {torch.__version__}, 1 intra-op thread")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", type=Path, default=ROOT / "runs" / "bench-serving")
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "results" / "serving.md")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--epochs", type=int, default=8)
    parser.add_argument("--base-width", type=int, default=32)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--rate", type=float, default=30.0, help="mean requests/s of the bursty trace over HTTP")
    parser.add_argument("--replay-rate", type=float, default=300.0, help="mean requests/s of the direct replay")
    parser.add_argument("--burst-factor", type=float, default=4.0)
    parser.add_argument("--duration", type=float, default=8.0)
    parser.add_argument("--deadline-ms", type=float, default=50.0)
    parser.add_argument("--queue", type=int, default=256)
    parser.add_argument("--max-batch", type=int, default=16)
    parser.add_argument("--skip-slo", action="store_true")
    args = parser.parse_args()
    torch.set_num_threads(1)
    sys.setswitchinterval(0.0002)  # as `skipswitch serve` does (the replay shares the GIL with the engine thread)

    started = datetime.now(timezone.utc)
    ckpt, pareto = prepare(args.work, args.epochs, args.base_width)
    searched = json.loads(pareto.read_text())
    front = searched["pareto"]
    switch = switch_latency(ckpt, pareto, args.runs, args.device)
    slo, direct = {}, {}
    configs = [("fixed-largest", "inplace", "fixed-largest"), ("fixed-smallest", "inplace", "fixed-smallest"),
               ("temporal + SlackFit", "temporal", "slackfit"), ("in-place + SlackFit", "inplace", "slackfit")]
    if not args.skip_slo:
        direct = slo_replay(ckpt, pareto, configs, args)
        for label, mode, policy in configs:
            slo[label] = [slo_run(ckpt, pareto, mode, policy, args, seed) for seed in range(args.runs)]
    atomic_write_json(args.work / "serving.json", {"switch": switch, "slo_http": slo, "slo_direct": direct,
                                                   "pareto": front, "args": {k: str(v) for k, v in vars(args).items()}})
    atomic_write_text(args.out, render(args, started, front, switch, slo, direct, searched.get("cost_unit", "cost")))
    print(f"-> {args.out}")


def _med(values):
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


def _slo_table(results: dict[str, list[dict]]) -> list[str]:
    rows = ["| configuration | SLO attainment | served accuracy | measured top-1 | p50 ms | p99 ms | throughput /s "
            "| shed | 503 full | switches |", "|---|---|---|---|---|---|---|---|---|---|"]
    fmt = lambda v, spec: "n/a" if v is None else format(v, spec)  # noqa: E731
    for label, reports in results.items():
        f = lambda key: _med([r[key] for r in reports])  # noqa: E731
        rows.append(f"| {label} | {fmt(f('slo_attainment'), '.3f')} | {fmt(f('served_accuracy'), '.4f')} | "
                    f"{fmt(f('measured_accuracy'), '.4f')} | {fmt(f('p50_ms'), '.1f')} | {fmt(f('p99_ms'), '.1f')} | "
                    f"{fmt(f('throughput'), '.1f')} | {fmt(f('shed'), '.0f')} | {fmt(f('rejected'), '.0f')} | "
                    f"{fmt(f('switches'), '.0f')} |")
    return rows


def render(args, started, front, switch, slo, direct, unit="MACs") -> str:
    cmd = "PYTHONPATH=src python benchmarks/serving.py " + " ".join(
        f"--{k.replace('_', '-')} {v}" for k, v in vars(args).items()
        if k in ("runs", "epochs", "base_width", "rate", "replay_rate", "duration", "deadline_ms", "max_batch", "burst_factor", "device"))
    inplace, temporal = switch["inplace"]["switch_s"], switch["temporal"]["switch_s"]
    lines = [
        "# Serving: subnet switching and SLO-aware selection",
        "",
        f"Date: {started:%Y-%m-%d %H:%M} UTC. Machine: {machine()}.",
        f"Command: `{cmd}`",
        "",
        f"Supernet: resnet-cifar space (base width {args.base_width}, 1-3 basic blocks per stage, expand "
        f"{{0.5, 0.75, 1}}, width {{0.5, 0.75, 1}}) on digits (8x8), sandwich-trained {args.epochs} epochs, "
        f"Pareto set from NSGA-II on (val accuracy, MACs): {len(front)} subnets.",
        "",
        f"| subnet | val acc | test acc | {unit} | weight bytes |",
        "|---|---|---|---|---|",
    ]
    for r in sorted(front, key=lambda r: r["cost"]):
        lines.append(f"| `{r['key'].replace('|', chr(92) + '|')}` | {r['val_acc']:.4f} | {r.get('test_acc', float('nan')):.4f} | "
                     f"{r['cost']:.3f} | {r.get('weight_bytes', 0):,} |")
    lines += [
        "",
        "## Switch latency and resident memory",
        "",
        f"Median over {args.runs} runs of the median time of one `ServingEngine.activate` call cycling through "
        f"the Pareto set (every call changes subnet). Resident bytes: weights (and BN statistics) held for serving.",
        "",
        "| mode | switch | switch + first forward (batch 1) | resident bytes | vs in place |",
        "|---|---|---|---|---|",
    ]
    for mode, label in (("inplace", "in place (views + per-subnet BN)"), ("spatial", "spatial (all materialised)"),
                        ("budget", "budget (PB resident + DB copy-in)"), ("temporal", "temporal (reload from disk)")):
        s = switch[mode]
        lines.append(f"| {label} | {s['switch_s'] * 1e6:,.1f} us | {s['switch_plus_forward_s'] * 1e3:.3f} ms | "
                     f"{s['resident_bytes']:,} | {s['switch_s'] / inplace:,.1f}x |")
    b = switch["budget"]["memory"]
    lines += [
        "",
        f"Temporal / in place: **{temporal / inplace:,.0f}x** (target >= 1000x); in place {inplace * 1e6:.1f} us "
        f"(target <= 50 us on CPU): **{'met' if inplace <= 50e-6 else 'missed'}**, "
        f"ratio **{'met' if temporal / inplace >= 1000 else 'missed'}**.",
        f"Budget mode: persistent buffer {b['persistent_bytes']:,} B (weights every Pareto subnet reads), dynamic "
        f"buffer {b['dynamic_bytes']:,} B (the largest subnet's other weights); a switch copies "
        f"{min(b['switch_copy_bytes'].values()):,} to {max(b['switch_copy_bytes'].values()):,} B from host memory "
        f"(pinned only on CUDA; this run: {args.device}). Temporal's resident figure is the largest subnet (the peak).",
    ]
    if slo or direct:
        lines += [
            "",
            "## SLO attainment under a bursty trace",
            "",
            f"Open-loop bursty trace (each second starts with 0.2 s at {args.burst_factor:g}x the mean rate, the "
            f"rest at the rate that keeps the mean), {args.duration:g} s, deadline {args.deadline_ms:g} ms per "
            f"request, one example per request, max dynamic batch {args.max_batch}, queue {args.queue}. Medians of "
            f"{args.runs} runs (trace seeds 0..{args.runs - 1}). SLO attainment: answered within the deadline over "
            f"all sent. Served accuracy: mean validation accuracy of the subnets that answered (SuperServe's "
            f"metric); measured top-1: the answers against the digits test labels. 'fixed-largest' is the most "
            f"accurate Pareto subnet, 'fixed-smallest' the least.",
        ]
        if direct:
            lines += ["", f"### Direct: the trace submitted to the scheduler in-process (mean {args.replay_rate:g} "
                          "req/s; no HTTP, so switching and policy dominate)", ""]
            lines += _slo_table(direct)
        if slo:
            lines += ["", f"### Over HTTP: `skipswitch serve` in a subprocess, `run_load` (httpx) client in the "
                          f"benchmark process, loopback (mean {args.rate:g} req/s)", ""]
            lines += _slo_table(slo)
    lines += _notes(front, switch, slo, direct)
    lines.append("")
    return "\n".join(lines)


def _notes(front, switch, slo, direct) -> list[str]:
    """What the tables say, computed from them, and what limits them."""
    accs = [r["val_acc"] for r in front]
    costs = [r["cost"] for r in front]
    notes = ["", "## Reading the figures (misses included)", "",
             f"- The Pareto set is narrow: validation accuracy {min(accs):.4f}-{max(accs):.4f} and "
             f"{max(costs) / max(min(costs), 1e-12):.1f}x in MACs. Digits (8x8) saturates: larger subnets are not "
             "more accurate, so the front holds only small ones. At this size a forward is dominated by Python "
             "per-op overhead, not MACs, so the subnets' latencies differ little and degrading to a smaller subnet "
             "buys little throughput: the SlackFit mechanism has little room here."]
    for name, results in (("direct", direct), ("HTTP", slo)):
        if not results:
            continue
        att = {k: _med([r["slo_attainment"] for r in v]) for k, v in results.items()}
        best_fixed = max(att["fixed-largest"], att["fixed-smallest"])
        verdict = "above" if att["in-place + SlackFit"] > best_fixed else "not above"
        notes.append(f"- {name}: in-place + SlackFit attains {att['in-place + SlackFit']:.3f}, {verdict} the better "
                     f"fixed subnet ({best_fixed:.3f}); temporal + SlackFit {att['temporal + SlackFit']:.3f}. "
                     "SlackFit sheds requests it cannot finish in time (counted as misses); the fixed baselines "
                     "serve everything late instead.")
    notes += [
        "- Over HTTP the server and the load generator share the same 2 busy cores: per-request HTTP/JSON work "
        "(a few ms on each side) dominates the sub-millisecond forwards, so the HTTP table mostly measures "
        "that overhead; the direct table removes it.",
        "- Latency profiles are measured at start-up and then tracked online (moving average of served batch "
        "times); on a CPU shared with other jobs they still lag the real speed, and the policy is only as good "
        "as its profile.",
        "- The budget mode's CUDA path (pinned host memory, asynchronous copy) has not run: no GPU was "
        "available; its CPU figures copy from ordinary host memory.",
    ]
    return notes


if __name__ == "__main__":
    main()
