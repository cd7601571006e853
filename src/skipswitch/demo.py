"""``skipswitch demo``: the whole system on the embedded default dataset (digits).

The demo composes the project's own commands: each step runs one or more
``skipswitch ...`` command lines in-process (exactly what a user would type), writing
into ``<out>/<step>/``, then builds its report section from the files the commands
wrote. A finished step records its section in ``<out>/<step>/section.json``; a rerun
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
from .report import Section, write_report


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

    def quiet_flag(self) -> list[str]:
        return ["--quiet"] if self.quiet else []


def run_command(argv: list[str]) -> None:
    """Run ``skipswitch <argv>`` in-process, as the CLI would, raising SkipswitchError on failure."""
    import click
    import typer.main

    from .cli import app

    command = typer.main.get_command(app)
    try:
        command.main(args=[str(a) for a in argv], prog_name="skipswitch", standalone_mode=False)
    except click.exceptions.ClickException as exc:
        raise SkipswitchError(f"`skipswitch {' '.join(map(str, argv))}`: {exc.format_message()}") from None


@dataclass
class Step:
    key: str
    title: str
    run: Callable[[DemoSettings, Path], Section]


def _results(run_dir: Path) -> dict:
    return json.loads((run_dir / "results.json").read_text())


def _pct(x: float) -> str:
    return f"{100 * x:.2f}"


# -- Tailor -------------------------------------------------------------------------------------------
def _teacher(s: DemoSettings, d: Path) -> Section:
    run_command(["train", "--model", s.model, "--dataset", s.dataset, "--epochs", s.epochs, "--lr", 0.1,
                 "--out", d, "--resume", *s.quiet_flag()])
    return _tailor_section(s, "Teacher (long skips)", d)


def _tailor(method: str) -> Callable[[DemoSettings, Path], Section]:
    def run(s: DemoSettings, d: Path) -> Section:
        run_command(["tailor", "--teacher", s.path("teacher", "model.safetensors"), "--method", method,
                     "--epochs", s.epochs, "--every", s.every, "--lr", 0.05, "--out", d, "--resume", *s.quiet_flag()])
        title = "Tailor: Skip Remover" if method == "remove" else "Tailor: Skip Shortener"
        section = _tailor_section(s, title, d)
        _plot_val_accuracy(s, d, d / "val_accuracy.png")
        section.images.append(d / "val_accuracy.png")
        return section

    return run


def _tailor_section(s: DemoSettings, title: str, d: Path) -> Section:
    r = _results(d)
    section = Section(title=title, header=["run", "test acc (%)", "params", "MACs", "skips (long)"])
    section.rows.append([title, _pct(r["test_acc"]), f"{r['params']:,}", f"{r['macs']:,}",
                         f"{r['skips']} ({r['long_skips']})"])
    if "teacher_test_acc" in r:
        sched = r["schedule"]
        section.rows.insert(0, ["teacher", _pct(r["teacher_test_acc"]), "", "", ""])
        section.notes.append(f"{len(sched['alterations'])} skips altered, one every {sched['every']} epochs from the "
                             f"{sched['order']} side, under KD ({r['kd']['kind']}, alpha {r['kd']['alpha']}); "
                             f"teacher weights and BN buffers unchanged: {r.get('teacher_unchanged')}")
    return section


def _plot_val_accuracy(s: DemoSettings, run_dir: Path, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    teacher, student = _results(s.path("teacher")), _results(run_dir)
    fig, ax = plt.subplots(figsize=(7, 3.5))
    for r, label in ((teacher, "teacher, trained from scratch"), (student, f"student ({student['method']}), from the teacher")):
        ax.plot([h["epoch"] for h in r["history"]], [100 * h["val_acc"] for h in r["history"]], label=label)
    for h in student["history"]:
        if "event" in h:
            ax.axvline(h["epoch"], color="grey", alpha=0.3, linewidth=0.8)
    ax.set_xlabel("epoch")
    ax.set_ylabel("validation accuracy (%)")
    ax.set_title(f"{s.model} on {s.dataset} (grey: a skip altered)")
    ax.legend(loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


# -- FPGA cost ------------------------------------------------------------------------------------------
def _hw_estimate(s: DemoSettings, d: Path) -> Section:
    section = Section(title="FPGA dataflow resource estimate (hls4ml io_stream, zu7ev / ZCU104)",
                      header=["precision", "resource", "long", "short", "none", "saved by short", "saved by none"])
    for bits in (8, 16):
        out = d / f"{bits}bit"
        run_command(["hw", "estimate", "--checkpoint", s.path("tailor-shorten", "model.safetensors"),
                     "--precision", bits, "--part", "zu7ev", "--out", out])
        est = json.loads((out / "estimate.json").read_text())
        for res in ("bram18", "dsp", "ff", "lut"):
            totals = [est["modes"][m]["total"][res] for m in ("long", "short", "none")]
            saved = [est["savings_percent_vs_long"][m][res] for m in ("short", "none")]
            section.rows.append([f"{bits}-bit", res.upper(), *(f"{t:,}" for t in totals),
                                 *(f"{v:+.1f}%" for v in saved)])
        section.images.append(out / "estimate.png")
    section.notes.append("estimated from the traced graph in milliseconds, without vendor tools; "
                         "positive savings = fewer resources than the long-skip design")
    return section


def _hls4ml(s: DemoSettings, d: Path) -> Section:
    run_command(["hw", "hls4ml", s.path("tailor-shorten", "model.safetensors"), "--out", d,
                 "--images", 20 if s.quick else 100])
    r = json.loads((d / "hls4ml_report.json").read_text())
    return Section(
        title="hls4ml export of the Skip Shortener model, C simulation against PyTorch",
        header=["hls4ml", "precision", "test images", "argmax agreement", "max abs logit error", "skip streams"],
        rows=[[r["hls4ml_version"], r["precision"], r["images"], f"{r['argmax_agreement']:.3f}",
               f"{r['max_abs_error']:.4f}", len(r["skip_stream_depths"])]],
        notes=[f"stream depths of skips from the estimator: {r['skip_stream_depths']}"],
    )


# -- Supernet ---------------------------------------------------------------------------------------
def _supernet(s: DemoSettings, d: Path) -> Section:
    run_command(["supernet", "train", "--space", "resnet-cifar", "--dataset", s.dataset, "--skip-mode", "short",
                 "--epochs", s.supernet_epochs, "--out", d, "--resume", *s.quiet_flag()])
    from .checkpoint import read_metadata

    m = read_metadata(d / "supernet.safetensors")["metrics"]
    return Section(title="Short-skip weight-sharing supernet (resnet-cifar space, sandwich rule)",
                   header=["subnet", "test acc (%)"],
                   rows=[["largest", _pct(m["largest_test_acc"])], ["smallest", _pct(m["smallest_test_acc"])]],
                   notes=[f"{s.supernet_epochs} epochs; every block has Tailor's short skips"])


def _search(s: DemoSettings, d: Path) -> Section:
    population, generations = s.search_budget
    run_command(["supernet", "search", s.path("supernet", "supernet.safetensors"), "--out", d,
                 "--population", population, "--generations", generations])
    from .supernet.search import ParetoFile

    r = ParetoFile.load(d / "pareto.json").model_dump()
    section = Section(title="Pareto search (NSGA-II, pymoo): validation accuracy against MACs",
                      header=["subnet", f"cost ({r['cost_unit']})", "val acc (%)", "test acc (%)", "weights (bytes)"],
                      images=[d / "pareto.png"])
    for p in r["pareto"]:
        section.rows.append([p["key"], f"{p['cost']:.3f}", _pct(p["val_acc"]), _pct(p["test_acc"]),
                             f"{p['weight_bytes']:,}"])
    section.notes.append(f"{len(r['pareto'])} Pareto subnets of {len(r['evaluated'])} evaluated; their BatchNorm "
                         "statistics are stored in the checkpoint")
    return section


def _accel(s: DemoSettings, d: Path) -> Section:
    ckpt = s.path("search", "supernet.safetensors")
    run_command(["accel", "dse", "--part", "zu3eg", "--workload", ckpt, "--out", d])
    parts: list[str] = []
    for p in s.accel_parts:
        parts += ["--part", p]
    run_command(["accel", "evaluate", *parts, "--workload", ckpt, "--out", d])
    r = json.loads((d / "evaluate.json").read_text())
    section = Section(title="FastSwitch accelerator on the Pareto subnets: switching over the sequence",
                      header=["part", "design", "baseline (ms)", "PB=smallest (ms)", "PB=most-used (ms)",
                              "gain smallest", "gain most-used"],
                      images=[d / "breakdown.png", d / "dse.png"])
    for name, p in r["parts"].items():
        section.rows.append([name, p["design_short"], f"{p['baseline']['latency_ms']:.4f}",
                             f"{p['smallest']['latency_ms']:.4f}", f"{p['most-used']['latency_ms']:.4f}",
                             f"{100 * p['gain_smallest']:.1f}%", f"{100 * p['gain_most_used']:.1f}%"])
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
            report_path = d / f"loadgen-{trace}.json"
            run_command(["loadgen", "--trace", trace, "--rate", 30, "--duration", duration, "--url", url,
                         "--deadline-ms", 100, "--out", report_path])
            r = json.loads(report_path.read_text())
            fmt = lambda v, f: "n/a" if v is None else format(v, f)  # noqa: E731  (None when nothing was served)
            section.rows.append([trace, r["sent"], f"{r['slo_attainment']:.3f}",
                                 "n/a" if r["served_accuracy"] is None else _pct(r["served_accuracy"]),
                                 fmt(r["p50_ms"], ".1f"), fmt(r["p99_ms"], ".1f"), f"{r['throughput']:.1f}"])
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
