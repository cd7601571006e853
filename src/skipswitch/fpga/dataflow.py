"""Instant resource estimate of an hls4ml ``io_stream`` dataflow design, read from the graph IR.

The design modelled is the one hls4ml 1.3.0 writes for a CNN with ``io_stream``:

* one dataflow stage per conv / dense layer, with the following BatchNorm and ReLU folded
  into it (hls4ml fuses BN into the conv weights; we also fold the ReLU, so one stage is conv+BN+ReLU);
  an add stage at each skip join (with its ReLU folded), a pooling stage, and a *clone*
  stage wherever a tensor has several consumers (``nnet::clone_stream`` copies every pixel
  to each output stream);
* streams (FIFOs) of whole pixels (``C`` channels x ``b`` bits wide) between stages.

Timing follows ``nnet_conv2d_stream.h`` (``conv_2d_buffer_cl``): the line-buffer conv reads
one input pixel per iteration of a loop over ``in_height x in_width`` pipelined with
``II = reuse_factor``; padding is a separate zero-padding pass, so the conv sees the padded
image. A stage therefore needs ``padded_pixels * R`` cycles per image, and output pixel
(h, w) of a KxK conv with padding p is produced when padded input (h+K-1, w+K-1) arrives,
i.e. ``(K-1-p) * W_padded + (K-1-p)`` input pixels after input pixel (h, w). In steady state
every stream runs at the rate of the slowest stage (``interval`` cycles per image), so a
stream carrying N pixels per image delivers one pixel every ``interval / N`` cycles.

A skip's *lifetime* is the time from the clone writing pixel (h, w) to the add consuming it
(the latency of the residual path); its *FIFO depth* is the number of pixels in flight on
the shortcut side over that time (residual latency minus shortcut latency, in pixel periods,
plus one for the handshake, as hls4ml's FIFO optimiser sets max occupancy + 1), at most H*W.

Memories: a FIFO is a shift register (SRL) when ``depth * width <= srl_max_bits`` (Vitis
``config_storage fifo -impl auto``, ``auto_srl_max_bits`` default 1024) or ``depth <=
srl_max_depth``; otherwise BRAM18, counted by port geometry with FINN's rule
(Xilinx/finn, ``StreamingFIFO.bram_estimation``).
Weights of a layer with reuse factor R>1 are one ROM of depth R and width
``ceil(n_in*n_out/R) * b`` (hls4ml's Resource strategy reshapes them so); it goes to LUTs
(a LUT6 is a 64x1 ROM, UG574) when R <= ``rom_lutram_max_depth``, else to BRAM18 by
geometry. With R=1 the weights are constants folded into the logic.

Per-operation costs (LUT / FF) and where they come from; ``ASSUMED`` marks our own choice:

* multiplier at > ``lut_mult_max_bits`` bits: 1 DSP48E2 (27x18 multiplier, UG579).
* multiplier at <= ``lut_mult_max_bits`` bits: LUTs scaled from Xilinx's LogiCORE
  Multiplier v11.2 data sheet (DS255: a speed-optimised 9x9 LUT multiplier = 115 LUTs),
  ``115 * (b/9)^2`` (quadratic scaling ASSUMED).
* adder of n bits: n LUTs on the carry chain (UG574, one LUT + CARRY8 bit per sum bit).
* accumulator width ``2b + ceil(log2(fan_in))`` as in FINN's MVAU estimate.
* SRL shift register: ``width * ceil(depth / 32)`` LUTs (SRLC32E, UG574); the conv line
  buffers (``ap_shift_reg`` of in_width pixels per channel and row) are costed the same way.
* registers (ASSUMED, HLS's default pipelining): one register per product (2b) and per
  accumulator, the KxKxC window, one output pixel per stage; clone stage: one input pixel
  register; FIFO control: 2 pointers of ceil(log2(depth+1)) bits + 4 flag bits, as many
  LUTs as FFs (ASSUMED).
* ReLU: one LUT per output bit (ASSUMED: AND with the inverted sign bit).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, replace
from typing import Iterable

from ..errors import SkipswitchError
from ..graph import NetworkGraph
from ..models.resnet import SKIP_MODES
from .parts import Part, get_part

RESOURCES = ("bram18", "dsp", "ff", "lut")

# DS255 (LogiCORE Multiplier v11.2): 9x9 speed-optimised LUT multiplier, 115 LUTs.
_DS255_LUTS, _DS255_BITS = 115, 9
_SRL_DEPTH = 32  # SRLC32E
_ROM_LUT_DEPTH = 64  # LUT6 as 64x1 ROM
_MULT_LATENCY = 3  # DSP48E2 with A/B, M and P registers (ASSUMED for LUT multipliers too)


@dataclass(frozen=True)
class EstimatorConfig:
    precision: int = 16  # bits of weights and activations (ap_fixed<b, ...>)
    reuse_factor: int | None = None  # None: per layer = fan-in (one multiplier per output channel)
    srl_max_bits: int = 1024  # Vitis auto_srl_max_bits
    srl_max_depth: int = 2  # FIFOs this shallow stay registers/SRL whatever their width
    lut_mult_max_bits: int = 8  # multipliers at or below this width go to LUTs
    rom_lutram_max_depth: int = _ROM_LUT_DEPTH
    stream_depth: int = 2  # ordinary (non-skip) streams, as hls4ml's FIFO optimiser leaves them
    # auto: the Vitis rule above; srl: skip FIFOs forced to shift registers (a STREAM pragma
    # with type=shiftreg, the choice Tailor reports for its shortened skips); bram: forced BRAM
    skip_fifo_impl: str = "auto"

    def __post_init__(self) -> None:
        if not 2 <= self.precision <= 32:
            raise SkipswitchError(f"precision must be 2..32 bits, got {self.precision}")
        if self.reuse_factor is not None and self.reuse_factor < 1:
            raise SkipswitchError(f"reuse factor must be positive, got {self.reuse_factor}")
        if self.skip_fifo_impl not in ("auto", "srl", "bram"):
            raise SkipswitchError(f"skip FIFO implementation must be auto, srl or bram, got {self.skip_fifo_impl!r}")
        for name in ("srl_max_bits", "srl_max_depth", "rom_lutram_max_depth", "stream_depth"):
            if getattr(self, name) < 0:
                raise SkipswitchError(f"{name} must be >= 0, got {getattr(self, name)}")


# -- memory rules --------------------------------------------------------------------------
def finn_bram18_count(width: int, depth: int) -> int:
    """BRAM18s for a width x depth memory by port geometry (FINN's StreamingFIFO estimate)."""
    if width <= 0 or depth <= 0:
        return 0
    if width == 1:
        return math.ceil(depth / 16384)
    if width == 2:
        return math.ceil(depth / 8192)
    if width <= 4:
        return math.ceil(depth / 4096) * math.ceil(width / 4)
    if width <= 9:
        return math.ceil(depth / 2048) * math.ceil(width / 9)
    if width <= 18 or depth > 512:
        return math.ceil(depth / 1024) * math.ceil(width / 18)
    return math.ceil(depth / 512) * math.ceil(width / 36)


def fifo_is_srl(width: int, depth: int, srl_max_bits: int = 1024, srl_max_depth: int = 2) -> bool:
    """Vitis ``-impl auto``: a shift register when depth*width fits the SRL threshold."""
    return depth * width <= srl_max_bits or depth <= srl_max_depth


def srl_luts(width: int, depth: int) -> int:
    return width * math.ceil(depth / _SRL_DEPTH)


def _fifo_control(depth: int) -> int:
    return 2 * max(1, math.ceil(math.log2(depth + 1))) + 4


def lut_multiplier_luts(bits: int) -> int:
    return math.ceil(_DS255_LUTS * (bits / _DS255_BITS) ** 2)


# -- results -------------------------------------------------------------------------------
@dataclass
class Cost:
    bram18: int = 0
    dsp: int = 0
    ff: int = 0
    lut: int = 0

    def __add__(self, other: "Cost") -> "Cost":
        return Cost(*(getattr(self, r) + getattr(other, r) for r in RESOURCES))

    def to_dict(self) -> dict[str, int]:
        return {r: getattr(self, r) for r in RESOURCES}


@dataclass
class Stage:
    name: str
    kind: str  # conv, dense, add, clone, pool, bn, relu, other
    layers: tuple[str, ...]
    in_shape: tuple[int, ...]
    out_shape: tuple[int, ...]
    reuse_factor: int = 1
    multipliers: int = 0
    cycles_per_image: int = 0  # stage initiation interval for a whole image
    delay_pixels: int = 0  # input pixels read before the pixel-aligned output appears
    depth_cycles: int = 0  # pipeline latency of one output
    cost: Cost = field(default_factory=Cost)
    latency: float = 0.0  # cycles from this stage's input pixel to its aligned output (filled in)


@dataclass
class Fifo:
    name: str
    producer: str
    consumer: str
    width_bits: int
    depth: int
    impl: str  # srl or bram
    skip: bool
    cost: Cost


@dataclass
class SkipReport:
    fork: str
    join: str
    shape: tuple[int, ...]
    is_long: bool
    lifetime_cycles: float
    fifo_depth: int
    max_depth: int
    width_bits: int
    impl: str
    bram18: int


@dataclass
class Estimate:
    model: str
    config: EstimatorConfig
    part: Part
    stages: list[Stage]
    fifos: list[Fifo]
    skips: list[SkipReport]
    interval_cycles: int  # cycles per image of the slowest stage (throughput)
    latency_cycles: float  # first input pixel to the network output
    tensor_stage: dict[str, str] = field(default_factory=dict)  # IR tensor (layer name) -> stage producing it

    @property
    def total(self) -> Cost:
        total = Cost()
        for item in (*self.stages, *self.fifos):
            total = total + item.cost
        return total

    def by_category(self) -> dict[str, Cost]:
        """Totals split into compute stages, skip handling (clone/add stages, skip FIFOs) and other FIFOs."""
        out = {"compute": Cost(), "skip_stages": Cost(), "skip_fifos": Cost(), "streams": Cost()}
        for s in self.stages:
            key = "skip_stages" if s.kind in ("clone", "add") else "compute"
            out[key] = out[key] + s.cost
        for f in self.fifos:
            key = "skip_fifos" if f.skip else "streams"
            out[key] = out[key] + f.cost
        return out

    def utilization(self) -> dict[str, float]:
        total = self.total
        return {r: 100.0 * getattr(total, r) / self.part.capacity(r) for r in RESOURCES}

    def to_dict(self) -> dict:
        return {
            "model": self.model,
            "config": asdict(self.config),
            "part": self.part.to_dict(),
            "total": self.total.to_dict(),
            "utilization_percent": self.utilization(),
            "by_category": {k: v.to_dict() for k, v in self.by_category().items()},
            "interval_cycles": self.interval_cycles,
            "latency_cycles": self.latency_cycles,
            "skips": [asdict(s) for s in self.skips],
            "stages": [
                {"name": s.name, "kind": s.kind, "layers": list(s.layers), "out_shape": list(s.out_shape),
                 "reuse_factor": s.reuse_factor, "multipliers": s.multipliers,
                 "cycles_per_image": s.cycles_per_image, **s.cost.to_dict()}
                for s in self.stages
            ],
            "fifos": [
                {"name": f.name, "producer": f.producer, "consumer": f.consumer, "width_bits": f.width_bits,
                 "depth": f.depth, "impl": f.impl, "skip": f.skip, **f.cost.to_dict()}
                for f in self.fifos
            ],
        }


# -- stage construction ----------------------------------------------------------------------
def _pixels(shape: tuple[int, ...]) -> int:
    return shape[1] * shape[2] if len(shape) == 3 else 1


def _channels(shape: tuple[int, ...]) -> int:
    return shape[0] if shape else 1


def _valid_reuse(requested: int | None, n_in: int, n_out: int) -> int:
    if requested is None:
        return n_in
    return max(1, min(requested, n_in * n_out))


def _mac_stage(stage: Stage, cfg: EstimatorConfig, kh: int, kw: int, pad: tuple[int, int], cin: int, cout: int,
               in_w_padded: int, relu: bool) -> None:
    b = cfg.precision
    n_in, n_out = kh * kw * cin, cout
    r = _valid_reuse(cfg.reuse_factor, n_in, n_out)
    n_mult = math.ceil(n_in * n_out / r)
    acc = 2 * b + math.ceil(math.log2(max(n_in, 2)))
    cost = Cost()
    if b > cfg.lut_mult_max_bits:
        cost.dsp += n_mult
    else:
        cost.lut += n_mult * lut_multiplier_luts(b)
    cost.lut += n_mult * acc + n_out * acc  # accumulate every product; bias (folded BN) add
    cost.ff += n_mult * 2 * b + n_out * acc + n_out * b  # product, accumulator, output registers
    if relu:
        cost.lut += n_out * b
    if kh > 1:  # line buffer: (K-1) rows of in_width pixels per channel, ap_shift_reg -> SRL
        cost.lut += (kh - 1) * cin * srl_luts(b, in_w_padded)
        cost.ff += kh * kw * cin * b  # the KxK window
    if pad != (0, 0):
        cost.lut += cin * b  # zero-padding mux on the input pixel
    if r > 1:  # weight ROM, depth R, width block_factor * b
        width = n_mult * b
        if r <= cfg.rom_lutram_max_depth:
            cost.lut += width * math.ceil(r / _ROM_LUT_DEPTH)
        else:
            cost.bram18 += finn_bram18_count(width, r)
    stage.reuse_factor, stage.multipliers = r, n_mult
    stage.depth_cycles = r + _MULT_LATENCY + math.ceil(math.log2(max(n_in // r, 1) + 1)) + 2
    stage.cost = cost


def _build_stages(graph: NetworkGraph, cfg: EstimatorConfig) -> tuple[list[Stage], dict[str, str], list[tuple[str, str]]]:
    """Stages in execution order, tensor->stage map, and stage edges (producer, consumer)."""
    b = cfg.precision
    consumers: dict[str, list[str]] = {}
    for layer in graph.layers:
        for inp in layer.inputs:
            consumers.setdefault(inp, []).append(layer.name)
    stages: list[Stage] = []
    by_name: dict[str, Stage] = {}
    producer: dict[str, str] = {}  # tensor (layer name) -> stage name producing it
    edges: list[tuple[str, str]] = []

    def add_stage(stage: Stage, inputs: Iterable[str]) -> None:
        stages.append(stage)
        by_name[stage.name] = stage
        for inp in inputs:
            if inp in producer:
                edges.append((producer[inp], stage.name))

    for layer in graph.layers:
        src = layer.inputs[0] if layer.inputs else None
        single_use = src is not None and len(consumers.get(src, ())) == 1
        src_stage = by_name.get(producer.get(src, "")) if src else None
        if layer.op == "input":
            add_stage(Stage(layer.name, "input", (layer.name,), layer.output_shape, layer.output_shape), ())
            producer[layer.name] = layer.name
        elif layer.op == "output":
            add_stage(Stage(layer.name, "output", (layer.name,), layer.input_shapes[0] if layer.input_shapes else (),
                            ()), layer.inputs)
        elif layer.op == "flatten":
            producer[layer.name] = producer[src]  # a stream of pixels is already flat
        elif layer.op in ("bn", "relu") and single_use and src_stage is not None and src_stage.kind in (
            "conv", "dense", "add", "bn") and not (layer.op == "bn" and src_stage.kind == "add") and not (
            layer.op == "bn" and any(l.startswith("relu:") for l in src_stage.layers)
        ):
            # Fold BN/ReLU into the producing stage (hls4ml fuses BN into conv weights).
            src_stage.layers = (*src_stage.layers, f"{layer.op}:{layer.name}")
            src_stage.out_shape = layer.output_shape
            if layer.op == "relu":
                src_stage.cost.lut += _channels(layer.output_shape) * b
            producer[layer.name] = src_stage.name
        elif layer.op in ("conv", "linear"):
            kind = "conv" if layer.op == "conv" else "dense"
            in_shape = layer.input_shapes[0]
            stage = Stage(layer.name, kind, (layer.name,), in_shape, layer.output_shape)
            if kind == "conv":
                a = layer.attrs
                kh, kw = a["kernel_size"]
                pad = a["padding"] if isinstance(a["padding"], tuple) else (0, 0)
                if a.get("groups", 1) != 1:
                    raise SkipswitchError(f"layer {layer.name}: grouped convolutions are not modelled")
                hp, wp = in_shape[1] + 2 * pad[0], in_shape[2] + 2 * pad[1]
                _mac_stage(stage, cfg, kh, kw, pad, a["in_channels"], a["out_channels"], wp, relu=False)
                stage.cycles_per_image = hp * wp * stage.reuse_factor
                stage.delay_pixels = max(kh - 1 - pad[0], 0) * wp + max(kw - 1 - pad[1], 0)
            else:
                a = layer.attrs
                _mac_stage(stage, cfg, 1, 1, (0, 0), a["in_features"], a["out_features"], 1, relu=False)
                stage.cycles_per_image = stage.reuse_factor
                stage.delay_pixels = 0
            add_stage(stage, layer.inputs)
            producer[layer.name] = stage.name
        elif layer.op == "add":
            c = _channels(layer.output_shape)
            stage = Stage(layer.name, "add", (layer.name,), layer.input_shapes[0], layer.output_shape,
                          cycles_per_image=_pixels(layer.output_shape), depth_cycles=2,
                          cost=Cost(lut=c * b, ff=c * b))
            add_stage(stage, layer.inputs)
            producer[layer.name] = stage.name
        elif layer.op in ("avgpool", "maxpool", "bn", "relu", "other"):
            in_shape = layer.input_shapes[0] if layer.input_shapes else layer.output_shape
            c, n_in = _channels(in_shape), _pixels(in_shape)
            kind = {"avgpool": "pool", "maxpool": "pool"}.get(layer.op, layer.op)
            stage = Stage(layer.name, kind, (layer.name,), in_shape, layer.output_shape, cycles_per_image=n_in,
                          depth_cycles=2)
            if kind == "pool":
                window = n_in // max(_pixels(layer.output_shape), 1)
                acc = b + math.ceil(math.log2(max(window, 2)))
                stage.cost = Cost(lut=c * acc + c * b, ff=c * acc + c * b)  # accumulate, scale by 1/N
                # Output pixel (h, w) needs its whole window; for a global pool that is the image.
                stage.delay_pixels = n_in if _pixels(layer.output_shape) == 1 else in_shape[2]
            elif kind == "bn":  # a standalone BN: one scale multiplier and one shift adder per channel
                mult = Cost(dsp=c) if b > cfg.lut_mult_max_bits else Cost(lut=c * lut_multiplier_luts(b))
                stage.cost = mult + Cost(lut=c * 2 * b, ff=c * 3 * b)
            elif kind == "relu":
                stage.cost = Cost(lut=c * b, ff=c * b)
            add_stage(stage, layer.inputs)
            producer[layer.name] = stage.name
        else:  # pragma: no cover - every op kind of the IR is handled above
            raise SkipswitchError(f"layer {layer.name}: op {layer.op!r} is not modelled")
    return stages, producer, edges


def _insert_clones(stages: list[Stage], edges: list[tuple[str, str]], cfg: EstimatorConfig):
    """A clone stage after every stage whose output feeds several stages (hls4ml's Clone layer)."""
    b = cfg.precision
    outs: dict[str, list[str]] = {}
    for p, c in edges:
        outs.setdefault(p, []).append(c)
    by_name = {s.name: s for s in stages}
    new_edges: list[tuple[str, str]] = []
    clone_of: dict[str, str] = {}
    ordered: list[Stage] = []
    for s in stages:
        ordered.append(s)
        targets = outs.get(s.name, [])
        if len(targets) > 1:
            c = _channels(s.out_shape)
            clone = Stage(f"clone_{s.name}", "clone", (), s.out_shape, s.out_shape,
                          cycles_per_image=_pixels(s.out_shape), depth_cycles=1,
                          cost=Cost(ff=c * b, lut=2 * len(targets)))  # one pixel register; handshake logic
            ordered.append(clone)
            by_name[clone.name] = clone
            clone_of[s.name] = clone.name
            new_edges.append((s.name, clone.name))
            new_edges.extend((clone.name, t) for t in targets)
        else:
            new_edges.extend((s.name, t) for t in targets)
    return ordered, new_edges, clone_of


def _period(interval: int, shape: tuple[int, ...]) -> float:
    return interval / max(_pixels(shape), 1)


def estimate_graph(graph: NetworkGraph, config: EstimatorConfig | None = None, part: str | Part = "zu7ev") -> Estimate:
    """Estimate the hls4ml io_stream design of ``graph`` (see the module docstring for the model)."""
    cfg = config or EstimatorConfig()
    part = part if isinstance(part, Part) else get_part(part)
    b = cfg.precision
    stages, producer, edges = _build_stages(graph, cfg)
    stages, edges, clone_of = _insert_clones(stages, edges, cfg)
    by_name = {s.name: s for s in stages}
    interval = max((s.cycles_per_image for s in stages), default=1) or 1

    # Arrival time of the pixel-aligned output of each stage (longest path through the DAG).
    preds: dict[str, list[str]] = {}
    for p, c in edges:
        preds.setdefault(c, []).append(p)
    ready: dict[str, float] = {}
    for s in stages:
        start = max((ready[p] for p in preds.get(s.name, ())), default=0.0)
        in_period = _period(interval, s.in_shape)
        if s.kind == "conv":
            # the conv reads the padded image: its pixel period is interval / padded pixels
            hp = s.cycles_per_image // max(s.reuse_factor, 1)
            in_period = interval / max(hp, 1)
        s.latency = s.delay_pixels * in_period + s.depth_cycles
        ready[s.name] = start + s.latency

    # The skip FIFO is the shortcut-side input of the join add; find which edge that is.
    skip_edge_of: dict[tuple[str, str], object] = {}
    for edge in graph.skips:
        join = producer.get(edge.join)
        sc = producer.get(edge.shortcut_input)
        if join is None or sc is None:
            continue
        src = clone_of.get(sc, sc)
        skip_edge_of[(src, join)] = edge

    fifos: list[Fifo] = []
    reports: list[SkipReport] = []
    for p, c in edges:
        ps, cs = by_name[p], by_name[c]
        shape = ps.out_shape
        width = _channels(shape) * b
        edge = skip_edge_of.get((p, c))
        depth = cfg.stream_depth
        if edge is not None:
            residual_src = next(x for x in preds[c] if x != p)
            fork_stage = by_name[clone_of.get(producer[edge.fork], producer[edge.fork])]
            lifetime = ready[residual_src] - ready[fork_stage.name]
            period = _period(interval, shape)
            in_flight = max(ready[residual_src] - ready[p], 0.0) / period
            max_depth = _pixels(shape)
            depth = min(max_depth, math.ceil(in_flight) + 1)
        srl = fifo_is_srl(width, depth, cfg.srl_max_bits, cfg.srl_max_depth)
        if edge is not None and cfg.skip_fifo_impl != "auto":
            srl = cfg.skip_fifo_impl == "srl"
        ctrl = _fifo_control(depth)
        cost = Cost(lut=srl_luts(width, depth) + ctrl, ff=width + ctrl) if srl else Cost(
            bram18=finn_bram18_count(width, depth), lut=ctrl, ff=width + ctrl)
        fifo = Fifo(f"{p}->{c}", p, c, width, depth, "srl" if srl else "bram", edge is not None, cost)
        fifos.append(fifo)
        if edge is not None:
            reports.append(SkipReport(edge.fork, edge.join, tuple(shape), edge.is_long, lifetime, depth, max_depth,
                                      width, fifo.impl, cost.bram18))
    latency = max(ready.values(), default=0.0)
    return Estimate(graph.model_name, cfg, part, stages, fifos, reports, interval, latency, dict(producer))


# -- skip-mode comparison ----------------------------------------------------------------------
@dataclass
class Comparison:
    model: str
    part: Part
    config: EstimatorConfig
    estimates: dict[str, Estimate]  # by skip mode

    def savings(self, mode: str, baseline: str = "long") -> dict[str, float]:
        """Percent of the baseline's resources that ``mode`` saves (negative = costs more)."""
        base, other = self.estimates[baseline].total, self.estimates[mode].total
        return {r: (100.0 * (getattr(base, r) - getattr(other, r)) / getattr(base, r)) if getattr(base, r) else 0.0
                for r in RESOURCES}

    def to_dict(self) -> dict:
        return {
            "model": self.model,
            "part": self.part.to_dict(),
            "config": asdict(self.config),
            "modes": {m: e.to_dict() for m, e in self.estimates.items()},
            "savings_percent_vs_long": {m: self.savings(m) for m in self.estimates if m != "long"},
        }


def compare_graphs(graphs: dict[str, NetworkGraph], config: EstimatorConfig | None = None,
                   part: str | Part = "zu7ev") -> Comparison:
    part = part if isinstance(part, Part) else get_part(part)
    estimates = {mode: estimate_graph(g, config, part) for mode, g in graphs.items()}
    name = next(iter(graphs.values())).model_name if graphs else ""
    return Comparison(name, part, config or EstimatorConfig(), estimates)


def compare_model(name: str, *, precision: int = 16, part: str = "zu7ev", num_classes: int = 10,
                  in_channels: int = 3, input_size: int | tuple[int, int] = 32,
                  config: EstimatorConfig | None = None, modes: Iterable[str] = SKIP_MODES) -> Comparison:
    """Build ``name`` from the registry in each skip mode, trace it and estimate it."""
    from ..graph import trace
    from ..models import create_model

    cfg = replace(config, precision=precision) if config else EstimatorConfig(precision=precision)
    part_obj = get_part(part)
    graphs = {}
    for mode in modes:
        model = create_model(name, num_classes=num_classes, in_channels=in_channels, input_size=input_size,
                             skip_mode=mode)
        graphs[mode] = trace(model, name=name)
    return compare_graphs(graphs, cfg, part_obj)
