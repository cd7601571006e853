"""FPGA part figures the accelerator model needs.

TODO(merge): must be unified with ``skipswitch/hw/parts.py`` (the FPGA estimator's part table,
built on another branch) when both are merged; the figures are the same FACTS.md table.

Source: /work/shared/reference/FACTS.md ("FPGA parts", Vivado part data). Clock: 300 MHz, the
clock Xilinx DPU designs run at on these boards (same file). Off-chip bandwidth: Ultra96 LPDDR4
peak 4.26 GB/s; ZCU104 DDR4 speed grade not confirmed, 19.2 GB/s assumes DDR4-2400 (FACTS.md);
U280 uses one DDR4 bank, 38.5 GB/s (its HBM2, 460 GB/s, is available as ``u280-hbm``).
"""

from __future__ import annotations

from dataclasses import dataclass

from ...errors import SkipswitchError


@dataclass(frozen=True)
class FpgaPart:
    name: str
    board: str
    dsp: int
    bram18: int
    uram: int
    lut: int
    ff: int
    bandwidth_gbps: float  # off-chip memory bandwidth, GB/s (1e9 bytes/s)
    clock_mhz: float = 300.0

    @property
    def bytes_per_cycle(self) -> float:
        return self.bandwidth_gbps * 1e9 / (self.clock_mhz * 1e6)


PARTS: dict[str, FpgaPart] = {
    "zu3eg": FpgaPart("zu3eg", "Ultra96-V2", dsp=360, bram18=432, uram=0, lut=70_560, ff=141_120, bandwidth_gbps=4.26),
    "zu7ev": FpgaPart("zu7ev", "ZCU104", dsp=1_728, bram18=624, uram=96, lut=230_400, ff=460_800, bandwidth_gbps=19.2),
    "xcu280": FpgaPart("xcu280", "Alveo U280", dsp=9_024, bram18=4_032, uram=960, lut=1_303_680, ff=2_607_360,
                       bandwidth_gbps=38.5),
    "xcu280-hbm": FpgaPart("xcu280-hbm", "Alveo U280 (HBM2)", dsp=9_024, bram18=4_032, uram=960, lut=1_303_680,
                           ff=2_607_360, bandwidth_gbps=460.0),
}
ALIASES = {"ultra96": "zu3eg", "zcu104": "zu7ev", "u280": "xcu280", "u280-hbm": "xcu280-hbm"}
DEFAULT_PARTS = ("zu3eg", "zu7ev", "xcu280")


def get_part(name: str) -> FpgaPart:
    key = ALIASES.get(name.lower(), name.lower())
    if key not in PARTS:
        raise SkipswitchError(f"unknown FPGA part {name!r}; choose one of {', '.join([*PARTS, *ALIASES])}")
    return PARTS[key]
