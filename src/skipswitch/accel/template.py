"""The FastSwitch template (paper Sec. 3, Fig. 3): parameters, Table-2 buffer sizes, resources.

Every function takes plain ints *or* numpy arrays for the design parameters and broadcasts,
so the single-design model and the vectorised DSE are the same code.

Table 2 as implemented (R = S = 3, the DPE geometry: "DPEs of size 9, inspired by 3x3
filters", Sec. 3.1; stride_max = the workload's largest stride; BW = off-chip bits per cycle):

=====  =========================  =====================================================
buf    width (bits)               depth (words)
=====  =========================  =====================================================
DB     K_p (R S + 1) DW           ceil(T_K T_C / K_p)            [paper prints T_C T_C]
SB     Y_p stride_max DW          T_C T_X ceil(T_Y / (Y_p stride_max))
LB     Y_p stride_max DW          R ceil(T_Y stride_max / Y_p)
OB     ceil(BW / ODW) ODW         ceil((T_X-R+1) ceil((T_Y-S+1)/Y_p) K_p Y_p ODW / OB_W)
PB     K_p (R S + 1) DW           ceil(PB bytes / (K_p R S DW / 8))  ("custom value")
=====  =========================  =====================================================

Three readings where Table 2 is not self-consistent (docs/results/accelerator.md lists them):
DB depth uses the weight tile (T_K, T_C) of Sec. 3.2.3, not "T_C T_C"; OB counts
``T_Y - S + 1`` output columns (the paper's ``T_Y S + 1`` cannot be an output count) in groups
of Y_p, each output ODW bits, so the depth is bits / OB_W (the printed formula divides a
count by a width); the ``+1`` slot of a DB/PB word holds the folded BatchNorm bias.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from ..errors import SkipswitchError
from ..fpga.parts import Part as FpgaPart

DPE_SIZE = 9
KERNEL = 3  # R = S = 3: the DPE's window
BUFFERS = ("DB", "SB", "LB", "OB", "PB")
# BRAM18 simple-dual-port aspect ratios (depth, width) and URAM 4Kx72 (Xilinx UG573,
# "UltraScale Architecture Memory Resources").
BRAM18_SHAPES = ((16384, 1), (8192, 2), (4096, 4), (2048, 9), (1024, 18), (512, 36))
URAM_DEPTH, URAM_WIDTH = 4096, 72
# LUTs of one DPE: an adder tree of 8 adders at 2*DW+4 bits (one LUT per bit) plus a rough
# 64 LUTs of operand muxing; a fixed 2,000 for the controller and address generators. These are
# order-of-magnitude estimates, not synthesis results (no fit to any figure).
LUT_CONTROL = 2_000
LUT_DPE_MUX = 64
# A DW x DW multiplier built from LUTs: about DW^2 LUT6 (partial products and their adders), the
# same order-of-magnitude kind of estimate, used only where a preset allows LUT MACs.
LUT_PER_MULT_PER_BIT2 = 1


def ceil_div(a, b):
    return -(-a // b)


@dataclass(frozen=True)
class AcceleratorDesign:
    """One point of the template. Tiles: T_K kernels x T_C channels of weights, T_C x T_X x T_Y iActs."""

    kp: int  # DPE rows: kernels in flight (multi-kernel iAct reuse)
    yp: int  # DPE columns: sliding windows in flight (sliding-window iAct reuse)
    tk: int
    tc: int
    tx: int
    ty: int
    dw: int = 8  # iAct / weight bits
    odw: int = 32  # oAct / partial-sum bits
    pb_bytes: int = 0  # persistent-buffer capacity for weights
    bandwidth_gbps: float = 4.26
    clock_mhz: float = 300.0
    stride_max: int = 2
    double_buffer: bool = True  # DB and SB ping-pong so loads overlap compute (their BRAM doubles); False: they take turns
    macs_per_dsp: float = 1.0  # 2: two int8 MACs per DSP48E2 (Xilinx WP486); 0.5: a fp32 multiply takes two DSPs
    lut_macs: bool = False  # multipliers the DSPs cannot hold are built from LUTs while the LUT budget lasts
    batch: int = 1  # inputs per query served with one weight fetch

    def __post_init__(self):
        for name in ("kp", "yp", "tk", "tc", "tx", "ty", "dw", "odw", "stride_max", "batch"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
                raise SkipswitchError(f"invalid {name}={value!r}: must be a positive integer")
        if self.tx < KERNEL or self.ty < KERNEL:
            raise SkipswitchError(f"invalid tile T_X={self.tx}, T_Y={self.ty}: must hold one {KERNEL}x{KERNEL} window")
        if self.pb_bytes < 0:
            raise SkipswitchError(f"invalid pb_bytes={self.pb_bytes}: must be >= 0")
        if not self.macs_per_dsp > 0:
            raise SkipswitchError(f"invalid macs_per_dsp={self.macs_per_dsp}: must be > 0")
        if not self.bandwidth_gbps > 0 or not self.clock_mhz > 0:
            raise SkipswitchError(f"invalid bandwidth {self.bandwidth_gbps} GB/s or clock {self.clock_mhz} MHz: must be > 0")

    @classmethod
    def for_part(cls, part: FpgaPart, **params) -> "AcceleratorDesign":
        return cls(bandwidth_gbps=part.bandwidth_gbps, clock_mhz=part.clock_mhz, **params)

    def replace(self, **changes) -> "AcceleratorDesign":
        return AcceleratorDesign(**{**asdict(self), **changes})

    @property
    def bytes_per_cycle(self) -> float:
        return self.bandwidth_gbps * 1e9 / (self.clock_mhz * 1e6)

    def to_dict(self) -> dict:
        return asdict(self)


def bus_bits(bandwidth_gbps, clock_mhz):
    """BW of Table 2: off-chip bits per accelerator cycle, rounded up."""
    return np.ceil(np.asarray(bandwidth_gbps) * 8e9 / (np.asarray(clock_mhz) * 1e6)).astype(np.int64)


def buffer_shapes(kp, yp, tk, tc, tx, ty, dw, odw, pb_bytes, bw_bits, stride_max):
    """Table 2: {buffer: (width bits, depth words)}; arguments broadcast."""
    rs = KERNEL * KERNEL
    s = stride_max
    weight_word = kp * (rs + 1) * dw
    ob_width = ceil_div(bw_bits, odw) * odw
    ob_bits = (tx - KERNEL + 1) * ceil_div(ty - KERNEL + 1, yp) * yp * kp * odw
    return {
        "DB": (weight_word, ceil_div(tk * tc, kp)),
        "SB": (yp * s * dw, tc * tx * ceil_div(ty, yp * s)),
        "LB": (yp * s * dw, KERNEL * ceil_div(ty * s, yp)),
        "OB": (ob_width, ceil_div(ob_bits, ob_width)),
        "PB": (weight_word, ceil_div(pb_bytes * 8, kp * rs * dw)),
    }


def bram18_count(width, depth):
    """Fewest BRAM18s holding a width x depth memory over the six BRAM18 aspect ratios."""
    width, depth = np.asarray(width), np.asarray(depth)
    best = None
    for d, w in BRAM18_SHAPES:
        n = ceil_div(width, w) * ceil_div(depth, d)
        best = n if best is None else np.minimum(best, n)
    return np.where(width * depth > 0, best, 0)


def uram_count(width, depth):
    width, depth = np.asarray(width), np.asarray(depth)
    return np.where(width * depth > 0, ceil_div(width, URAM_WIDTH) * ceil_div(depth, URAM_DEPTH), 0)


def resources(kp, yp, tk, tc, tx, ty, dw, odw, pb_bytes, bw_bits, stride_max, part: FpgaPart, double_buffer=True,
              macs_per_dsp: float = 1.0, lut_macs: bool = False):
    """BRAM18/URAM per buffer, DSP and LUT of the DPE array; arrays broadcast.

    Mapping: DB, SB, LB, OB to BRAM18 (DB and SB twice when double-buffered); the PB to URAM
    where the part has it, rows that do not fit the URAM spill into BRAM18. Multipliers go to
    DSPs (``macs_per_dsp`` each); with ``lut_macs`` those beyond the part's DSPs become LUTs.
    """
    shapes = buffer_shapes(kp, yp, tk, tc, tx, ty, dw, odw, pb_bytes, bw_bits, stride_max)
    copies = 2 if double_buffer else 1
    bram = {
        "DB": copies * bram18_count(*shapes["DB"]),
        "SB": copies * bram18_count(*shapes["SB"]),
        "LB": bram18_count(*shapes["LB"]),
        "OB": bram18_count(*shapes["OB"]),
    }
    pb_width, pb_depth = shapes["PB"]
    uram_cols = ceil_div(pb_width, URAM_WIDTH)
    uram_rows = (part.uram // uram_cols) * URAM_DEPTH  # PB words the URAM can hold
    pb_in_uram = np.minimum(pb_depth, uram_rows)
    uram = uram_count(pb_width, pb_in_uram)
    bram["PB"] = bram18_count(pb_width, pb_depth - pb_in_uram)
    mults = DPE_SIZE * kp * yp
    on_dsp = np.minimum(mults, part.dsp * macs_per_dsp) if lut_macs else mults
    dsp = np.ceil(on_dsp / macs_per_dsp).astype(np.int64)
    lut = LUT_CONTROL + kp * yp * (8 * (2 * dw + 4) + LUT_DPE_MUX) + (mults - on_dsp) * LUT_PER_MULT_PER_BIT2 * dw * dw
    return {"bram": bram, "bram18": sum(bram.values()), "uram": uram, "dsp": dsp, "lut": lut, "shapes": shapes}


def design_resources(design: AcceleratorDesign, part: FpgaPart) -> dict:
    d = design
    res = resources(d.kp, d.yp, d.tk, d.tc, d.tx, d.ty, d.dw, d.odw, d.pb_bytes,
                    bus_bits(d.bandwidth_gbps, d.clock_mhz), d.stride_max, part, d.double_buffer, d.macs_per_dsp,
                    d.lut_macs)
    out = {"bram": {k: int(v) for k, v in res["bram"].items()}, "bram18": int(res["bram18"]),
           "uram": int(res["uram"]), "dsp": int(res["dsp"]), "lut": int(res["lut"]),
           "shapes": {k: (int(w), int(h)) for k, (w, h) in res["shapes"].items()}}
    return out


def fits(res: dict, part: FpgaPart):
    """Feasibility mask (arrays) or bool: every resource within the part."""
    return (np.asarray(res["bram18"]) <= part.bram18) & (np.asarray(res["uram"]) <= part.uram) & \
        (np.asarray(res["dsp"]) <= part.dsp) & (np.asarray(res["lut"]) <= part.lut)


def check_fits(design: AcceleratorDesign, part: FpgaPart) -> dict:
    """Resources of ``design``; raises SkipswitchError naming the first resource over ``part``'s budget."""
    res = design_resources(design, part)
    for key, budget in (("dsp", part.dsp), ("lut", part.lut), ("bram18", part.bram18), ("uram", part.uram)):
        if res[key] > budget:
            raise SkipswitchError(f"design does not fit {part.name}: {key}={res[key]:,} > {budget:,} available")
    return res
