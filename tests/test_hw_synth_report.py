"""The synthesis-report reader on real hls4ml reports (tests/data/hls4ml_reports, sources in its README)."""

from pathlib import Path

import pytest
import yaml

from skipswitch.errors import SkipswitchError
from skipswitch.fpga.synth_report import read_csynth, read_report_dir, read_vivado_utilization

DATA = Path(__file__).parent / "data" / "hls4ml_reports"
SUITE = Path(__file__).parent.parent / "benchmarks" / "hw_validation"


def test_reads_an_ultrascale_project():
    csynth, vivado = read_report_dir(DATA / "mnist_rf1_u50")
    assert (csynth.kind, csynth.bram18, csynth.dsp, csynth.ff, csynth.lut) == ("csynth", 16, 567, 5989, 30339)
    assert (csynth.latency_cycles, csynth.latency_max_cycles, csynth.interval_cycles) == (794, 794, 788)
    assert csynth.device == "xcu50-fsvh2104-2-e"
    assert (vivado.kind, vivado.bram18, vivado.dsp, vivado.ff, vivado.lut) == ("vivado_synth", 12, 565, 4329, 14056)


def test_reads_a_7_series_project():
    """Zynq-7000 reports say Slice LUTs / Slice Registers where UltraScale says CLB."""
    csynth, vivado = read_report_dir(DATA / "mnist_rf8_z020")
    assert (csynth.bram18, csynth.dsp, csynth.latency_cycles, csynth.interval_cycles) == (45, 76, 14121, 4705)
    assert (vivado.bram18, vivado.dsp, vivado.ff, vivado.lut, vivado.device) == (8, 76, 10881, 9964, "7z020clg400-1")


def test_validation_suite_figures_are_the_reports_figures():
    """The suite's published figures for this design are what the reader reads from its reports."""
    design = yaml.safe_load((SUITE / "mnist_rf1_latency_u50.yaml").read_text())
    csynth, vivado = read_report_dir(DATA / "mnist_rf1_u50")
    published = design["published"]
    assert (vivado.bram18, vivado.dsp, vivado.ff, vivado.lut) == tuple(published[k] for k in ("bram18", "dsp", "ff", "lut"))
    assert csynth.latency_cycles == published["latency_cycles"]
    assert design["source"]["repository"] and len(design["source"]["commit"]) == 40


@pytest.mark.parametrize(
    "name,text,reader,message",
    [
        ("x_csynth.rpt", "hello\n", read_csynth, "is not a Vivado/Vitis HLS csynth report"),
        ("y_csynth.rpt", "== Vivado HLS Report for 'top'\n* Version: 2020.1\n", read_csynth, "no 'Utilization Estimates'"),
        ("vivado_synth.rpt", "nothing here", read_vivado_utilization, "is not a Vivado report_utilization file"),
        ("vivado_synth.rpt", "| Command : report_utilization\n| CLB LUTs | 5 | 0 |\n", read_vivado_utilization,
         "no 'RAMB18' row"),
    ],
)
def test_bad_report_is_a_one_line_error(tmp_path, name, text, reader, message):
    path = tmp_path / name
    path.write_text(text)
    with pytest.raises(SkipswitchError, match=message) as info:
        reader(path)
    assert "\n" not in str(info.value)


def test_empty_or_missing_directory(tmp_path):
    with pytest.raises(SkipswitchError, match="no csynth.rpt or vivado_synth.rpt under"):
        read_report_dir(tmp_path)
    with pytest.raises(SkipswitchError, match="does not exist"):
        read_report_dir(tmp_path / "nope")


def test_cli_compare_prints_reports_beside_the_estimate(cli):
    code, out, err = cli("hw", "compare", DATA / "mnist_rf8_z020", "--model", "resnet8", "--input-size", "16")
    assert code == 0, err
    assert "| LUT | 25,632 | 9,964 |" in out and "estimate / vivado_synth" in out
    assert "xc7z020" in out  # the part was taken from the report's device


def test_cli_compare_bad_directory_exits_2_with_one_line(cli, tmp_path):
    (tmp_path / "vivado_synth.rpt").write_text("garbage")
    code, out, err = cli("hw", "compare", tmp_path)
    assert code == 2 and "is not a Vivado report_utilization file" in err and len(err.strip().splitlines()) == 1
