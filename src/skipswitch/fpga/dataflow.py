"""Instant resource estimate of an hls4ml ``io_stream`` dataflow design, read from the graph IR.

The design modelled is the one hls4ml 1.3.0 writes for a CNN with ``io_stream``:

* one dataflow stage per conv / dense layer, with a following BatchNorm folded into it (hls4ml
  fuses BN into the conv weights); each activation (ReLU, softmax) is its own stage with its own
  output stream, as hls4ml emits it (``separate_activations``; False folds ReLU as before);
  an add stage at each skip join, a pooling stage (max pooling: comparator tree; average
  pooling: accumulator), and a *clone* stage wherever a tensor has several consumers
  (``nnet::clone_stream`` copies every pixel to each output stream);
* streams (FIFOs) of whole pixels (``C`` channels x ``b`` bits wide) between stages; the
  network's input and output are top-level AXI-stream ports, not FIFOs. Vivado HLS (<= 2020.1)
  splits an array stream into one FIFO per channel (``per_channel_fifos``), Vitis packs it.

Precision: ``precision`` bits everywhere, or per layer (``layer_precision``, hls4ml's per-layer
``Precision``); ``integer_bits`` (default 6, hls4ml's ap_fixed<16,6>) only matters for the
constant-coefficient rule; the accumulator is ``accum_bits`` when given (hls4ml before 1.0 used
the model default type), else 2b + ceil(log2 fan_in) (hls4ml 1.3's inferred width, as FINN).

Timing follows ``nnet_conv2d_stream.h`` (``conv_2d_buffer_cl``): the line-buffer conv reads
one input pixel per iteration of a loop over ``in_height x in_width``; with the Latency strategy
(or reuse factor 1) the loop is pipelined with ``II = reuse_factor``, with the Resource strategy
it is not pipelined and each pixel waits for the whole multiply-accumulate (``depth_cycles``).
Padding is a separate zero-padding pass, so the conv sees the padded image. Output pixel (h, w)
of a KxK conv with padding p is produced when padded input (h+K-1, w+K-1) arrives, i.e.
``(K-1-p) * W_padded + (K-1-p)`` input pixels after input pixel (h, w). In steady state every
stream runs at the rate of the slowest stage (``interval`` cycles per image), so a stream
carrying N pixels per image delivers one pixel every ``interval / N`` cycles. The latency of one
image (``latency_cycles``, what the HLS report gives) runs each stage at the rate of its
slowest upstream stage: a stage finishes ``depth_cycles`` after both its inputs have finished
and its own ``cycles_per_image`` since its first input.

A skip's *lifetime* is the time from the clone writing pixel (h, w) to the add consuming it
(the latency of the residual path); its *FIFO depth* is the number of pixels in flight on
the shortcut side over that time (residual latency minus shortcut latency, in pixel periods,
plus one for the handshake, as hls4ml's FIFO optimiser sets max occupancy + 1), at most H*W.

FIFO depth policy (``fifo_depth_policy``): ``default`` is hls4ml without its FIFO optimiser,
every stream (skip FIFOs included) as deep as its tensor has pixels (hls4ml 1.3
``backends/fpga/fpga_types.py``: ``depth = prod(shape) // shape[-1]`` in the stream pragma);
``optimized`` sizes skip FIFOs by the occupancy above and other streams ``stream_depth`` (2),
what the optimiser finds.

FIFO memory (``fifo_memory``): a shift register (SRL) when ``depth * width <= srl_max_bits``
(Vitis ``config_storage fifo -impl auto``, ``auto_srl_max_bits`` default 1024) or
``depth <= srl_max_depth``; otherwise LUTRAM when ``depth <= lutram_max_depth`` (default 0:
Vitis' auto rule has no LUTRAM step; a ``STREAM ... type``/``impl`` pragma choosing it is what a
positive value models), else BRAM18 counted by port geometry with FINN's rule (Xilinx/finn, ``StreamingFIFO.bram_estimation``). Costs:
SRL ``width * ceil(depth/32)`` LUTs (SRLC32E, UG574); LUTRAM ``8 * ceil(width/7) *
ceil(depth/64)`` LUTs (RAM64M8: 64 x 7 simple dual port in 8 LUTs, UG574).

Weights of a layer with reuse factor R>1 are one ROM of depth R and width
``ceil(n_in*n_out/R) * b`` (hls4ml's Resource strategy reshapes them so); it goes to LUTs
(a LUT6 is a 64x1 ROM, UG574) when R <= ``rom_lutram_max_depth`` or the strategy is Latency,
else to BRAM18 by geometry. With R=1 the weights are constants folded into the logic.

Constant coefficients (R=1 and the weights given, :func:`layer_weights`): each weight is
quantised to ap_fixed<b, integer_bits> and written in canonical signed digits (CSD); a zero
weight's product is removed (hls4ml's ``n_zeros`` and HLS constant propagation), a power of two
(one digit) is a shift, i.e. wiring, two digits cost one b-bit adder; only the rest need a
multiplier (a DSP above ``lut_mult_max_bits``). The CSD thresholds are ASSUMED, following the
shift-and-add constant multipliers synthesis tools build (the Vivado Synthesis guide UG901
describes multiplier inference; the one- and two-digit cut is ours). Without weights every
product is ASSUMED to need a full multiplier.

Softmax: hls4ml's ``softmax_stable`` (table_size 1024, 18-bit exp and inverse tables) — see
:func:`softmax_cost`. A design that needs more than the part has says so: ``Estimate.overflow``
and ``fit_message`` (which resource, by how many, by what share).

Per-operation costs (LUT / FF) and where they come from; ``ASSUMED`` marks our own choice:

* multiplier at > ``lut_mult_max_bits`` bits: 1 DSP48E2 (27x18 multiplier, UG579); its product
  register is the DSP's own M/P register, not a fabric FF.
* multiplier at <= ``lut_mult_max_bits`` bits: LUTs scaled from Xilinx's LogiCORE
  Multiplier v11.2 data sheet (DS255: a speed-optimised 9x9 LUT multiplier = 115 LUTs),
  ``115 * (b/9)^2`` (quadratic scaling ASSUMED), plus a 2b-bit product register.
* adder of n bits: n LUTs on the carry chain (UG574, one LUT + CARRY8 bit per sum bit);
  comparators of max pooling and softmax likewise.
* SRL shift register: ``width * ceil(depth / 32)`` LUTs (SRLC32E, UG574); the conv and pooling
  line buffers (``ap_shift_reg`` of in_width pixels per channel and row) are costed the same way.
* registers (ASSUMED, HLS's default pipelining): one register per accumulator, the KxKxC window,
  one output pixel per stage; clone stage: one input pixel register; FIFO control: 2 pointers of
  ceil(log2(depth+1)) bits + 4 flag bits, as many LUTs as FFs (ASSUMED).
* ReLU: one LUT per output bit (ASSUMED: AND with the inverted sign bit).

How these rules compare with real synthesis: ``docs/results/hw_validation.md``.
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


FIFO_DEPTH_POLICIES = ("optimized", "default")
FIFO_MEMORIES = ("srl", "lutram", "bram")


@dataclass(frozen=True)
class EstimatorConfig:
    precision: int = 16  # bits of weights and activations (ap_fixed<b, integer_bits>)
    integer_bits: int = 6  # hls4ml's default ap_fixed<16,6>; only the constant-multiplier rule reads it
    # per-layer bits (IR layer name -> bits), hls4ml's per-layer Precision; others use ``precision``
    layer_precision: dict = field(default_factory=dict)
    reuse_factor: int | None = None  # None: per layer = fan-in (one multiplier per output channel)
    layer_reuse_factor: dict = field(default_factory=dict)  # IR layer name -> reuse factor (hls4ml per-layer)
    strategy: str = "resource"  # hls4ml Strategy: weights of R>1 layers in a ROM (resource) or in logic (latency)
    accum_bits: int | None = None  # None: hls4ml 1.3's inferred width 2b + ceil(log2 fan_in); else fixed
    srl_max_bits: int = 1024  # Vitis auto_srl_max_bits
    srl_max_depth: int = 2  # FIFOs this shallow stay registers/SRL whatever their width
    lutram_max_depth: int = 0  # non-SRL FIFOs up to this depth go to LUTRAM (0: never, Vitis' auto rule)
    lut_mult_max_bits: int = 8  # multipliers at or below this width use LUTs
    rom_lutram_max_depth: int = _ROM_LUT_DEPTH
    # optimized: skip FIFOs sized by the timing model's occupancy, other streams ``stream_depth`` (what
    # hls4ml's FIFO-depth optimiser finds); default: every stream as deep as its tensor has pixels
    # (hls4ml's io_stream writer without the optimiser)
    fifo_depth_policy: str = "optimized"
    stream_depth: int = 2  # ordinary (non-skip) streams under the optimized policy
    separate_activations: bool = True  # ReLU as its own stage and stream, as hls4ml emits it
    per_channel_fifos: bool = False  # Vivado HLS <= 2020.1 splits an array stream into one FIFO per channel
    # auto: the memory rule above; srl/lutram/bram: skip FIFOs forced to that memory (a STREAM pragma)
    skip_fifo_impl: str = "auto"

    def __post_init__(self) -> None:
        if not 2 <= self.precision <= 32:
            raise SkipswitchError(f"precision must be 2..32 bits, got {self.precision}")
        for name, bits in self.layer_precision.items():
            if not 2 <= bits <= 32:
                raise SkipswitchError(f"precision of layer {name} must be 2..32 bits, got {bits}")
        if self.reuse_factor is not None and self.reuse_factor < 1:
            raise SkipswitchError(f"reuse factor must be positive, got {self.reuse_factor}")
        if self.skip_fifo_impl not in ("auto", *FIFO_MEMORIES):
            raise SkipswitchError(f"skip FIFO implementation must be auto, srl, lutram or bram, got {self.skip_fifo_impl!r}")
        if self.fifo_depth_policy not in FIFO_DEPTH_POLICIES:
            raise SkipswitchError(f"FIFO depth policy must be optimized or default, got {self.fifo_depth_policy!r}")
        if self.strategy not in ("latency", "resource"):
            raise SkipswitchError(f"strategy must be latency or resource, got {self.strategy!r}")
        for name in ("srl_max_bits", "srl_max_depth", "lutram_max_depth", "rom_lutram_max_depth", "stream_depth"):
            if getattr(self, name) < 0:
                raise SkipswitchError(f"{name} must be >= 0, got {getattr(self, name)}")

    def bits(self, layer: str) -> int:
        return self.layer_precision.get(layer, self.precision)


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


def fifo_memory(width: int, depth: int, cfg: EstimatorConfig) -> str:
    """srl (the Vitis auto rule), else lutram when depth <= ``lutram_max_depth``, else bram."""
    if fifo_is_srl(width, depth, cfg.srl_max_bits, cfg.srl_max_depth):
        return "srl"
    return "lutram" if depth <= cfg.lutram_max_depth else "bram"


def srl_luts(width: int, depth: int) -> int:
    return width * math.ceil(depth / _SRL_DEPTH)


def lutram_luts(width: int, depth: int) -> int:
    """RAM64M8 (UG574): 8 LUTs hold a 64-deep, 7-bit simple-dual-port memory."""
    return 8 * math.ceil(width / 7) * math.ceil(depth / 64)


def _fifo_control(depth: int) -> int:
    return 2 * max(1, math.ceil(math.log2(depth + 1))) + 4


def fifo_cost(width: int, depth: int, memory: str) -> Cost:
    """One FIFO: its storage by memory kind, plus pointer/flag logic and an output register."""
    ctrl = _fifo_control(depth)
    storage = {"srl": Cost(lut=srl_luts(width, depth)), "lutram": Cost(lut=lutram_luts(width, depth)),
               "bram": Cost(bram18=finn_bram18_count(width, depth))}[memory]
    return storage + Cost(lut=ctrl, ff=width + ctrl)


def csd_digits(value: int) -> int:
    """Non-zero digits of ``value`` in canonical signed-digit form (0: zero, 1: a power of two)."""
    n, digits = abs(int(value)), 0
    while n:
        if n & 1:
            digits += 1
            n = n - 1 if n & 3 == 1 else n + 1
        n >>= 1
    return digits


def constant_products(weights, bits: int, integer_bits: int) -> dict[str, int]:
    """Classify reuse-factor-1 products by their weight quantised to ap_fixed<bits, integer_bits>:
    zero (removed), shift (a power of two), add (two CSD digits: one adder) and mult (a multiplier)."""
    import numpy as np

    q = np.round(np.asarray(weights, dtype=np.float64) * 2.0 ** (bits - integer_bits))
    limit = 2 ** (bits - 1)
    values, counts = np.unique(np.clip(q, -limit, limit - 1).astype(np.int64), return_counts=True)
    out = {"zero": 0, "shift": 0, "add": 0, "mult": 0}
    for v, n in zip(values, counts):
        d = csd_digits(v)
        out["zero" if d == 0 else "shift" if d == 1 else "add" if d == 2 else "mult"] += int(n)
    return out


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
    impl: str  # srl, lutram or bram
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
    latency_cycles: float  # first input pixel to the last output of one image
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

    def overflow(self) -> dict[str, int]:
        """Resources the design needs beyond the part: resource -> how many more than it has."""
        total = self.total
        return {r: getattr(total, r) - self.part.capacity(r) for r in RESOURCES
                if getattr(total, r) > self.part.capacity(r)}

    def fit_message(self) -> str:
        over = self.overflow()
        if not over:
            return f"fits {self.part.name}"
        return f"does not fit {self.part.name}: " + ", ".join(
            f"{r} {getattr(self.total, r):,} of {self.part.capacity(r):,} (+{n:,}, "
            f"{100.0 * n / self.part.capacity(r):.0f}% over)" for r, n in over.items())

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
            "fits": not self.overflow(),
            "overflow": self.overflow(),
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
               in_w_padded: int, weights=None) -> None:
    b = cfg.bits(stage.name)
    n_in, n_out = kh * kw * cin, cout
    r = _valid_reuse(cfg.layer_reuse_factor.get(stage.name, cfg.reuse_factor), n_in, n_out)
    n_mult = math.ceil(n_in * n_out / r)
    acc = cfg.accum_bits or 2 * b + math.ceil(math.log2(max(n_in, 2)))
    cost = Cost()
    dsp_mult = b > cfg.lut_mult_max_bits
    if r == 1 and weights is not None:
        # Constant coefficients: zeros vanish, powers of two are wires, two-digit constants one adder.
        kinds = constant_products(weights, b, cfg.integer_bits)
        full, products = kinds["mult"], n_mult - kinds["zero"]
        cost.lut += kinds["add"] * b
    else:  # no weights given: ASSUMED every product a full multiplier (no zero or trivial weight)
        full = products = n_mult
    if dsp_mult:
        cost.dsp += full  # the product register is the DSP48E2's own M/P register, not fabric FF
    else:
        cost.lut += full * lut_multiplier_luts(b)
        cost.ff += full * 2 * b  # product register of a LUT multiplier
    cost.lut += products * acc + n_out * acc  # accumulate every product; bias (folded BN) add
    cost.ff += n_out * acc + n_out * b  # accumulator and output registers
    if kh > 1:  # line buffer: (K-1) rows of in_width pixels per channel, ap_shift_reg -> SRL
        cost.lut += (kh - 1) * cin * srl_luts(b, in_w_padded)
        cost.ff += kh * kw * cin * b  # the KxK window
    if pad != (0, 0):
        cost.lut += cin * b  # zero-padding mux on the input pixel
    if r > 1:  # weight ROM, depth R, width block_factor * b
        width = n_mult * b
        if cfg.strategy == "latency" or r <= cfg.rom_lutram_max_depth:
            cost.lut += width * math.ceil(r / _ROM_LUT_DEPTH)
        else:
            cost.bram18 += finn_bram18_count(width, r)
    stage.reuse_factor, stage.multipliers = r, n_mult
    stage.depth_cycles = r + _MULT_LATENCY + math.ceil(math.log2(max(n_in // r, 1) + 1)) + 2
    stage.cost = cost


def _pixel_interval(stage: Stage, cfg: EstimatorConfig) -> int:
    """Cycles per input pixel of a conv/dense stage. hls4ml 1.3 ``conv_2d_buffer_cl``
    (nnet_conv2d_stream.h) pipelines its pixel loop with II = reuse factor only for the Latency
    strategy; with the Resource strategy the loop is not pipelined, so each pixel waits for the
    whole multiply-accumulate (``depth_cycles``). Reuse factor 1 is fully pipelined either way."""
    if stage.reuse_factor == 1 or cfg.strategy == "latency":
        return stage.reuse_factor
    return stage.depth_cycles


def _window_stage(stage: Stage, cfg: EstimatorConfig, k: int, in_w: int, c: int) -> None:
    """Max pooling over KxK windows (``pooling2d_cl``): K-1 line-buffer rows, the window, a
    comparator tree of K*K-1 comparators per channel (one LUT per bit, UG574 carry chain)."""
    b = cfg.bits(stage.name)
    stage.cost = Cost(lut=c * (k * k - 1) * b + (k - 1) * c * srl_luts(b, in_w), ff=c * k * k * b + c * b)
    stage.delay_pixels = (k - 1) * in_w + (k - 1)


def softmax_cost(n: int, bits: int, table_size: int = 1024, table_bits: int = 18) -> Cost:
    """hls4ml ``softmax_stable`` (nnet_activation.h, default table_size 1024, 18-bit tables): a max
    tree and n subtractors on the input, n lookups in the exp table (one dual-port ROM per two
    lookups) and one in the inverse table, an adder tree on the exps, and n DSP multipliers
    (exp x 1/sum); tables in BRAM18 by port geometry. Adder/comparator LUTs one per bit (UG574);
    register per exp and per product ASSUMED."""
    roms = math.ceil(n / 2) + 1
    return Cost(bram18=roms * finn_bram18_count(table_bits, table_size), dsp=n,
                lut=(n - 1) * bits + n * bits + (n - 1) * table_bits, ff=2 * n * table_bits + n * bits)


def _build_stages(graph: NetworkGraph, cfg: EstimatorConfig, weights: dict | None = None,
                  ) -> tuple[list[Stage], dict[str, str], list[tuple[str, str]]]:
    """Stages in execution order, tensor->stage map, and stage edges (producer, consumer)."""
    weights = weights or {}
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
        b = cfg.bits(layer.name)
        src = layer.inputs[0] if layer.inputs else None
        single_use = src is not None and len(consumers.get(src, ())) == 1
        src_stage = by_name.get(producer.get(src, "")) if src else None
        foldable = ("bn",) if cfg.separate_activations else ("bn", "relu")
        if layer.op == "input":
            add_stage(Stage(layer.name, "input", (layer.name,), layer.output_shape, layer.output_shape,
                            cycles_per_image=_pixels(layer.output_shape)), ())  # one pixel per cycle
            producer[layer.name] = layer.name
        elif layer.op == "output":
            add_stage(Stage(layer.name, "output", (layer.name,), layer.input_shapes[0] if layer.input_shapes else (),
                            ()), layer.inputs)
        elif layer.op == "flatten":
            producer[layer.name] = producer[src]  # a stream of pixels is already flat
        elif layer.op in foldable and single_use and src_stage is not None and src_stage.kind in (
            "conv", "dense", "add", "bn") and not (layer.op == "bn" and src_stage.kind == "add") and not (
            layer.op == "bn" and any(l.startswith("relu:") for l in src_stage.layers)
        ):
            # Fold BN into the producing stage (hls4ml fuses BN into conv weights); ReLU too when asked.
            src_stage.layers = (*src_stage.layers, f"{layer.op}:{layer.name}")
            src_stage.out_shape = layer.output_shape
            if layer.op == "relu":
                src_stage.cost.lut += _channels(layer.output_shape) * b
            producer[layer.name] = src_stage.name
        elif layer.op in ("conv", "linear"):
            kind = "conv" if layer.op == "conv" else "dense"
            in_shape = layer.input_shapes[0]
            stage = Stage(layer.name, kind, (layer.name,), in_shape, layer.output_shape)
            a = layer.attrs
            if kind == "conv":
                kh, kw = a["kernel_size"]
                pad = a["padding"] if isinstance(a["padding"], tuple) else (0, 0)
                if a.get("groups", 1) != 1:
                    raise SkipswitchError(f"layer {layer.name}: grouped convolutions are not modelled")
                hp, wp = in_shape[1] + 2 * pad[0], in_shape[2] + 2 * pad[1]
                _mac_stage(stage, cfg, kh, kw, pad, a["in_channels"], a["out_channels"], wp, weights.get(layer.name))
                stage.cycles_per_image = hp * wp * _pixel_interval(stage, cfg)
                stage.delay_pixels = max(kh - 1 - pad[0], 0) * wp + max(kw - 1 - pad[1], 0)
            else:
                _mac_stage(stage, cfg, 1, 1, (0, 0), a["in_features"], a["out_features"], 1, weights.get(layer.name))
                # a dense layer after a flatten reads every pixel of the image before it can finish
                pixels = _pixels(src_stage.out_shape) if src_stage is not None else 1
                stage.in_shape = src_stage.out_shape if src_stage is not None else in_shape
                stage.cycles_per_image = max(_pixel_interval(stage, cfg), pixels)
                stage.delay_pixels = pixels - 1
            add_stage(stage, layer.inputs)
            producer[layer.name] = stage.name
        elif layer.op == "add":
            c = _channels(layer.output_shape)
            stage = Stage(layer.name, "add", (layer.name,), layer.input_shapes[0], layer.output_shape,
                          cycles_per_image=_pixels(layer.output_shape), depth_cycles=2,
                          cost=Cost(lut=c * b, ff=c * b))
            add_stage(stage, layer.inputs)
            producer[layer.name] = stage.name
        elif layer.op in ("avgpool", "maxpool", "softmax", "bn", "relu", "other"):
            in_shape = layer.input_shapes[0] if layer.input_shapes else layer.output_shape
            c, n_in = _channels(in_shape), _pixels(in_shape)
            kind = {"avgpool": "pool", "maxpool": "maxpool"}.get(layer.op, layer.op)
            stage = Stage(layer.name, kind, (layer.name,), in_shape, layer.output_shape, cycles_per_image=n_in,
                          depth_cycles=2)
            global_pool = _pixels(layer.output_shape) == 1
            if kind == "maxpool" and not global_pool:
                k = layer.attrs.get("kernel_size") or math.isqrt(n_in // _pixels(layer.output_shape))
                _window_stage(stage, cfg, k[0] if isinstance(k, tuple) else k, in_shape[2], c)
            elif kind in ("pool", "maxpool"):
                window = n_in // max(_pixels(layer.output_shape), 1)
                acc = b + math.ceil(math.log2(max(window, 2)))
                stage.cost = Cost(lut=c * acc + c * b, ff=c * acc + c * b)  # accumulate (or compare), scale
                # Output pixel (h, w) needs its whole window; for a global pool that is the image.
                stage.delay_pixels = n_in if global_pool else in_shape[2]
            elif kind == "softmax":
                stage.cost = softmax_cost(math.prod(in_shape), b)
                stage.cycles_per_image, stage.depth_cycles = 1, 8
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
                          cost=Cost(ff=c * cfg.bits(s.name), lut=2 * len(targets)))  # one pixel register; handshake logic
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


def estimate_graph(graph: NetworkGraph, config: EstimatorConfig | None = None, part: str | Part = "zu7ev",
                   weights: dict | None = None) -> Estimate:
    """Estimate the hls4ml io_stream design of ``graph`` (see the module docstring for the model).

    ``weights`` (IR layer name -> weight array, e.g. from :func:`layer_weights`) enables the
    constant-coefficient rule of reuse-factor-1 layers; without it every product is assumed to
    need a full multiplier."""
    cfg = config or EstimatorConfig()
    part = part if isinstance(part, Part) else get_part(part)
    stages, producer, edges = _build_stages(graph, cfg, weights)
    stages, edges, clone_of = _insert_clones(stages, edges, cfg)
    by_name = {s.name: s for s in stages}
    interval = max((s.cycles_per_image for s in stages), default=1) or 1

    # ready: arrival of the pixel-aligned output of each stage (longest path through the DAG);
    # finish: when a stage has written its last output of one image.
    preds: dict[str, list[str]] = {}
    for p, c in edges:
        preds.setdefault(c, []).append(p)
    # Steady state (skip FIFO occupancy): every stream runs at the rate of the slowest stage.
    # One image alone (latency): a stage's input arrives at the rate of its slowest upstream stage
    # (``duration``); ``first`` is its first pixel-aligned output, ``finish`` its last output.
    ready: dict[str, float] = {}
    duration: dict[str, float] = {}
    first: dict[str, float] = {}
    finish: dict[str, float] = {}
    for s in stages:
        ps = preds.get(s.name, ())
        start = max((ready[p] for p in ps), default=0.0)
        pixels_in = max(_pixels(s.in_shape), 1)
        if s.kind == "conv":  # the conv reads the padded image
            pixels_in = s.cycles_per_image // max(_pixel_interval(s, cfg), 1)
        s.latency = s.delay_pixels * interval / pixels_in + s.depth_cycles
        ready[s.name] = start + s.latency
        upstream = max((duration[p] for p in ps), default=0.0)
        duration[s.name] = max(upstream, s.cycles_per_image)
        first_in = max((first[p] for p in ps), default=0.0)
        inputs_done = max((finish[p] for p in ps), default=0.0)
        # outputs of a pooling or strided stage come in bursts: never later than all its input
        first[s.name] = min(first_in + s.delay_pixels * upstream / pixels_in, inputs_done) + s.depth_cycles
        finish[s.name] = max(first_in + s.cycles_per_image, inputs_done) + s.depth_cycles

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
    default_depths = cfg.fifo_depth_policy == "default"
    for p, c in edges:
        ps = by_name[p]
        if ps.kind == "input" or by_name[c].kind == "output":
            continue  # the top-level AXI-stream ports, not FIFOs inside the dataflow region
        shape = ps.out_shape
        bits = cfg.bits(p.removeprefix("clone_"))  # a stream carries its producer's precision
        width = _channels(shape) * bits
        edge = skip_edge_of.get((p, c))
        depth = _pixels(shape) if default_depths else cfg.stream_depth
        if edge is not None:
            residual_src = next(x for x in preds[c] if x != p)
            fork_stage = by_name[clone_of.get(producer[edge.fork], producer[edge.fork])]
            lifetime = ready[residual_src] - ready[fork_stage.name]
            period = _period(interval, shape)
            in_flight = max(ready[residual_src] - ready[p], 0.0) / period
            max_depth = _pixels(shape)
            if not default_depths:
                depth = min(max_depth, math.ceil(in_flight) + 1)
        lanes, lane_width = (_channels(shape), bits) if cfg.per_channel_fifos else (1, width)
        memory = fifo_memory(lane_width, depth, cfg)
        if edge is not None and cfg.skip_fifo_impl != "auto":
            memory = cfg.skip_fifo_impl
        one = fifo_cost(lane_width, depth, memory)
        cost = Cost(*(lanes * getattr(one, r) for r in RESOURCES))
        fifo = Fifo(f"{p}->{c}", p, c, width, depth, memory, edge is not None, cost)
        fifos.append(fifo)
        if edge is not None:
            reports.append(SkipReport(edge.fork, edge.join, tuple(shape), edge.is_long, lifetime, depth, max_depth,
                                      width, fifo.impl, cost.bram18))
    latency = max(finish.values(), default=0.0)
    return Estimate(graph.model_name, cfg, part, stages, fifos, reports, interval, latency, dict(producer))


def layer_weights(model, graph: NetworkGraph) -> dict:
    """IR layer name -> weight array of each conv / linear layer of ``model`` (the traced module).

    BN is not folded into the weights here (ASSUMED small effect on which products are trivial)."""
    modules = dict(model.named_modules())
    return {layer.name: modules[layer.target].weight.detach().cpu().numpy()
            for layer in graph.layers if layer.op in ("conv", "linear") and layer.target in modules}


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
                   part: str | Part = "zu7ev", weights: dict[str, dict] | None = None) -> Comparison:
    """Estimate each mode's graph; ``weights``: per mode, as :func:`estimate_graph` takes them."""
    part = part if isinstance(part, Part) else get_part(part)
    weights = weights or {}
    estimates = {mode: estimate_graph(g, config, part, weights=weights.get(mode)) for mode, g in graphs.items()}
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
