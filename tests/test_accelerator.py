"""FastSwitch accelerator model: Table 2, resources, latency-model invariants, workloads, DSE, CLI."""

import json
import sys
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

sys.path.insert(0, str(Path(__file__).parent))
from accel_standin import CONFIGS, StandinSupernet  # noqa: E402

from skipswitch.errors import SkipswitchError  # noqa: E402
from skipswitch.graph import trace  # noqa: E402
from skipswitch.accel import dse, latency, template, workload as wl  # noqa: E402
from skipswitch.fpga.parts import get_part  # noqa: E402
from skipswitch.accel.template import AcceleratorDesign  # noqa: E402

ZU3EG = get_part("ultra96")


@pytest.fixture(scope="module")
def work():
    return wl.workload_from_supernet(StandinSupernet(), CONFIGS, name="standin")


def design(**kw):
    base = dict(kp=4, yp=4, tk=32, tc=16, tx=10, ty=10, pb_bytes=0)
    return AcceleratorDesign.for_part(ZU3EG, **{**base, **kw})


# -- Table 2 ----------------------------------------------------------------------------------------
def test_table2_hand_computed():
    shapes = template.buffer_shapes(kp=4, yp=2, tk=32, tc=16, tx=10, ty=12, dw=8, odw=32, pb_bytes=1000,
                                    bw_bits=128, stride_max=2)
    assert shapes["DB"] == (4 * 10 * 8, 32 * 16 // 4)  # K_p(RS+1)DW x T_K T_C / K_p
    assert shapes["SB"] == (2 * 2 * 8, 16 * 10 * 3)  # Y_p s DW x T_C T_X ceil(12 / 4)
    assert shapes["LB"] == (32, 3 * 12)  # R ceil(T_Y s / Y_p)
    # OB: 128-bit words; (10-3+1) rows x ceil(10/2)=5 column groups x Y_p=2 x K_p=4 outputs x 32 bit = 10240 bits
    assert shapes["OB"] == (128, 80)
    assert shapes["PB"] == (320, 28)  # ceil(8000 bits / (4 * 9 * 8))


def test_table2_rounds_up_partial_words():
    shapes = template.buffer_shapes(kp=3, yp=5, tk=10, tc=7, tx=9, ty=9, dw=8, odw=24, pb_bytes=0, bw_bits=100,
                                    stride_max=1)
    assert shapes["DB"][1] == 24  # ceil(70 / 3)
    assert shapes["SB"] == (40, 7 * 9 * 2)  # ceil(9 / 5)
    assert shapes["OB"][0] == 120  # ceil(100 / 24) * 24
    assert shapes["PB"][1] == 0


def test_bram18_mapping_picks_best_aspect():
    assert template.bram18_count(320, 128) == 9  # 512x36 aspect: ceil(320/36) = 9 columns, one row
    assert template.bram18_count(1, 16385) == 2
    assert template.bram18_count(18, 1024) == 1
    assert template.bram18_count(0, 100) == 0
    assert template.uram_count(72, 4097) == 2


# -- resources and feasibility ------------------------------------------------------------------------
def test_dsp_and_bram_of_a_design():
    res = template.design_resources(design(kp=4, yp=2), ZU3EG)
    assert res["dsp"] == 9 * 4 * 2
    assert res["bram18"] == sum(res["bram"].values())
    assert res["uram"] == 0  # ZU3EG has no URAM: the PB stays in BRAM
    assert template.check_fits(design(kp=4, yp=2), ZU3EG)["dsp"] == 72


def test_over_budget_designs_rejected():
    with pytest.raises(SkipswitchError, match="dsp"):
        template.check_fits(design(kp=8, yp=8), ZU3EG)  # 576 DSPs > 360
    with pytest.raises(SkipswitchError, match="bram18"):
        template.check_fits(design(pb_bytes=2 * 2**20), ZU3EG)  # 2 MiB PB > 972 KiB of BRAM
    zcu = get_part("zcu104")
    big = AcceleratorDesign.for_part(zcu, kp=4, yp=4, tk=32, tc=16, tx=10, ty=10, pb_bytes=3 * 2**20)
    res = template.design_resources(big, zcu)
    assert res["uram"] > 0  # the ZU7EV's PB goes to URAM first
    with pytest.raises(SkipswitchError):
        template.check_fits(big.replace(pb_bytes=8 * 2**20), zcu)


def test_invalid_design_parameters_raise():
    with pytest.raises(SkipswitchError, match="kp"):
        design(kp=0)
    with pytest.raises(SkipswitchError, match="T_X"):
        design(tx=2)
    with pytest.raises(SkipswitchError, match="unknown FPGA part"):
        get_part("virtex2")


# -- workload ----------------------------------------------------------------------------------------
def test_workload_shapes_come_from_the_graph(work):
    model = StandinSupernet().extract(CONFIGS[1])
    graph = trace(model)
    convs = [l for l in graph.layers if l.op in ("conv", "linear")]
    sub = work.subnets[1]
    assert len(sub.layers) == len(convs)
    assert sub.weight_elements == sum(l.params for l in convs if l.op == "conv") + sum(
        l.attrs["in_features"] * l.attrs["out_features"] for l in convs if l.op == "linear")
    assert sub.macs == sum(l.macs for l in convs)


def test_shared_elements_equal_mask_count(work):
    sn = StandinSupernet()
    full = sn.weight_regions(sn.largest_config)
    masks = []
    for sub in work.subnets:
        m = {}
        for layer in sub.layers:
            shape = tuple(b for _, b in full[layer.param]) + (1,) * (4 - len(full[layer.param]))
            mask = np.zeros(shape, bool)
            mask[tuple(slice(a, b) for a, b in layer.box)] = True
            m[layer.param] = mask
        masks.append(m)
    for i in range(3):
        for j in range(3):
            brute = sum(int((masks[i][p] & masks[j][p]).sum()) for p in masks[i].keys() & masks[j].keys())
            assert work.shared_elements(i, j) == brute
    union = {}
    for m in masks:
        for p, mask in m.items():
            union[p] = union.get(p, False) | mask
    assert work.union_elements() == sum(int(u.sum()) for u in union.values())


def test_region_shape_mismatch_raises():
    sn = StandinSupernet()
    regions = sn.weight_regions(CONFIGS[2])  # the largest config's regions against the smallest graph
    with pytest.raises(SkipswitchError, match="weight region"):
        wl.subnet_from_graph(trace(sn.extract(CONFIGS[0])), regions)


def test_pb_plans(work):
    small, used = wl.pb_plan(work, "smallest"), wl.pb_plan(work, "most-used")
    assert small.max_elements == work.subnets[work.smallest()].weight_elements
    assert used.max_elements == work.union_elements()
    with pytest.raises(SkipswitchError, match="PB policy"):
        wl.pb_plan(work, "random")


# -- latency model invariants -------------------------------------------------------------------------
designs = st.builds(
    dict, kp=st.sampled_from([1, 2, 3, 4, 8]), yp=st.sampled_from([1, 2, 3, 4, 7]), tk=st.sampled_from([4, 8, 16, 64]),
    tc=st.sampled_from([1, 4, 8, 16, 64]), tx=st.integers(3, 12), ty=st.integers(3, 12),
    pb_bytes=st.integers(0, 200_000))


@settings(max_examples=40, deadline=None)
@given(params=designs)
def test_no_design_beats_its_compute_bound(work, params):
    d = design(**params)
    result = latency.evaluate(d, work)
    assert result.latency >= result.compute >= latency.compute_bound(d, work) * (1 - 1e-12)


@settings(max_examples=30, deadline=None)
@given(params=designs, factor=st.floats(1.01, 10))
def test_more_bandwidth_is_never_slower(work, params, factor):
    d = design(**params)
    slow = latency.evaluate(d, work).latency
    fast = latency.evaluate(d.replace(bandwidth_gbps=d.bandwidth_gbps * factor), work).latency
    assert fast <= slow * (1 + 1e-12)


@settings(max_examples=30, deadline=None)
@given(params=designs, extra=st.integers(1, 200_000), policy=st.sampled_from(wl.PB_POLICIES))
def test_bigger_pb_never_loads_more_bytes(work, params, extra, policy):
    d = design(**params)
    small = latency.evaluate(d, work, policy)
    big = latency.evaluate(d.replace(pb_bytes=d.pb_bytes + extra), work, policy)
    assert big.weight_bytes <= small.weight_bytes + 1e-6
    assert big.latency <= small.latency * (1 + 1e-12)


def test_pb_removes_exactly_its_bytes_with_one_c_tile(work):
    # tc covers every layer's channels, so each weight is fetched once per query: the PB of the
    # smallest subnet saves exactly its bytes once per query of the sequence.
    d = design(tc=1024, tk=1024, tx=64, ty=64)
    base = latency.evaluate(d, work)
    pb = work.subnets[work.smallest()].weight_elements  # DW = 8 bits: elements = bytes
    fs = latency.evaluate(d.replace(pb_bytes=pb), work, "smallest")
    assert base.weight_bytes == sum(s.weight_elements for s in work.queries)
    assert base.weight_bytes - fs.weight_bytes == pytest.approx(pb * len(work.trace))


def test_most_used_never_loads_more_than_smallest(work):
    d = design()
    for pb in (0, 5_000, 19_464, 40_000, 200_000):
        a = latency.evaluate(d.replace(pb_bytes=pb), work, "smallest").weight_bytes
        b = latency.evaluate(d.replace(pb_bytes=pb), work, "most-used").weight_bytes
        assert b <= a + 1e-6


def test_spatial_switching_loads_no_weights(work):
    report = latency.switching_report(design(), work)
    assert report["spatial"]["weight_bytes"] == 0
    assert report["baseline"]["weight_bytes"] >= report["smallest"]["weight_bytes"]


def test_fast_path_matches_full_model(work):
    grid = dict(kp=np.array([1, 4, 8])[:, None, None], yp=np.array([2, 7])[None, :, None], tk=32, tc=16, tx=10,
                ty=np.array([3, 9, 12])[None, None, :], pb_elements=30_000)
    plan = wl.pb_plan(work, "most-used")
    full = latency.evaluate_arrays(work, plan, **grid, dw=8, odw=32, bytes_per_cycle=ZU3EG.bytes_per_cycle)
    fast = latency.fast_latency(work, plan, **grid, dw=8, odw=32, bytes_per_cycle=ZU3EG.bytes_per_cycle)
    np.testing.assert_allclose(fast, full.latency, rtol=1e-5)
    for batch in (1, 3):  # single-buffered and batched: the same numbers too
        args = dict(dw=8, odw=32, bytes_per_cycle=ZU3EG.bytes_per_cycle, batch=batch, overlap=False)
        np.testing.assert_allclose(latency.fast_latency(work, plan, **grid, **args),
                                   latency.evaluate_arrays(work, plan, **grid, **args).latency, rtol=1e-5)
    # the grid path and the single-design path are the same numbers
    single = latency.evaluate(design(kp=4, yp=7, ty=9, pb_bytes=30_000), work)
    assert single.latency == pytest.approx(float(full.latency[1, 1, 1]), rel=1e-12)


# -- DSE ---------------------------------------------------------------------------------------------
SMALL_GRID = {"kp": (1, 2, 4, 8), "yp": (1, 2, 4, 8), "tk": (16, 64), "tc": (8, 64), "tx": (6, 10), "ty": (6, 10),
              "pb_bytes": (0, 20_000, 200_000)}


def test_dse_best_pareto_and_phases(work):
    result = dse.explore(work, ZU3EG, SMALL_GRID)
    assert result.points == 4 * 4 * 2 * 2 * 2 * 2 * 3
    best = result.best()
    feasible = result.latency[result.feasible]
    assert result.latency[result.best_index] == feasible.min()
    assert best["kp"] * best["yp"] * 9 <= ZU3EG.dsp
    d = dse.to_design(best, ZU3EG, stride_max=work.stride_max)
    template.check_fits(d, ZU3EG)
    assert latency.evaluate(d, work).latency == pytest.approx(feasible.min(), rel=1e-5)
    assert not result.feasible[(result.params["kp"] == 8) & (result.params["yp"] == 8)].any()
    # skipping array sizes with no feasible design leaves the feasible designs' latencies unchanged
    axes = dse._axes(SMALL_GRID)
    plain = latency.fast_latency(work, wl.pb_plan(work, "most-used"), *(axes[a] for a in dse.AXES[:-1]),
                                 axes["pb_bytes"], 8, 32, ZU3EG.bytes_per_cycle).ravel()
    np.testing.assert_allclose(result.latency[result.feasible], plain[result.feasible], rtol=1e-6)
    pareto = result.pareto()
    lat, mem = result.latency[pareto], result.bram18_eq[pareto]
    assert (np.diff(mem) > 0).all() and (np.diff(lat) < 0).all()
    feas = np.flatnonzero(result.feasible)
    for i in pareto:  # no feasible design is at least as good in both and better in one
        better = (result.latency[feas] <= result.latency[i]) & (result.bram18_eq[feas] <= result.bram18_eq[i]) & (
            (result.latency[feas] < result.latency[i]) | (result.bram18_eq[feas] < result.bram18_eq[i]))
        assert not better.any()
    phase1, phase2 = dse.two_phase(work, ZU3EG, SMALL_GRID)
    assert phase2.latency.min() >= result.latency.min() - 1e-6  # the joint grid contains phase 2's


def test_dse_rejects_bad_grid(work):
    with pytest.raises(SkipswitchError, match="kp"):
        dse.explore(work, ZU3EG, {**SMALL_GRID, "kp": (0, 2)})


# -- CLI ---------------------------------------------------------------------------------------------
def test_cli_evaluate_and_dse_on_standin(work, tmp_path, monkeypatch):
    from typer.testing import CliRunner

    from skipswitch.cli import app

    monkeypatch.setitem(wl.WORKLOADS, "standin", lambda sequence, seed: work)
    from skipswitch.accel import study

    monkeypatch.setattr(dse, "default_grid", lambda w, dw=8: SMALL_GRID)
    monkeypatch.setattr(study, "default_grid", lambda w, dw=8: SMALL_GRID)
    runner = CliRunner()
    r = runner.invoke(app, ["accel", "evaluate", "--workload", "standin", "--part", "zu3eg", "--kp", "4", "--yp", "4",
                            "--tk", "32", "--tc", "16", "--tx", "10", "--ty", "10", "--pb-bytes", "20000",
                            "--out", str(tmp_path)])
    assert r.exit_code == 0, r.output
    report = json.loads((tmp_path / "evaluate.json").read_text())["parts"]["zu3eg"]
    assert report["most-used"]["latency"] <= report["baseline"]["latency"]
    assert (tmp_path / "breakdown.png").stat().st_size > 1000
    assert list((tmp_path / "workloads").glob("standin-*.json"))  # the workload cache lives under --out
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    monkeypatch.chdir(cwd)
    r = runner.invoke(app, ["accel", "dse", "--workload", "standin", "--part", "zu3eg", "--out", str(tmp_path / "d")])
    assert r.exit_code == 0, r.output
    assert json.loads((tmp_path / "d" / "dse.json").read_text())["points"] == 4 * 4 * 2 * 2 * 2 * 2 * 3
    assert (tmp_path / "d" / "dse.png").exists()
    assert list((tmp_path / "d" / "workloads").glob("standin-*.json")) and not list(cwd.iterdir())  # not ./runs
    r = runner.invoke(app, ["accel", "evaluate", "--workload", "standin", "--trace", "0,x"])
    assert isinstance(r.exception, SkipswitchError) and "trace='0,x'" in str(r.exception)


def test_cli_bad_part_is_one_line_error(monkeypatch, capsys):
    from skipswitch.cli import main

    monkeypatch.setattr(sys, "argv", ["skipswitch", "accel", "dse", "--part", "virtex2"])
    with pytest.raises(SystemExit) as exc:
        main()
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert err.strip().startswith("error: unknown FPGA part 'virtex2'") and "Traceback" not in err


def test_workload_json_round_trip(work, tmp_path):
    path = tmp_path / "w.json"
    wl.save_workload(work, path)
    back = wl.get_workload(str(path))
    assert back.subnets == work.subnets and back.trace == work.trace
    d = design(pb_bytes=12_345)
    assert latency.evaluate(d, back).latency == latency.evaluate(d, work).latency
    data = json.loads(path.read_text())
    assert data["subnets"][0]["layers"][0]["param"] == work.subnets[0].layers[0].param  # named fields, not rows
    for field, value, found in (("kind", "skipswitch.pareto", "kind 'skipswitch.pareto' version 1"),
                                ("version", 2, "kind 'skipswitch.workload' version 2")):
        path.write_text(json.dumps({**data, field: value}))
        with pytest.raises(SkipswitchError) as err:
            wl.load_workload(path)
        assert str(err.value) == f"{path} is {found}; expected kind 'skipswitch.workload' version 1"
    path.write_text(json.dumps({**data, "trace": [0, 99]}))
    with pytest.raises(SkipswitchError, match=r"trace index 99 out of range 0\.\.\d+$"):
        wl.load_workload(path)


def test_spread_configs_spans_smallest_to_largest():
    class Space:
        depth_choices = ((1, 2), (1, 2), (1, 2))
        expand_choices = (1.0,)
        width_choices = (8, 12, 16)

        def config(self, depths, expands, widths):
            return (tuple(depths), (int(widths[0]), 2 * int(widths[1]), 4 * int(widths[2])))

        def smallest(self):
            return self.config([1, 1, 1], None, [8, 8, 8])

        def largest(self):
            return self.config([2, 2, 2], None, [16, 16, 16])

    sn = StandinSupernet()
    sn.space = Space()
    configs = wl.spread_configs(sn, 5, candidates=40)
    sizes = [sum(wl.box_volume(b) for b in sn.weight_regions(c).values()) for c in configs]
    assert configs[0] == sn.space.smallest() and configs[-1] == sn.space.largest()
    assert len(set(configs)) == 5
    targets = np.linspace(sizes[0], sizes[-1], 5)
    assert np.all(np.abs(np.array(sizes) - targets) <= 0.25 * (sizes[-1] - sizes[0]))


def test_query_trace_steers_most_used_policy(work):
    skewed = work.with_trace([2, 2, 2, 0])
    counts = sorted({count for *_, count in skewed.cells()}, reverse=True)
    assert counts[:2] == [4.0, 3.0]  # shared by every query, then read by the three largest-subnet queries
    d = design(tc=1024, tk=1024, tx=64, ty=64, pb_bytes=work.subnets[0].weight_elements + 20_000)
    small = latency.evaluate(d, skewed, "smallest").weight_bytes
    used = latency.evaluate(d, skewed, "most-used").weight_bytes
    assert small - used == pytest.approx(3 * 20_000)  # the extra 20 kB serve three queries each


def test_single_buffering_is_never_faster(work):
    d = design(pb_bytes=10_000)
    double = latency.evaluate(d, work)
    single = latency.evaluate(d.replace(double_buffer=False), work)
    assert single.latency >= double.latency
    assert single.latency == pytest.approx(single.compute + single.weight_exposed + single.act_exposed)
    res_single = template.design_resources(d.replace(double_buffer=False), ZU3EG)
    assert res_single["bram18"] < template.design_resources(d, ZU3EG)["bram18"]  # DB and SB no longer doubled


def test_real_supernet_contract():
    """A real elastic supernet (skipswitch.supernet) through the graph IR."""
    from skipswitch.supernet import supernet_for

    sn = supernet_for("resnet-cifar")
    configs = wl.spread_configs(sn, 3, candidates=12)
    work = wl.workload_from_supernet(sn, configs, name="cifar")
    sizes = [s.weight_elements for s in work.subnets]
    assert sizes[0] < sizes[1] < sizes[2]
    for sub, config in zip(work.subnets, configs):
        regions = sn.weight_regions(config)
        assert sub.weight_elements == sum(wl.box_volume(regions[l.param]) for l in sub.layers)
    # nested prefix slices: everything the smallest subnet reads is shared with every other
    assert work.shared_elements(0, 2) == sizes[0]
    assert latency.evaluate(design(pb_bytes=sizes[0]), work, "smallest").weight_bytes < \
        latency.evaluate(design(), work).weight_bytes
