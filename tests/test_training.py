import json
import math

import pytest
import torch

from skipswitch.checkpoint import load_model, save_model
from skipswitch.errors import SkipswitchError
from skipswitch.models import create_model
from skipswitch.training import TrainConfig, Trainer, cosine_lr, kl_distillation, train_step, validated


def _model(digits, mode="long", name="resnet8"):
    torch.manual_seed(0)
    return create_model(name, num_classes=digits.num_classes, in_channels=digits.in_channels,
                        input_size=digits.input_size, skip_mode=mode)


def test_training_learns_and_writes_results(digits, tmp_path):
    config = TrainConfig(epochs=3, batch_size=64, lr=0.05)
    result = Trainer(_model(digits), digits, config, tmp_path, quiet=True).fit()
    assert result.test_acc > 0.8  # 10 classes: chance is 0.1
    results = json.loads((tmp_path / "results.json").read_text())
    assert results["status"] == "ok" and len(results["history"]) == 3
    assert {"train_loss", "train_acc", "val_loss", "val_acc", "images_per_s", "lr"} <= set(results["history"][0])
    assert results["params"] == sum(p.numel() for p in result.model.parameters())
    model, meta = load_model(tmp_path / "model.safetensors")
    assert meta["metrics"]["test_acc"] == pytest.approx(result.test_acc)
    for k, v in model.state_dict().items():
        assert torch.equal(v, result.model.state_dict()[k])


def test_resume_reaches_the_same_final_weights(digits, tmp_path):
    config = TrainConfig(epochs=4, batch_size=128, lr=0.05)
    straight = Trainer(_model(digits), digits, config, tmp_path / "a", quiet=True).fit()
    # Interrupted after 2 epochs: a run configured for 4 epochs that crashes at epoch 3.
    first = Trainer(_model(digits), digits, config, tmp_path / "b", quiet=True)
    original = first._train_epoch

    def crash_on_third(epoch, progress):
        if epoch == 2:
            raise KeyboardInterrupt
        return original(epoch, progress)

    first._train_epoch = crash_on_third
    with pytest.raises(KeyboardInterrupt):
        first.fit()
    assert not (tmp_path / "b" / "model.safetensors").exists()
    interrupted = json.loads((tmp_path / "b" / "results.json").read_text())
    assert interrupted["status"] == "interrupted" and len(interrupted["history"]) == 2
    resumed = Trainer(_model(digits), digits, config, tmp_path / "b", quiet=True).fit(resume=True)
    assert [h["epoch"] for h in resumed.history] == [1, 2, 3, 4]
    for k, v in straight.model.state_dict().items():
        assert torch.equal(v, resumed.model.state_dict()[k]), k


def test_resume_refuses_a_different_config(digits, tmp_path):
    Trainer(_model(digits), digits, TrainConfig(epochs=1, batch_size=128), tmp_path, quiet=True).fit()
    with pytest.raises(SkipswitchError, match="different training config"):
        Trainer(_model(digits), digits, TrainConfig(epochs=2, batch_size=64), tmp_path, quiet=True).fit(resume=True)


def test_non_finite_loss_stops_and_keeps_last_good_state(digits, tmp_path):
    config = TrainConfig(epochs=3, batch_size=128, lr=0.05)
    calls = {"n": 0}

    def loss_fn(model, x, y):
        calls["n"] += 1
        logits = model(x)
        loss = torch.nn.functional.cross_entropy(logits, y)
        if calls["n"] == 15:  # epoch 2, step 4 (11 steps per epoch)
            loss = loss * float("nan")
        return loss, logits

    trainer = Trainer(_model(digits), digits, config, tmp_path, loss_fn=loss_fn, quiet=True)
    with pytest.raises(SkipswitchError, match=r"loss became nan at epoch 2 step 4"):
        trainer.fit()
    resume_state = tmp_path / "resume.safetensors"
    from skipswitch.checkpoint import read_metadata

    assert read_metadata(resume_state)["next_epoch"] == 1
    results = json.loads((tmp_path / "results.json").read_text())
    assert results["status"].startswith("failed: loss became nan")
    assert not (tmp_path / "model.safetensors").exists()


@pytest.mark.parametrize("field,value", [("epochs", 0), ("epochs", -3), ("batch_size", 0), ("lr", 0.0), ("momentum", 1.0)])
def test_invalid_config_values_are_rejected(field, value):
    with pytest.raises(SkipswitchError, match=f"invalid {field}={value!r}"):
        validated(TrainConfig, **{field: value})


def test_lr_schedules():
    cosine = TrainConfig(epochs=10, lr=0.1)
    assert cosine.lr_at(0) == pytest.approx(0.1) and cosine.lr_at(5) == pytest.approx(0.05)
    step = TrainConfig(epochs=10, lr=0.1, schedule="step", step_size=3, gamma=0.1)
    assert [round(step.lr_at(e), 6) for e in (0, 2, 3, 6)] == [0.1, 0.1, 0.01, 0.001]


def test_cosine_lr_first_middle_last_and_shared_by_federated_rounds():
    # 0.5 * lr * (1 + cos(pi * t / T)): lr at t=0, lr/2 at T/2, 0.05 * (1 + cos(0.9 pi)) at t=9 of 10
    assert cosine_lr(0.1, 0, 10) == pytest.approx(0.1)
    assert cosine_lr(0.1, 5, 10) == pytest.approx(0.05)
    assert cosine_lr(0.1, 9, 10) == pytest.approx(0.0024471741852423)
    from skipswitch.federated.config import fed_config

    fed, train = fed_config(rounds=10, lr=0.1, lr_schedule="cosine"), TrainConfig(epochs=10, lr=0.1)
    assert [fed.lr_at(r) for r in range(1, 11)] == [train.lr_at(e) for e in range(10)]


def test_kl_distillation_matches_hand_computation():
    student, teacher = torch.tensor([[0.0, 0.0]]), torch.tensor([[math.log(3.0), 0.0]])
    # T=1: p_t = (3/4, 1/4), p_s = (1/2, 1/2); KL(p_t || p_s) = 3/4 ln(3/2) + 1/4 ln(1/2)
    assert float(kl_distillation(student, teacher, 1.0)) == pytest.approx(0.75 * math.log(1.5) + 0.25 * math.log(0.5))
    # T=2: p_t = (sqrt3, 1) / (sqrt3 + 1), scaled by T^2 = 4
    p = math.sqrt(3) / (math.sqrt(3) + 1)
    hand = 4 * (p * math.log(2 * p) + (1 - p) * math.log(2 * (1 - p)))
    assert float(kl_distillation(student, teacher, 2.0)) == pytest.approx(hand)


def test_train_step_updates_weights_and_stops_before_a_nan_update():
    torch.manual_seed(0)
    model = torch.nn.Linear(4, 3)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    x, y = torch.randn(8, 4), torch.randint(0, 3, (8,))
    before = model.weight.detach().clone()
    with torch.no_grad():
        expected_correct = int((model(x).argmax(1) == y).sum())  # counted on the pre-update logits

    def ce(m, xb, yb):
        logits = m(xb)
        return torch.nn.functional.cross_entropy(logits, yb), logits

    loss, correct = train_step(model, optimizer, ce, x, y, "in the test")
    assert loss > 0 and correct == expected_correct
    assert not torch.equal(model.weight, before)
    after = model.weight.detach().clone()
    with pytest.raises(SkipswitchError, match="loss became nan in the test"):
        train_step(model, optimizer, lambda m, xb, yb: (m(xb).sum() * float("nan"), m(xb)), x, y, "in the test")
    assert torch.equal(model.weight, after)


def test_checkpoint_write_is_atomic(digits, tmp_path, monkeypatch):
    model = _model(digits)
    path = tmp_path / "model.safetensors"
    save_model(path, model, {"note": "first"})
    good = path.read_bytes()

    import skipswitch.checkpoint as ckpt

    def broken_save(tensors, filename, metadata=None):
        with open(filename, "wb") as f:
            f.write(b"partial")
        raise OSError("disk full")

    monkeypatch.setattr(ckpt, "save_file", broken_save)
    with pytest.raises(OSError):
        save_model(path, model, {"note": "second"})
    assert path.read_bytes() == good
    assert [p.name for p in tmp_path.iterdir()] == ["model.safetensors"]


def test_corrupted_and_mismatched_checkpoints(digits, tmp_path):
    path = tmp_path / "model.safetensors"
    save_model(path, _model(digits), {})
    truncated = tmp_path / "truncated.safetensors"
    truncated.write_bytes(path.read_bytes()[:200])
    with pytest.raises(SkipswitchError, match="corrupted"):
        load_model(truncated)
    garbage = tmp_path / "garbage.safetensors"
    garbage.write_bytes(b"\x00" * 64)
    with pytest.raises(SkipswitchError, match="corrupted|not a safetensors"):
        load_model(garbage)
    with pytest.raises(SkipswitchError, match="not found"):
        load_model(tmp_path / "missing.safetensors")
    # Weights of one architecture under the metadata of another.
    from skipswitch.checkpoint import save_tensors

    other = _model(digits, name="resnet20")
    wrong = tmp_path / "wrong.safetensors"
    save_tensors(wrong, other.state_dict(), {"kind": "model", "model": _model(digits).config})
    with pytest.raises(SkipswitchError, match="does not match its declared architecture"):
        load_model(wrong)
    with pytest.raises(SkipswitchError, match="name='resnet8' but 'resnet20' was expected"):
        load_model(path, expect={"name": "resnet20"})
