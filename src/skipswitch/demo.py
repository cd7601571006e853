"""``skipswitch demo``: the whole system on the embedded default dataset (digits).

The demo is a list of steps; each calls the same functions as the project's own
commands, writes into ``<out>/<step>/`` and records its report section in
``<out>/<step>/section.json`` when it finishes. A rerun skips finished steps, so a
failed or interrupted demo resumes where it stopped. At the end one report
(``report.html`` with embedded plots, and ``report.md``) holds every figure.
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

    def path(self, *parts: str) -> Path:
        return self.out.joinpath(*parts)


@dataclass
class Step:
    key: str
    title: str
    run: Callable[[DemoSettings, Path], Section]


def _results(run_dir: Path) -> dict:
    return json.loads((run_dir / "results.json").read_text())


def _train_teacher(s: DemoSettings, step_dir: Path) -> Section:
    from .training import TrainConfig
    from .training.run import train_model

    train_model(s.model, s.dataset, config=TrainConfig(epochs=s.epochs, lr=0.1), out_dir=step_dir,
                quiet=s.quiet, resume=True)
    return _tailor_section(s, "Teacher (long skips)", [("teacher", step_dir)])


def _tailor(method: str) -> Callable[[DemoSettings, Path], Section]:
    def run(s: DemoSettings, step_dir: Path) -> Section:
        from .tailor import run_tailor
        from .training import TrainConfig

        run_tailor(s.path("teacher", "model.safetensors"), method, config=TrainConfig(epochs=s.epochs, lr=0.05),
                   out_dir=step_dir, every=s.every, quiet=s.quiet, resume=True)
        title = "Skip Remover" if method == "remove" else "Skip Shortener"
        return _tailor_section(s, title, [(title, step_dir)], plot=step_dir / "val_accuracy.png")

    return run


def _tailor_section(s: DemoSettings, title: str, runs: list[tuple[str, Path]], plot: Path | None = None) -> Section:
    section = Section(title=title, header=["run", "test acc (%)", "params", "MACs", "skips (long)"])
    for name, run_dir in runs:
        r = _results(run_dir)
        section.rows.append([name, f"{100 * r['test_acc']:.2f}", f"{r['params']:,}", f"{r['macs']:,}",
                             f"{r['skips']} ({r['long_skips']})"])
        if "teacher_test_acc" in r:
            section.notes.append(f"teacher test accuracy {100 * r['teacher_test_acc']:.2f}%; "
                                 f"{len(r['schedule']['alterations'])} skips altered, one every {r['schedule']['every']} "
                                 f"epochs from the {r['schedule']['order']} side; teacher unchanged: {r.get('teacher_unchanged')}")
    if plot is not None:
        _plot_val_accuracy(s, runs[-1][1], plot)
        section.images.append(plot)
    return section


def _plot_val_accuracy(s: DemoSettings, run_dir: Path, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    teacher, student = _results(s.path("teacher")), _results(run_dir)
    fig, ax = plt.subplots(figsize=(7, 3.5))
    for r, label in ((teacher, "teacher (from scratch)"), (student, f"student ({student['method']})")):
        ax.plot([h["epoch"] for h in r["history"]], [100 * h["val_acc"] for h in r["history"]], label=label)
    for h in student["history"]:
        if "event" in h:
            ax.axvline(h["epoch"], color="grey", alpha=0.3, linewidth=0.8)
    ax.set_xlabel("epoch")
    ax.set_ylabel("validation accuracy (%)")
    ax.set_title(f"{s.model} on {s.dataset}: grey lines = a skip altered")
    ax.legend(loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def demo_steps() -> list[Step]:
    return [
        Step("teacher", "Teacher (long skips)", _train_teacher),
        Step("tailor-remove", "Skip Remover", _tailor("remove")),
        Step("tailor-shorten", "Skip Shortener", _tailor("shorten")),
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
            console.print(f"[bold][{index}/{len(steps)}] {step.title}[/bold] -> {step_dir}")
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
    intro = [f"{settings.model} on {settings.dataset}, {settings.epochs} epochs per training step"
             f"{' (--quick)' if settings.quick else ''}; this invocation took {elapsed:.0f} s."]
    md_path, html_path = write_report(settings.out, "skipswitch demo report", intro, sections)
    _print_summary(sections, md_path, html_path)
    return sections


def _print_summary(sections: list[Section], md_path: Path, html_path: Path) -> None:
    table = Table(title="skipswitch demo summary")
    table.add_column("step")
    table.add_column("result")
    for s in sections:
        first = " | ".join(f"{h} {c}" for h, c in zip(s.header[1:], s.rows[0][1:])) if s.rows else ""
        table.add_row(s.title, first if s.status == "ok" else s.status)
    console = Console()
    console.print(table)
    console.print(f"report: {html_path} and {md_path}")
