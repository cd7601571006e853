"""Jobs of the Tailor flow: train a network, tailor its skips under KD, evaluate a checkpoint."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal, Optional

from pydantic import BaseModel, ConfigDict, Field, model_validator

from ..io import OutDir
from ..training.config import Seed, TrainConfig
from .base import JobResult, RunOptions, check_dataset_fits, check_run_dir


class TrainJob(TrainConfig, RunOptions):
    model: str = Field("resnet20", description="Model name from the registry (see `skipswitch models`).")
    dataset: str = Field("digits", description="digits, mnist5k, cifar10, cifar100, svhn or imagefolder.")
    skip_mode: str = Field("long", description="long (teacher), short, or none (no-skip baseline).")
    out: Optional[OutDir] = Field(None, description="Run directory [default: runs/<model>-<dataset>-<skip-mode>].")
    image_size: Optional[int] = Field(None, ge=8, le=1024, description="imagefolder: training crop size [32].")

    @model_validator(mode="after")
    def _run_dir(self) -> "TrainJob":
        check_run_dir(self.run_dir(), "train")
        return self

    def train_config(self) -> TrainConfig:
        return TrainConfig(**self.model_dump(include=set(TrainConfig.model_fields)))

    def run_dir(self) -> Path:
        return self.out or Path("runs") / f"{self.model}-{self.dataset}-{self.skip_mode}"


class TailorJob(TrainConfig, RunOptions):
    teacher: Path = Field(..., description="Teacher checkpoint (model.safetensors from `skipswitch train`).")
    method: str = Field(..., description="remove (Skip Remover) or shorten (Skip Shortener).")
    model: Optional[str] = Field(None, description="Student architecture; must equal the teacher's.")
    dataset: Optional[str] = Field(None, description="Dataset [default: the teacher's].")
    out: Optional[OutDir] = Field(None, description="Run directory [default: runs/<model>-<dataset>-<method>].")
    kd: str = Field("kl", description="KD loss: kl (softened logits, with --temperature) or mse (the Tailor "
                                      "reference; unstable on wide ResNets, docs/tailor.md).")
    alpha: float = Field(0.35, ge=0, le=1, description="Weight of the distillation term; 1 - alpha weighs cross-entropy.")
    temperature: float = Field(4.0, gt=0, le=1000, description="Softmax temperature for --kd kl.")
    every: int = Field(3, ge=1, le=1000, description="Alter the next skip every K epochs.")
    order: str = Field("input", description="Which skip first: input (reference), output, cost (largest skip "
                                            "buffer first), or another registered order.")
    warmup_steps: int = Field(20, ge=0, description="After each alteration (and at the start), raise the learning "
                                                   "rate linearly over this many steps (0: off).")
    clip: float = Field(5.0, ge=0, description="Clip the gradient norm to this value (0: off).")
    recalibrate_batches: int = Field(10, ge=0, description="Recompute BatchNorm statistics over this many training "
                                                          "batches after each alteration (0: off).")
    fade_steps: int = Field(20, ge=0, description="Skip Remover: fade each skip out over this many steps of the "
                                                 "epoch before its removal (0: remove abruptly, the reference).")
    # The teacher recipe's rate: each alteration needs it to recover (docs/tailor.md).
    lr: float = Field(0.1, gt=0, description="Initial learning rate.")

    @model_validator(mode="after")
    def _run_dir(self) -> "TailorJob":
        if self.out is not None:  # the default directory is named from the teacher's metadata (read later)
            check_run_dir(self.out, "tailor")
        return self

    train_config = TrainJob.train_config


class TrainResult(JobResult):
    """``results.json`` of a training run. The trainer writes it as a dict while it runs (and on
    failure); the job rewrites it through this model when the run has finished."""

    kind: Literal["train"] = "train"
    model_config = ConfigDict(extra="allow")  # the trainer's per-run metadata (run, skip_mode, ...)
    status: str
    model: dict[str, Any]
    dataset: dict[str, Any]
    train_config: dict[str, Any]
    params: int
    macs: int
    skips: int
    long_skips: int
    history: list[dict[str, Any]]
    test_loss: Optional[float]
    test_acc: Optional[float]


class TailorKD(BaseModel):
    kind: str
    alpha: float
    temperature: float


class TailorStabilise(BaseModel):
    warmup_steps: int
    clip: float
    recalibrate_batches: int
    fade_steps: int = 0


class TailorSchedule(BaseModel):
    every: int
    order: str
    alterations: list[dict[str, Any]]


class TailorResult(TrainResult):
    kind: Literal["tailor"] = "tailor"
    method: str
    teacher: str
    teacher_test_acc: float
    kd: TailorKD
    schedule: TailorSchedule
    stabilise: Optional[TailorStabilise] = None  # absent in results of earlier versions (no stabilisers)
    teacher_unchanged: bool


class EvalJob(RunOptions):
    checkpoint: Path = Field(..., description="A model checkpoint (.safetensors).")
    dataset: Optional[str] = Field(None, description="Dataset [default: the checkpoint's].")
    seed: Optional[Seed] = Field(None, description="Split seed [default: the checkpoint's].")


class EvalResult(JobResult):
    kind: Literal["eval"] = "eval"
    checkpoint: str
    dataset: str
    test_acc: float
    test_loss: float
    params: int
    macs: int
    skip_modes: list[str]
    skips: int
    long_skips: int


def launched_on_ranks(config: TrainConfig) -> bool:
    """With ``nproc`` > 1 outside torchrun, run this same command in ``nproc`` processes under
    torchrun's agent and return True once they have finished (rank 0 wrote the results)."""
    from ..training import distributed

    if config.nproc > 1 and not distributed.under_torchrun():
        distributed.launch(config.nproc, config.device)
        return True
    return False


def save_on_rank0(result: JobResult, path: Path) -> None:
    from ..training import distributed

    if distributed.is_main_process():
        result.save(path)


def train(job: TrainJob) -> TrainResult:
    from ..models import check_skip_mode
    from ..training.run import train_model

    check_skip_mode(job.skip_mode)
    out = job.run_dir()
    if launched_on_ranks(job):
        return TrainResult.load(out / "results.json")
    run = train_model(job.model, job.dataset, config=job.train_config(), out_dir=out, skip_mode=job.skip_mode,
                      data_dir=job.data_dir, quiet=job.quiet, resume=job.resume, image_size=job.image_size)
    result = TrainResult(**run.results)
    save_on_rank0(result, out / "results.json")
    return result


def tailor_run_dir(job: TailorJob) -> Path:
    from ..checkpoint import read_metadata

    if job.out is not None:
        return job.out
    meta = read_metadata(job.teacher)
    name = meta.get("model", {}).get("name", "model")
    return Path("runs") / f"{name}-{job.dataset or meta.get('dataset', {}).get('name', 'digits')}-{job.method}"


def tailor(job: TailorJob) -> TailorResult:
    from ..tailor import run_tailor
    from ..fpga import order  # noqa: F401  (registers the hardware-cost order "cost")

    out = tailor_run_dir(job)
    if launched_on_ranks(job):
        return TailorResult.load(out / "results.json")
    run = run_tailor(job.teacher, job.method, config=job.train_config(), out_dir=out, model_name=job.model,
                     dataset_name=job.dataset, data_dir=job.data_dir, kd=job.kd, alpha=job.alpha,
                     temperature=job.temperature, every=job.every, order=job.order,
                     warmup_steps=job.warmup_steps, clip=job.clip, recalibrate_batches=job.recalibrate_batches,
                     fade_steps=job.fade_steps,
                     quiet=job.quiet,
                     resume=job.resume)
    result = TailorResult(**run.results)
    save_on_rank0(result, out / "results.json")
    return result


def evaluate(job: EvalJob) -> EvalResult:
    from ..checkpoint import load_model
    from ..data import load_dataset
    from ..graph import trace
    from ..training import evaluate as evaluate_model

    model, meta = load_model(job.checkpoint)
    ds_meta = meta.get("dataset", {})
    ds = load_dataset(job.dataset or ds_meta.get("name", "digits"), job.data_dir,
                      seed=job.seed if job.seed is not None else ds_meta.get("seed", 0))
    check_dataset_fits(job.checkpoint, ds_meta, ds.to_dict())
    loss, acc = evaluate_model(model, ds.test)
    summary = trace(model).to_dict()
    return EvalResult(checkpoint=str(job.checkpoint), dataset=ds.name, test_acc=acc, test_loss=loss,
                      params=summary["params"], macs=summary["macs"], skip_modes=model.skip_modes,
                      skips=summary["skips"], long_skips=summary["long_skips"])
