"""Flower's deployment engine: a SuperLink and two SuperNodes on loopback, ``flwr run`` of our
ServerApp/ClientApp (the path of docs/federated.md), 2 rounds, and the result checked
against the same rounds recomputed in this process."""

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytest.importorskip("flwr")

import skipswitch  # noqa: E402

SRC = Path(skipswitch.__file__).resolve().parents[1]
FLWR_BIN = Path(sys.executable).parent  # the flower-* entry points of this interpreter's flwr
SPACE_ARGS = {"base_width": 8, "max_depth": 2}
APP_TOML = """\
[build-system]
requires = ["hatchling"]
build-backend = "hatchling.build"

[project]
name = "skipswitch-fed"
version = "0.1.0"
description = "skipswitch federated supernet training"
license = "MIT"
dependencies = ["skipswitch[fed]"]

[tool.hatch.build.targets.wheel]
packages = ["."]

[tool.flwr.app]
publisher = "skipswitch"

[tool.flwr.app.components]
serverapp = "skipswitch.federated.apps:server_app"
clientapp = "skipswitch.federated.apps:client_app"

[tool.flwr.app.config]
clients = 2
rounds = 2
dataset = "digits"
partition = "iid"
space-args = '{space_args}'
batch-size = 64
eval-every = 1
client-subnets = "sampled"
server-optimizer = "fedavgm"
round-timeout-s = 240.0
run-dir = "{run_dir}"
"""


def _free_ports(n: int) -> list[int]:
    sockets = [socket.socket() for _ in range(n)]
    try:
        for s in sockets:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


def _wait_for_port(port: int, process: subprocess.Popen, log: Path, timeout: float = 60.0) -> None:
    end = time.time() + timeout
    while time.time() < end:
        if process.poll() is not None:
            raise AssertionError(f"{process.args[0]} exited with {process.returncode}: {log.read_text()[-2000:]}")
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.5)
    raise AssertionError(f"nothing listens on port {port} after {timeout:g} s: {log.read_text()[-2000:]}")


@pytest.fixture
def flower_processes(tmp_path):
    """Start processes in their own sessions; on every exit path terminate each whole process
    group (the SuperLink and SuperNodes spawn SuperExec and app processes), then kill it."""
    started: list[subprocess.Popen] = []
    env = {**os.environ, "FLWR_HOME": str(tmp_path / "flwr-home"), "OMP_NUM_THREADS": "1",
           "PYTHONPATH": os.pathsep.join([str(SRC), os.environ.get("PYTHONPATH", "")]).rstrip(os.pathsep)}

    def start(name: str, *args: str) -> tuple[subprocess.Popen, Path]:
        log = tmp_path / f"{name}.log"
        with open(log, "wb") as out:
            process = subprocess.Popen([str(FLWR_BIN / args[0]), *args[1:]], stdout=out, stderr=subprocess.STDOUT,
                                       env=env, cwd=tmp_path, start_new_session=True)
        started.append(process)
        return process, log

    start.env = env
    try:
        yield start
    finally:
        for process in started:
            try:
                os.killpg(process.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
        deadline = time.time() + 10
        for process in started:
            try:
                process.wait(timeout=max(0.1, deadline - time.time()))
            except subprocess.TimeoutExpired:
                pass
            try:
                os.killpg(process.pid, signal.SIGKILL)  # the group's stragglers, if any
            except ProcessLookupError:
                pass
            process.wait()


@pytest.mark.slow
def test_superlink_two_supernodes_and_flwr_run(tmp_path, flower_processes):
    import torch

    from skipswitch.federated.aggregate import SliceUpdate, aggregate_slices, slice_state
    from skipswitch.federated.client import local_train
    from skipswitch.federated.config import fed_config
    from skipswitch.federated.simulate import build_strategy
    from skipswitch.supernet import load_supernet, weight_regions

    serverappio, fleet, control, *clientappio = _free_ports(5)
    link, link_log = flower_processes(
        "superlink", "flower-superlink", "--insecure", "--disable-runtime-dependency-installation",
        "--serverappio-api-address", f"127.0.0.1:{serverappio}", "--fleet-api-address", f"127.0.0.1:{fleet}",
        "--control-api-address", f"127.0.0.1:{control}")
    _wait_for_port(control, link, link_log)
    _wait_for_port(fleet, link, link_log)
    for i, port in enumerate(clientappio):
        flower_processes(f"supernode{i}", "flower-supernode", "--insecure", "--superlink", f"127.0.0.1:{fleet}",
                         "--clientappio-api-address", f"127.0.0.1:{port}",
                         "--node-config", f"partition-id={i} num-partitions=2")

    home = tmp_path / "flwr-home"
    home.mkdir(exist_ok=True)  # the SuperLink may have created it
    (home / "config.toml").write_text(f'[superlink.lab]\naddress = "127.0.0.1:{control}"\ninsecure = true\n')
    app, run_dir = tmp_path / "app", tmp_path / "run"
    app.mkdir()
    (app / "pyproject.toml").write_text(APP_TOML.format(space_args=json.dumps(SPACE_ARGS), run_dir=run_dir))
    submitted = subprocess.run([str(FLWR_BIN / "flwr"), "run", ".", "lab"], cwd=app, env=flower_processes.env,
                               capture_output=True, text=True, timeout=180)
    assert submitted.returncode == 0 and "Successfully started run" in submitted.stdout, \
        submitted.stdout + submitted.stderr

    results_path = run_dir / "results.json"
    deadline = time.time() + 480
    while time.time() < deadline:
        if results_path.exists() and json.loads(results_path.read_text())["rounds_completed"] == 2:
            break
        assert link.poll() is None, (tmp_path / "superlink.log").read_text()[-2000:]
        time.sleep(1)
    else:
        pytest.fail("the run did not finish 2 rounds in time; SuperLink log: "
                    + (tmp_path / "superlink.log").read_text()[-2000:])
    results = json.loads(results_path.read_text())
    assert results["rounds_aggregated"] == 2
    for record in results["history"]:
        assert record["attempts"][-1]["survivors"] == [0, 1] and "largest_val_acc" in record
    assert results["config"]["server_optimizer"] == "fedavgm" and results["config"]["client_subnets"] == "sampled"

    # The same two rounds in this process: each SuperNode trained its partition's subnet
    # from the round's supernet, and the server applied FedAvgM to their aggregate. One torch thread, as
    # the SuperNodes have (OMP_NUM_THREADS=1): with two, one local epoch of the sampled client already
    # ends 3e-4 away in loss (another order of float sums, amplified by SGD), so the check depended on
    # whether an earlier test in this worker had set one thread.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    config = fed_config(clients=2, rounds=2, dataset="digits", partition="iid", space_args=SPACE_ARGS, batch_size=64,
                        eval_every=1, client_subnets="sampled", server_optimizer="fedavgm", round_timeout_s=240.0)
    strategy = build_strategy(config, tmp_path / "local")
    state = strategy.supernet.state_dict()
    params = {name for name, _ in strategy.supernet.named_parameters()}
    for server_round in (1, 2):
        updates = []
        for p in (0, 1):
            regions = weight_regions(strategy.space, strategy.subnets[p], strategy.skip_mode)
            task = strategy.client_task(server_round, strategy.subnets[p], "none", 0.0)
            tensors, metrics = local_train(slice_state(state, regions), task, p)
            updates.append(SliceUpdate(tensors, regions, metrics["num-examples"]))
        aggregate, holders = aggregate_slices(state, updates, weighting=config.weighting)
        state = strategy.server_optimizer.step(state, aggregate, holders, params)
    torch.set_num_threads(threads)
    deployed = load_supernet(run_dir / "supernet.safetensors")[0].state_dict()
    for name, value in state.items():
        if value.is_floating_point():
            # other processes, other torch thread counts: float sums may round differently
            assert torch.allclose(deployed[name], value, atol=1e-4), name
