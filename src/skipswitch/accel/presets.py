"""Named operating conditions of the FastSwitch model (pydantic): ``paper`` and ``realistic``.

A :class:`Conditions` holds what the DSE and the latency model take besides the design grid:
datawidths, DSP packing, LUT MACs, buffering, batch, and clock / bandwidth overrides of the
part's. Presets round-trip through JSON or YAML files (``save_conditions`` / ``load_conditions``).
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Literal, Optional

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from ..errors import SkipswitchError
from ..fpga.parts import Part
from ..io import validation_line


class Conditions(BaseModel):
    """Knobs between the presets; every field is a CLI option of ``accel dse|evaluate``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    dw: int = Field(8, ge=1, le=32, description="weight / iAct bits")
    odw: int = Field(32, ge=1, le=64, description="oAct / partial-sum bits")
    dsp_packing: float = Field(1.0, gt=0, le=2, description="MACs per DSP48E2: 2 = two int8 MACs (WP486), "
                                                               "0.5 = a fp32 multiply on two DSPs")
    lut_macs: bool = Field(False, description="build the multipliers the DSPs cannot hold from LUTs")
    overlap: Literal["double", "single"] = Field("double", description="double: DB/SB ping-pong, loads hide "
                                                                       "behind compute; single: they take turns")
    clock_mhz: Optional[float] = Field(None, gt=0, description="accelerator clock (default: the part's)")
    bandwidth_gbps: Optional[float] = Field(None, gt=0, description="off-chip GB/s (default: the part's)")
    batch: int = Field(1, ge=1, description="inputs per query sharing one weight fetch")
    reasons: dict[str, str] = Field(default_factory=dict, description="why each value (presets only)")

    @model_validator(mode="after")
    def _packing_needs_narrow_words(self):
        # WP486 packs two multiplies sharing one operand into the 27x18 multiplier: 8-bit operands only.
        if self.dsp_packing > 1 and self.dw > 8:
            raise ValueError(f"dsp_packing {self.dsp_packing} needs dw <= 8 (got dw {self.dw})")
        if self.lut_macs and self.dw > 8:
            raise ValueError(f"lut_macs is modelled for dw <= 8 only (got dw {self.dw})")
        return self

    @property
    def double_buffer(self) -> bool:
        return self.overlap == "double"

    def on(self, part: Part) -> Part:
        """``part`` with this preset's clock and bandwidth where it sets them."""
        changes = {k: v for k, v in (("clock_mhz", self.clock_mhz), ("bandwidth_gbps", self.bandwidth_gbps))
                   if v is not None}
        return dataclasses.replace(part, **changes) if changes else part

    def design_fields(self) -> dict:
        """The :class:`AcceleratorDesign` fields these conditions set."""
        return {"dw": self.dw, "odw": self.odw, "double_buffer": self.double_buffer,
                "macs_per_dsp": self.dsp_packing, "lut_macs": self.lut_macs, "batch": self.batch}

    def with_knobs(self, **knobs) -> "Conditions":
        """A copy with the given (non-None) knobs changed, validated; reasons of changed knobs dropped."""
        knobs = {k: v for k, v in knobs.items() if v is not None}
        if not knobs:
            return self
        data = {**self.model_dump(), **knobs}
        data["reasons"] = {k: v for k, v in self.reasons.items() if k not in knobs}
        return _validated(data)

    def label(self) -> str:
        return (f"DW {self.dw}, ODW {self.odw}, {self.dsp_packing:g} MAC/DSP{', LUT MACs' if self.lut_macs else ''}, "
                f"{self.overlap}-buffered, batch {self.batch}"
                + (f", {self.clock_mhz:g} MHz" if self.clock_mhz else "")
                + (f", {self.bandwidth_gbps:g} GB/s" if self.bandwidth_gbps else ""))


def _validated(data: dict) -> Conditions:
    """Conditions from ``data``; the first validation error as one line naming the field and value."""
    try:
        return Conditions(**data)
    except ValidationError as exc:
        raise SkipswitchError(f"conditions: {validation_line(exc)}") from None


PRESETS: dict[str, Conditions] = {
    "paper": Conditions(
        dw=32, odw=32, dsp_packing=0.5, lut_macs=False, overlap="single", batch=1,
        reasons={
            "dw": "Sec. 4 sizes the subnets in fp32 (24.95-183.51 MiB = 4 bytes x OFA's parameter counts); no "
                  "quantisation is mentioned, so weights and iActs are fp32",
            "odw": "Table 2 has a separate ODW; with fp32 data the partial sums are fp32 too",
            "dsp_packing": "a fp32 multiply works on 24-bit mantissas; a DSP48E2's multiplier is 27x18 (UG974), "
                           "so one multiply takes two DSPs (an estimate, not a synthesis result)",
            "lut_macs": "Sec. 3.1's DPE is 9 multipliers and an adder tree; nothing says multipliers are built "
                        "from LUTs",
            "overlap": "Sec. 1 puts temporal switching's loading 'into the critical path of the inference', and "
                       "Table 2 sizes one copy of DB and SB (no ping-pong), so a tile's load and its compute "
                       "take turns",
            "clock_mhz": "not given; the part's 300 MHz, the clock of the Xilinx DPU the paper compares with",
            "bandwidth_gbps": "not given; the board's off-chip memory (fpga.parts)",
            "batch": "Sec. 4 serves a sequence of single queries",
        }),
    "realistic": Conditions(
        dw=8, odw=32, dsp_packing=2.0, lut_macs=True, overlap="double", batch=1,
        reasons={
            "dw": "deployed FPGA CNN accelerators (e.g. the Xilinx DPU) run int8",
            "odw": "int8 products accumulate in 32 bits",
            "dsp_packing": "two int8 MACs sharing an operand per DSP48E2 (Xilinx WP486)",
            "lut_macs": "multipliers beyond the DSPs are built from LUTs while the part's LUT budget lasts",
            "overlap": "DB and SB double-buffered, as in every streaming accelerator: loads hide behind compute",
            "clock_mhz": "the part's 300 MHz (DPU clock)",
            "bandwidth_gbps": "the board's off-chip memory (fpga.parts)",
            "batch": "one input per query",
        }),
}


def get_preset(name: str) -> Conditions:
    if name not in PRESETS:
        raise SkipswitchError(f"unknown preset {name!r}; choose one of {', '.join(PRESETS)} or a .json/.yaml file")
    return PRESETS[name]


def resolve_conditions(preset: str = "realistic", **knobs) -> Conditions:
    """A preset name or a config file (.json/.yaml/.yml), with knobs (None = keep) on top."""
    base = load_conditions(preset) if Path(preset).suffix in (".json", ".yaml", ".yml") else get_preset(preset)
    return base.with_knobs(**knobs)


def save_conditions(conditions: Conditions, path) -> None:
    from ..checkpoint import atomic_write_text

    data = conditions.model_dump()
    if Path(path).suffix in (".yaml", ".yml"):
        atomic_write_text(path, yaml.safe_dump(data, sort_keys=False))
    else:
        atomic_write_text(path, json.dumps(data, indent=2) + "\n")


def load_conditions(path) -> Conditions:
    try:
        text = Path(path).read_text()
        data = yaml.safe_load(text) if Path(path).suffix in (".yaml", ".yml") else json.loads(text)
    except (OSError, ValueError, yaml.YAMLError) as exc:
        raise SkipswitchError(f"cannot read conditions file {path}: {str(exc).splitlines()[0]}") from None
    if not isinstance(data, dict):
        raise SkipswitchError(f"conditions file {path} must hold a mapping of fields, not {type(data).__name__}")
    return _validated(data)
