"""The training loop every trainer in the project uses.

What it guarantees:
* per-epoch results (loss, accuracy, images/s, events) and the final test accuracy
  in ``results.json``, written atomically, whatever happens;
* a resume state after every epoch (``resume.safetensors``): model, optimizer momentum
  and history. ``resume=True`` replays the epoch hooks of finished epochs (so the model
  topology and optimizer param groups match), loads the state and continues to the
  same final weights as an uninterrupted run;
* a non-finite loss stops the run with a one-line error naming epoch and step; the
  last good resume state is kept.
"""

from __future__ import annotations

import contextlib
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Protocol

import torch
from torch import nn

from ..checkpoint import atomic_write_json, load_tensors, save_model, save_tensors
from ..data import Dataset, Split, iterate_batches
from ..errors import SkipswitchError
from .config import RUNTIME_FIELDS, TrainConfig
from .device import Runtime
from .progress import TrainProgress

LossFn = Callable[[nn.Module, torch.Tensor, torch.Tensor], tuple[torch.Tensor, torch.Tensor]]


class EpochHook(Protocol):
    def __call__(self, epoch: int, model: nn.Module) -> tuple[list[nn.Parameter], dict[str, Any] | None]:
        """Called before ``epoch`` trains; returns new parameters to optimise and an event to log."""


def cross_entropy_loss(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    logits = model(x)
    return nn.functional.cross_entropy(logits, y), logits


def kl_distillation(student_logits: torch.Tensor, teacher_logits: torch.Tensor, temperature: float) -> torch.Tensor:
    """Hinton et al. (2015), "Distilling the Knowledge in a Neural Network":
    ``T^2 * KL(softmax(teacher/T) || softmax(student/T))``, batch mean; the ``T^2`` keeps the
    gradient scale independent of ``T``."""
    t = temperature
    return nn.functional.kl_div(
        nn.functional.log_softmax(student_logits / t, dim=1), nn.functional.log_softmax(teacher_logits / t, dim=1),
        reduction="batchmean", log_target=True,
    ) * (t * t)


def train_step(model: nn.Module, optimizer: torch.optim.Optimizer, loss_fn: LossFn, x: torch.Tensor,
               y: torch.Tensor, where: str, runtime: Runtime | None = None, weight: float = 1.0,
               forward_model: nn.Module | None = None) -> tuple[float, int]:
    """One SGD step on a batch; returns (loss, correct predictions). A non-finite loss raises
    before the weights change, with a one-line error ending in ``where``.

    With a ``runtime`` the batch moves to its device, the forward runs under its autocast (through
    ``forward_model``, e.g. a compiled wrapper) and the backward/all-reduce/step go through it;
    ``weight`` is this shard's share of the global batch."""
    if runtime is not None:
        x, y = runtime.batch(x, y)
    with runtime.autocast() if runtime is not None else contextlib.nullcontext():
        loss, logits = loss_fn(forward_model or model, x, y)
    loss_value = loss.item()
    if not math.isfinite(loss_value):
        raise SkipswitchError(f"loss became {loss_value} {where}")
    optimizer.zero_grad(set_to_none=True)
    if runtime is None:
        loss.backward()
        optimizer.step()
    else:
        runtime.step(loss, optimizer, model, weight=weight)
    return loss_value, int((logits.argmax(1) == y).sum())


def make_optimizer(model: nn.Module, config: TrainConfig) -> torch.optim.SGD:
    return torch.optim.SGD(
        model.parameters(),
        lr=config.lr,
        momentum=config.momentum,
        nesterov=config.nesterov and config.momentum > 0,
        weight_decay=config.weight_decay,
    )


@torch.no_grad()
def evaluate(model: nn.Module, split: Split, batch_size: int = 256, runtime: Runtime | None = None) -> tuple[float, float]:
    """(mean cross-entropy, accuracy) of ``model`` on ``split`` in eval mode; with a
    ``runtime``, on its device under its autocast, each rank scoring its shard."""
    was_training = model.training
    model.eval()
    total_loss, correct = 0.0, 0
    shard, workers = (runtime.group.shard, runtime.config.workers) if runtime else ((0, 1), 0)
    for x, y in iterate_batches(split, batch_size, shard=shard, workers=workers):
        if runtime:
            x, y = runtime.batch(x, y)
        with runtime.autocast() if runtime else contextlib.nullcontext():
            logits = model(x).float()
        total_loss += float(nn.functional.cross_entropy(logits, y, reduction="sum"))
        correct += int((logits.argmax(1) == y).sum())
    model.train(was_training)
    if runtime:
        total_loss, correct = runtime.group.sum([total_loss, correct])
    n = max(1, len(split))
    return total_loss / n, correct / n


@dataclass
class RunResult:
    model: nn.Module
    history: list[dict[str, Any]]
    test_loss: float
    test_acc: float
    results: dict[str, Any] = field(default_factory=dict)


def _optimizer_tensors(optimizer: torch.optim.Optimizer) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    state = optimizer.state_dict()
    tensors = {}
    for index, param_state in state["state"].items():
        for key, value in param_state.items():
            if isinstance(value, torch.Tensor):
                tensors[f"optimizer.{index}.{key}"] = value
    groups = [{k: v for k, v in g.items()} for g in state["param_groups"]]
    return tensors, {"param_groups": groups}


def _load_optimizer(optimizer: torch.optim.Optimizer, tensors: dict[str, torch.Tensor], meta: dict[str, Any]) -> None:
    state: dict[int, dict[str, torch.Tensor]] = {}
    for key, value in tensors.items():
        _, index, name = key.split(".", 2)
        state.setdefault(int(index), {})[name] = value
    optimizer.load_state_dict({"state": state, "param_groups": meta["param_groups"]})


def _numerics(config: dict[str, Any]) -> dict[str, Any]:
    """The fields a resume must match: not where or how fast the steps run. Fields a
    resume state predates take their defaults."""
    return {k: v for k, v in {**TrainConfig().model_dump(), **config}.items() if k not in RUNTIME_FIELDS}


class Trainer:
    """Runs ``config.epochs`` epochs of SGD on ``dataset`` and writes ``run_dir``."""

    def __init__(
        self,
        model: nn.Module,
        dataset: Dataset,
        config: TrainConfig,
        run_dir: str | Path,
        *,
        loss_fn: LossFn = cross_entropy_loss,
        epoch_hook: EpochHook | None = None,
        quiet: bool = False,
        description: str = "train",
        metadata: dict[str, Any] | None = None,
        optimizer: torch.optim.Optimizer | None = None,
    ):
        self.runtime = Runtime(config)
        self.model = self.runtime.place(model)
        self.dataset = dataset
        self.config = config
        self.run_dir = Path(run_dir)
        self.loss_fn = loss_fn
        self.epoch_hook = epoch_hook
        self.is_main = self.runtime.group.is_main  # only rank 0 writes files and draws progress
        self.quiet = quiet or not self.is_main
        self.description = description
        self.metadata = dict(metadata or {})
        self.optimizer = optimizer or make_optimizer(model, config)  # Tailor passes its own (tailor/stabilise.py)
        self.history: list[dict[str, Any]] = []

    @property
    def resume_path(self) -> Path:
        return self.run_dir / "resume.safetensors"

    @property
    def model_path(self) -> Path:
        return self.run_dir / "model.safetensors"

    @property
    def results_path(self) -> Path:
        return self.run_dir / "results.json"

    # -- hooks and state ------------------------------------------------------------------
    def _apply_hook(self, epoch: int) -> dict[str, Any] | None:
        if self.epoch_hook is None:
            return None
        new_params, event = self.epoch_hook(epoch, self.model)
        self.runtime.place(self.model)  # modules the hook added start on the CPU
        if new_params:
            group = {k: v for k, v in self.optimizer.param_groups[0].items() if k != "params"}
            self.optimizer.add_param_group({"params": new_params, **group})
        return event

    def _save_resume(self, next_epoch: int) -> None:
        if not self.is_main:
            return
        opt_tensors, opt_meta = _optimizer_tensors(self.optimizer)
        tensors = {f"model.{k}": v for k, v in self.model.state_dict().items()}
        tensors.update(opt_tensors)
        save_tensors(
            self.resume_path,
            tensors,
            {"kind": "resume", "next_epoch": next_epoch, "history": self.history, "optimizer": opt_meta,
             "config": self.config.model_dump(), "model": self.model.config,
             "world_size": self.runtime.group.world, "grad_scaler": self.runtime.state()},
        )

    def _load_resume(self) -> int:
        tensors, meta = load_tensors(self.resume_path)
        if meta.get("kind") != "resume":
            raise SkipswitchError(f"{self.resume_path} is not a resume state")
        if _numerics(meta.get("config", {})) != _numerics(self.config.model_dump()):
            raise SkipswitchError(
                f"cannot resume {self.run_dir}: it was started with a different training config; "
                "rerun without --resume or with the same options"
            )
        if meta.get("world_size", 1) != self.runtime.group.world:
            raise SkipswitchError(f"cannot resume {self.run_dir}: it ran on {meta.get('world_size', 1)} processes, "
                                  f"this run has {self.runtime.group.world}; resume with the same --nproc")
        self.runtime.load_state(meta.get("grad_scaler"))
        next_epoch = int(meta["next_epoch"])
        for epoch in range(next_epoch):
            self._apply_hook(epoch)
        model_state = {k[len("model."):]: v for k, v in tensors.items() if k.startswith("model.")}
        try:
            self.model.load_state_dict(model_state, strict=True)
        except RuntimeError:
            raise SkipswitchError(f"{self.resume_path} does not match this model; rerun without --resume") from None
        opt = {k: v for k, v in tensors.items() if k.startswith("optimizer.")}
        _load_optimizer(self.optimizer, opt, meta["optimizer"])
        self.history = list(meta["history"])
        return next_epoch

    # -- the loop ----------------------------------------------------------------------------
    def fit(self, resume: bool = False) -> RunResult:
        self.run_dir.mkdir(parents=True, exist_ok=True)
        start_epoch = 0
        if resume and self.resume_path.exists():
            start_epoch = self._load_resume()
        elif resume and not self.quiet:
            print(f"no resume state in {self.run_dir}; starting from epoch 0")
        status = "ok"
        try:
            with TrainProgress(self.description, self.config.epochs, enabled=not self.quiet) as progress:
                progress.advance_epochs(start_epoch)
                for epoch in range(start_epoch, self.config.epochs):
                    event = self._apply_hook(epoch)
                    record = self._train_epoch(epoch, progress)
                    if event:
                        record["event"] = event
                    record["val_loss"], record["val_acc"] = evaluate(self.model, self.dataset.val, runtime=self.runtime)
                    self.history.append(record)
                    progress.end_epoch(record)
                    self._save_resume(epoch + 1)
        except SkipswitchError as exc:
            self._write_results(f"failed: {exc}", None, None)
            raise
        except KeyboardInterrupt:
            self._write_results("interrupted", None, None)
            raise
        test_loss, test_acc = evaluate(self.model, self.dataset.test, runtime=self.runtime)
        results = self._write_results(status, test_loss, test_acc)
        if self.is_main:
                save_model(self.model_path, self.model, {**self.metadata, "dataset": self.dataset.to_dict(),
                                                      "train_config": self.config.model_dump(),
                                                      "metrics": {"test_acc": test_acc, "test_loss": test_loss}})
        return RunResult(self.model, self.history, test_loss, test_acc, results)

    def _train_epoch(self, epoch: int, progress: TrainProgress) -> dict[str, Any]:
        model, optimizer, config, runtime = self.model, self.optimizer, self.config, self.runtime
        forward_model = runtime.forward_model(model)
        lr = config.lr_at(epoch)
        for group in optimizer.param_groups:
            group["lr"] = lr
        model.train()
        steps = (len(self.dataset.train) + config.batch_size - 1) // config.batch_size
        progress.start_epoch(epoch, steps)
        loss_sum, correct, seen = 0.0, 0, 0
        start = time.perf_counter()
        batches = iterate_batches(
            self.dataset.train, config.batch_size, shuffle=True, augment=self.dataset.augment,
            seed=config.seed, epoch=epoch, shard=runtime.group.shard, workers=config.workers,
        )
        kept = (f"the state after epoch {epoch} is kept in {self.resume_path}" if epoch
                else "no epoch had finished, so there is no state to keep")
        for step, (x, y) in enumerate(batches):
            global_n = min(config.batch_size, len(self.dataset.train) - step * config.batch_size)
            loss_value, batch_correct = train_step(
                model, optimizer, self.loss_fn, x, y, f"at epoch {epoch + 1} step {step + 1}; stopped, {kept}",
                runtime=runtime, weight=y.shape[0] / global_n, forward_model=forward_model)
            n = y.shape[0]
            loss_sum += loss_value * n
            correct += batch_correct
            seen += n
            progress.step(loss_value, correct / seen, seen / (time.perf_counter() - start))
        elapsed = time.perf_counter() - start
        loss_sum, correct, seen = runtime.group.sum([loss_sum, correct, seen])
        return {
            "epoch": epoch + 1,
            "lr": lr,
            "train_loss": loss_sum / max(1, seen),
            "train_acc": correct / max(1, seen),
            "images_per_s": seen / elapsed if elapsed > 0 else 0.0,
            "skip_modes": list(getattr(model, "skip_modes", [])),
        }

    def _write_results(self, status: str, test_loss: float | None, test_acc: float | None) -> dict[str, Any]:
        from ..graph import trace

        summary = trace(self.model).to_dict()
        results = {
            **self.metadata,
            "status": status,
            "model": getattr(self.model, "config", {}),
            "dataset": self.dataset.to_dict(),
            "train_config": self.config.model_dump(),
            "params": summary["params"],
            "macs": summary["macs"],
            "skips": summary["skips"],
            "long_skips": summary["long_skips"],
            "history": self.history,
            "test_loss": test_loss,
            "test_acc": test_acc,
        }
        if self.is_main:
            atomic_write_json(self.results_path, results)
        return results
