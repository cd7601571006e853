"""``skipswitch demo``: the whole system on the embedded default dataset (digits).

The demo composes the project's jobs (skipswitch.jobs, what each command runs): each step
runs one or more jobs writing into ``<out>/<step>/`` and builds its report section from their
typed results. A finished step records its section in ``<out>/<step>/section.json``; a rerun
skips finished steps, so a failed or interrupted demo resumes where it stopped. At the
end one report (``report.html`` with embedded plots, and ``report.md``) holds every figure.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable

from rich.console import Console
from rich.table import Table

from .checkpoint import atomic_write_json
from .errors import SkipswitchError
from .io import atomic_write_figure
from .jobs import accel, fpga, serve, supernet, training
from .report import Section, write_report
from .training.config import validated


@dataclass
class DemoSettings:
    out: Path
    model: str = "resnet20"
    dataset: str = "digits"
    epochs: int = 30
    quick: bool = False
    quiet: bool = False

    @property
    def n_blocks(self) -> int:
        from .models import create_model

        return len(create_model(self.model, num_classes=10, in_channels=1, input_size=8).blocks())

    @property
    def every(self) -> int:
        # Spread the alterations over the first two thirds of the budget, then recover.
        return max(1, (2 * self.epochs // 3) // self.n_blocks)

    # Budgets of the later steps: --quick keeps every step but shrinks it.
    @property
    def supernet_epochs(self) -> int:
        return 3 if self.quick else 20

    @property
    def search_budget(self) -> tuple[int, int]:  # NSGA-II population, generations
        return (8, 3) if self.quick else (16, 8)

    @property
    def accel_parts(self) -> list[str]:
        return ["zu3eg"] if self.quick else ["zu3eg", "zu7ev", "xcu280"]

    def path(self, *parts: str) -> Path:
        return self.out.joinpath(*parts)


@dataclass
class Step:
    key: str
    title: str
    run: Callable[[DemoSettings, Path], Section]


def _pct(x: float) -> str:
    return f"{100 * x:.2f}"


# -- Tailor -------------------------------------------------------------------------------------------
def _teacher(s: DemoSettings, d: Path) -> Section:
    result = training.train(validated(training.TrainJob, model=s.model, dataset=s.dataset, epochs=s.epochs, lr=0.1,
                                      out=d, resume=True, quiet=s.quiet))
    return _tailor_section("Teacher (long skips)", result)


def _tailor(method: str) -> Callable[[DemoSettings, Path], Section]:
    def run(s: DemoSettings, d: Path) -> Section:
        result = training.tailor(validated(
            training.TailorJob, teacher=s.path("teacher", "model.safetensors"), method=method, epochs=s.epochs,
            every=s.every, out=d, resume=True, quiet=s.quiet))  # the job's recipe (docs/tailor.md)
        title = "Tailor: Skip Remover" if method == "remove" else "Tailor: Skip Shortener"
        section = _tailor_section(title, result)
        _plot_val_accuracy(s, result, d / "val_accuracy.png")
        section.images.append(d / "val_accuracy.png")
        return section

    return run


def _tailor_section(title: str, r: training.TrainResult) -> Section:
    section = Section(title=title, header=["run", "test acc (%)", "params", "MACs", "skips (long)"])
    section.rows.append([title, _pct(r.test_acc), f"{r.params:,}", f"{r.macs:,}", f"{r.skips} ({r.long_skips})"])
    if isinstance(r, training.TailorResult):
        section.rows.insert(0, ["teacher", _pct(r.teacher_test_acc), "", "", ""])
        section.notes.append(f"{len(r.schedule.alterations)} skips altered, one every {r.schedule.every} epochs from "
                             f"the {r.schedule.order} side, under KD ({r.kd.kind}, alpha {r.kd.alpha}); "
                             f"teacher weights and BN buffers unchanged: {r.teacher_unchanged}")
    return section


def _plot_val_accuracy(s: DemoSettings, student: training.TailorResult, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    teacher = training.TrainResult.load(s.path("teacher", "results.json"))
    fig, ax = plt.subplots(figsize=(7, 3.5))
    for r, label in ((teacher, "teacher, trained from scratch"), (student, f"student ({student.method}), from the teacher")):
        ax.plot([h["epoch"] for h in r.history], [100 * h["val_acc"] for h in r.history], label=label)
    for h in student.history:
        if "event" in h:
            ax.axvline(h["epoch"], color="grey", alpha=0.3, linewidth=0.8)
    ax.set_xlabel("epoch")
    ax.set_ylabel("validation accuracy (%)")
    ax.set_title(f"{s.model} on {s.dataset} (grey: a skip altered)")
    ax.legend(loc="lower right")
    fig.tight_layout()
    atomic_write_figure(path, fig, dpi=110)


# -- FPGA cost ------------------------------------------------------------------------------------------
def _hw_estimate(s: DemoSettings, d: Path) -> Section:
    section = Section(title="FPGA dataflow resource estimate (hls4ml io_stream, zu7ev / ZCU104)",
                      header=["precision", "resource", "long", "short", "none", "saved by short", "saved by none"])
    for bits in (8, 16):
        out = d / f"{bits}bit"
        _, est = fpga.estimate(validated(fpga.EstimateJob, checkpoint=s.path("tailor-shorten", "model.safetensors"),
                                         precision=bits, part="zu7ev", out=out))
        for res in ("bram18", "dsp", "ff", "lut"):
            totals = [est.total(m, res) for m in ("long", "short", "none")]
            saved = [est.savings_percent_vs_long[m][res] for m in ("short", "none")]
            section.rows.append([f"{bits}-bit", res.upper(), *(f"{t:,}" for t in totals),
                                 *(f"{v:+.1f}%" for v in saved)])
        section.images.append(out / "estimate.png")
    section.notes.append("estimated from the traced graph in milliseconds, without vendor tools; "
                         "positive savings = fewer resources than the long-skip design")
    return section


def _hls4ml(s: DemoSettings, d: Path) -> Section:
    r = fpga.hls4ml(validated(fpga.Hls4mlJob, checkpoint=s.path("tailor-shorten", "model.safetensors"), out=d,
                              images=20 if s.quick else 100))
    return Section(
        title="hls4ml export of the Skip Shortener model, C simulation against PyTorch",
        header=["hls4ml", "precision", "test images", "argmax agreement", "max abs logit error", "skip streams"],
        rows=[[r.hls4ml_version, r.precision, r.images, f"{r.argmax_agreement:.3f}", f"{r.max_abs_error:.4f}",
               len(r.skip_stream_depths)]],
        notes=[f"stream depths of skips from the estimator: {r.skip_stream_depths}"],
    )


# -- Supernet ---------------------------------------------------------------------------------------
def _supernet(s: DemoSettings, d: Path) -> Section:
    m = supernet.train(validated(supernet.SupernetTrainJob, space="resnet-cifar", dataset=s.dataset,
                                 skip_mode="short", epochs=s.supernet_epochs, out=d, resume=True,
                                 quiet=s.quiet)).supernet_metrics
    return Section(title="Short-skip weight-sharing supernet (resnet-cifar space, sandwich rule)",
                   header=["subnet", "test acc (%)"],
                   rows=[["largest", _pct(m.largest_test_acc)], ["smallest", _pct(m.smallest_test_acc)]],
                   notes=[f"{s.supernet_epochs} epochs; every block has Tailor's short skips"])


def _search(s: DemoSettings, d: Path) -> Section:
    population, generations = s.search_budget
    r = supernet.search(validated(supernet.SearchJob, checkpoint=s.path("supernet", "supernet.safetensors"), out=d,
                                  population=population, generations=generations))
    section = Section(title="Pareto search (NSGA-II, pymoo): validation accuracy against MACs",
                      header=["subnet", f"cost ({r.cost_unit})", "val acc (%)", "test acc (%)", "weights (bytes)"],
                      images=[r.pareto_png])
    for p in r.pareto:
        section.rows.append([p.key, f"{p.cost:.3f}", _pct(p.val_acc), _pct(p.test_acc), f"{p.weight_bytes:,}"])
    section.notes.append(f"{len(r.pareto)} Pareto subnets of {len(r.evaluated)} evaluated; their BatchNorm "
                         "statistics are stored in the checkpoint")
    return section


def _accel(s: DemoSettings, d: Path) -> Section:
    ckpt = s.path("search", "supernet.safetensors")
    accel.dse(validated(accel.DseJob, part="zu3eg", workload=str(ckpt), out=d))
    r = accel.evaluate(validated(accel.EvaluateJob, part=s.accel_parts, workload=str(ckpt), out=d))
    section = Section(title="FastSwitch accelerator on the Pareto subnets: switching over the sequence",
                      header=["part", "design", "baseline (ms)", "PB=smallest (ms)", "PB=most-used (ms)",
                              "gain smallest", "gain most-used"],
                      images=[d / "breakdown.png", d / "dse.png"])
    for name, p in r.parts.items():
        section.rows.append([name, p.design_short, f"{p.baseline['latency_ms']:.4f}", f"{p.smallest['latency_ms']:.4f}",
                             f"{p.most_used['latency_ms']:.4f}", f"{100 * p.gain_smallest:.1f}%",
                             f"{100 * p.gain_most_used:.1f}%"])
    section.notes.append("latency of serving every Pareto subnet once, smallest to largest; baseline = the same "
                         "design without a persistent buffer (temporal switching)")
    return section


# -- Serving ----------------------------------------------------------------------------------------
def _serve(s: DemoSettings, d: Path) -> Section:
    """`skipswitch serve` in a child process on loopback, `skipswitch loadgen` against it, then Ctrl-C."""
    import signal
    import subprocess
    import sys

    import httpx

    from .serve.server import free_loopback_port, wait_until_healthy

    port = free_loopback_port()
    url = f"http://127.0.0.1:{port}"
    ckpt = s.path("search", "supernet.safetensors")
    log = (d / "server.log").open("w")
    server = subprocess.Popen([sys.executable, "-m", "skipswitch.cli", "serve", str(ckpt), "--pareto",
                               str(s.path("search", "pareto.json")), "--port", str(port)], stdout=log, stderr=log)
    try:
        try:
            wait_until_healthy(url, server, timeout_s=120)
        except SkipswitchError as exc:
            raise SkipswitchError(f"{exc}; see {d / 'server.log'}") from None
        duration = 4 if s.quick else 15
        section = Section(title="Serving with in-place subnet switching (loopback HTTP, SlackFit policy)",
                          header=["trace", "requests", "SLO attainment", "served acc (%)", "p50 (ms)", "p99 (ms)",
                                  "throughput (req/s)"])
        for trace in ("poisson", "bursty"):
            r = serve.loadgen(validated(serve.LoadgenJob, trace=trace, rate=30, duration=duration, url=url,
                                        deadline_ms=100, out=d / f"loadgen-{trace}.json"))
            fmt = lambda v, f: "n/a" if v is None else format(v, f)  # noqa: E731  (None when nothing was served)
            section.rows.append([trace, r.sent, f"{r.slo_attainment:.3f}",
                                 "n/a" if r.served_accuracy is None else _pct(r.served_accuracy),
                                 fmt(r.p50_ms, ".1f"), fmt(r.p99_ms, ".1f"), f"{r.throughput:.1f}"])
        metrics = httpx.get(f"{url}/metrics", timeout=5.0).text
        switches = [line for line in metrics.splitlines() if line.startswith("skipswitch_switches_total")]
        section.notes.append(f"{duration} s per trace at 30 requests/s, deadline 100 ms; " + (switches[0] if switches else ""))
        return section
    finally:
        server.send_signal(signal.SIGINT)
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()
        log.close()


def demo_steps() -> list[Step]:
    return [
        Step("teacher", "Teacher (long skips)", _teacher),
        Step("tailor-remove", "Tailor: Skip Remover", _tailor("remove")),
        Step("tailor-shorten", "Tailor: Skip Shortener", _tailor("shorten")),
        Step("hw-estimate", "FPGA resource estimate", _hw_estimate),
        Step("hls4ml", "hls4ml export + C simulation", _hls4ml),
        Step("supernet", "Short-skip supernet", _supernet),
        Step("search", "Pareto search", _search),
        Step("accel", "FastSwitch DSE and switching", _accel),
        Step("serve", "Serving benchmark on loopback", _serve),
    ]


def _load_section(path: Path) -> Section | None:
    try:
        data = json.loads(path.read_text())
        data["images"] = [Path(p) for p in data.get("images", [])]
        return Section(**data)
    except (OSError, json.JSONDecodeError, TypeError):
        return None


def run_demo(settings: DemoSettings) -> list[Section]:
    console = Console(stderr=True)
    steps = demo_steps()
    sections: list[Section] = []
    started = time.perf_counter()
    for index, step in enumerate(steps, 1):
        step_dir = settings.path(step.key)
        marker = step_dir / "section.json"
        section = _load_section(marker) if marker.exists() else None
        if section is not None:
            console.print(f"[{index}/{len(steps)}] {step.title}: done earlier in {step_dir}, skipped")
        else:
            console.rule(f"[bold][{index}/{len(steps)}] {step.title}[/bold] -> {step_dir}")
            step_start = time.perf_counter()
            try:
                step_dir.mkdir(parents=True, exist_ok=True)
                section = step.run(settings, step_dir)
            except SkipswitchError as exc:
                finished = [s.title for s in steps[: index - 1]]
                raise SkipswitchError(
                    f"demo step '{step.title}' failed: {exc} (finished and kept: {', '.join(finished) or 'nothing'}; "
                    "rerun the same command to resume from this step)"
                ) from None
            section.notes.append(f"step time {time.perf_counter() - step_start:.1f} s")
            atomic_write_json(marker, {**asdict(section), "images": [str(p) for p in section.images]})
        sections.append(section)
    elapsed = time.perf_counter() - started
    intro = [f"{settings.model} on {settings.dataset}, {settings.epochs} epochs per Tailor training step"
             f"{' (--quick)' if settings.quick else ''}; this invocation took {elapsed:.0f} s. "
             "Every figure was measured by the run that wrote this report."]
    md_path, html_path = write_report(settings.out, "skipswitch demo report", intro, sections)
    _print_summary(sections, md_path, html_path, elapsed)
    return sections


def _print_summary(sections: list[Section], md_path: Path, html_path: Path, elapsed: float) -> None:
    table = Table(title=f"skipswitch demo summary ({elapsed:.0f} s)")
    table.add_column("step")
    table.add_column("headline")
    for s in sections:
        row = s.rows[-1] if s.rows else []
        headline = " | ".join(f"{h}: {c}" for h, c in zip(s.header, row) if c != "")
        table.add_row(s.title, headline if s.status == "ok" else s.status)
    console = Console()
    console.print(table)
    console.print(f"report: {html_path} and {md_path}")
