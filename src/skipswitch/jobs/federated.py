"""The federated job: weight-shared supernet training on Flower (or the in-process grid)."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, Literal, Optional

from pydantic import ConfigDict, Field, model_validator

from ..federated.config import FedConfig
from ..io import OutDir
from .base import JobResult, check_run_dir


class FedRunJob(FedConfig):
    engine: str = Field("flower", description="flower (Flower simulation on Ray) or local (same apps, in-process grid).")
    out: Optional[OutDir] = Field(None, description="Run directory [default: runs/fed-<dataset>-<clients>c].")
    resume: bool = Field(False, description="Continue from the last round checkpointed in --out.")
    quiet: bool = Field(False, description="No per-round output.")
    verbose: bool = Field(False, description="Show Flower's and Ray's logs.")

    @model_validator(mode="after")
    def _run_dir(self) -> "FedRunJob":
        check_run_dir(self.run_dir(), "fed-run", self.resume, "supernet.safetensors")  # federated.strategy.CHECKPOINT
        return self

    def fed_config(self) -> FedConfig:
        return FedConfig(**self.model_dump(include=set(FedConfig.model_fields)))

    def run_dir(self) -> Path:
        return self.out or Path("runs") / f"fed-{self.dataset}-{self.clients}c"


class FedRunResult(JobResult):
    """The run as the job returns it; its file (``results.json``) belongs to federated.simulate,
    which also reads it on resume, so this model is built from it rather than written."""

    kind: Literal["fed-run"] = "fed-run"
    model_config = ConfigDict(extra="allow")
    rounds_aggregated: int
    rounds_skipped: int
    history: list[dict[str, Any]]
    checkpoint: Path

    def last_val_acc(self, which: str) -> float:
        last = self.history[-1] if self.history else {}
        return last.get(f"{which}_val_acc", float("nan"))


def check_engine(engine: str) -> None:
    from ..errors import SkipswitchError
    from ..federated.simulate import ENGINES

    if engine not in ENGINES:
        raise SkipswitchError(f"unknown engine {engine!r}; choose flower or local")


def run(job: FedRunJob, on_round: Optional[Callable[[dict[str, Any]], None]] = None) -> FedRunResult:
    from ..federated.simulate import run_federated

    check_engine(job.engine)
    out = job.run_dir()
    results = run_federated(job.fed_config(), out, engine=job.engine, resume=job.resume, on_round=on_round,
                            verbose=job.verbose)
    return FedRunResult(**results, checkpoint=out / "supernet.safetensors")
