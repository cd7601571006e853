"""rich progress bars for training: epochs, steps, loss, accuracy, images/s."""

from __future__ import annotations

import time
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

# Refreshing the bar costs far more than a training step on tiny inputs; rich draws at
# most `refresh_per_second` anyway, so we only hand it numbers this often.
_UPDATE_INTERVAL_S = 0.1


class TrainProgress:
    def __init__(self, description: str, epochs: int, enabled: bool = True):
        self.enabled = enabled
        self.description = description
        self.epochs = epochs
        self._last_update = 0.0
        if enabled:
            self.progress = Progress(
                TextColumn("[bold]{task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                TextColumn("{task.fields[stats]}"),
                TimeElapsedColumn(),
                console=Console(stderr=True),
                refresh_per_second=4,
            )

    def __enter__(self) -> "TrainProgress":
        if self.enabled:
            self.progress.__enter__()
            self.epoch_task = self.progress.add_task(f"{self.description} epochs", total=self.epochs, stats="")
            self.step_task = self.progress.add_task("  steps", total=1, stats="")
        return self

    def __exit__(self, *exc) -> None:
        if self.enabled:
            self.progress.__exit__(*exc)

    def advance_epochs(self, n: int) -> None:
        if self.enabled and n:
            self.progress.update(self.epoch_task, completed=n)

    def start_epoch(self, epoch: int, steps: int) -> None:
        if self.enabled:
            self.progress.reset(self.step_task, total=steps, description=f"  epoch {epoch + 1}", stats="")

    def step(self, loss: float, acc: float, images_per_s: float) -> None:
        if not self.enabled:
            return
        now = time.perf_counter()
        self._pending = getattr(self, "_pending", 0) + 1
        if now - self._last_update < _UPDATE_INTERVAL_S:
            return
        self._last_update = now
        self.progress.update(
            self.step_task,
            advance=self._pending,
            stats=f"loss {loss:.3f}  acc {acc:.3f}  {images_per_s:,.0f} img/s",
        )
        self._pending = 0

    def end_epoch(self, record: dict[str, Any]) -> None:
        if not self.enabled:
            return
        self.progress.update(self.step_task, advance=getattr(self, "_pending", 0))
        self._pending = 0
        stats = f"train acc {record['train_acc']:.3f}  val acc {record['val_acc']:.3f}"
        if "event" in record:
            stats += f"  [{record['event'].get('summary', '')}]"
        self.progress.update(self.epoch_task, advance=1, stats=stats)
