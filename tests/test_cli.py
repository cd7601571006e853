import json
import subprocess
import sys

import pytest


def test_train_tailor_eval_end_to_end(cli, tmp_path):
    code, out, err = cli("train", "--model", "resnet8", "--epochs", "2", "--batch-size", "128", "--out", tmp_path / "t", "-q")
    assert code == 0, err
    assert "test accuracy" in out
    teacher = tmp_path / "t" / "model.safetensors"
    code, out, err = cli("tailor", "--teacher", teacher, "--method", "remove", "--epochs", "4", "--every", "1",
                         "--batch-size", "128", "--out", tmp_path / "r", "-q")
    assert code == 0, err
    assert "teacher test accuracy" in out
    code, out, err = cli("eval", tmp_path / "r" / "model.safetensors", "--json")
    assert code == 0, err
    report = json.loads(out)
    assert report["skip_modes"] == ["none"] * 3 and report["skips"] == 0 and report["params"] > 0


@pytest.mark.parametrize(
    "argv,message",
    [
        (["train", "--model", "resnet7"], "unknown model 'resnet7'"),
        (["train", "--dataset", "imagenet2"], "unknown dataset 'imagenet2'"),
        (["train", "--epochs", "0"], "invalid epochs=0"),
        (["train", "--batch-size", "-1"], "invalid batch_size=-1"),
        (["train", "--skip-mode", "half"], "unknown skip mode 'half'"),
        (["train", "--schedule", "linear"], "invalid schedule='linear'"),
        (["eval", "/nonexistent.safetensors"], "checkpoint /nonexistent.safetensors not found"),
        (["train", "--dataset", "cifar10", "--data-dir", "/no/such/dir"], "data directory /no/such/dir not found"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(cli, argv, message):
    code, out, err = cli(*argv)
    assert code == 2
    assert message in err
    assert len(err.strip().splitlines()) == 1 and err.startswith("error: ")


def test_bad_tailor_inputs(cli, teacher_ckpt, tmp_path):
    code, _, err = cli("tailor", "--teacher", teacher_ckpt, "--method", "remove", "--model", "resnet20", "--out", tmp_path)
    assert code == 2 and "is a resnet8 but the student was requested as resnet20" in err
    code, _, err = cli("tailor", "--teacher", teacher_ckpt, "--method", "shorten", "--epochs", "3", "--out", tmp_path)
    assert code == 2 and "epochs=3 is too few" in err
    corrupt = tmp_path / "corrupt.safetensors"
    corrupt.write_bytes(teacher_ckpt.read_bytes()[:500])
    code, _, err = cli("tailor", "--teacher", corrupt, "--method", "remove", "--out", tmp_path)
    assert code == 2 and "corrupt" in err


def test_no_traceback_from_the_installed_entry_point(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "skipswitch.cli", "eval", str(tmp_path / "x.safetensors")],
                          capture_output=True, text=True)
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr and proc.stderr.startswith("error: ")
