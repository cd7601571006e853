"""Jobs of weight-sharing supernets: sandwich training, NSGA-II Pareto search, inspection."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal, Optional

from pydantic import BaseModel, ConfigDict, Field, model_validator

from ..io import OutDir
from ..training.config import MAX_EPOCHS, RuntimeConfig, Seed
from .base import JobConfig, JobResult, RunOptions, check_dataset_fits, check_run_dir
from .training import TrainResult, launched_on_ranks, save_on_rank0


class SupernetTrainJob(RunOptions, RuntimeConfig):
    space: str = Field("resnet-cifar", description="Search space: resnet-cifar or ofa-resnet50.")
    dataset: str = Field("digits", description="digits, mnist5k, cifar10, cifar100, svhn or imagefolder.")
    skip_mode: str = Field("long", description="Skip mode of every block: long, short or none.")
    strategy: str = Field("sandwich", description="sandwich (in-place distillation), progressive (phased sandwich), "
                          "compound (CompOFA) or ofa (OFA progressive shrinking: full network, then depth, expand, width).")
    n_random: int = Field(2, ge=0, le=64, description="Random subnets per step besides the largest and smallest (not ofa).")
    sort_every: int = Field(1, ge=0, description="Sort inner channels by importance every K epochs (0: never; not ofa).")
    kd_ratio: float = Field(1.0, ge=0, description="Weight of the soft-target KL in each subnet's loss (OFA kd_ratio).")
    lr_per_subnet: bool = Field(False, description="Multiply --lr by the subnets per step, so the averaged sandwich "
                                "loss takes the summed loss's step (not ofa).")
    shrink_epochs: Optional[int] = Field(None, gt=0, le=MAX_EPOCHS, description="ofa: epochs of the shrinking phases "
                                         "after the full network's --epochs [default: --epochs].")
    base_width: Optional[int] = Field(None, ge=4, le=1024, description="resnet-cifar: channels of stage 1 at width 1.0 [16].")
    max_depth: Optional[int] = Field(None, ge=1, le=32, description="resnet-cifar: most blocks per stage [3].")
    out: Optional[OutDir] = Field(None, description="Run directory [default: runs/supernet-<space>-<dataset>-<skip-mode>].")
    epochs: int = Field(30, gt=0, le=MAX_EPOCHS, description="Training epochs (> 0).")
    batch_size: int = Field(64, gt=0, le=1_000_000, description="Mini-batch size (> 0).")
    lr: float = Field(0.1, gt=0, description="Initial learning rate (cosine schedule, SGD with Nesterov momentum 0.9).")
    weight_decay: float = Field(1e-4, ge=0, description="L2 weight decay.")
    seed: Seed = Field(0, description="Seed for weights, splits, sampling and search.")

    @model_validator(mode="after")
    def _run_dir(self) -> "SupernetTrainJob":
        if self.lr_per_subnet and self.strategy == "ofa":
            raise ValueError("--lr-per-subnet is for the averaged strategies: ofa sums its subnets' losses")
        check_run_dir(self.run_dir(), "supernet-train")
        return self

    def run_dir(self) -> Path:
        return self.out or Path("runs") / f"supernet-{self.space}-{self.dataset}-{self.skip_mode}"


class SupernetMetrics(BaseModel):
    model_config = ConfigDict(extra="allow")
    largest_test_acc: float
    smallest_test_acc: float


class SupernetTrainResult(TrainResult):
    kind: Literal["supernet-train"] = "supernet-train"
    supernet_metrics: SupernetMetrics


class SearchJob(JobConfig):
    checkpoint: Path = Field(..., description="A supernet checkpoint (supernet.safetensors).")
    cost: str = Field("macs", description="Cost objective: macs, params, cpu-latency (or a registered one).")
    population: int = Field(16, ge=2, le=10_000, description="NSGA-II population size.")
    generations: int = Field(8, ge=1, le=10_000, description="NSGA-II generations.")
    calibration: int = Field(4, ge=1, le=10_000, description="Training batches used to recalibrate each subnet's BatchNorm.")
    out: Optional[OutDir] = Field(None, description="Output directory [default: the checkpoint's directory / search-<cost>].")
    dataset: Optional[str] = Field(None, description="Dataset [default: the checkpoint's].")
    data_dir: Optional[Path] = Field(None, description="Directory holding a local dataset (CIFAR, SVHN, ImageFolder).")
    seed: Seed = Field(0, description="Seed for weights, splits, sampling and search.")


class ParetoPoint(BaseModel):
    model_config = ConfigDict(extra="allow")
    key: str
    cost: float
    val_acc: float
    test_acc: float
    weight_bytes: int


class SearchResult(JobResult):
    """The search as the job returns it. Its file, ``pareto.json``, belongs to supernet.search
    (read by serving), so this model is not written: the job builds it from the same dict."""

    kind: Literal["supernet-search"] = "supernet-search"
    model_config = ConfigDict(extra="allow")
    cost_unit: str
    pareto: list[ParetoPoint]
    evaluated: list[dict[str, Any]]
    pareto_json: Path
    pareto_png: Path
    checkpoint: Path


class InfoJob(JobConfig):
    checkpoint: Path = Field(..., description="A supernet checkpoint.")


class InfoResult(JobResult):
    kind: Literal["supernet-info"] = "supernet-info"
    space: dict[str, Any]
    skip_mode: str
    subnets: int
    largest_bytes: int
    smallest_bytes: int
    bn_subnets: list[dict[str, Any]]
    dataset: Optional[str]
    metrics: dict[str, Any]


def train(job: SupernetTrainJob) -> SupernetTrainResult:
    from ..models import check_skip_mode
    from ..supernet.train import train_supernet
    from ..training import TrainConfig, validated

    check_skip_mode(job.skip_mode)
    config = validated(TrainConfig, **job.model_dump(include={"epochs", "batch_size", "lr", "weight_decay", "seed",
                                                              *RuntimeConfig.model_fields}))
    space_args = {k: v for k, v in (("base_width", job.base_width), ("max_depth", job.max_depth)) if v is not None}
    out = job.run_dir()
    if launched_on_ranks(config):
        return SupernetTrainResult.load(out / "results.json")
    _, run = train_supernet(job.space, job.dataset, config=config, out_dir=out, skip_mode=job.skip_mode,
                            strategy=job.strategy, n_random=job.n_random, sort_every=job.sort_every,
                            kd_ratio=job.kd_ratio, lr_per_subnet=job.lr_per_subnet, shrink_epochs=job.shrink_epochs,
                            space_args=space_args, data_dir=job.data_dir, quiet=job.quiet, resume=job.resume)
    result = SupernetTrainResult(**run.results)
    save_on_rank0(result, out / "results.json")
    return result


def search(job: SearchJob) -> SearchResult:
    from ..data import load_dataset
    from ..supernet.io import load_supernet, save_supernet
    from ..supernet.search import get_cost, search as run_search, write_search

    get_cost(job.cost)  # fail on a bad name before loading anything
    supernet, meta = load_supernet(job.checkpoint)
    ds_meta = meta.get("dataset", {})
    ds = load_dataset(job.dataset or ds_meta.get("name", "digits"), job.data_dir, seed=ds_meta.get("seed", 0))
    check_dataset_fits(job.checkpoint, ds_meta, ds.to_dict())
    out = job.out or job.checkpoint.parent / f"search-{job.cost}"
    supernet.bn_stats.clear()
    supernet.bn_configs.clear()
    found = run_search(supernet, ds, cost=job.cost, population=job.population, generations=job.generations,
                       seed=job.seed, calibration=job.calibration)
    json_path, png_path = write_search(found, out)
    save_supernet(out / "supernet.safetensors", supernet,
                  {**{k: v for k, v in meta.items() if k != "bn_configs"}, "pareto": str(json_path)})
    found = {k: v for k, v in found.items() if k not in ("kind", "version")}  # the Pareto file's own
    return SearchResult(**found, pareto_json=json_path, pareto_png=png_path, checkpoint=out / "supernet.safetensors")


def info(job: InfoJob) -> InfoResult:
    from ..supernet.io import load_supernet

    supernet, meta = load_supernet(job.checkpoint)
    space = supernet.space
    return InfoResult(space=space.to_dict(), skip_mode=supernet.supernet_skip_mode, subnets=space.size(),
                      largest_bytes=supernet.weight_bytes(space.largest()),
                      smallest_bytes=supernet.weight_bytes(space.smallest()),
                      bn_subnets=[c.to_dict() for c in supernet.bn_configs.values()],
                      dataset=meta.get("dataset", {}).get("name"), metrics=meta.get("metrics", {}))
