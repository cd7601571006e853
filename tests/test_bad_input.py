"""Bad input, tried as a hostile but fair user would: every case is one ``error:`` line, a
non-zero exit, no traceback, and no file created, changed or removed in the working directory.

The cases run through the real entry point (``skipswitch.cli:main``) in-process, with the
working directory set to a watched folder holding the files they point at.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import run_cli

BIG = str(10**20)
LATIN1 = "café €".encode("latin-1", errors="replace") + b"\xff\xfe\x80"


@pytest.fixture(scope="module")
def watched(tmp_path_factory):
    """A working directory with a digits checkpoint, non-UTF-8 files, a regular file, a train run,
    a federated run and an empty folder."""
    from skipswitch.checkpoint import save_model
    from skipswitch.data import load_dataset
    from skipswitch.models import create_model

    root = tmp_path_factory.mktemp("watched")
    digits = load_dataset("digits", seed=0)
    save_model(root / "digits.safetensors", create_model("resnet8", num_classes=10, in_channels=1, input_size=8),
               {"dataset": digits.to_dict()})
    for name in ("latin1.json", "latin1.txt", "latin1.toml"):
        (root / name).write_bytes(b'{"a": "' + LATIN1 + b'"}')
    (root / "afile").write_text("a regular file\n")
    (root / "trainrun").mkdir()
    (root / "trainrun" / "results.json").write_text(json.dumps({"kind": "train", "version": 1}))
    (root / "fedrun").mkdir()
    (root / "fedrun" / "results.json").write_text(json.dumps({"rounds_completed": 1, "history": []}))
    (root / "empty").mkdir()
    return root


def snapshot(root: Path) -> dict[str, tuple]:
    return {str(p.relative_to(root)): (p.is_dir(), p.stat().st_size if p.is_file() else 0, p.stat().st_mtime_ns)
            for p in sorted(root.rglob("*"))}


CKPT = "digits.safetensors"
NOFILE = "missing.safetensors"
UNWRITABLE = "afile/sub"  # under a regular file

# (argv, a fragment of the one error line)
CASES = [
    # -- usage errors (click) ----------------------------------------------------------------
    (["nosuchcmd"], "No such command"),
    (["hw", "nosuch"], "No such command"),
    (["train", "--bogus"], "No such option"),
    (["train", "--epochs", "abc"], "not a valid integer"),
    (["train", "extra-argument"], "unexpected extra argument"),
    (["fed", "run", "--rounds"], "requires an argument"),
    (["eval"], "Missing argument"),
    (["tailor", "--method", "remove"], "Missing option"),
    (["hw", "hls4ml", CKPT], "Missing option"),
    (["serve"], "Missing argument"),
    (["loadgen", "--rate", "fast"], "not a valid float"),
    # -- train ---------------------------------------------------------------------------------
    (["train", "--seed", "-5"], "invalid seed=-5"),
    (["train", "--seed", str(2**32)], "invalid seed="),
    (["train", "--epochs", BIG], "invalid epochs="),
    (["train", "--epochs", "0"], "invalid epochs=0"),
    (["train", "--epochs", "-1"], "invalid epochs=-1"),
    (["train", "--batch-size", "0"], "invalid batch_size=0"),
    (["train", "--lr", "0"], "invalid lr=0"),
    (["train", "--lr", "nan"], "invalid lr=nan"),
    (["train", "--lr", "inf"], "invalid lr=inf"),
    (["train", "--momentum", "1"], "invalid momentum=1"),
    (["train", "--weight-decay", "-1"], "invalid weight_decay=-1"),
    (["train", "--schedule", "linear"], "invalid schedule='linear'"),
    (["train", "--gamma", "2"], "invalid gamma=2"),
    (["train", "--step-size", "0"], "invalid step_size=0"),
    (["train", "--out", UNWRITABLE], "is not a directory"),
    (["train", "--out", "afile"], "is not a directory"),
    (["train", "--out", "fedrun"], "holds a 'fed-run' run"),
    (["train", "--model", "resnet7", "--out", "empty/x"], "unknown model 'resnet7'"),
    (["train", "--dataset", "imagenet2", "--out", "empty/x"], "unknown dataset 'imagenet2'"),
    (["train", "--skip-mode", "half", "--out", "empty/x"], "unknown skip mode 'half'"),
    (["train", "--dataset", "cifar10", "--data-dir", "/no/such/dir", "--out", "empty/x"], "not found"),
    # -- tailor --------------------------------------------------------------------------------
    (["tailor", "--teacher", NOFILE, "--method", "remove", "--out", "empty/x"], "not found"),
    (["tailor", "--teacher", "latin1.json", "--method", "remove", "--out", "empty/x"], "corrupted"),
    (["tailor", "--teacher", CKPT, "--method", "remove", "--alpha", "2"], "invalid alpha=2"),
    (["tailor", "--teacher", CKPT, "--method", "remove", "--temperature", "0"], "invalid temperature=0"),
    (["tailor", "--teacher", CKPT, "--method", "remove", "--every", "0"], "invalid every=0"),
    (["tailor", "--teacher", CKPT, "--method", "remove", "--out", UNWRITABLE], "is not a directory"),
    (["tailor", "--teacher", CKPT, "--method", "remove", "--out", "trainrun"], "holds a 'train' run"),
    (["tailor", "--teacher", CKPT, "--method", "remove", "--seed", "-1"], "invalid seed=-1"),
    (["tailor", "--teacher", CKPT, "--method", "remove", "--epochs", BIG], "invalid epochs="),
    # -- eval ----------------------------------------------------------------------------------
    (["eval", NOFILE], "not found"),
    (["eval", "latin1.json"], "corrupted or not a safetensors file"),
    (["eval", "afile"], "corrupted or not a safetensors file"),
    (["eval", CKPT, "--dataset", "mnist5k"], "was trained on digits (8×8×1, 10 classes); data set is mnist5k (28×28×1"),
    (["eval", CKPT, "--seed", "-1"], "invalid seed=-1"),
    (["eval", CKPT, "--dataset", "nope"], "unknown dataset 'nope'"),
    # -- demo ----------------------------------------------------------------------------------
    (["demo", "--out", UNWRITABLE], "is not a directory"),
    (["demo", "--epochs", "0"], "invalid epochs=0"),
    (["demo", "--epochs", BIG], "invalid epochs="),
    (["demo", "--model", "resnet7", "--out", "empty/x"], "unknown model 'resnet7'"),
    # -- hw estimate / hls4ml -------------------------------------------------------------------
    (["hw", "estimate", "--input-size", "100000"], "invalid input_size=100000"),
    (["hw", "estimate", "--input-size", "0"], "invalid input_size=0"),
    (["hw", "estimate", "--precision", "0"], "invalid precision=0"),
    (["hw", "estimate", "--precision", "1000"], "invalid precision=1000"),
    (["hw", "estimate", "--num-classes", "0"], "invalid num_classes=0"),
    (["hw", "estimate", "--in-channels", "0"], "invalid in_channels=0"),
    (["hw", "estimate", "--reuse-factor", "0"], "invalid reuse_factor=0"),
    (["hw", "estimate", "--out", UNWRITABLE], "is not a directory"),
    (["hw", "estimate", "--part", "nosuch"], "nosuch"),
    (["hw", "estimate", "--model", "resnet7"], "unknown model 'resnet7'"),
    (["hw", "estimate", "--checkpoint", NOFILE], "not found"),
    (["hw", "estimate", "--checkpoint", "latin1.json"], "corrupted"),
    (["hw", "hls4ml", CKPT, "--out", UNWRITABLE], "is not a directory"),
    (["hw", "hls4ml", CKPT, "--out", "empty/x", "--images", "0"], "invalid images=0"),
    (["hw", "hls4ml", CKPT, "--out", "empty/x", "--precision", "0"], "invalid precision=0"),
    (["hw", "hls4ml", CKPT, "--out", "empty/x", "--integer-bits", "0"], "invalid integer_bits=0"),
    (["hw", "hls4ml", CKPT, "--out", "empty/x", "--reuse-factor", "0"], "invalid reuse_factor=0"),
    (["hw", "hls4ml", NOFILE, "--out", "empty/x"], "not found"),
    # -- supernet ------------------------------------------------------------------------------
    (["supernet", "train", "--max-depth", "-1"], "invalid max_depth=-1"),
    (["supernet", "train", "--max-depth", "0"], "invalid max_depth=0"),
    (["supernet", "train", "--base-width", "0"], "invalid base_width=0"),
    (["supernet", "train", "--base-width", "3"], "invalid base_width=3"),
    (["supernet", "train", "--epochs", "0"], "invalid epochs=0"),
    (["supernet", "train", "--epochs", BIG], "invalid epochs="),
    (["supernet", "train", "--n-random", "-1"], "invalid n_random=-1"),
    (["supernet", "train", "--seed", "-1"], "invalid seed=-1"),
    (["supernet", "train", "--lr", "-1"], "invalid lr=-1"),
    (["supernet", "train", "--strategy", "ofa", "--lr-per-subnet"], "--lr-per-subnet is for the averaged"),
    (["supernet", "train", "--batch-size", "0"], "invalid batch_size=0"),
    (["supernet", "train", "--out", UNWRITABLE], "is not a directory"),
    (["supernet", "train", "--out", "trainrun"], "holds a 'train' run"),
    (["supernet", "search", NOFILE], "not found"),
    (["supernet", "search", CKPT, "--population", "1"], "invalid population=1"),
    (["supernet", "search", CKPT, "--generations", "0"], "invalid generations=0"),
    (["supernet", "search", CKPT, "--out", UNWRITABLE], "is not a directory"),
    (["supernet", "search", CKPT, "--seed", "-1"], "invalid seed=-1"),
    (["supernet", "search", CKPT, "--cost", "nosuch", "--out", "empty/x"], "nosuch"),
    (["supernet", "info", NOFILE], "not found"),
    (["supernet", "info", "latin1.json"], "corrupted"),
    # -- accel ---------------------------------------------------------------------------------
    (["accel", "dse", "--sequence", "100000000"], "invalid sequence=100000000"),
    (["accel", "dse", "--sequence", "0"], "invalid sequence=0"),
    (["accel", "dse", "--workload", "latin1.json"], "is not UTF-8 text"),
    (["accel", "dse", "--workload", "nosuch", "--out", "empty/x"], "unknown workload 'nosuch'"),
    (["accel", "dse", "--workload", "missing.json", "--out", "empty/x"], "not found"),
    (["accel", "dse", "--out", UNWRITABLE], "is not a directory"),
    (["accel", "dse", "--seed", "-1"], "invalid seed=-1"),
    (["accel", "dse", "--policy", "nosuch", "--out", "empty/x"], "invalid --policy 'nosuch'"),
    (["accel", "evaluate", "--kp", "0"], "invalid kp=0"),
    (["accel", "evaluate", "--pb-bytes", "-1"], "invalid pb_bytes=-1"),
    (["accel", "evaluate", "--trace", "0,x,3"], "invalid trace='0,x,3'"),
    (["accel", "evaluate", "--out", UNWRITABLE], "is not a directory"),
    (["accel", "evaluate", "--workload", "latin1.json"], "is not UTF-8 text"),
    # -- fed run -------------------------------------------------------------------------------
    (["fed", "run", "--profiles", "latin1.toml"], "is not UTF-8 text"),
    (["fed", "run", "--resume", "--out", "empty"], "nothing to resume"),
    (["fed", "run", "--out", "trainrun"], "holds a 'train' run"),
    (["fed", "run", "--out", UNWRITABLE], "is not a directory"),
    (["fed", "run", "--rounds", "0"], "invalid rounds=0"),
    (["fed", "run", "--rounds", BIG], "invalid rounds="),
    (["fed", "run", "--clients", "0"], "invalid clients=0"),
    (["fed", "run", "--fraction", "2"], "invalid fraction=2"),
    (["fed", "run", "--partition", "bogus"], "invalid partition='bogus'"),
    (["fed", "run", "--seed", "-1"], "invalid seed=-1"),
    (["fed", "run", "--lr", "nan"], "invalid lr=nan"),
    (["fed", "run", "--config", "missing.json"], "not found"),
    (["fed", "run", "--config", "latin1.json"], "is not UTF-8 text"),
    (["fed", "run", "--fail-fraction", "0.8", "--timeout-fraction", "0.5"], "> 1"),
    (["fed", "run", "--min-clients", "20", "--clients", "10"], "exceeds clients=10"),
    (["fed", "run", "--engine", "bogus", "--out", "empty/x"], "unknown engine 'bogus'"),
    # -- serve / loadgen -----------------------------------------------------------------------
    (["serve", CKPT, "--device", "tpu"], "invalid device='tpu'"),
    (["serve", CKPT, "--port", "0"], "invalid port=0"),
    (["serve", CKPT, "--port", "70000"], "invalid port=70000"),
    (["serve", CKPT, "--queue", "0"], "invalid queue=0"),
    (["serve", CKPT, "--max-batch", "0"], "invalid max_batch=0"),
    (["serve", CKPT, "--max-batch", "100000"], "invalid max_batch=100000"),
    (["serve", CKPT, "--threads", "0"], "invalid threads=0"),
    (["serve", CKPT, "--deadline-ms", "-5"], "invalid deadline_ms=-5"),
    (["serve", CKPT, "--gil-switch-ms", "0"], "invalid switch_interval_ms=0"),
    (["serve", CKPT, "--inference-cpus", "4096"], "invalid inference_cpus='4096': CPU(s) [4096] not among"),
    (["serve", CKPT, "--inference-cpus", "0-4095"], "invalid inference_cpus='0-4095'"),
    (["serve", CKPT, "--inference-cpus", "one"], "'one' is not a CPU number or range"),
    (["serve", CKPT, "--inference", "thread", "--inference-cpus", "0"], "needs --inference process"),
    (["serve", NOFILE], "not found"),
    (["serve", "latin1.json"], "corrupted"),
    (["loadgen", "--trace", "latin1.txt"], "is not UTF-8 text"),
    (["loadgen", "--trace", "missing.txt", "--url", "http://127.0.0.1:9"], "not found"),
    (["loadgen", "--rate", "0"], "invalid rate=0"),
    (["loadgen", "--rate", "-1"], "invalid rate=-1"),
    (["loadgen", "--rate", "nan"], "invalid rate=nan"),
    (["loadgen", "--duration", "0"], "invalid duration=0"),
    (["loadgen", "--duration", "100000"], "invalid duration=100000"),
    (["loadgen", "--url", "http://example.com:8000"], "non-loopback"),
    (["loadgen", "--out", "afile/x.json"], "is not a directory"),
    (["loadgen", "--out", "empty"], "is a directory"),
    (["loadgen", "--accuracy-floor", "2"], "invalid accuracy_floor=2"),
    (["loadgen", "--deadline-ms", "0"], "invalid deadline_ms=0"),
    (["loadgen", "--seed", "-1"], "invalid seed=-1"),
    (["loadgen", "--url", "http://127.0.0.1:9", "--duration", "1"], "no skipswitch server answers"),
]


def test_enough_cases():
    assert len(CASES) >= 100
    assert {argv[0] for argv, _ in CASES} >= {"train", "tailor", "eval", "demo", "hw", "supernet", "accel", "fed",
                                               "serve", "loadgen"}


@pytest.mark.parametrize("argv,fragment", CASES, ids=[" ".join(a)[:60] for a, _ in CASES])
def test_bad_input_is_one_error_line_and_changes_nothing(watched, argv, fragment, capsys, monkeypatch):
    monkeypatch.chdir(watched)
    before = snapshot(watched)
    code, out, err = run_cli(argv, capsys)
    assert code != 0
    assert "Traceback" not in err + out
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    assert fragment in lines[0], lines[0]
    assert snapshot(watched) == before


def test_rejection_happens_before_torch_is_imported(watched):
    """The validation layer runs before any heavy import: a bad value costs well under a second."""
    code = ("import sys\nfrom skipswitch.cli import main\n"
            "for argv in (['train', '--seed', '-5'], ['accel', 'dse', '--out', 'afile/x'], "
            "['fed', 'run', '--profiles', 'latin1.toml'], ['serve', 'x', '--device', 'tpu']):\n"
            "    sys.argv = ['skipswitch', *argv]\n"
            "    try:\n        main()\n    except SystemExit as exc:\n        assert exc.code == 2\n"
            "print('torch' in sys.modules)\n")
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).parents[1] / "src")}
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=watched, env=env,
                          timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "False"
    assert proc.stderr.count("error: ") == 4 and "Traceback" not in proc.stderr


# -- files: modes, orphaned temporaries, kill -9 mid-write ------------------------------------------

def test_written_files_take_the_umask_mode(tmp_path):
    import torch

    from skipswitch.checkpoint import save_tensors
    from skipswitch.io import atomic_write_json

    old = os.umask(0o027)
    try:
        atomic_write_json(tmp_path / "a.json", {"a": 1})
        save_tensors(tmp_path / "b.safetensors", {"w": torch.zeros(2)}, {})
    finally:
        os.umask(old)
    assert (tmp_path / "a.json").stat().st_mode & 0o777 == 0o640
    assert (tmp_path / "b.safetensors").stat().st_mode & 0o777 == 0o640


def test_next_write_removes_temporaries_of_dead_writers_only(tmp_path):
    from skipswitch.io import atomic_write_text

    dead = tmp_path / ".results.json.999999999.abcd.tmp"  # no such pid
    legacy = tmp_path / ".model.safetensors.k3j2.tmp"  # an older writer's name, without a pid
    live = tmp_path / f".other.json.{os.getpid()}.zz.tmp"  # a writer still running
    for p in (dead, legacy, live):
        p.write_text("partial")
    atomic_write_text(tmp_path / "x.txt", "x")
    assert not dead.exists() and not legacy.exists() and live.exists()


def test_kill_9_mid_write_keeps_the_last_good_checkpoint(tmp_path):
    """A writer killed while saving leaves the previous checkpoint intact; the next write into the
    directory removes the orphaned temporary."""
    import signal
    import time

    import torch

    from skipswitch.checkpoint import load_tensors, save_tensors

    ckpt = tmp_path / "model.safetensors"
    writer = ("import sys, torch\nfrom skipswitch.checkpoint import save_tensors\n"
              "for i in range(1000):\n"
              "    save_tensors(sys.argv[1], {'w': torch.full((4_000_000,), float(i))}, {'i': i})\n"
              "    print(i, flush=True)\n")
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).parents[1] / "src")}
    proc = subprocess.Popen([sys.executable, "-c", writer, str(ckpt)], stdout=subprocess.PIPE, text=True, env=env)
    try:
        for _ in range(3):  # a few complete writes, then kill during a later one
            assert proc.stdout.readline()
        time.sleep(0.05)
        proc.send_signal(signal.SIGKILL)
        proc.wait(30)
    finally:
        proc.kill()
    tensors, meta = load_tensors(ckpt)
    assert torch.all(tensors["w"] == float(meta["i"])) and meta["i"] >= 2
    save_tensors(tmp_path / "next.safetensors", {"w": torch.zeros(1)}, {})
    assert not list(tmp_path.glob(".*.tmp"))


@pytest.mark.slow
def test_kill_9_of_a_training_run_then_resume_matches_an_uninterrupted_run(tmp_path):
    """`skipswitch train` killed with SIGKILL after its second epoch: `--resume` finishes the run with
    the uninterrupted run's weights bit for bit, and no temporary file is left in the run directory."""
    import json
    import signal
    import time

    import torch
    from safetensors import safe_open

    from skipswitch.checkpoint import load_tensors

    argv = [sys.executable, "-m", "skipswitch.cli", "train", "--model", "resnet8", "--dataset", "digits",
            "--epochs", "5", "-q"]
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).parents[1] / "src"), "OMP_NUM_THREADS": "1"}
    ref, killed = tmp_path / "ref", tmp_path / "killed"
    subprocess.run([*argv, "--out", str(ref)], env=env, check=True, capture_output=True, timeout=600)
    proc = subprocess.Popen([*argv, "--out", str(killed)], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    resume = killed / "resume.safetensors"

    def next_epoch() -> int:
        try:
            with safe_open(str(resume), "pt") as f:
                return json.loads(f.metadata()["skipswitch"])["next_epoch"]
        except Exception:  # not written yet
            return 0

    try:
        deadline = time.monotonic() + 300
        while next_epoch() < 2:
            assert proc.poll() is None and time.monotonic() < deadline, "the run ended or stalled before epoch 2"
            time.sleep(0.02)
        proc.send_signal(signal.SIGKILL)
        proc.wait(30)
    finally:
        proc.kill()
    assert not (killed / "model.safetensors").exists()  # killed before the end
    done = subprocess.run([*argv, "--out", str(killed), "--resume"], env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    want, _ = load_tensors(ref / "model.safetensors")
    got, _ = load_tensors(killed / "model.safetensors")
    assert want.keys() == got.keys() and all(torch.equal(want[k], got[k]) for k in want)
    assert not list(killed.glob(".*.tmp"))
