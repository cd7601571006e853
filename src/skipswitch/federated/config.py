"""The validated configuration of one federated supernet run (pydantic).

One ``FedConfig`` drives both apps: the server reads it to sample clients, assign subnets,
inject faults and aggregate; the parts a client needs (dataset, partitioning, local
training) travel to it inside each train message, so a ClientApp needs no config of its own.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any, Literal, Optional

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, model_validator

from ..errors import SkipswitchError
from ..io import utf8_file_unless
from ..training.config import MAX_EPOCHS, Seed, cosine_lr, validated
from .profiles import LadderKind


class FedConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    # -- population and data ------------------------------------------------------------------
    clients: int = Field(10, ge=1, le=10_000, description="Number of clients (SuperNodes / data partitions).")
    rounds: int = Field(20, ge=1, le=MAX_EPOCHS)
    dataset: str = "digits"
    data_dir: Optional[str] = None
    partition: Literal["iid", "dirichlet"] = "dirichlet"
    alpha: float = Field(0.5, gt=0, description="Dirichlet concentration; small = more skewed labels.")
    min_partition_size: int = Field(8, ge=1, description="Dirichlet draws are redrawn until every client has this many.")
    seed: Seed = 0
    # -- supernet -------------------------------------------------------------------------------
    space: str = "resnet-cifar"
    space_args: dict[str, Any] = Field(default_factory=dict)
    skip_mode: Literal["long", "short", "none"] = "long"
    profiles: Annotated[Optional[str], AfterValidator(utf8_file_unless())] = Field(None, description="JSON or TOML capability profiles; default: built-in tiers.")
    ladder: LadderKind = Field("depth-width", description=(
        "Capability tiers: depth-width (a tier grows depth, expand ratio and width together) or width "
        "(HeteroFL: every tier has the full depth, tiers scale width and expand ratio)."))
    # -- rounds -----------------------------------------------------------------------------------
    fraction: float = Field(1.0, gt=0, le=1, description="Fraction of clients sampled per round.")
    local_epochs: int = Field(1, ge=1, le=MAX_EPOCHS)
    batch_size: int = Field(32, ge=1)
    lr: float = Field(0.05, gt=0)
    momentum: float = Field(0.9, ge=0, lt=1, description=(
        "Client SGD momentum. Its buffer restarts every round: a client may train another subnet (or not be "
        "sampled) next round and a Flower ClientApp keeps no state between messages; carry momentum across "
        "rounds on the server instead (server_optimizer fedavgm/fedadam/fedyogi)."))
    weight_decay: float = Field(1e-4, ge=0)
    lr_schedule: Literal["constant", "cosine"] = "cosine"
    client_subnets: Literal["fixed", "sampled"] = Field(
        "fixed", description="fixed: a client trains the largest subnet its profile allows; sampled: the sandwich "
                             "rule within that capability (the largest allowed, the smallest and "
                             "client_random_subnets drawn afresh every step), loss averaged over them.")
    client_random_subnets: int = Field(2, ge=0, description="Subnets drawn within the capability per step (sampled).")
    client_targets: Literal["kd", "labels"] = Field(
        "kd", description="What the drawn subnets learn from: the largest allowed subnet's soft outputs (kd: in-place "
                          "distillation) or the labels.")
    kd_temperature: float = Field(1.0, gt=0)
    logit_adjustment: float = Field(0.0, ge=0, description=(
        "tau of the logit-adjusted loss on the labels (Menon et al. ICLR 2021; FedLC, Zhang et al. ICML 2022, calibrates "
        "client logits by label counts in the same spirit): "
        "a client adds tau * log of its own label frequencies to the logits before the cross-entropy, so its skewed "
        "labels do not bias the shared classifier; 0: plain cross-entropy."))
    amp: Literal["off", "bf16", "fp16"] = Field("off", description=(
        "Mixed precision of the clients' local training: off, bf16 or fp16 (with loss scaling). On a CPU with AMX, "
        "bf16 trains about 2x faster (docs/tailor.md, Mixed precision on a CPU)."))
    # -- aggregation ------------------------------------------------------------------------------
    weighting: Literal["count", "samples"] = "samples"
    server_optimizer: Literal["fedavg", "fedavgm", "fedadam", "fedyogi"] = Field(
        "fedavg", description="Step along the aggregate's pseudo-gradient: FedAvg, FedAvgM (Hsu et al. 2019), "
                              "FedAdam or FedYogi (Reddi et al. 2021).")
    server_lr: float = Field(1.0, gt=0, description="Server learning rate (1 with fedavg: the aggregate itself).")
    server_momentum: float = Field(0.9, ge=0, lt=1, description="FedAvgM server momentum.")
    server_beta1: float = Field(0.9, ge=0, lt=1, description="FedAdam/FedYogi first-moment decay.")
    server_beta2: float = Field(0.99, ge=0, lt=1, description="FedAdam/FedYogi second-moment decay.")
    server_tau: float = Field(1e-3, gt=0, description="FedAdam/FedYogi adaptivity (added to sqrt(v)).")
    largest_weight: Optional[float] = Field(
        None, gt=0, lt=1, description="SuperFedNAS: share of the largest-subnet clients where they overlap others.")
    largest_weight_end: Optional[float] = Field(None, gt=0, lt=1, description="Linear decay target of largest_weight.")
    # -- faults ---------------------------------------------------------------------------------
    fail_fraction: float = Field(0.0, ge=0, le=1, description="Sampled clients that crash each round.")
    timeout_fraction: float = Field(0.0, ge=0, le=1, description="Sampled clients that answer after the deadline.")
    round_timeout_s: float = Field(600.0, gt=0, description="Replies arriving later are dropped.")
    min_clients: int = Field(1, ge=1, description="Fewest surviving replies that make a round count.")
    on_too_few: Literal["retry", "skip"] = "retry"
    max_retries: int = Field(2, ge=0, description="Retries of a round before it is skipped.")
    # -- evaluation -------------------------------------------------------------------------------
    eval_every: int = Field(1, ge=0, description="Evaluate largest/smallest subnet every K rounds (0: only at the end).")

    @model_validator(mode="after")
    def _check(self) -> "FedConfig":
        if self.fail_fraction + self.timeout_fraction > 1:
            raise ValueError(f"fail_fraction + timeout_fraction = {self.fail_fraction + self.timeout_fraction:g} > 1")
        if self.min_clients > self.clients:
            raise ValueError(f"min_clients={self.min_clients} exceeds clients={self.clients}")
        if self.largest_weight_end is not None and self.largest_weight is None:
            raise ValueError("largest_weight_end needs largest_weight")
        return self

    def largest_weight_at(self, server_round: int) -> Optional[float]:
        """SuperFedNAS's decaying weight of the largest subnet, linear over the rounds."""
        if self.largest_weight is None:
            return None
        end = self.largest_weight if self.largest_weight_end is None else self.largest_weight_end
        progress = (server_round - 1) / max(1, self.rounds - 1)
        return self.largest_weight + (end - self.largest_weight) * progress

    def lr_at(self, server_round: int) -> float:
        if self.lr_schedule == "constant":
            return self.lr
        return cosine_lr(self.lr, server_round - 1, self.rounds)

    def run_identity(self) -> dict[str, Any]:
        """Fields that must match for a resume (everything but how long to run and fault timing)."""
        return self.model_dump(exclude={"rounds", "round_timeout_s", "eval_every"})

    def identity_with_defaults(self, saved: Optional[dict[str, Any]]) -> Optional[dict[str, Any]]:
        """A checkpoint's saved identity with the fields added since it was written filled in at their
        defaults (a field is only ever added with the earlier behaviour as its default), so that older
        runs still resume."""
        if not isinstance(saved, dict):
            return saved
        current = self.run_identity()
        added = {name: json.loads(json.dumps(field.default)) for name, field in type(self).model_fields.items()
                 if name in current and name not in saved and not field.is_required()}
        return {**added, **saved}


def fed_config(**values) -> FedConfig:
    """Build a FedConfig; a bad value is a one-line SkipswitchError naming it."""
    return validated(FedConfig, **values)


def fed_config_from_run_config(run_config: dict[str, Any]) -> FedConfig:
    """FedConfig from a Flower run config (``[tool.flwr.app.config]``: dashed keys, flat values;
    ``space-args`` as a JSON string)."""
    values: dict[str, Any] = {}
    for key, value in dict(run_config).items():
        name = str(key).replace("-", "_")
        if name == "space_args" and isinstance(value, str):
            try:
                value = json.loads(value) if value else {}
            except json.JSONDecodeError:
                raise SkipswitchError(f"run config space-args={value!r} is not JSON") from None
        if name in ("profiles", "data_dir", "largest_weight", "largest_weight_end") and value in ("", None):
            value = None
        values[name] = value
    return fed_config(**values)


def load_fed_config(path: str | Path) -> FedConfig:
    path = Path(path)
    if not path.is_file():
        raise SkipswitchError(f"federated config {path} not found")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError as exc:
        raise SkipswitchError(f"federated config {path} is not UTF-8 text (byte {exc.start})") from None
    except json.JSONDecodeError as exc:
        raise SkipswitchError(f"federated config {path} is not valid JSON ({exc.msg} at line {exc.lineno})") from None
    if not isinstance(data, dict):
        raise SkipswitchError(f"federated config {path} must hold a JSON object")
    return fed_config(**data)
