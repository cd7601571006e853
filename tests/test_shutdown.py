"""Clean shutdown: SIGTERM (as Ctrl-C) stops a federated run at a round boundary within seconds,
says where it stopped and how to resume, leaves its last round checkpointed and no temporaries,
and ``--resume`` continues from there. (Serve's drain: tests/test_serve_hardening.py.)"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

SRC = str(Path(__file__).parents[1] / "src")


def _wait_for(path: Path, text: str, proc, timeout: float = 300) -> None:
    deadline = time.monotonic() + timeout
    while text not in (path.read_text() if path.exists() else ""):
        assert proc.poll() is None, path.read_text()
        assert time.monotonic() < deadline, f"no {text!r} within {timeout} s"
        time.sleep(0.2)


@pytest.mark.parametrize("engine", ["local", pytest.param("flower", marks=pytest.mark.slow)])
def test_sigterm_stops_fed_run_at_a_round_and_resume_continues(tmp_path, engine):
    out = tmp_path / "run"
    argv = [sys.executable, "-m", "skipswitch.cli", "fed", "run", "--engine", engine, "--rounds", "30",
            "--clients", "2", "--out", str(out)]
    env = {**os.environ, "PYTHONPATH": SRC}
    log = tmp_path / "log.txt"
    with open(log, "w") as f:
        proc = subprocess.Popen(argv, stdout=f, stderr=subprocess.STDOUT, env=env, start_new_session=True)
        try:
            _wait_for(log, "round   1:", proc)
            sent = time.monotonic()
            proc.send_signal(signal.SIGTERM)
            proc.wait(30)
            stop_s = time.monotonic() - sent
        finally:
            proc.kill()
    text = log.read_text()
    assert proc.returncode == 130, text
    assert "Traceback" not in text and "rerun with --resume" in text and "after round" in text
    assert stop_s < 20, stop_s
    rounds = json.loads((out / "results.json").read_text())["rounds_completed"]
    assert 1 <= rounds < 30 and not list(out.glob(".*.tmp"))
    # no process of the run's group is left (Ray's workers included; they take a few seconds to exit)
    deadline = time.monotonic() + 20
    while (left := subprocess.run(["pgrep", "-g", str(proc.pid)], capture_output=True, text=True).stdout.split()) \
            and time.monotonic() < deadline:
        time.sleep(0.5)
    assert not left, left
    done = subprocess.run([*argv[:-4], "--rounds", str(rounds + 1), "--clients", "2", "--out", str(out), "--resume",
                           "-q"], capture_output=True, text=True, env=env, timeout=600)
    assert done.returncode == 0, done.stderr
    history = json.loads((out / "results.json").read_text())["history"]
    assert [r["round"] for r in history] == list(range(1, rounds + 2))
