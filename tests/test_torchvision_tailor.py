import math

import pytest
import torch

from skipswitch.errors import SkipswitchError
from skipswitch.graph import trace
from skipswitch.models import create_model, create_model_from_config

torchvision = pytest.importorskip("torchvision")


def _tv(mode="long", arch="resnet18"):
    return create_model(f"torchvision:{arch}", num_classes=10, in_channels=1, input_size=8, skip_mode=mode)


@pytest.mark.parametrize("mode,skips,long", [("long", 8, 8), ("short", 16, 0), ("none", 0, 0)])
def test_torchvision_resnet18_skip_modes_through_fx(mode, skips, long):
    graph = trace(_tv(mode))
    assert len(graph.skips) == skips and sum(s.is_long for s in graph.skips) == long
    assert _tv(mode)(torch.zeros(2, 1, 8, 8)).shape == (2, 10)


def test_rewritten_long_block_computes_torchvision_block():
    """Our long block holding torchvision's weights computes torchvision's own block (basic and bottleneck, its += add)."""
    from skipswitch.models.torchvision_resnet import _our_block

    torch.manual_seed(0)
    for block in (torchvision.models.resnet18().layer2[0], torchvision.models.resnet50().layer1[0]):
        block.eval()
        x = torch.randn(2, block.conv1.in_channels, 8, 8)
        rewritten = _our_block(block, "long").eval()
        torch.testing.assert_close(rewritten(x), block(x), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("arch", ["resnet18", "resnet50"])
def test_small_input_models_convert_with_hls4ml_and_compute_torchvisions_forward(arch, tmp_path):
    """Below 64 px the max pool is left out of the forward (not run as an Identity, which hls4ml cannot
    convert); the output is the one torchvision's own forward gives, and hls4ml's converter takes the model."""
    hls4ml = pytest.importorskip("hls4ml")
    model = _tv("short", arch).eval()
    x = torch.randn(2, 1, 8, 8)
    with torch.no_grad():
        assert torch.equal(model(x), model.net(x))  # torchvision's forward through the Identity
    config = hls4ml.utils.config_from_pytorch_model(model, (1, 8, 8), granularity="name", backend="Vitis")
    hls_model = hls4ml.converters.convert_from_pytorch_model(model, hls_config=config, output_dir=str(tmp_path),
                                                             backend="Vitis", io_type="io_stream")
    assert not [layer for layer in hls_model.get_layers() if "maxpool" in layer.name]


def test_parameters_state_dict_and_checkpoint_roundtrip(tmp_path):
    from skipswitch.checkpoint import load_model, save_model

    model = _tv("long").eval()
    ref = torchvision.models.resnet18(num_classes=10)
    stem_diff = 64 * 3 * 7 * 7 - 64 * 1 * 3 * 3  # 3x3 one-channel stem instead of 7x7 RGB
    assert sum(p.numel() for p in model.parameters()) == sum(p.numel() for p in ref.parameters()) - stem_diff
    model.set_skip_mode(0, "none")
    model.set_skip_mode(2, "short")
    save_model(tmp_path / "m.safetensors", model, {})
    loaded, _ = load_model(tmp_path / "m.safetensors")
    assert loaded.skip_modes == model.skip_modes
    x = torch.randn(3, 1, 8, 8)
    torch.testing.assert_close(loaded.eval()(x), model(x))
    rebuilt = create_model_from_config(model.config)
    assert set(rebuilt.state_dict()) == set(model.state_dict())


def test_removal_drops_the_projection_and_alteration_is_one_way():
    model = _tv("long")
    before = sum(p.numel() for p in model.parameters())
    model.set_skip_mode(2, "none")  # layer2.0 has a 1x1 projection
    assert sum(p.numel() for p in model.parameters()) < before
    with pytest.raises(SkipswitchError, match="alter only from long"):
        model.set_skip_mode(2, "long")


def test_bottleneck_shortening_adds_zero_initialised_projections():
    """Shortening a torchvision bottleneck (refused before issue 18) adds a 1x1 projection wherever a
    conv changes shape; each starts adding nothing (BN scale 0), and the model traces to short skips."""
    model = _tv("long", "resnet50")
    new = model.set_skip_mode(0, "short")  # layer1.0: 64 -> 64 -> 64 -> 256, so proj1 is an identity
    block = model.blocks()[0]
    assert block.short_proj1 is None and block.short_proj2 is None and block.short_proj3 is not None
    assert len(new) == 3 and torch.count_nonzero(block.short_proj3[1].weight) == 0
    for i in range(1, len(model.blocks())):
        model.set_skip_mode(i, "short")
    graph = trace(model)
    assert model.skip_modes == ["short"] * 16 and not any(s.is_long for s in graph.skips)
    assert torch.isfinite(model(torch.randn(2, 1, 8, 8))).all()


def test_cost_order_puts_the_largest_skip_buffer_first():
    from skipswitch.fpga import EstimatorConfig, estimate_graph, order  # noqa: F401  (order registers "cost")
    from skipswitch.tailor import AlterationSchedule

    model = create_model("resnet20", num_classes=10, input_size=16)
    order = [a.block for a in AlterationSchedule(model, "remove", every=1, order="cost").alterations]
    assert sorted(order) == list(range(9))
    skips = estimate_graph(trace(model), EstimatorConfig()).skips
    bram = [skips[b].bram18 for b in order]
    assert bram == sorted(bram, reverse=True) and bram[0] > bram[-1]
    # the 64-channel stage (blocks 6-8) holds the widest skip FIFOs
    assert set(order[:3]) == {6, 7, 8}


def test_tailor_schedule_alters_a_torchvision_model():
    from skipswitch.tailor import AlterationSchedule

    model = _tv("long")
    schedule = AlterationSchedule(model, "shorten", every=1, order="cost")
    for epoch in range(1, 10):
        schedule(epoch, model)
    assert model.skip_modes == ["short"] * 8
    assert len(trace(model).skips) == 16


# The stated bound of the test below: after every alteration the student's mean training loss
# (the KD objective) stays within this many nats of the teacher's last-epoch training loss.
# Measured: 0.5 to 0.9 here (1.2 at lr 0.05; 0.54 to 0.85 with the Remover's fade); before issue 18
# (MSE on logits, no warm-up, clipping or BN recalibration) the same run reached 18.6.
LOSS_BOUND = 2.0


@pytest.mark.slow
def test_tailor_on_torchvision_resnet18_stays_finite_and_near_the_teacher(tmp_path, monkeypatch, digits):
    """A short Skip Remover run with the job's default stabilisers on a 128-image slice of digits."""
    import dataclasses

    from skipswitch.data import Split
    from skipswitch.jobs.training import TailorJob
    from skipswitch.tailor import retrain, run_tailor
    from skipswitch.training import TrainConfig, Trainer

    def head(split, n):
        return Split(split.images[:n], split.labels[:n])

    small = dataclasses.replace(digits, train=head(digits.train, 128), val=head(digits.val, 32),
                                test=head(digits.test, 32))
    monkeypatch.setattr(retrain, "load_dataset", lambda *args, **kwargs: small)
    teacher = create_model("torchvision:resnet18", num_classes=10, in_channels=1, input_size=8)
    taught = Trainer(teacher, small, TrainConfig(epochs=6, lr=0.02), tmp_path / "teacher", quiet=True).fit()
    teacher_loss = taught.history[-1]["train_loss"]

    job = TailorJob(teacher=tmp_path / "teacher" / "model.safetensors", method="remove", epochs=12, every=1)
    result = run_tailor(job.teacher, "remove", config=job.train_config(), out_dir=tmp_path / "student",
                        kd=job.kd, alpha=job.alpha, temperature=job.temperature, every=1,
                        warmup_steps=job.warmup_steps, clip=job.clip,
                        recalibrate_batches=job.recalibrate_batches, fade_steps=job.fade_steps, quiet=True)
    altered = [h for h in result.history if "event" in h]
    assert len(altered) == 8 and result.model.skip_modes == ["none"] * 8
    for h in result.history:
        assert math.isfinite(h["train_loss"]) and math.isfinite(h["val_loss"])
    losses = [round(h["train_loss"], 2) for h in altered]
    assert max(losses) <= teacher_loss + LOSS_BOUND, (losses, teacher_loss)


def test_zero_init_residual_starts_every_torchvision_block_as_its_skip(tmp_path):
    """train_model(zero_init_residual=True): each long-skip block's last BN scale starts at 0, so a
    bottleneck computes relu(shortcut(x)); the run records it (the teacher of a CIFAR-style resnet50
    blows up in its first epoch without it)."""
    import json

    from skipswitch.models.resnet import zero_init_residuals
    from skipswitch.training import TrainConfig
    from skipswitch.training.run import train_model

    model = _tv("long", "resnet50").eval()
    assert zero_init_residuals(model) == len(model.blocks()) == 16
    block = model.blocks()[3]  # layer2.0: a strided bottleneck with a projection
    x = torch.randn(2, block.conv1.in_channels, 8, 8)
    with torch.no_grad():
        torch.testing.assert_close(block(x), torch.relu(block.shortcut(x)))
    train_model("resnet8", "digits", config=TrainConfig(epochs=1, batch_size=256, seed=0), out_dir=tmp_path,
                quiet=True, zero_init_residual=True)
    assert json.loads((tmp_path / "results.json").read_text())["zero_init_residual"] is True
