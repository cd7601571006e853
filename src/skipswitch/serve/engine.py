"""The serving engine: one supernet checkpoint, a Pareto set of subnets, four ways to switch.

* ``inplace`` (SuperServe's SubNetAct): the supernet stays resident; a switch only points the
  forward at another subnet's slices (views of the shared weights, a few small ones as
  contiguous copies made at start-up) and its precomputed BatchNorm statistics. Nothing is
  copied at a switch (unless a copied weight's source was written since) and nothing is recalibrated.
* ``temporal`` (baseline): every subnet is extracted to its own checkpoint on disk at start-up;
  a switch loads that checkpoint, so only the active subnet is resident.
* ``spatial`` (baseline): every subnet is extracted and kept in memory; a switch is a lookup.
* ``budget`` (FastSwitch's persistent/dynamic buffers on a real device): the weights every
  subnet of the set reads stay resident (persistent buffer, PB); a switch copies the rest of
  the new subnet's weights (dynamic part) from host memory - pinned on CUDA - into one
  dynamic buffer (DB) sized for the largest dynamic part; a forward unifies PB and DB into
  the subnet's tensors, as FastSwitch's array reads from both buffers.

All four produce the outputs of the subnet ``ElasticResNet.extract`` builds (tests check it).
"""

from __future__ import annotations

import copy
import math
import statistics
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Sequence

import torch
from torch import nn
from torch.func import functional_call

from ..checkpoint import load_model, save_model
from ..errors import SkipswitchError
from ..regions import Regions
from ..supernet import ElasticResNet, SubnetConfig

MODES = ("inplace", "temporal", "spatial", "budget")
DEFAULT_BATCH_SIZES = (1, 2, 4, 8, 16, 32)
# Bytes the in-place mode may add for contiguous weight copies, as a fraction of what it holds
# without them (issue 16: resident <= 1.05x the union of the served regions + BN statistics).
CACHE_FRACTION = 0.05


@dataclass
class Subnet:
    """One servable point of the Pareto set."""

    name: str
    config: SubnetConfig
    accuracy: float
    weight_bytes: int  # bytes of the standalone (extracted) subnet: params + BN statistics
    per_subnet_bn: bool  # precomputed BN statistics present (else the supernet's shared ones)
    latency: dict[int, float] = field(default_factory=dict)  # batch size -> median seconds

    def latency_for(self, batch_size: int) -> float:
        """Profiled latency of a batch: the smallest profiled size that holds it, or a linear
        extrapolation from the largest profiled size."""
        if not self.latency:
            return 0.0
        sizes = sorted(self.latency)
        for size in sizes:
            if size >= batch_size:
                return self.latency[size]
        return self.latency[sizes[-1]] * batch_size / sizes[-1]

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "key": self.config.key(), "config": self.config.to_dict(),
                "accuracy": self.accuracy, "weight_bytes": self.weight_bytes, "per_subnet_bn": self.per_subnet_bn,
                "latency_ms": {str(b): round(s * 1e3, 4) for b, s in sorted(self.latency.items())}}


def tensor_bytes(tensors: Iterable[torch.Tensor]) -> int:
    return sum(t.numel() * t.element_size() for t in tensors)


def _inference_state(model: nn.Module) -> dict[str, torch.Tensor]:
    # num_batches_tracked is a training counter, not an inference weight.
    return {k: v for k, v in model.state_dict().items() if not k.endswith("num_batches_tracked")}


# -- backends: one per switching mode -------------------------------------------------------------
class Backend:
    mode = ""

    def activate(self, subnet: Subnet) -> None:
        raise NotImplementedError

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def resident_bytes(self) -> int:
        raise NotImplementedError

    def to_dict(self) -> dict[str, Any]:
        return {"mode": self.mode, "resident_bytes": self.resident_bytes()}


class InPlaceBackend(Backend):
    """Serves from a copy of the supernet trimmed to the elements some Pareto subnet reads
    (per tensor, the bounding box of their prefix boxes). Each served subnet gets its own
    module skeleton (built on the meta device, no weights) whose parameters are views of the
    trimmed tensors and whose BN buffers are its precomputed statistics: a switch assigns
    one reference, and the forward is the subnet's plain ``ResNet`` forward, without the
    per-call slicing and config walking of the supernet's active forward.

    A view that narrows a weight's input channels is not contiguous, and a CPU convolution
    copies such a weight to a contiguous buffer on every call (about 1.5 us each, whatever
    its size: measured). ``cache_fraction`` of the resident bytes buys contiguous copies of
    the smallest such views, made once at start-up (``ContiguousCache``)."""

    mode = "inplace"

    def __init__(self, supernet: ElasticResNet, subnets: Sequence[Subnet], device: torch.device, trim: bool = True,
                 cache_fraction: float = CACHE_FRACTION):
        self.supernet = trim_supernet(supernet, [s.config for s in subnets]) if trim else copy.deepcopy(supernet)
        self.supernet.to(device)
        self.supernet.bn_stats = {k: {n: t.to(device) for n, t in st.items()}
                                  for k, st in self.supernet.bn_stats.items()}
        self.keys = {s.config.key() for s in subnets}
        self.models = {s.name: bind_views(self.supernet, s.config) for s in subnets}
        self.cache = ContiguousCache(self.models, int(cache_fraction * self.shared_bytes()))
        self.current: nn.Module | None = None

    def activate(self, subnet: Subnet) -> None:
        # Every view was bound at start-up; choosing the skeleton is the whole switch (after
        # re-copying any cached weight whose source was written since).
        self.cache.refresh(subnet.name)
        self.current = self.models[subnet.name]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.current(x)

    def shared_bytes(self) -> int:
        """The trimmed supernet + the served subnets' BN statistics: what the views read."""
        stats = [t for key, s in self.supernet.bn_stats.items() if key in self.keys for t in s.values()]
        return tensor_bytes(_inference_state(self.supernet).values()) + tensor_bytes(stats)

    def resident_bytes(self) -> int:
        return self.shared_bytes() + self.cache.bytes

    def to_dict(self) -> dict[str, Any]:
        return {**super().to_dict(), "contiguous_cache_bytes": self.cache.bytes,
                "noncontiguous_views": {name: sum(not p.is_contiguous() for p in model.parameters())
                                        for name, model in self.models.items()}}


class ContiguousCache:
    """Contiguous copies of the skeletons' non-contiguous weight views, smallest first while
    their bytes fit ``budget`` (a per-call copy costs about the same whatever the size, so the
    small ones buy the most per byte). Views of the same elements share one copy. Each copy
    remembers its source's version counter (shared by a view and its base tensor and bumped
    by every in-place write: ``copy_``, ``load_state_dict``, an optimiser step), and
    ``refresh`` re-copies a stale one, so a served subnet never reads weights older than its
    last switch."""

    def __init__(self, models: dict[str, nn.Module], budget: int):
        sources: dict[tuple, torch.Tensor] = {}
        users: dict[tuple, list[tuple[str, nn.Module, str]]] = {}
        for model_name, model in models.items():
            for module in model.modules():
                for name, p in module._parameters.items():
                    if p is not None and not p.is_contiguous():
                        key = (p.data_ptr(), tuple(p.shape), p.stride())
                        sources.setdefault(key, p)
                        users.setdefault(key, []).append((model_name, module, name))
        self.entries: dict[str, list[list]] = {name: [] for name in models}  # model -> [source, copy, version]
        self.bytes = 0
        for key in sorted(sources, key=lambda k: sources[k].numel()):
            source = sources[key]
            size = source.numel() * source.element_size()
            if self.bytes + size > budget:
                break
            self.bytes += size
            entry = [source, nn.Parameter(source.contiguous(), requires_grad=False), source._version]
            for model_name, module, name in users[key]:
                module._parameters[name] = entry[1]
                self.entries[model_name].append(entry)

    def refresh(self, model_name: str) -> None:
        for entry in self.entries[model_name]:
            if entry[0]._version != entry[2]:
                entry[1].copy_(entry[0])
                entry[2] = entry[0]._version


def bind_views(supernet: ElasticResNet, config: SubnetConfig) -> nn.Module:
    """The subnet's architecture whose tensors are prefix views of ``supernet``'s (or its
    stored BN statistics): no weight is copied."""
    with torch.device("meta"):
        model = supernet.space.build(config, skip_mode=supernet.supernet_skip_mode).eval()
    own = supernet.state_dict(keep_vars=True)
    stats = supernet.bn_stats.get(config.key(), {})
    device = next(iter(own.values())).device
    for module_name, module in model.named_modules():
        for slot in (module._parameters, module._buffers):
            for name, target in slot.items():
                if target is None:
                    continue
                full = f"{module_name}.{name}" if module_name else name
                if name == "num_batches_tracked":  # a training counter: eval never reads it
                    slot[name] = torch.zeros((), dtype=torch.long, device=device)
                    continue
                view = stats.get(full, own[full]).detach()[tuple(slice(0, n) for n in target.shape)]
                slot[name] = nn.Parameter(view, requires_grad=False) if slot is module._parameters else view
    return model


def union_bytes(regions: Sequence[Regions], bytes_per_element: int = 4) -> int:
    """Bytes of the union of prefix regions (every box starts at 0): what a set of subnets
    reads between them, counted once."""
    names = {n for r in regions for n in r}
    total = 0
    for name in names:
        boxes = [r[name] for r in regions if name in r]
        mask = torch.zeros(tuple(max(box[d][1] for box in boxes) for d in range(len(boxes[0]))), dtype=torch.bool)
        for box in boxes:
            mask[tuple(slice(a, b) for a, b in box)] = True
        total += int(mask.sum())
    return total * bytes_per_element


def trim_supernet(supernet: ElasticResNet, configs: Sequence[SubnetConfig]) -> ElasticResNet:
    """A copy of ``supernet`` whose tensors keep only the bounding box of what ``configs`` read
    (tensors none of them reads become empty). Only its active forward is usable."""
    trimmed = copy.deepcopy(supernet)
    regions = [supernet.weight_regions(c) for c in configs]
    with torch.no_grad():
        for name, tensor in [*trimmed.named_parameters(), *trimmed.named_buffers()]:
            if name.endswith("num_batches_tracked"):
                continue
            boxes = [r[name] for r in regions if name in r]
            stop = tuple(max((box[d][1] for box in boxes), default=0) for d in range(tensor.dim()))
            tensor.data = tensor.data[_box(stop)].clone()
    return trimmed


class SpatialBackend(Backend):
    mode = "spatial"

    def __init__(self, supernet: ElasticResNet, subnets: Sequence[Subnet], device: torch.device):
        self.models = {s.name: supernet.extract(s.config).eval().requires_grad_(False).to(device) for s in subnets}
        self.current: nn.Module | None = None

    def activate(self, subnet: Subnet) -> None:
        self.current = self.models[subnet.name]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.current(x)

    def resident_bytes(self) -> int:
        return sum(tensor_bytes(_inference_state(m).values()) for m in self.models.values())


class TemporalBackend(Backend):
    mode = "temporal"

    def __init__(self, supernet: ElasticResNet, subnets: Sequence[Subnet], device: torch.device,
                 work_dir: str | Path | None):
        if work_dir is None:
            self._tmp = tempfile.TemporaryDirectory(prefix="skipswitch-temporal-")
            work_dir = self._tmp.name
        self.dir = Path(work_dir)
        self.device = device
        self.paths = {}
        for s in subnets:
            path = self.dir / f"{s.name}.safetensors"
            save_model(path, supernet.extract(s.config), {"subnet": s.config.to_dict(), "accuracy": s.accuracy})
            self.paths[s.name] = path
        self.current: nn.Module | None = None

    def activate(self, subnet: Subnet) -> None:
        self.current = None  # the previous subnet leaves memory before the next one loads
        model, _ = load_model(self.paths[subnet.name])
        self.current = model.eval().requires_grad_(False).to(self.device)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.current(x)

    def resident_bytes(self) -> int:
        return 0 if self.current is None else tensor_bytes(_inference_state(self.current).values())


class BudgetBackend(Backend):
    """Persistent buffer (weights every subnet reads) + dynamic buffer (the rest, copied in).

    Every subnet reads a prefix box of each supernet tensor, so the elements all subnets
    read are the box of per-dimension minimum stops (PB). A subnet's box minus the PB box
    splits into one slab per dimension d: dims < d inside PB, dim d in [pb, stop), dims > d
    whole; the slabs' sizes add up to exactly the subnet's bytes minus PB bytes."""

    mode = "budget"

    def __init__(self, supernet: ElasticResNet, subnets: Sequence[Subnet], device: torch.device):
        self.device = device
        pin = device.type == "cuda"
        state = _inference_state(supernet)
        sources = {s.name: self._sources(supernet, s, state) for s in subnets}
        names = set.intersection(*(set(src) for src in sources.values()))
        self.pb: dict[str, torch.Tensor] = {}
        for name in sorted(names):
            if any(name in supernet.bn_stats.get(s.config.key(), {}) for s in subnets):
                continue  # per-subnet values (precomputed BN statistics): never shared
            shapes = [sources[s.name][name].shape for s in subnets]
            stop = tuple(min(int(shape[d]) for shape in shapes) for d in range(len(shapes[0])))
            self.pb[name] = state[name][_box(stop)].contiguous().to(device)
        self.plans: dict[str, list[tuple[str, tuple[int, ...], list[tuple[int, tuple[int, ...], int]]]]] = {}
        self.host: dict[str, torch.Tensor] = {}
        for s in subnets:
            plan, chunks, offset = [], [], 0
            for name, source in sources[s.name].items():
                shape = tuple(int(n) for n in source.shape)
                pb_stop = tuple(self.pb[name].shape) if name in self.pb else tuple(0 for _ in shape)
                slabs = []
                for d in range(len(shape)):
                    slab = source[_slab(pb_stop, shape, d)]
                    if slab.numel():
                        slabs.append((d, tuple(slab.shape), offset))
                        chunks.append(slab.reshape(-1))
                        offset += slab.numel()
                plan.append((name, shape, slabs))
            flat = torch.cat(chunks) if chunks else torch.zeros(0)
            self.host[s.name] = flat.pin_memory() if pin else flat.clone()
            self.plans[s.name] = plan
        capacity = max(t.numel() for t in self.host.values())
        self.db = torch.empty(capacity, device=device)
        self.skeletons = {}
        for s in subnets:
            with torch.device("meta"):
                self.skeletons[s.name] = supernet.space.build(s.config, skip_mode=supernet.supernet_skip_mode).eval()
        self.current: Subnet | None = None
        self.bytes_copied = 0

    @staticmethod
    def _sources(supernet: ElasticResNet, subnet: Subnet, state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Each tensor the subnet reads, as the slice of the supernet (or its own BN statistics)."""
        stats = supernet.bn_stats.get(subnet.config.key(), {})
        out = {}
        for name, box in supernet.weight_regions(subnet.config).items():
            out[name] = stats[name] if name in stats else state[name][tuple(slice(a, b) for a, b in box)]
        return out

    def activate(self, subnet: Subnet) -> None:
        src = self.host[subnet.name]
        self.db[: src.numel()].copy_(src, non_blocking=True)
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
        self.bytes_copied += src.numel() * src.element_size()
        self.current = subnet

    def assemble(self, subnet: Subnet) -> dict[str, torch.Tensor]:
        """The subnet's tensors, unified from PB and DB (a transient working copy)."""
        params = {}
        for name, shape, slabs in self.plans[subnet.name]:
            out = torch.empty(shape, device=self.device)
            if name in self.pb:
                out[_box(tuple(self.pb[name].shape))] = self.pb[name]
            pb_stop = tuple(self.pb[name].shape) if name in self.pb else tuple(0 for _ in shape)
            for d, slab_shape, offset in slabs:
                out[_slab(pb_stop, shape, d)] = self.db[offset: offset + math.prod(slab_shape)].view(slab_shape)
            params[name] = out
        return params

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        subnet = self.current
        return functional_call(self.skeletons[subnet.name], self.assemble(subnet), (x,))

    def persistent_bytes(self) -> int:
        return tensor_bytes(self.pb.values())

    def dynamic_bytes(self) -> int:
        return self.db.numel() * self.db.element_size()

    def resident_bytes(self) -> int:
        return self.persistent_bytes() + self.dynamic_bytes()

    def to_dict(self) -> dict[str, Any]:
        return {**super().to_dict(), "persistent_bytes": self.persistent_bytes(),
                "dynamic_bytes": self.dynamic_bytes(), "pinned_host": self.device.type == "cuda",
                "switch_copy_bytes": {n: t.numel() * t.element_size() for n, t in self.host.items()}}


def _box(stop: tuple[int, ...]) -> tuple[slice, ...]:
    return tuple(slice(0, n) for n in stop)


def _slab(pb_stop: tuple[int, ...], shape: tuple[int, ...], d: int) -> tuple[slice, ...]:
    """Index of slab ``d`` of a box ``shape`` minus the PB box: dims before d inside PB,
    dim d beyond PB, dims after d whole."""
    return tuple(slice(0, pb_stop[i]) if i < d else slice(pb_stop[d], shape[d]) if i == d else slice(0, shape[i])
                 for i in range(len(shape)))


# -- the engine -----------------------------------------------------------------------------------
class ServingEngine:
    """Serves a Pareto set of a supernet's subnets with one of ``MODES``.

    ``subnets`` are (config, accuracy) pairs; they are named ``s0, s1, ...`` from the least
    to the most accurate. ``profile`` measures each subnet's latency per batch size at
    start-up (median of ``profile_repeats`` timed forwards after one warm-up, made
    non-decreasing in batch size)."""

    def __init__(self, supernet: ElasticResNet, subnets: Sequence[tuple[SubnetConfig, float]], *,
                 mode: str = "inplace", device: str | torch.device = "cpu",
                 batch_sizes: Sequence[int] = DEFAULT_BATCH_SIZES, profile: bool = True, profile_repeats: int = 5,
                 work_dir: str | Path | None = None, trim: bool = True, online_profile: bool = True):
        if mode not in MODES:
            raise SkipswitchError(f"unknown serving mode {mode!r}; choose {', '.join(MODES)}")
        if not subnets:
            raise SkipswitchError("the Pareto set is empty: nothing to serve")
        if any(int(b) < 1 for b in batch_sizes):
            raise SkipswitchError(f"batch sizes must be positive, got {list(batch_sizes)}")
        self.device = torch.device(device)
        if self.device.type == "cuda" and not torch.cuda.is_available():
            raise SkipswitchError(f"device {device!r} requested but CUDA is not available")
        # The caller's supernet is only read (extraction, regions); serving uses copies.
        self.supernet = supernet.eval()
        ordered = sorted(((supernet.space.validate(c), float(a)) for c, a in subnets),
                         key=lambda ca: (ca[1], supernet.weight_bytes(ca[0])))
        seen = set()
        self.subnets: list[Subnet] = []
        for config, accuracy in ordered:
            if config.key() in seen:
                raise SkipswitchError(f"subnet {config.key()} appears twice in the Pareto set")
            seen.add(config.key())
            self.subnets.append(Subnet(f"s{len(self.subnets)}", config, accuracy, supernet.weight_bytes(config),
                                       config.key() in supernet.bn_stats))
        self._by_name = {s.name: s for s in self.subnets} | {s.config.key(): s for s in self.subnets}
        self.mode = mode
        self.batch_sizes = tuple(sorted({int(b) for b in batch_sizes}))
        self.max_batch = self.batch_sizes[-1]
        shape = (supernet.space.in_channels, *supernet.space.input_size)
        self.input_shape = tuple(int(n) for n in shape)
        with torch.no_grad():
            if mode == "inplace":
                self.backend: Backend = InPlaceBackend(self.supernet, self.subnets, self.device, trim)
            elif mode == "spatial":
                self.backend = SpatialBackend(self.supernet, self.subnets, self.device)
            elif mode == "temporal":
                self.backend = TemporalBackend(self.supernet, self.subnets, self.device, work_dir)
            else:
                self.backend = BudgetBackend(self.supernet, self.subnets, self.device)
        self.active: Subnet | None = None
        self.switches = 0
        self.switch_seconds = 0.0
        self.switch_estimate = 0.0
        self.online_profile = online_profile
        if profile:
            self.profile(profile_repeats)

    @classmethod
    def from_checkpoint(cls, path: str | Path, pareto: str | Path | None = None, **kwargs) -> "ServingEngine":
        """Load a supernet checkpoint; the Pareto set comes from ``pareto`` (a search JSON)
        or, without it, from the subnets whose BN statistics the checkpoint holds (accuracy
        measured on the validation split of the checkpoint's dataset)."""
        from ..supernet.io import load_supernet

        supernet, meta = load_supernet(path)
        if pareto is not None:
            subnets = load_pareto(pareto, supernet)
        else:
            subnets = stored_subnets(supernet, meta)
        return cls(supernet, subnets, **kwargs)

    # -- lookup --------------------------------------------------------------------------------
    def get(self, name: str) -> Subnet:
        try:
            return self._by_name[name]
        except (KeyError, TypeError):
            raise SkipswitchError(f"unknown subnet {name!r}; choose one of "
                                  f"{', '.join(s.name for s in self.subnets)}") from None

    @property
    def largest(self) -> Subnet:
        return self.subnets[-1]

    @property
    def smallest(self) -> Subnet:
        return self.subnets[0]

    # -- switching and inference ---------------------------------------------------------------
    def activate(self, name: str | Subnet) -> float:
        """Make ``name`` the active subnet; returns the switch time in seconds (0 if it was active)."""
        subnet = name if isinstance(name, Subnet) else self.get(name)
        if self.active is subnet:
            return 0.0
        start = time.perf_counter()
        self.backend.activate(subnet)  # no autograd context: no backend's switch records a graph
        elapsed = time.perf_counter() - start
        self.active = subnet
        self.switches += 1
        self.switch_seconds += elapsed
        return elapsed

    def check_input(self, x: torch.Tensor) -> torch.Tensor:
        """A float batch of the served input shape (a single example gets a batch dimension)."""
        if tuple(x.shape) == self.input_shape:
            x = x.unsqueeze(0)
        if x.dim() != len(self.input_shape) + 1 or tuple(x.shape[1:]) != self.input_shape:
            raise SkipswitchError(f"input shape {list(x.shape)} does not match the served input "
                                  f"{list(self.input_shape)} (optionally with a leading batch dimension)")
        if not torch.isfinite(x).all():
            raise SkipswitchError("input holds NaN or infinite values")
        return x.to(torch.float32)

    def infer(self, name: str | Subnet, x: torch.Tensor) -> torch.Tensor:
        """Logits of subnet ``name`` for batch ``x`` (switching first if needed)."""
        # The hot path of every served batch: on a CPU a small subnet's forward is ~0.3 ms,
        # so each avoidable microsecond here is visible (no conversion when x already fits).
        # No autograd context either (entering one per call measured ~1% of a small subnet's
        # batch of 1): no backend holds a tensor that requires grad, and x is detached if it does.
        if self.active is not name:
            self.activate(name)
        if x.dtype is not torch.float32 or x.device != self.device or x.requires_grad:
            x = x.detach().to(self.device, torch.float32)
        out = self.backend.forward(x)
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
            return out.cpu()
        return out

    def infer_many(self, name: str | Subnet, inputs: Sequence[torch.Tensor]) -> list[torch.Tensor]:
        """Dynamic batching: one forward over the concatenated inputs, split back per request."""
        sizes = [int(x.shape[0]) for x in inputs]
        out = self.infer(name, torch.cat(list(inputs)))
        return list(out.split(sizes))

    @property
    def pipelined(self) -> bool:
        """Whether the backend queues batches (the inference process): see ``submit_many``."""
        return getattr(self.backend, "pipelined", False)

    def submit_many(self, subnet: Subnet, inputs: Sequence[torch.Tensor]) -> list[int]:
        """Queue one batched forward of ``subnet`` in a pipelined backend (switching first if needed)
        and return the request sizes for ``collect_many``; the backend runs batches in order."""
        switch = self.active is not subnet
        self.backend.submit(subnet if switch else None, torch.cat([x.detach() for x in inputs]))
        if switch:
            self.active = subnet
            self.switches += 1
        return [int(x.shape[0]) for x in inputs]

    def collect_many(self, sizes: list[int]) -> tuple[list[torch.Tensor], float, float]:
        """The oldest queued batch's outputs per request, its switch and its forward seconds."""
        out, switch_s, forward_s = self.backend.collect()
        self.switch_seconds += switch_s
        return list(out.split(sizes)), switch_s, forward_s

    def profile(self, repeats: int = 5) -> None:
        """Median forward latency of every subnet at every batch size (synthetic inputs)."""
        if repeats < 1:
            raise SkipswitchError(f"profile repeats must be positive, got {repeats}")
        for subnet in self.subnets:
            self.activate(subnet)
            for b in self.batch_sizes:
                x = torch.randn(b, *self.input_shape)
                self.infer(subnet, x)  # warm-up
                times = []
                for _ in range(repeats):
                    start = time.perf_counter()
                    self.infer(subnet, x)
                    times.append(time.perf_counter() - start)
                subnet.latency[b] = statistics.median(times)
            regularise(subnet.latency)
        # Switch cost (the policy adds it to a batch's latency when the subnet changes).
        times = []
        if len(self.subnets) > 1:
            for i in range(max(2 * len(self.subnets), 2 * repeats)):
                times.append(self.activate(self.subnets[i % len(self.subnets)]))
        self.switch_estimate = statistics.median(times) if times else 0.0
        self.active = None  # the next request pays its switch like any other
        self.switches = 0
        self.switch_seconds = 0.0

    def observe(self, subnet: Subnet, batch_size: int, seconds: float, weight: float = 0.2) -> None:
        """Fold a served batch's forward time into the profile (exponential moving average of
        the bucket that holds ``batch_size``): on a shared CPU the start-up profile drifts, and
        the policy's decisions are only as good as the profile."""
        sizes = [b for b in self.batch_sizes if b >= batch_size]
        if not sizes or not self.online_profile:
            return
        bucket = sizes[0]
        old = subnet.latency.get(bucket, seconds)
        subnet.latency[bucket] = (1 - weight) * old + weight * seconds

    def resident_bytes(self) -> int:
        return self.backend.resident_bytes()

    def to_dict(self) -> dict[str, Any]:
        return {"mode": self.mode, "device": str(self.device), "input_shape": list(self.input_shape),
                "max_batch": self.max_batch, "switch_estimate_ms": self.switch_estimate * 1e3, "active": self.active.name if self.active else None,
                "switches": self.switches, "memory": self.backend.to_dict(),
                "subnets": [s.to_dict() for s in self.subnets]}


def regularise(latency: dict[int, float]) -> None:
    """Make a latency profile physically consistent, in place: a larger batch never runs faster
    than a smaller one, and never costs more than the smaller one run ``large / small`` times
    over. On a shared CPU one preempted timing (a 10 ms time slice) otherwise makes a batch
    size look several times dearer than its neighbours, and a policy that trusts the profile
    never serves that size again, so the online updates never correct it. Applied to the
    start-up profile only: online updates follow what the served batches really took."""
    sizes = sorted(latency)
    for small, large in zip(sizes, sizes[1:]):
        latency[large] = min(max(latency[large], latency[small]), latency[small] * large / small)


# -- where the Pareto set comes from ----------------------------------------------------------------
def load_pareto(path: str | Path, supernet: ElasticResNet) -> list[tuple[SubnetConfig, float]]:
    """(config, validation accuracy) of every point of a ``pareto.json`` from ``skipswitch supernet search``."""
    from ..supernet.search import ParetoFile

    return [(SubnetConfig.from_dict(p.config, supernet.space), p.val_acc) for p in ParetoFile.load(path).pareto]


def stored_subnets(supernet: ElasticResNet, meta: dict[str, Any]) -> list[tuple[SubnetConfig, float]]:
    """The subnets whose BN statistics the checkpoint holds, with validation accuracy."""
    from ..data import load_dataset
    from ..training import evaluate

    if not supernet.bn_configs:
        raise SkipswitchError("the supernet checkpoint holds no per-subnet BN statistics; "
                              "pass a Pareto set (--pareto) from `skipswitch supernet search`")
    ds_meta = meta.get("dataset", {}) if isinstance(meta.get("dataset"), dict) else {}
    dataset = load_dataset(ds_meta.get("name", "digits"), seed=int(ds_meta.get("seed", 0)))
    out = []
    supernet.eval()
    for config in supernet.bn_configs.values():
        supernet.set_active(config)
        out.append((config, evaluate(supernet, dataset.val)[1]))
    supernet.set_active(None)
    return out
