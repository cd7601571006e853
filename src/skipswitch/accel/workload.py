"""Workloads for the accelerator model: a sequence of weight-sharing subnets.

A subnet is the conv/linear layers of its extracted model's graph IR (shapes from
``skipswitch.graph.trace``, never typed in) plus the *region* of the supernet tensor each
layer's weight occupies: per dimension a ``(start, stop)`` range, as
``supernet.weight_regions(config)`` returns them (``Layer.target + ".weight"`` is the key).
Regions are boxes, so every shared-weight count here is exact box arithmetic.

Persistent-buffer (PB) content is chosen over *cells*: per tensor, the grid cut by every
subnet's box boundaries. Each cell lies wholly inside or outside each subnet's box, so its
use count (how many queries read it) is uniform and filling the PB cell by cell is exact.
"""

from __future__ import annotations

import itertools
from pathlib import Path
from dataclasses import dataclass
from typing import Any, Callable, Literal, Sequence

import numpy as np
from pydantic import Field, model_validator

from ..checkpoint import VersionedFile
from ..errors import SkipswitchError
from ..regions import Box, box_overlap, box_volume

PB_POLICIES = ("smallest", "most-used")


def _contains(outer: Box, inner: Box) -> bool:
    return all(so <= si and ei <= eo for (so, eo), (si, ei) in zip(outer, inner))


@dataclass(frozen=True)
class ConvWork:
    """One conv (or linear, as a 1x1 conv on a 1x1 map) layer as the accelerator sees it."""

    name: str
    param: str  # supernet tensor holding the weights
    in_channels: int
    out_channels: int
    in_h: int
    in_w: int
    out_h: int
    out_w: int
    kernel_h: int
    kernel_w: int
    stride: int
    box: Box  # region in the supernet tensor, 4-D (K, C, R, S)

    @property
    def weight_elements(self) -> int:
        return self.out_channels * self.in_channels * self.kernel_h * self.kernel_w

    @property
    def macs(self) -> int:
        return self.weight_elements * self.out_h * self.out_w


@dataclass(frozen=True)
class SubnetWork:
    name: str
    layers: tuple[ConvWork, ...]

    @property
    def weight_elements(self) -> int:
        return sum(layer.weight_elements for layer in self.layers)

    @property
    def macs(self) -> int:
        return sum(layer.macs for layer in self.layers)

    def weight_bytes(self, dw: int = 8) -> int:
        return self.weight_elements * dw // 8

    def boxes(self) -> dict[str, Box]:
        return {layer.param: layer.box for layer in self.layers}


def subnet_from_graph(graph, regions: dict[str, Box], name: str | None = None) -> SubnetWork:
    """The accelerator view of one subnet: its graph's conv/linear layers and their weight regions."""
    layers = []
    for layer in graph.layers:
        if layer.op not in ("conv", "linear"):
            continue
        param = f"{layer.target}.weight"
        if param not in regions:
            raise SkipswitchError(f"layer {layer.target} of {name or graph.model_name} has no weight region {param!r}")
        box = tuple((int(a), int(b)) for a, b in regions[param])
        if layer.op == "conv":
            a = layer.attrs
            if a.get("groups", 1) != 1:
                raise SkipswitchError(f"layer {layer.target}: grouped convs (groups={a['groups']}) are not modelled")
            c, h, w = layer.input_shapes[0]
            k, ho, wo = layer.output_shape
            kh, kw = a["kernel_size"]
            shape, stride = (k, c, kh, kw), int(a["stride"][0])
        else:
            c, k = layer.attrs["in_features"], layer.attrs["out_features"]
            h = w = ho = wo = kh = kw = stride = 1
            shape, box = (k, c, 1, 1), box + ((0, 1), (0, 1))
        extents = tuple(b - a for a, b in box)
        if extents != shape:
            raise SkipswitchError(f"weight region of {param} spans {extents} but the graph's layer has shape {shape}")
        layers.append(ConvWork(layer.name, param, c, k, h, w, ho, wo, kh, kw, stride, box))
    if not layers:
        raise SkipswitchError(f"subnet {name or graph.model_name} has no conv or linear layers")
    return SubnetWork(name or graph.model_name, tuple(layers))


class Workload(VersionedFile):
    """Distinct ``subnets`` and the query ``trace`` (indices into ``subnets``, in serving order);
    also the workload file (``save_workload``/``load_workload``)."""

    kind: Literal["skipswitch.workload"] = "skipswitch.workload"
    version: Literal[1] = 1
    name: str
    subnets: list[SubnetWork]
    trace: tuple[int, ...] = ()
    meta: dict[str, Any] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _check(self) -> "Workload":
        if not self.subnets:
            raise SkipswitchError(f"workload {self.name} has no subnets")
        self.trace = self.trace or tuple(range(len(self.subnets)))
        bad = [i for i in self.trace if not 0 <= i < len(self.subnets)]
        if bad:
            raise SkipswitchError(f"workload {self.name}: trace index {bad[0]} out of range 0..{len(self.subnets) - 1}")
        return self

    @property
    def queries(self) -> list[SubnetWork]:
        return [self.subnets[i] for i in self.trace]

    @property
    def stride_max(self) -> int:
        return max(layer.stride for s in self.subnets for layer in s.layers)

    def with_trace(self, trace: Sequence[int]) -> "Workload":
        return Workload(name=self.name, subnets=self.subnets, trace=tuple(trace), meta=dict(self.meta))

    def smallest(self) -> int:
        return min(range(len(self.subnets)), key=lambda i: self.subnets[i].weight_elements)

    def shared_elements(self, i: int, j: int) -> int:
        """Weight elements subnets i and j both read (exact box intersection)."""
        a, b = self.subnets[i].boxes(), self.subnets[j].boxes()
        return sum(box_overlap(a[p], b[p]) for p in a.keys() & b.keys())

    def union_elements(self) -> int:
        """Distinct weight elements of all subnets (what spatial switching keeps on chip)."""
        return sum(cell_elems for _, _, cell_elems, count in self.cells(weights=[1] * len(self.subnets)) if count > 0)

    def param_order(self) -> list[str]:
        order: dict[str, None] = {}
        for subnet in sorted(self.subnets, key=lambda s: -s.weight_elements):
            for layer in subnet.layers:
                order.setdefault(layer.param, None)
        return list(order)

    def cells(self, weights: Sequence[float] | None = None) -> list[tuple[str, Box, int, float]]:
        """(param, cell box, elements, use count) over the grid cut by all subnets' boxes.

        ``weights[i]`` is how often subnet i is queried (default: its count in the trace)."""
        if weights is None:
            weights = np.bincount(self.trace, minlength=len(self.subnets))
        boxes: dict[str, list[tuple[Box, float]]] = {}
        for subnet, weight in zip(self.subnets, weights):
            for param, box in subnet.boxes().items():
                boxes.setdefault(param, []).append((box, float(weight)))
        out = []
        for param in self.param_order():
            entries = boxes[param]
            cuts = [sorted({v for box, _ in entries for v in box[d]}) for d in range(len(entries[0][0]))]
            for cell in itertools.product(*[list(zip(c[:-1], c[1:])) for c in cuts]):
                count = sum(w for box, w in entries if _contains(box, cell))
                out.append((param, cell, box_volume(cell), count))
        return out


@dataclass
class PersistentPlan:
    """Cells in the order a PB fills them; a PB of capacity E elements holds the first E."""

    policy: str
    cells: list[tuple[str, Box, int]]

    @property
    def max_elements(self) -> int:
        return sum(n for _, _, n in self.cells)

    def __post_init__(self):
        # Per tensor: fill start (elements before the cell in fill order), size and box of its cells.
        self._by_param: dict[str, tuple[np.ndarray, np.ndarray, list[Box]]] = {}
        starts = np.cumsum([0] + [n for _, _, n in self.cells])[:-1]
        grouped: dict[str, list[tuple[int, int, Box]]] = {}
        for (param, cell, n), start in zip(self.cells, starts):
            grouped.setdefault(param, []).append((int(start), n, cell))
        for param, items in grouped.items():
            self._by_param[param] = (np.array([i[0] for i in items], np.float64),
                                     np.array([i[1] for i in items], np.float64), [i[2] for i in items])

    def onchip_elements(self, layer: ConvWork, capacity_elements) -> np.ndarray:
        """Elements of ``layer``'s weights held by a PB of ``capacity_elements`` (array-broadcast).

        A partly filled cell holds a uniform fraction of its elements (rows fill in order; the
        fraction is what counts for bytes)."""
        capacity = np.asarray(capacity_elements, dtype=np.float64)
        if layer.param not in self._by_param:
            return np.zeros_like(capacity)
        starts, sizes, boxes = self._by_param[layer.param]
        overlap = np.array([box_overlap(cell, layer.box) for cell in boxes], np.float64)
        keep = overlap > 0
        if not keep.any():
            return np.zeros_like(capacity)
        fill = np.clip((capacity[..., None] - starts[keep]) / sizes[keep], 0.0, 1.0)
        return fill @ overlap[keep]


def pb_plan(workload: Workload, policy: str = "most-used", weights: Sequence[float] | None = None) -> PersistentPlan:
    """(a) ``smallest``: the smallest subnet's weights, in layer order (FastSwitch);
    (b) ``most-used``: cells by how many queries read them, most first (SUSHI-like)."""
    if policy not in PB_POLICIES:
        raise SkipswitchError(f"unknown PB policy {policy!r}; choose one of {', '.join(PB_POLICIES)}")
    cells = workload.cells(weights)
    if policy == "smallest":
        small = workload.subnets[workload.smallest()].boxes()
        chosen = [(p, c, n) for p, c, n, _ in cells if p in small and _contains(small[p], c)]
    else:
        ranked = sorted(enumerate(cells), key=lambda item: (-item[1][3], item[0]))
        chosen = [(p, c, n) for _, (p, c, n, count) in ranked if count > 0]
    return PersistentPlan(policy, chosen)


# -- building workloads from a supernet (its extract/weight_regions API) -------------------------
def workload_from_supernet(supernet, configs: Sequence[Any], name: str = "workload", trace: Sequence[int] = (),
                           trace_fn: Callable | None = None) -> Workload:
    """Subnets of ``supernet`` for ``configs``: ``trace(supernet.extract(c))`` + ``supernet.weight_regions(c)``."""
    if trace_fn is None:
        from ..graph import trace as trace_fn
    subnets = []
    for i, config in enumerate(configs):
        graph = trace_fn(supernet.extract(config))
        subnets.append(subnet_from_graph(graph, supernet.weight_regions(config), name=f"subnet{i}"))
    return Workload(name=name, subnets=subnets, trace=tuple(trace), meta={"configs": [getattr(c, "to_dict", lambda: c)() for c in configs]})


def workload_from_pareto_checkpoint(path: str) -> Workload:
    """The Pareto set stored in a supernet checkpoint by ``skipswitch supernet search``, in size order."""
    from ..supernet.io import load_supernet

    supernet, _ = load_supernet(path)
    configs = sorted(supernet.bn_configs.values(), key=supernet.weight_bytes)
    if not configs:
        raise SkipswitchError(f"supernet checkpoint {path} stores no Pareto set; run `skipswitch supernet search` on it first")
    return workload_from_supernet(supernet, configs, name=Path(path).stem)


def _level_config(space, level: float, rng: np.random.Generator):
    """A config whose choices sit near ``level`` (0 = smallest, 1 = largest) of every choice list,
    jittered: uniform random sampling almost never reaches the large end of the size range."""
    def pick(choices):
        i = level * (len(choices) - 1) + rng.uniform(-0.75, 0.75)
        return choices[int(np.clip(np.rint(i), 0, len(choices) - 1))]

    depths = [pick(c) for c in space.depth_choices]
    return space.config(depths, [[pick(space.expand_choices) for _ in range(d)] for d in depths],
                        [pick(space.width_choices) for _ in depths])


def spread_configs(supernet, count: int, candidates: int = 120, seed: int = 0) -> list:
    """``count`` configs whose weight sizes spread uniformly from the smallest to the largest subnet
    (the paper's sequence, Sec. 4): the smallest, the largest, and between them the candidate
    nearest to each evenly spaced target size."""
    if count < 2:
        raise SkipswitchError(f"invalid sequence length {count}: need at least 2 (smallest and largest)")
    space = supernet.space
    rng = np.random.default_rng(seed)

    def size(config) -> int:
        return sum(box_volume(b) for b in supernet.weight_regions(config).values())

    if all(hasattr(space, a) for a in ("depth_choices", "expand_choices", "width_choices", "config")):
        pool = [_level_config(space, (i + 0.5) / candidates, rng) for i in range(candidates)]
    else:  # only the contract's sampler
        pool = [space.sample(seed + i) for i in range(candidates)]
    low, high = space.smallest(), space.largest()
    sizes = np.array([size(c) for c in pool], dtype=np.float64)
    targets = np.linspace(size(low), size(high), count)[1:-1]
    chosen, used = [low], set()
    for t in targets:
        order = np.argsort(np.abs(sizes - t), kind="stable")
        pick = next(int(i) for i in order if int(i) not in used)
        used.add(pick)
        chosen.append(pool[pick])
    return chosen + [high]


def ofa_resnet50_workload(sequence: int = 9, seed: int = 0, candidates: int = 300) -> Workload:
    """The default workload: an untrained ``ofa-resnet50`` supernet, ``sequence`` subnets spread smallest->largest."""
    from ..supernet import supernet_for

    supernet = supernet_for("ofa-resnet50")
    configs = spread_configs(supernet, sequence, candidates=candidates, seed=seed)
    return workload_from_supernet(supernet, configs, name=f"ofa-resnet50 x{sequence}")


WORKLOADS: dict[str, Callable[..., Workload]] = {"ofa-resnet50": ofa_resnet50_workload}


def save_workload(workload: Workload, path) -> None:
    workload.save(path)


def load_workload(path) -> Workload:
    return Workload.load(path)


def get_workload(name: str, sequence: int = 9, seed: int = 0) -> Workload:
    """A named workload; a workload JSON file (``save_workload``) when ``name`` ends in .json; or a
    searched supernet checkpoint (.safetensors): its Pareto subnets, smallest to largest."""
    if name.endswith(".json"):
        return load_workload(name)
    if name.endswith(".safetensors"):
        return workload_from_pareto_checkpoint(name)
    if name not in WORKLOADS:
        raise SkipswitchError(f"unknown workload {name!r}; choose one of {', '.join(WORKLOADS)}")
    return WORKLOADS[name](sequence=sequence, seed=seed)
