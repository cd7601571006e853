"""Devices, mixed precision and channels-last in the Trainer (training/device.py), on the CPU."""

import json
import os

import pytest
import torch

from skipswitch.checkpoint import load_model, read_metadata
from skipswitch.data import Dataset, Split
from skipswitch.errors import SkipswitchError
from skipswitch.models import create_model
from skipswitch.training import TrainConfig, Trainer, validated
from skipswitch.training.device import Runtime, resolve_device


def _model(ds, name="resnet8"):
    torch.manual_seed(0)
    return create_model(name, num_classes=ds.num_classes, in_channels=ds.in_channels, input_size=ds.input_size)


def _small(ds: Dataset, n: int) -> Dataset:
    """The first ``n`` images of each split: CPU fp16 kernels are ~40x slower than fp32."""
    cut = lambda s: Split(s.images[:n], s.labels[:n])  # noqa: E731
    return Dataset(ds.name, cut(ds.train), cut(ds.val), cut(ds.test), ds.num_classes, ds.augment, ds.seed)


def _interrupt_at(trainer, epoch_to_stop):
    original = trainer._train_epoch

    def run(epoch, progress):
        if epoch == epoch_to_stop:
            raise KeyboardInterrupt
        return original(epoch, progress)

    trainer._train_epoch = run


def test_device_resolution():
    assert resolve_device("cpu") == torch.device("cpu")
    if not torch.cuda.is_available():
        assert resolve_device("auto") == torch.device("cpu")
        with pytest.raises(SkipswitchError, match="device 'cuda' requested but CUDA is not available"):
            resolve_device("cuda")
        with pytest.raises(SkipswitchError, match="CUDA is not available"):
            Runtime(TrainConfig(device="cuda:1"))
    with pytest.raises(SkipswitchError, match="invalid device='gpu'"):
        validated(TrainConfig, device="gpu")
    with pytest.raises(SkipswitchError, match="invalid amp='fp8'"):
        validated(TrainConfig, amp="fp8")


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the CPU-only error")
def test_sync_bn_needs_cuda():
    with pytest.raises(SkipswitchError, match="sync_bn needs CUDA"):
        Runtime(TrainConfig(sync_bn=True))


def test_bf16_autocast_and_channels_last_train(digits, tmp_path):
    config = TrainConfig(epochs=2, batch_size=128, lr=0.05, amp="bf16", channels_last=True)
    result = Trainer(_model(digits), digits, config, tmp_path, quiet=True).fit()
    assert result.test_acc > 0.7  # chance is 0.1; fp32 reaches 0.94 with these settings
    model, meta = load_model(tmp_path / "model.safetensors")  # channels-last weights save and load
    assert meta["train_config"]["amp"] == "bf16"
    assert all(v.dtype == torch.float32 for v in model.state_dict().values() if v.is_floating_point())


def test_fp16_grad_scaler_state_resumes_exactly(digits, tmp_path):
    small = _small(digits, 64)
    config = TrainConfig(epochs=3, batch_size=32, lr=0.05, amp="fp16")
    straight = Trainer(_model(small), small, config, tmp_path / "a", quiet=True).fit()
    first = Trainer(_model(small), small, config, tmp_path / "b", quiet=True)
    _interrupt_at(first, 2)
    with pytest.raises(KeyboardInterrupt):
        first.fit()
    saved = read_metadata(tmp_path / "b" / "resume.safetensors")["grad_scaler"]
    assert saved["scale"] == first.runtime.scaler.get_scale() and saved["_growth_tracker"] == 4
    resumed = Trainer(_model(small), small, config, tmp_path / "b", quiet=True)
    resumed.fit(resume=True)
    assert resumed.runtime.scaler.state_dict() == straight_scaler(tmp_path / "a")
    for k, v in straight.model.state_dict().items():
        assert torch.equal(v, resumed.model.state_dict()[k]), k


def straight_scaler(run_dir):
    return read_metadata(run_dir / "resume.safetensors")["grad_scaler"]


def test_resume_may_change_where_it_runs_but_not_the_arithmetic(digits, tmp_path):
    Trainer(_model(digits), digits, TrainConfig(epochs=1, batch_size=128), tmp_path, quiet=True).fit()
    moved = TrainConfig(epochs=1, batch_size=128, device="cpu", channels_last=True, workers=0)
    Trainer(_model(digits), digits, moved, tmp_path, quiet=True).fit(resume=True)
    with pytest.raises(SkipswitchError, match="different training config"):
        Trainer(_model(digits), digits, TrainConfig(epochs=1, batch_size=128, amp="bf16"), tmp_path,
                quiet=True).fit(resume=True)
    assert json.loads((tmp_path / "results.json").read_text())["train_config"]["channels_last"] is True


def test_tailor_kd_teacher_runs_under_autocast_and_inference_mode(teacher_ckpt, tmp_path):
    from skipswitch.tailor import run_tailor

    config = TrainConfig(epochs=4, batch_size=128, lr=0.02, amp="bf16")
    result = run_tailor(teacher_ckpt, "remove", config=config, out_dir=tmp_path, every=1, quiet=True)
    assert result.results["teacher_unchanged"] is True and result.test_acc > 0.5  # chance: 0.1


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the CPU-only errors")
def test_cli_device_and_nproc_errors_are_one_line(cli, tmp_path):
    code, _, err = cli("train", "--model", "resnet8", "--epochs", "1", "--device", "cuda", "--out", tmp_path)
    assert code == 2 and err.strip().count("\n") == 0 and "CUDA is not available" in err
    code, _, err = cli("train", "--model", "resnet8", "--epochs", "1", "--nproc", "999", "--out", tmp_path)
    assert code == 2 and err.strip() == f"error: --nproc 999 exceeds the {os.cpu_count()} CPU cores on this machine"
