"""``skipswitch demo``: the main job on the embedded default dataset (digits).

Each step is one of the project's own commands' functions, run into a subdirectory of
``--out``; a step whose results are already there is skipped, so a rerun resumes.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from rich.console import Console
from rich.table import Table

from .checkpoint import atomic_write_text
from .errors import SkipswitchError
from .training import TrainConfig


@dataclass
class Step:
    name: str
    run_dir: Path
    run: Callable[[], object]

    @property
    def done(self) -> bool:
        results = self.run_dir / "results.json"
        if not results.exists() or not (self.run_dir / "model.safetensors").exists():
            return False
        try:
            return json.loads(results.read_text()).get("status") == "ok"
        except json.JSONDecodeError:
            return False


def tailor_steps(out: Path, model: str, dataset: str, epochs: int, quiet: bool) -> list[Step]:
    from .models import create_model
    from .tailor import run_tailor
    from .training.run import train_model

    n_blocks = len(create_model(model, num_classes=10, in_channels=1, input_size=8).blocks())
    # Spread the alterations over the first two thirds of the budget, then recover.
    every = max(1, (2 * epochs // 3) // n_blocks)
    teacher_cfg = TrainConfig(epochs=epochs, lr=0.1)
    student_cfg = TrainConfig(epochs=epochs, lr=0.05)
    teacher_ckpt = out / "teacher" / "model.safetensors"
    steps = [
        Step("teacher (long skips)", out / "teacher",
             lambda: train_model(model, dataset, config=teacher_cfg, out_dir=out / "teacher", quiet=quiet, resume=True)),
    ]
    for method in ("remove", "shorten"):
        run_dir = out / f"tailor-{method}"
        steps.append(Step(
            f"Skip {'Remover' if method == 'remove' else 'Shortener'}", run_dir,
            lambda method=method, run_dir=run_dir: run_tailor(
                teacher_ckpt, method, config=student_cfg, out_dir=run_dir, every=every, quiet=quiet, resume=True),
        ))
    return steps


def run_demo(out: Path, model: str = "resnet20", dataset: str = "digits", epochs: int | None = None,
             quick: bool = False, quiet: bool = False) -> list[dict]:
    console = Console(stderr=True)
    if epochs is None:
        from .models import create_model

        n_blocks = len(create_model(model, num_classes=10, in_channels=1, input_size=8).blocks())
        # --quick: one alteration per epoch and three epochs to recover.
        epochs = n_blocks + 3 if quick else 30
    steps = tailor_steps(out, model, dataset, epochs, quiet)
    rows = []
    for index, step in enumerate(steps, 1):
        if step.done:
            console.print(f"[{index}/{len(steps)}] {step.name}: already done in {step.run_dir}, skipped")
        else:
            console.print(f"[{index}/{len(steps)}] {step.name} -> {step.run_dir}")
            try:
                step.run()
            except SkipswitchError as exc:
                done = [s.name for s in steps if s.done]
                raise SkipswitchError(
                    f"demo step '{step.name}' failed: {exc} (finished steps kept: {', '.join(done) or 'none'}; "
                    "rerun the same command to resume)"
                ) from None
        results = json.loads((step.run_dir / "results.json").read_text())
        rows.append({"step": step.name, "test_acc": results["test_acc"], "params": results["params"],
                     "macs": results["macs"], "skips": results["skips"], "long_skips": results["long_skips"]})
    table = Table(title=f"skipswitch demo: {model} on {dataset}, {epochs} epochs each")
    for col in ("step", "test acc", "params", "MACs", "skips (long)"):
        table.add_column(col)
    for r in rows:
        table.add_row(r["step"], f"{r['test_acc']:.4f}", f"{r['params']:,}", f"{r['macs']:,}",
                      f"{r['skips']} ({r['long_skips']})")
    Console().print(table)
    lines = ["| step | test acc | params | MACs | skips (long) |", "|---|---|---|---|---|"]
    lines += [f"| {r['step']} | {r['test_acc']:.4f} | {r['params']:,} | {r['macs']:,} | {r['skips']} ({r['long_skips']}) |"
              for r in rows]
    atomic_write_text(out / "summary.md", "\n".join(lines) + "\n")
    return rows
