"""Scale-out: two Ray Serve replicas of the engine behind one loopback route."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from skipswitch.serve.server import free_loopback_port
from skipswitch.supernet.io import save_supernet
from test_serve import ATOL, _fixture_supernet, _write_pareto


@pytest.mark.slow
def test_two_ray_serve_replicas_answer_and_switch_in_place(tmp_path):
    serve = pytest.importorskip("ray.serve")
    import httpx
    import ray

    from skipswitch.serve.replicas import replicated_app

    supernet, configs = _fixture_supernet()
    ckpt = tmp_path / "supernet.safetensors"
    save_supernet(ckpt, supernet, {"dataset": {"name": "digits", "seed": 0}})
    pareto = _write_pareto(tmp_path / "pareto.json", supernet, configs, [0.6, 0.7, 0.8])
    port = free_loopback_port()
    # address="local": a fresh Ray instance, never one another process on this machine started
    ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False)
    try:
        serve.start(http_options={"host": "127.0.0.1", "port": port})
        serve.run(replicated_app(ckpt, pareto, replicas=2, engine_options={"batch_sizes": (1, 4), "profile_repeats": 1}),
                  route_prefix="/")
        x = np.random.default_rng(0).standard_normal((1, 1, 8, 8)).astype(np.float32)
        expected = {f"s{i}": supernet.extract(c).eval()(torch.from_numpy(x)) for i, c in enumerate(configs)}
        replicas, switches = set(), {}
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=120) as client:
            for i in range(30):
                r = client.post("/v1/predict", json={"inputs": x.tolist(), "subnet": f"s{i % 3}"})
                assert r.status_code == 200, r.text
                body = r.json()
                assert body["subnet"] == f"s{i % 3}"
                assert torch.allclose(torch.tensor(body["outputs"]), expected[body["subnet"]], atol=ATOL, rtol=0)
                replicas.add(body["replica"])
                switches[body["replica"]] = body["switches"]
            bad = client.post("/v1/predict", json={"inputs": [[1.0]]})
            assert bad.status_code == 422 and "does not match the served input" in bad.json()["error"]
        assert len(replicas) == 2  # one route, both replicas answered
        assert all(n >= 2 for n in switches.values())  # each switched between subnets in place on its own
    finally:
        serve.shutdown()
        ray.shutdown()
