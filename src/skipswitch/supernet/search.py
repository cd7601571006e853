"""Pareto search over a trained supernet's subnets with NSGA-II (pymoo).

Objectives (both minimised): 1 - validation accuracy (after per-subnet BN
recalibration) and a pluggable cost from ``COSTS``: ``macs`` and ``params`` (read from
the fx graph of the extracted subnet), ``cpu-latency`` (median of timed batch-1 forwards
of the extracted subnet). ``register_cost`` adds more, e.g. a hardware-model latency.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Literal, Optional

import numpy as np
import torch
from pydantic import BaseModel, Field

from ..checkpoint import VersionedFile
from ..data import Dataset
from ..errors import SkipswitchError
from ..io import atomic_write_figure
from .elastic import ElasticResNet
from .space import ElasticSpace, SubnetConfig
from .train import calibration_batches, subnet_accuracy

CostFn = Callable[[ElasticResNet, SubnetConfig], float]


@dataclass(frozen=True)
class CostObjective:
    name: str
    unit: str  # axis label unit, e.g. "MMACs"
    fn: CostFn


COSTS: dict[str, CostObjective] = {}


def register_cost(name: str, unit: str) -> Callable[[CostFn], CostFn]:
    """Register ``fn(supernet, config) -> float`` (lower is better) as a search cost."""

    def wrap(fn: CostFn) -> CostFn:
        COSTS[name] = CostObjective(name, unit, fn)
        return fn

    return wrap


def get_cost(name: str) -> CostObjective:
    if name not in COSTS:
        raise SkipswitchError(f"unknown search cost {name!r}; choose one of {', '.join(sorted(COSTS))}")
    return COSTS[name]


def _graph_summary(supernet: ElasticResNet, config: SubnetConfig) -> dict:
    from ..graph import trace

    return trace(supernet.extract(config)).to_dict()


@register_cost("macs", "MMACs")
def macs_cost(supernet: ElasticResNet, config: SubnetConfig) -> float:
    return _graph_summary(supernet, config)["macs"] / 1e6


@register_cost("params", "k parameters")
def params_cost(supernet: ElasticResNet, config: SubnetConfig) -> float:
    return _graph_summary(supernet, config)["params"] / 1e3


@register_cost("cpu-latency", "ms, batch 1, median of 20")
def cpu_latency_cost(supernet: ElasticResNet, config: SubnetConfig, repeats: int = 20) -> float:
    model = supernet.extract(config).eval()
    x = torch.zeros(1, supernet.in_channels, *supernet.input_size)
    times = []
    with torch.no_grad():
        model(x)  # warm-up
        for _ in range(repeats):
            start = time.perf_counter()
            model(x)
            times.append(time.perf_counter() - start)
    return float(np.median(times) * 1e3)


# -- genome encoding: integer indices into the space's choices ---------------------------------
def genome_bounds(space: ElasticSpace) -> np.ndarray:
    """Upper bound of every gene: per stage depth index, per max-depth block expand index, per stage width index."""
    uppers = [len(c) - 1 for c in space.depth_choices]
    uppers += [len(space.expand_choices) - 1] * sum(max(c) for c in space.depth_choices)
    uppers += [len(space.width_choices) - 1] * space.num_stages
    return np.array(uppers, dtype=int)


def decode(space: ElasticSpace, genes) -> SubnetConfig:
    genes = [int(round(g)) for g in genes]
    n = space.num_stages
    depths = [space.depth_choices[s][genes[s]] for s in range(n)]
    expands, pos = [], n
    for s in range(n):
        block_genes = genes[pos: pos + max(space.depth_choices[s])]
        expands.append([space.expand_choices[g] for g in block_genes[: depths[s]]])
        pos += max(space.depth_choices[s])
    widths = [space.width_choices[g] for g in genes[pos: pos + n]]
    return space.config(depths, expands, widths)


def encode(space: ElasticSpace, config: SubnetConfig) -> np.ndarray:
    genes = [space.depth_choices[s].index(d) for s, d in enumerate(config.depths)]
    for s in range(space.num_stages):
        stage = [space.expand_choices.index(e) for e in config.expands[s]]
        genes += stage + [len(space.expand_choices) - 1] * (max(space.depth_choices[s]) - len(stage))
    genes += [space.width_choices.index(w) for w in config.widths]
    return np.array(genes, dtype=int)


def pareto_mask(points: np.ndarray) -> np.ndarray:
    """Non-dominated rows of ``points`` (all objectives minimised)."""
    from pymoo.util.nds.non_dominated_sorting import find_non_dominated

    mask = np.zeros(len(points), dtype=bool)
    mask[find_non_dominated(np.asarray(points, dtype=float))] = True
    return mask


class SearchPoint(BaseModel):
    """One evaluated subnet; the Pareto set's points also carry test accuracy and weight bytes."""

    config: dict[str, Any]  # SubnetConfig.to_dict()
    key: str
    val_acc: float = Field(ge=0, le=1)
    cost: float
    test_acc: Optional[float] = Field(None, ge=0, le=1)
    weight_bytes: Optional[int] = Field(None, ge=0)


class ParetoFile(VersionedFile):
    """``pareto.json``: what ``search`` found, read by the serving engine."""

    kind: Literal["skipswitch.pareto"] = "skipswitch.pareto"
    version: Literal[1] = 1
    space: dict[str, Any]
    skip_mode: str
    dataset: dict[str, Any]
    cost: str
    cost_unit: str
    population: int
    generations: int
    seed: int
    evaluated: list[SearchPoint]
    pareto: list[SearchPoint] = Field(min_length=1)


def search(
    supernet: ElasticResNet,
    dataset: Dataset,
    *,
    cost: str = "macs",
    population: int = 16,
    generations: int = 8,
    seed: int = 0,
    calibration: int = 4,
    quiet: bool = True,
) -> dict[str, Any]:
    """Run NSGA-II; return every evaluated subnet and the Pareto set (with test accuracy), as
    ``ParetoFile`` fields.

    BN statistics of the Pareto set stay stored in ``supernet``."""
    from pymoo.algorithms.moo.nsga2 import NSGA2
    from pymoo.core.problem import Problem
    from pymoo.operators.crossover.sbx import SBX
    from pymoo.operators.mutation.pm import PM
    from pymoo.operators.repair.rounding import RoundingRepair
    from pymoo.optimize import minimize

    if population < 2 or generations < 1:
        raise SkipswitchError(f"search needs population >= 2 and generations >= 1, got {population} and {generations}")
    cost_def = get_cost(cost)
    space = supernet.space
    calib = calibration_batches(dataset, batches=calibration, seed=seed)
    evaluated: dict[str, dict[str, Any]] = {}

    def evaluate_config(config: SubnetConfig) -> tuple[float, float]:
        key = config.key()
        if key not in evaluated:
            acc = subnet_accuracy(supernet, config, dataset, "val", calib)
            supernet.bn_stats.pop(key, None)  # keep stored statistics for the Pareto set only
            supernet.bn_configs.pop(key, None)
            evaluated[key] = {"config": config.to_dict(), "key": key, "val_acc": acc,
                              "cost": float(cost_def.fn(supernet, config))}
        record = evaluated[key]
        return 1.0 - record["val_acc"], record["cost"]

    upper = genome_bounds(space)

    class SubnetProblem(Problem):
        def __init__(self):
            super().__init__(n_var=len(upper), n_obj=2, xl=np.zeros(len(upper)), xu=upper.astype(float), vtype=int)

        def _evaluate(self, X, out, *args, **kwargs):
            out["F"] = np.array([evaluate_config(decode(space, row)) for row in X])

    rng = np.random.default_rng(seed)
    initial = np.array([encode(space, space.largest()), encode(space, space.smallest())]
                       + [rng.integers(0, upper + 1) for _ in range(population - 2)])
    algorithm = NSGA2(
        pop_size=population, sampling=initial,
        crossover=SBX(prob=0.9, eta=15, vtype=float, repair=RoundingRepair()),
        mutation=PM(eta=20, vtype=float, repair=RoundingRepair()),
        eliminate_duplicates=True,
    )
    minimize(SubnetProblem(), algorithm, ("n_gen", generations), seed=seed, verbose=not quiet)

    records = list(evaluated.values())
    objectives = np.array([[1.0 - r["val_acc"], r["cost"]] for r in records])
    front = [r for r, keep in zip(records, pareto_mask(objectives)) if keep]
    front.sort(key=lambda r: r["cost"])
    for record in front:
        config = SubnetConfig.from_dict(record["config"], space)
        record["test_acc"] = subnet_accuracy(supernet, config, dataset, "test", calib)
        record["weight_bytes"] = supernet.weight_bytes(config)
    return ParetoFile(space=space.to_dict(), skip_mode=supernet.supernet_skip_mode, dataset=dataset.to_dict(),
                      cost=cost_def.name, cost_unit=cost_def.unit, population=population, generations=generations,
                      seed=seed, evaluated=records, pareto=front).model_dump()


def plot_pareto(result: dict[str, Any], path: str | Path, extra: dict[str, list[tuple[float, float]]] | None = None) -> None:
    """Scatter of every evaluated subnet, the Pareto front as a line, and optional extra
    labelled point sets (e.g. subnets trained from scratch)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    ev = result["evaluated"]
    ax.scatter([r["cost"] for r in ev], [100 * r["val_acc"] for r in ev], s=10, c="lightgrey", label="evaluated subnets")
    front = result["pareto"]
    ax.plot([r["cost"] for r in front], [100 * r["val_acc"] for r in front], "o-", c="C0", label="Pareto front (val)")
    for label, points in (extra or {}).items():
        ax.scatter([p[0] for p in points], [100 * p[1] for p in points], marker="x", s=40, label=label)
    ax.set_xlabel(f"{result['cost']} ({result['cost_unit']})")
    ax.set_ylabel("accuracy (%)")
    ax.set_title(f"{result['space']['name']} on {result['dataset']['name']} ({result['skip_mode']} skips)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    atomic_write_figure(path, fig)


def write_search(result: dict[str, Any], out_dir: str | Path) -> tuple[Path, Path]:
    out_dir = Path(out_dir)
    json_path, png_path = out_dir / "pareto.json", out_dir / "pareto.png"
    ParetoFile.model_validate(result).save(json_path)
    plot_pareto(result, png_path)
    return json_path, png_path
