"""Accelerator presets (round trip, errors) and the trace-optimal PB policy (exact vs brute force)."""

import itertools
import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).parent))
from accel_standin import CONFIGS, StandinSupernet  # noqa: E402

from skipswitch.accel import latency, pb_policy, workload as wl  # noqa: E402
from skipswitch.accel.presets import PRESETS, Conditions, get_preset, load_conditions, resolve_conditions, \
    save_conditions  # noqa: E402
from skipswitch.accel.template import AcceleratorDesign  # noqa: E402
from skipswitch.errors import SkipswitchError  # noqa: E402
from skipswitch.fpga.parts import get_part  # noqa: E402

ZU3EG = get_part("zu3eg")


@pytest.fixture(scope="module")
def work():
    return wl.workload_from_supernet(StandinSupernet(), CONFIGS, name="standin").with_trace([0, 2, 2, 1, 2, 0])


def design(**kw):
    base = dict(kp=4, yp=4, tk=32, tc=16, tx=10, ty=10, pb_bytes=15_000)
    return AcceleratorDesign.for_part(ZU3EG, **{**base, **kw})


# -- presets --------------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", list(PRESETS))
@pytest.mark.parametrize("suffix", [".json", ".yaml"])
def test_presets_round_trip_through_config_files(name, suffix, tmp_path):
    path = tmp_path / f"{name}{suffix}"
    save_conditions(get_preset(name), path)
    assert load_conditions(path) == get_preset(name)
    assert resolve_conditions(str(path), batch=4) == get_preset(name).model_copy(update={"batch": 4,
        "reasons": {k: v for k, v in get_preset(name).reasons.items() if k != "batch"}})


def test_presets_differ_where_documented():
    paper, real = get_preset("paper"), get_preset("realistic")
    assert (paper.dw, paper.overlap, paper.dsp_packing) == (32, "single", 0.5)
    assert (real.dw, real.overlap, real.dsp_packing, real.lut_macs) == (8, "double", 2.0, True)
    for preset in (paper, real):  # every knob has its reason
        assert set(preset.reasons) >= {"dw", "odw", "dsp_packing", "lut_macs", "overlap", "clock_mhz",
                                       "bandwidth_gbps", "batch"}


@pytest.mark.parametrize("call, match", [
    (lambda: get_preset("fastest"), "unknown preset 'fastest'"),
    (lambda: resolve_conditions("paper", overlap="triple"), "invalid overlap='triple'"),
    (lambda: resolve_conditions("realistic", dw=0), "invalid dw=0"),
    (lambda: resolve_conditions("realistic", dsp_packing=-1.0), "invalid dsp_packing=-1.0"),
    (lambda: resolve_conditions("paper", dsp_packing=2.0), "dsp_packing 2.0 needs dw <= 8"),
    (lambda: resolve_conditions("realistic", bandwidth_gbps=0.0), "invalid bandwidth_gbps=0.0"),
])
def test_bad_presets_and_knobs_are_one_line_errors(call, match):
    with pytest.raises(SkipswitchError, match=match) as exc:
        call()
    assert "\n" not in str(exc.value)


def test_bad_conditions_file(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("dw: [1, 2]\n")
    with pytest.raises(SkipswitchError, match="invalid dw"):
        load_conditions(path)
    path.write_text("volts: 3\n")
    with pytest.raises(SkipswitchError, match="volts"):
        load_conditions(path)


def test_packing_and_lut_macs_fit_bigger_arrays():
    from skipswitch.accel.template import design_resources, fits

    d = design(kp=16, yp=4, pb_bytes=0)  # 576 multipliers > 360 DSPs
    assert not fits(design_resources(d, ZU3EG), ZU3EG)
    packed = d.replace(macs_per_dsp=2.0)
    assert design_resources(packed, ZU3EG)["dsp"] == 288 and fits(design_resources(packed, ZU3EG), ZU3EG)
    big = d.replace(kp=32, macs_per_dsp=2.0)  # 1,152 multipliers: 720 on DSPs, 432 on LUTs
    assert not fits(design_resources(big, ZU3EG), ZU3EG)
    res = design_resources(big.replace(lut_macs=True), ZU3EG)
    assert res["dsp"] == 360 and res["lut"] > design_resources(big, ZU3EG)["lut"]


def test_conditions_override_part_clock_and_bandwidth():
    part = Conditions(clock_mhz=200.0, bandwidth_gbps=1.0).on(ZU3EG)
    assert (part.clock_mhz, part.bandwidth_gbps, part.dsp) == (200.0, 1.0, ZU3EG.dsp)


def test_batch_amortises_weights(work):
    one = latency.evaluate(design(tc=1024, tk=1024, tx=64, ty=64, pb_bytes=0), work)
    four = latency.evaluate(design(tc=1024, tk=1024, tx=64, ty=64, pb_bytes=0, batch=4), work)
    assert four.weight_bytes == one.weight_bytes  # one C tile: weights fetched once per batch
    assert four.compute == pytest.approx(4 * one.compute)


# -- trace-optimal PB --------------------------------------------------------------------------------------
def small_problem(work, d, n_cells=10):
    """The problem restricted to its ``n_cells`` most valuable cells, so brute force stays small."""
    prob = pb_policy.problem(work, d)
    keep = np.argsort(-prob.saves.sum(axis=0))[:n_cells]
    prob.cells = [prob.cells[i] for i in keep]
    prob.sizes, prob.saves = prob.sizes[keep], prob.saves[:, keep]
    return prob


@pytest.mark.parametrize("double_buffer", [True, False])
@pytest.mark.parametrize("pb_bytes", [3_000, 15_000, 40_000])
def test_knapsack_equals_brute_force(work, double_buffer, pb_bytes):
    d = design(pb_bytes=pb_bytes, double_buffer=double_buffer)
    prob = small_problem(work, d)
    best = min(prob.latency(x) for x in itertools.product((0, 1), repeat=len(prob.cells))
               if np.dot(x, prob.sizes) <= prob.capacity)
    x = pb_policy.solve(prob, divisible=False)
    assert np.dot(x, prob.sizes) <= prob.capacity
    assert prob.latency(x) == pytest.approx(best, rel=1e-12)
    # the model's own evaluator agrees with the knapsack's objective on that content
    assert latency.evaluate(d, work, plan=prob.plan(x)).latency == pytest.approx(prob.latency(x), rel=1e-9)
    # greedy keeps its bound: saving >= (1 - 1/e)/2 of the optimum's (1/2 single-buffered)
    base, g = prob.latency(np.zeros(len(x))), pb_policy.greedy(prob, divisible=False)
    bound = (1 - 1 / np.e) / 2 if double_buffer else 0.5
    assert base - prob.latency(g) >= bound * (base - best) - 1e-9


@pytest.mark.parametrize("double_buffer", [True, False])
@pytest.mark.parametrize("pb_bytes", [0, 5_000, 19_464, 40_000, 200_000])
def test_trace_optimal_never_worse_than_most_used(work, double_buffer, pb_bytes):
    d = design(pb_bytes=pb_bytes, double_buffer=double_buffer)
    plan = pb_policy.trace_optimal_plan(work, d)
    assert plan.max_elements <= d.pb_bytes + 1e-6  # DW 8: elements = bytes
    opt = latency.evaluate(d, work, plan=plan).latency
    assert opt <= latency.evaluate(d, work, "most-used").latency * (1 + 1e-9)
    assert opt <= latency.evaluate(d, work, "smallest").latency * (1 + 1e-9)
    greedy = pb_policy.problem(work, d)
    assert greedy.latency(pb_policy.greedy(greedy)) >= opt * (1 - 1e-9)  # the LP is optimal for divisible content


def test_cli_takes_preset_and_knobs(work, tmp_path, monkeypatch):
    import json

    from typer.testing import CliRunner

    from skipswitch.cli import app

    monkeypatch.setitem(wl.WORKLOADS, "standin", lambda sequence, seed: work)
    runner = CliRunner()
    args = ["accel", "evaluate", "--workload", "standin", "--part", "zu3eg", "--kp", "4", "--yp", "4", "--tk", "32",
            "--tc", "16", "--tx", "10", "--ty", "10", "--pb-bytes", "20000", "--out", str(tmp_path)]
    r = runner.invoke(app, [*args, "--preset", "paper", "--dw", "16", "--dsp-packing", "1", "--bandwidth-gbps", "2"])
    assert r.exit_code == 0, r.output
    report = json.loads((tmp_path / "evaluate.json").read_text())
    assert report["conditions"]["dw"] == 16 and report["conditions"]["overlap"] == "single"
    part = report["parts"]["zu3eg"]
    assert part["design"]["bandwidth_gbps"] == 2.0 and part["design"]["double_buffer"] is False
    assert part["trace-optimal"]["latency"] <= part["most-used"]["latency"] * (1 + 1e-9)
    r = runner.invoke(app, [*args, "--preset", "paper", "--overlap", "triple"])
    assert isinstance(r.exception, SkipswitchError) and "overlap" in str(r.exception)


def test_grouping_queries_by_subnet(work):
    assert pb_policy.group_by_subnet([0, 2, 2, 1, 2, 0]) == [(0, 2), (2, 3), (1, 1)]
    d = design(tc=1024, tk=1024, tx=64, ty=64)  # one C tile everywhere: a group fetches its weights once
    plan = pb_policy.trace_optimal_plan(work, d)
    in_order = latency.evaluate(d, work, plan=plan)
    grouped = pb_policy.grouped_latency(d, work, plan)
    assert grouped < in_order.latency
    assert grouped == pytest.approx(sum(latency.evaluate(d.replace(batch=n), work.with_trace([i]), plan=plan).latency
                                        for i, n in [(0, 2), (2, 3), (1, 1)]))
