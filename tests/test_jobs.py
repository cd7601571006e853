"""Job result files: written and read through their models, kind and version checked on load."""

import json

import pytest

from skipswitch.errors import SkipswitchError
from skipswitch.jobs.accel import EvaluateResult
from skipswitch.jobs.serve import LoadgenResult, ServeResult

LOADGEN = dict(trace="poisson", sent=3, slo_attainment=0.5, served_accuracy=None, p50_ms=1.0, p99_ms=2.0,
               throughput=3.0, ok=3)


def test_result_round_trips_through_its_file_with_kind_and_version(tmp_path):
    path = LoadgenResult(**LOADGEN).save(tmp_path / "r.json")
    data = json.loads(path.read_text())
    assert (data["kind"], data["version"]) == ("loadgen", 1) and data["ok"] == 3
    assert LoadgenResult.load(path) == LoadgenResult(**LOADGEN)


def test_alias_fields_keep_their_file_names(tmp_path):
    part = dict(design_short="d", baseline={"latency": 2}, smallest={"latency": 1}, gain_smallest=0.5,
                gain_most_used=0.5, gain_trace_optimal=0.5, spatial_fits=True,
                **{"most-used": {"latency": 1}, "trace-optimal": {"latency": 1}})
    path = EvaluateResult(workload="w", conditions={"dw": 8}, parts={"zu3eg": part}).save(tmp_path / "evaluate.json")
    saved = json.loads(path.read_text())["parts"]["zu3eg"]
    assert saved["most-used"] == saved["trace-optimal"] == {"latency": 1}
    loaded = EvaluateResult.load(path).parts["zu3eg"]
    assert loaded.most_used == loaded.trace_optimal == {"latency": 1}


@pytest.mark.parametrize("change,found", [({"kind": "serve"}, "kind 'serve' version 1"),
                                          ({"version": 7}, "kind 'loadgen' version 7"),
                                          ({"kind": None}, "kind None version 1")])
def test_a_file_of_another_kind_or_version_is_one_line(tmp_path, change, found):
    path = tmp_path / "r.json"
    path.write_text(json.dumps({**json.loads(LoadgenResult(**LOADGEN).to_json()), **change}))
    with pytest.raises(SkipswitchError) as exc:
        LoadgenResult.load(path)
    message = str(exc.value)
    assert message == f"{path} is {found}; expected kind 'loadgen' version 1"
    assert "\n" not in message


def test_missing_fields_and_bad_json_are_one_line(tmp_path):
    path = ServeResult(subnets=2, switches=0).save(tmp_path / "s.json")
    data = json.loads(path.read_text())
    del data["switches"]
    path.write_text(json.dumps(data))
    with pytest.raises(SkipswitchError, match=r"s.json: switches is missing"):
        ServeResult.load(path)
    path.write_text("{")
    with pytest.raises(SkipswitchError, match="cannot read"):
        ServeResult.load(path)
