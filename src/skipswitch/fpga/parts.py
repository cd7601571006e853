"""FPGA part table: the resources the estimator reports utilisation against.

ZU3EG, ZU7EV and XCU280 are Vivado part data as published in open-source tools (the same
figures as Xilinx DS891, Zynq UltraScale+ MPSoC overview, and DS963, Alveo U280 data sheet).
XCVU13P's figures are Xilinx's published Virtex UltraScale+
product table (DS890, "UltraScale Architecture and Product Data Sheet: Overview",
Virtex UltraScale+ device table: 1,728K CLB LUTs, 3,456K CLB flip-flops, 12,288 DSP slices,
94.5 Mb block RAM = 2,688 BRAM36, 360 Mb UltraRAM = 1,280 URAM); they were entered from that
table and not re-checked against Vivado part data here.

Off-chip bandwidth and clock (used by the FastSwitch accelerator model): Ultra96 LPDDR4
x32 at 533 MHz, peak 4.26 GB/s; ZCU104's DDR4 speed grade was not confirmed, so 19.2 GB/s
assumes DDR4-2400; U280 uses one DDR4 bank (38.5 GB/s), and its HBM2 (460 GB/s) is the
separate entry ``xcu280-hbm``; 300 MHz is the clock Xilinx DPU designs run at on these boards.
XCVU13P has no board memory figure here (``bandwidth_gbps`` is None).

XCU50 and XC7Z020 (used by the synthesis validation suite) are the "Available" column of the
Vivado 2020.1 ``report_utilization`` files in pominiq/DNNonSilicon (e.g. commit d3a8c690,
Folder_2_HLS4ML_Vivado_HLS/models/MNIST_original/vivado_synth.rpt and commit ee1d2a3b,
model_1/hls4ml_prj/vivado_synth.rpt): BRAM18 = 2 x Block RAM Tiles; no bandwidth figure.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

from ..errors import SkipswitchError


@dataclass(frozen=True)
class Part:
    name: str
    board: str
    dsp: int
    bram18: int
    uram: int
    lut: int
    ff: int
    source: str
    bandwidth_gbps: float | None = None  # off-chip memory bandwidth, GB/s (1e9 bytes/s)
    clock_mhz: float = 300.0

    @property
    def bytes_per_cycle(self) -> float:
        if self.bandwidth_gbps is None:
            raise SkipswitchError(f"part {self.name} has no off-chip bandwidth figure; choose one that has")
        return self.bandwidth_gbps * 1e9 / (self.clock_mhz * 1e6)

    @property
    def bram36(self) -> int:
        return self.bram18 // 2

    def capacity(self, resource: str) -> int:
        return {"bram18": self.bram18, "dsp": self.dsp, "lut": self.lut, "ff": self.ff, "uram": self.uram}[resource]

    def to_dict(self) -> dict:
        return asdict(self)


_VIVADO = "Vivado part data as published in open-source tools"
_REPORT = "Vivado 2020.1 report_utilization 'Available' column (pominiq/DNNonSilicon vivado_synth.rpt)"
_DS890 = "Xilinx DS890 Virtex UltraScale+ device table (not re-checked against Vivado part data)"

PARTS: dict[str, Part] = {
    p.name: p
    for p in (
        Part("zu3eg", "Ultra96-V2", dsp=360, bram18=432, uram=0, lut=70_560, ff=141_120, source=_VIVADO,
             bandwidth_gbps=4.26),
        Part("zu7ev", "ZCU104", dsp=1_728, bram18=624, uram=96, lut=230_400, ff=460_800, source=_VIVADO,
             bandwidth_gbps=19.2),
        Part("xcu280", "Alveo U280", dsp=9_024, bram18=4_032, uram=960, lut=1_303_680, ff=2_607_360, source=_VIVADO,
             bandwidth_gbps=38.5),
        Part("xcu280-hbm", "Alveo U280 (HBM2)", dsp=9_024, bram18=4_032, uram=960, lut=1_303_680, ff=2_607_360,
             source=_VIVADO, bandwidth_gbps=460.0),
        Part("xcu50", "Alveo U50", dsp=5_952, bram18=2_688, uram=640, lut=871_680, ff=1_743_360, source=_REPORT),
        Part("xc7z020", "PYNQ-Z2 / Zedboard (Zynq-7020)", dsp=220, bram18=280, uram=0, lut=53_200, ff=106_400,
             source=_REPORT),
        Part("xcvu13p", "VCU13P-class boards", dsp=12_288, bram18=5_376, uram=1_280, lut=1_728_000, ff=3_456_000,
             source=_DS890),
    )
}

_ALIASES = {"ultra96": "zu3eg", "zcu104": "zu7ev", "u280": "xcu280", "u280-hbm": "xcu280-hbm", "vu13p": "xcvu13p",
            "xczu3eg": "zu3eg", "xczu7ev": "zu7ev", "u50": "xcu50", "xcu50-fsvh2104-2-e": "xcu50",
            "pynq-z2": "xc7z020", "xc7z020clg400-1": "xc7z020", "xc7z020-clg400-1": "xc7z020"}


def list_parts() -> list[str]:
    return list(PARTS)


def get_part(name: str) -> Part:
    """Look a part up by name or board alias (case-insensitive)."""
    key = name.strip().lower()
    key = _ALIASES.get(key, key)
    if key not in PARTS:
        raise SkipswitchError(f"unknown FPGA part {name!r}; choose one of {', '.join(PARTS)}")
    return PARTS[key]
