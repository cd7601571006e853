"""Scale-out: two Ray Serve replicas of the engine behind one loopback route."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest
import torch

from skipswitch.serve import loadgen
from skipswitch.serve.server import free_loopback_port
from skipswitch.supernet.io import save_supernet
from test_serve import ATOL, _fixture_supernet, _write_pareto


@pytest.mark.slow
def test_two_ray_serve_replicas_answer_the_load_generator_and_switch_in_place(tmp_path, monkeypatch):
    serve = pytest.importorskip("ray.serve")
    import httpx
    import ray

    from skipswitch.serve.replicas import replicated_app

    supernet, configs = _fixture_supernet()
    ckpt = tmp_path / "supernet.safetensors"
    save_supernet(ckpt, supernet, {"dataset": {"name": "digits", "seed": 0}})
    pareto = _write_pareto(tmp_path / "pareto.json", supernet, configs, [0.6, 0.7, 0.8])
    inputs = np.random.default_rng(0).standard_normal((8, 1, 8, 8)).astype(np.float32)
    with torch.no_grad():
        outputs = {f"s{i}": supernet.extract(c).eval()(torch.from_numpy(inputs)) for i, c in enumerate(configs)}
    # The load generator keeps only some answer fields and reports totals; keep which replica
    # answered (and its switch count) and every request's record, to check them per replica.
    monkeypatch.setattr(loadgen, "REPORTED", loadgen.REPORTED + ("replica", "switches"))
    records: list[dict] = []
    build_report = loadgen.build_report

    def keep_records(recs, *args, **kwargs):
        records.extend(recs)
        return build_report(recs, *args, **kwargs)

    monkeypatch.setattr(loadgen, "build_report", keep_records)
    port = free_loopback_port()
    url = f"http://127.0.0.1:{port}"
    # address="local": a fresh Ray instance, never one another process on this machine started
    ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False)
    try:
        serve.start(http_options={"host": "127.0.0.1", "port": port})
        serve.run(replicated_app(ckpt, pareto, replicas=2, engine_options={"batch_sizes": (1, 4), "profile_repeats": 1}),
                  route_prefix="/")

        # One open-loop trace per subnet, sent at once, so requests naming s0, s1 and s2 interleave
        # and each replica switches between them. Labels: the extracted subnet's prediction of each
        # input, so the generator's measured accuracy is 1 only if every answer matches it.
        async def traces():
            return await asyncio.gather(*(
                loadgen.run_load(url, loadgen.make_trace("poisson", 30.0, 0.5, seed=k), inputs,
                                 outputs[f"s{k}"].argmax(1).numpy(), deadline_ms=None,
                                 options={"subnet": f"s{k}"}, trace_name=f"s{k}")
                for k in range(3)))

        reports = asyncio.run(traces())
        for k, report in enumerate(reports):
            assert report.sent > 0 and report.errors == 0, report.summary()
            assert report.ok + report.shed + report.rejected == report.sent
            assert report.subnets == {f"s{k}": report.ok} and report.measured_accuracy == 1.0, report.summary()
        assert len(records) == sum(r.sent for r in reports)
        switches: dict[str, int] = {}
        for r in records:
            if r["status"] == 200:
                switches[r["body"]["replica"]] = max(switches.get(r["body"]["replica"], 0), r["body"]["switches"])
        assert len(switches) == 2  # one route, both replicas answered
        assert all(n >= 2 for n in switches.values())  # each switched between subnets in place on its own

        # `skipswitch loadgen` first reads /v1/subnets (load_inputs) for the served input shape.
        served, _ = loadgen.load_inputs(url, "digits")
        assert served.shape[1:] == inputs.shape[1:]

        with httpx.Client(base_url=url, timeout=120) as client:
            # The outputs themselves (the generator keeps only the predictions), and a malformed input.
            r = client.post("/v1/predict", json={"inputs": inputs[:1].tolist(), "subnet": "s1"})
            assert r.status_code == 200, r.text
            assert torch.allclose(torch.tensor(r.json()["outputs"]), outputs["s1"][:1], atol=ATOL, rtol=0)
            bad = client.post("/v1/predict", json={"inputs": [[1.0]]})
            assert bad.status_code == 422 and "does not match the served input" in bad.json()["error"]
    finally:
        serve.shutdown()
        ray.shutdown()
