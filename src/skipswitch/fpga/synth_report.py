"""Read real synthesis reports of an hls4ml project and set them beside the dataflow estimate.

Two report kinds, as Vivado/Vitis write them:

* the HLS C-synthesis report (``<top>_csynth.rpt``, Vivado HLS and Vitis HLS): the "Total"
  row of "Utilization Estimates" (BRAM_18K, DSP48E or DSP, FF, LUT) and the "+ Latency" summary
  (min/max latency and interval in cycles);
* Vivado's ``report_utilization`` after synthesis (``vivado_synth.rpt``, which hls4ml's build
  writes): LUTs (CLB or Slice), registers, DSPs and block RAM, with BRAM18 = RAMB18 + 2 x RAMB36.

A project directory is searched for ``vivado_synth.rpt`` and for the top function's csynth
report (``**/syn/report/<top>_csynth.rpt``, the top being the one without a ``_U0`` caller,
i.e. ``myproject_csynth.rpt`` or ``<project>_axi_csynth.rpt`` in hls4ml projects).
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass
from pathlib import Path

from ..errors import SkipswitchError
from .dataflow import RESOURCES, Estimate

_LABELS = {"bram18": "BRAM18", "dsp": "DSP", "ff": "FF", "lut": "LUT", "latency_cycles": "latency (cycles)"}


@dataclass
class SynthReport:
    source: str  # the file the figures were read from
    kind: str  # csynth (HLS estimate) or vivado_synth (after logic synthesis)
    bram18: int
    dsp: int
    ff: int
    lut: int
    device: str = ""
    latency_cycles: int | None = None  # csynth only: minimum latency
    latency_max_cycles: int | None = None
    interval_cycles: int | None = None

    def to_dict(self) -> dict:
        return asdict(self)


def _cells(line: str) -> list[str]:
    return [c.strip() for c in line.strip().strip("|").split("|")]


def _number(text: str, path: Path, what: str) -> float:
    try:
        return float(text.replace(",", "").replace("~", ""))
    except ValueError:
        raise SkipswitchError(f"{path}: cannot read {what} from {text!r}") from None


def read_csynth(path: str | Path) -> SynthReport:
    """The top-level totals and latency of a Vivado/Vitis HLS ``*_csynth.rpt``."""
    path = Path(path)
    lines = _read(path).splitlines()
    if not any("HLS Report for" in l for l in lines[:10]):
        raise SkipswitchError(f"{path} is not a Vivado/Vitis HLS csynth report (no 'HLS Report for' header)")
    device = next((l.split(":", 1)[1].strip() for l in lines if l.startswith("* Target device:")), "")
    try:
        start = next(i for i, l in enumerate(lines) if l.startswith("== Utilization Estimates"))
        header = next(i for i in range(start, len(lines)) if "BRAM_18K" in lines[i])
        total = next(i for i in range(header, len(lines)) if lines[i].startswith("|Total"))
    except StopIteration:
        raise SkipswitchError(f"{path}: no 'Utilization Estimates' table with a Total row") from None
    names, values = _cells(lines[header]), _cells(lines[total])
    col = {n: values[i] for i, n in enumerate(names) if i < len(values)}
    dsp = col.get("DSP48E", col.get("DSP"))
    if dsp is None:
        raise SkipswitchError(f"{path}: the utilization table has no DSP column")
    latency = lat_max = interval = None
    for i, l in enumerate(lines):
        if l.strip().startswith("+ Latency"):
            rows = [_cells(x) for x in lines[i + 1:i + 12] if re.match(r"\s*\|\s*\d", x)]
            if rows:
                latency, lat_max = int(_number(rows[0][0], path, "latency")), int(_number(rows[0][1], path, "latency"))
                interval = int(_number(rows[0][4], path, "interval"))
            break
    return SynthReport(str(path), "csynth", int(_number(col["BRAM_18K"], path, "BRAM_18K")),
                       int(_number(dsp, path, "DSP")), int(_number(col["FF"], path, "FF")),
                       int(_number(col["LUT"], path, "LUT")), device, latency, lat_max, interval)


def read_vivado_utilization(path: str | Path) -> SynthReport:
    """LUT, FF, BRAM18 and DSP used, from Vivado's ``report_utilization`` text."""
    path = Path(path)
    text = _read(path)
    if "report_utilization" not in text[:2000] and "Utilization Design Information" not in text[:2000]:
        raise SkipswitchError(f"{path} is not a Vivado report_utilization file")

    def used(*names: str) -> float:
        for name in names:
            m = re.search(r"^\|\s*" + re.escape(name) + r"\*?\s*\|\s*([\d.]+)\s*\|", text, re.MULTILINE)
            if m:
                return float(m.group(1))
        raise SkipswitchError(f"{path}: no '{names[0]}' row in the utilization report")

    device = re.search(r"^\|\s*Device\s*:\s*(\S+)", text, re.MULTILINE)
    bram18 = used("RAMB18") + 2 * used("RAMB36/FIFO")
    return SynthReport(str(path), "vivado_synth", int(bram18), int(used("DSPs")),
                       int(used("CLB Registers", "Slice Registers")), int(used("CLB LUTs", "Slice LUTs")),
                       device.group(1) if device else "")


def _read(path: Path) -> str:
    try:
        return path.read_text(errors="replace")
    except OSError as exc:
        raise SkipswitchError(f"cannot read report {path}: {exc.strerror or exc}") from None


def read_report_dir(directory: str | Path) -> list[SynthReport]:
    """Every report found in an hls4ml project (or any) directory: csynth first, then Vivado's."""
    directory = Path(directory)
    if not directory.is_dir():
        raise SkipswitchError(f"report directory {directory} does not exist")
    reports = []
    csynth = sorted(directory.glob("**/syn/report/*_csynth.rpt")) or sorted(directory.glob("**/csynth.rpt"))
    if csynth:
        # the top function's report: hls4ml names it after the project; sub-function reports carry
        # template arguments in their names, so the shortest name is the top
        reports.append(read_csynth(min(csynth, key=lambda p: (len(p.name), p.name))))
    vivado = sorted(directory.glob("**/vivado_synth.rpt"))
    if vivado:
        reports.append(read_vivado_utilization(vivado[0]))
    if not reports:
        raise SkipswitchError(f"no csynth.rpt or vivado_synth.rpt under {directory}")
    return reports


def comparison_rows(reports: list[SynthReport], estimate: Estimate) -> list[list[str]]:
    """One row per resource and latency: each report's figure, the estimate, estimate/report ratios."""
    est = {**estimate.total.to_dict(), "latency_cycles": round(estimate.latency_cycles)}
    rows = []
    for metric in (*RESOURCES, "latency_cycles"):
        row = [_LABELS[metric]]
        for report in reports:
            value = getattr(report, metric)
            row.append("-" if value is None else f"{value:,}")
        row.append(f"{est[metric]:,}")
        for report in reports:
            value = getattr(report, metric)
            row.append(f"{est[metric] / value:.2f}" if value else "-")
        rows.append(row)
    return rows


def comparison_header(reports: list[SynthReport]) -> list[str]:
    return ["", *(r.kind for r in reports), "estimate", *(f"estimate / {r.kind}" for r in reports)]
