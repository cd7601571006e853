"""Supernet training: the averaged sandwich loss, OFA progressive shrinking (schedule,
frozen teacher, phases) and the compute meter of the Pareto benchmark."""

import json

import pytest
import torch

from skipswitch.errors import SkipswitchError
from skipswitch.graph import trace
from skipswitch.supernet import ElasticResNet, get_space
from skipswitch.supernet.train import (OFA_PHASES, OFA_REFERENCE_LR, ComputeMeter, SandwichLoss, ofa_schedule,
                                       sample_open, train_supernet)
from skipswitch.training import TrainConfig, Trainer
from skipswitch.training.trainer import cross_entropy_loss, make_optimizer, train_step


def test_one_subnet_sandwich_equals_plain_training():
    """A space with one member: the sandwich's 4 subnets (largest, smallest, 2 random) are all
    the same network, so the averaged loss is plain cross-entropy and 3 SGD steps reach the
    same weights (and BN statistics) as plain training, to 1e-6. A summed loss would be 4x
    the gradient."""
    space = get_space("resnet-cifar", base_width=4, max_depth=1, expand_choices=(1.0,), width_choices=(1.0,))
    assert space.size() == 1
    torch.manual_seed(0)
    supernet = ElasticResNet(space)
    plain = space.build(space.largest())
    plain.load_state_dict(supernet.state_dict())
    initial = plain.stem[0].weight.clone()
    config = TrainConfig(lr=0.1)
    loss_fn = SandwichLoss(space, n_random=2)
    assert len(loss_fn.subnets()) == 3
    optimizers = make_optimizer(supernet, config), make_optimizer(plain, config)
    gen = torch.Generator().manual_seed(1)
    for step in range(3):
        x, y = torch.randn(16, 1, 8, 8, generator=gen), torch.randint(0, 10, (16,), generator=gen)
        shared_loss, _ = train_step(supernet, optimizers[0], loss_fn, x, y, "")
        plain_loss, _ = train_step(plain, optimizers[1], cross_entropy_loss, x, y, "")
        assert shared_loss == pytest.approx(plain_loss, abs=1e-6)
    for name, value in plain.state_dict().items():
        assert torch.allclose(supernet.state_dict()[name], value, atol=1e-6), name
    assert (plain.stem[0].weight - initial).abs().max() > 1e-3  # it did train


def test_ofa_schedule_follows_ofa_phase_order_rates_and_epochs():
    space = get_space("resnet-cifar", max_depth=3)
    phases = ofa_schedule(space, 12, lr=0.05)
    assert [p.name for p in phases] == [p[0] for p in OFA_PHASES]
    assert sum(p.epochs for p in phases) == 12 and all(p.epochs >= 1 for p in phases)
    assert [p.epochs for p in phases] == [1, 3, 1, 3, 1, 3]  # 25 : 120 per dimension
    assert [p.subnets for p in phases] == [2, 2, 4, 4, 4, 4]  # OFA dynamic_batch_size
    assert phases[0].lr == pytest.approx(0.05 * 2.5e-3 / OFA_REFERENCE_LR)
    assert phases[1].lr == pytest.approx(0.05 * 7.5e-3 / OFA_REFERENCE_LR)
    # cumulative: depth first (top 2 then all), then expand with every depth open, then width
    assert [p.open for p in phases] == [
        {"depth": 2}, {"depth": 3}, {"depth": 3, "expand": 2}, {"depth": 3, "expand": 3},
        {"depth": 3, "expand": 3, "width": 2}, {"depth": 3, "expand": 3, "width": 3}]
    # two depth choices: the top-2 sub-phase would open all of them, so only the second runs;
    # short skips have one expand ratio: no expand phase
    short = get_space("resnet-cifar", max_depth=2, skip_mode="short")
    assert [p.name for p in ofa_schedule(short, 3, lr=0.05)] == ["depth-2", "width-1", "width-2"]
    with pytest.raises(SkipswitchError, match="shrink_epochs=2 is too few for the 3 OFA phases"):
        ofa_schedule(short, 2, lr=0.05)
    gen = torch.Generator().manual_seed(0)
    for _ in range(20):
        config = sample_open(space, gen, {"depth": 2, "expand": 3})
        assert min(config.depths) >= 2 and config.widths == space.largest().widths


def test_ofa_loss_distills_from_the_frozen_teacher_and_meter_counts_macs():
    space = get_space("resnet-cifar", base_width=4, max_depth=2)
    torch.manual_seed(0)
    supernet = ElasticResNet(space)
    teacher = ElasticResNet(space).eval().requires_grad_(False)
    before = {k: v.clone() for k, v in teacher.state_dict().items()}
    meter = ComputeMeter()
    loss_fn = SandwichLoss(space, strategy="ofa", n_random=3, teacher=teacher, open_dims={"depth": 2}, meter=meter)
    optimizer = make_optimizer(supernet, TrainConfig())
    train_step(supernet, optimizer, loss_fn, torch.randn(8, 1, 8, 8), torch.randint(0, 10, (8,)), "")
    assert all(torch.equal(v, teacher.state_dict()[k]) for k, v in before.items())
    assert meter.trained_images == 3 * 8 and meter.teacher_images == 8
    largest_macs = trace(space.build(space.largest())).to_dict()["macs"]
    assert meter.forward_macs(teacher, torch.zeros(1, 1, 8, 8)) == largest_macs
    subnet = space.sample(3)
    supernet.set_active(subnet)
    assert meter.forward_macs(supernet, torch.zeros(1, 1, 8, 8)) == trace(space.build(subnet)).to_dict()["macs"]
    supernet.set_active(None)
    assert largest_macs * 8 < meter.macs <= largest_macs * 8 * (1 + 3 * 3)  # teacher x1, 3 trained x3


def test_ofa_training_trains_the_full_network_first_then_each_phase(tmp_path, digits):
    config = TrainConfig(epochs=1, batch_size=256, lr=0.05)
    args = {"base_width": 4, "max_depth": 2}
    meter = ComputeMeter()
    _, run = train_supernet("resnet-cifar", "digits", config=config, out_dir=tmp_path / "ofa", strategy="ofa",
                            shrink_epochs=5, space_args=args, quiet=True, meter=meter)
    names = [p["name"] for p in run.results["phases"]]
    assert names == ["full", "depth-2", "expand-1", "expand-2", "width-1", "width-2"]
    assert [r["phase"] for r in run.results["history"]] == names
    n = len(digits.train)
    assert meter.teacher_images == 5 * n  # every shrinking epoch asks the teacher once per image
    assert meter.trained_images == n * sum(p["epochs"] * p["subnets"] for p in run.results["phases"])
    # the full phase is plain training of the largest subnet
    space = get_space("resnet-cifar", num_classes=10, in_channels=1, input_size=8, **args)
    torch.manual_seed(0)
    plain = Trainer(space.build(space.largest()), digits, config, tmp_path / "plain", quiet=True).fit()
    full = json.loads((tmp_path / "ofa" / "0-full" / "results.json").read_text())
    assert full["test_acc"] == pytest.approx(plain.test_acc, abs=1e-9)
    assert [r["lr"] for r in run.results["history"]][1] == pytest.approx(0.05 * 7.5e-3 / OFA_REFERENCE_LR)
    assert 0 <= run.results["supernet_metrics"]["smallest_test_acc"] <= 1


def test_lr_per_subnet_scales_the_averaged_sandwich_to_the_summed_step(tmp_path):
    """lr x (subnets per step) on the averaged loss is the step a summed loss takes at the base
    lr: with plain SGD the two give the same weights; train_supernet applies the factor."""
    space = get_space("resnet-cifar", base_width=4, max_depth=2)
    loss_fn = SandwichLoss(space, n_random=1)
    assert loss_fn.subnets_per_step == 1 + len(loss_fn.subnets()) == 3
    loss_fn.set_epoch(0)
    x, y = torch.randn(8, 1, 8, 8), torch.randint(0, 10, (8,))
    sgd = TrainConfig(lr=0.1, momentum=0, nesterov=False, weight_decay=0)
    torch.manual_seed(0)
    averaged, summed = ElasticResNet(space), ElasticResNet(space)
    summed.load_state_dict(averaged.state_dict())

    def sum_of_losses(model, x, y):
        loss, shown = loss_fn(model, x, y)
        return loss * loss_fn.subnets_per_step, shown

    for model, fn, config in ((averaged, loss_fn, sgd.model_copy(update={"lr": 0.3})), (summed, sum_of_losses, sgd)):
        loss_fn.set_epoch(0)  # the same sampled subnets for both
        train_step(model, make_optimizer(model, config), fn, x, y, "")
    for name, value in summed.state_dict().items():
        assert torch.allclose(averaged.state_dict()[name], value, atol=1e-6), name
    config = TrainConfig(epochs=1, batch_size=512, lr=0.05)
    _, run = train_supernet("resnet-cifar", "digits", config=config, out_dir=tmp_path / "s", n_random=1,
                            lr_per_subnet=True, space_args={"base_width": 4, "max_depth": 1}, quiet=True)
    assert run.history[0]["lr"] == pytest.approx(0.15)
    with pytest.raises(SkipswitchError, match="lr_per_subnet is for the averaged strategies"):
        train_supernet("resnet-cifar", "digits", config=config, out_dir=tmp_path / "o", strategy="ofa",
                       lr_per_subnet=True, quiet=True)


def test_zero_init_residuals_starts_every_block_as_its_shortcut():
    from skipswitch.models.resnet import zero_init_residuals

    torch.manual_seed(0)
    net = ElasticResNet(get_space("resnet-cifar", max_depth=2)).eval()
    assert zero_init_residuals(net) == len(net.blocks()) > 0
    x = net.stem(torch.randn(2, 1, 8, 8))  # the default space: 1-channel 8x8 (digits)
    for block in net.blocks():
        shortcut = x if block.shortcut is None else block.shortcut(x)
        assert torch.allclose(block(x), torch.relu(shortcut))
        x = block(x)
    short = ElasticResNet(get_space("resnet-cifar", skip_mode="short", max_depth=2))
    assert zero_init_residuals(short) == 0  # short-skip blocks keep their init
