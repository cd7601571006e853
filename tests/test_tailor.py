import json

import pytest
import torch

from skipswitch.checkpoint import load_model
from skipswitch.errors import SkipswitchError
from skipswitch.graph import trace
from skipswitch.models import create_model
from skipswitch.tailor import AlterationSchedule, DistillationLoss, run_tailor
from skipswitch.training import TrainConfig


def test_schedule_alters_from_input_side_every_k_epochs():
    model = create_model("resnet20", num_classes=10, in_channels=1, input_size=8)
    schedule = AlterationSchedule(model, "remove", every=3, order="input")
    # Reference: skip = epoch // 3 - 1, i.e. alteration i at epoch 3(i + 1).
    assert [(a.epoch, a.block) for a in schedule.alterations] == [(3 * (i + 1), i) for i in range(9)]
    output_first = AlterationSchedule(model, "shorten", every=2, order="output")
    assert [a.block for a in output_first.alterations] == list(range(8, -1, -1))
    assert {a.target for a in output_first.alterations} == {"short"}
    with pytest.raises(SkipswitchError, match="epochs=27 is too few"):
        schedule.check_epochs(27)
    schedule.check_epochs(28)


def test_schedule_hook_changes_exactly_one_block_at_its_epoch():
    model = create_model("resnet8", num_classes=10, in_channels=1, input_size=8)
    schedule = AlterationSchedule(model, "shorten", every=2)
    seen = []
    for epoch in range(7):
        _, event = schedule(epoch, model)
        seen.append(list(model.skip_modes))
        assert (event is not None) == (epoch in (2, 4, 6))
    assert seen[1] == ["long"] * 3 and seen[2] == ["short", "long", "long"]
    assert seen[6] == ["short"] * 3
    assert not any(s.is_long for s in trace(model).skips)


def test_only_long_blocks_are_scheduled():
    model = create_model("resnet8", num_classes=10, in_channels=1, input_size=8, skip_mode=["none", "long", "short"])
    assert [a.block for a in AlterationSchedule(model, "remove").alterations] == [1]


def test_kd_losses_match_their_definitions():
    teacher = create_model("resnet8", num_classes=10, in_channels=1, input_size=8).eval()
    student = create_model("resnet8", num_classes=10, in_channels=1, input_size=8)
    x, y = torch.randn(4, 1, 8, 8), torch.randint(0, 10, (4,))
    with torch.no_grad():
        t = teacher(x)
    mse = DistillationLoss(teacher, "mse", alpha=0.35)
    loss, s = mse(student, x, y)
    expected = 0.35 * ((s - t) ** 2).mean() + 0.65 * torch.nn.functional.cross_entropy(s, y)
    assert torch.allclose(loss, expected, atol=1e-6)
    kl = DistillationLoss(teacher, "kl", alpha=0.5, temperature=2.0)
    loss, s = kl(student, x, y)
    p_t = torch.softmax(t / 2, 1)
    kl_value = (p_t * (p_t.log() - torch.log_softmax(s / 2, 1))).sum(1).mean() * 4
    assert torch.allclose(loss, 0.5 * kl_value + 0.5 * torch.nn.functional.cross_entropy(s, y), atol=1e-5)
    with pytest.raises(SkipswitchError, match="alpha"):
        DistillationLoss(teacher, alpha=1.5)



@pytest.mark.parametrize("method,target", [("remove", "none"), ("shorten", "short")])
def test_tailor_run_keeps_teacher_frozen_and_alters_every_skip(teacher_ckpt, tmp_path, method, target):
    teacher, _ = load_model(teacher_ckpt)
    before = {k: v.clone() for k, v in teacher.state_dict().items()}
    config = TrainConfig(epochs=4, batch_size=128, lr=0.02)
    result = run_tailor(teacher_ckpt, method, config=config, out_dir=tmp_path, every=1, quiet=True)
    assert result.model.skip_modes == [target] * 3
    assert result.results["teacher_unchanged"] is True
    # The teacher on disk is untouched too, and the in-run teacher kept BN buffers (checked inside run_tailor).
    reloaded, _ = load_model(teacher_ckpt)
    for k, v in reloaded.state_dict().items():
        assert torch.equal(v, before[k]), k
    results = json.loads((tmp_path / "results.json").read_text())
    events = [h["event"] for h in results["history"] if "event" in h]
    assert [(e["epoch"], e["block"], e["to"]) for e in events] == [(2, 0, target), (3, 1, target), (4, 2, target)]
    assert results["teacher_test_acc"] > 0.5 and results["test_acc"] is not None
    assert results["teacher_logits_cached"] is True  # digits: in memory, no augmentation, CPU
    student, meta = load_model(tmp_path / "model.safetensors")
    assert student.skip_modes == [target] * 3 and meta["method"] == method


def test_frozen_teacher_bn_buffers_do_not_drift_during_kd(teacher_ckpt, digits):
    teacher, _ = load_model(teacher_ckpt)
    loss = DistillationLoss(teacher)
    student = create_model("resnet8", num_classes=10, in_channels=1, input_size=8)
    before = {k: v.clone() for k, v in teacher.state_dict().items()}
    x, y = digits.train.images[:64], digits.train.labels[:64]
    student.train()
    for _ in range(3):
        value, _ = loss(student, x, y)
        value.backward()
    assert not teacher.training
    for k, v in teacher.state_dict().items():
        assert torch.equal(v, before[k]), k


# The stabilisers (warm-up, clipping, BN recalibration, the Remover's fade) must resume exactly too.
@pytest.mark.parametrize("method,settings", [
    ("shorten", {}), ("shorten", {"warmup_steps": 5, "clip": 1.0, "recalibrate_batches": 2, "kd": "kl"}),
    ("remove", {"warmup_steps": 5, "recalibrate_batches": 2, "kd": "kl", "fade_steps": 3}),
])
def test_tailor_resume_across_an_alteration_gives_the_same_student(teacher_ckpt, tmp_path, method, settings):
    config = TrainConfig(epochs=4, batch_size=128, lr=0.02)
    straight = run_tailor(teacher_ckpt, method, config=config, out_dir=tmp_path / "a", every=1, quiet=True,
                          **settings)
    from skipswitch.training import trainer as trainer_module

    original = trainer_module.Trainer._train_epoch

    def crash_at_epoch_3(self, epoch, progress):
        if epoch == 2:
            raise KeyboardInterrupt
        return original(self, epoch, progress)

    trainer_module.Trainer._train_epoch = crash_at_epoch_3
    try:
        with pytest.raises(KeyboardInterrupt):
            run_tailor(teacher_ckpt, method, config=config, out_dir=tmp_path / "b", every=1, quiet=True, **settings)
    finally:
        trainer_module.Trainer._train_epoch = original
    resumed = run_tailor(teacher_ckpt, method, config=config, out_dir=tmp_path / "b", every=1, quiet=True,
                         resume=True, **settings)
    assert resumed.model.skip_modes == straight.model.skip_modes
    for k, v in straight.model.state_dict().items():
        assert torch.equal(v, resumed.model.state_dict()[k]), k


def test_teacher_of_another_architecture_is_rejected(teacher_ckpt, tmp_path):
    with pytest.raises(SkipswitchError, match="is a resnet8 but the student was requested as resnet20"):
        run_tailor(teacher_ckpt, "remove", config=TrainConfig(epochs=4), out_dir=tmp_path, model_name="resnet20")
    with pytest.raises(SkipswitchError, match="unknown Tailor method 'prune'"):
        run_tailor(teacher_ckpt, "prune", config=TrainConfig(epochs=4), out_dir=tmp_path)
    with pytest.raises(SkipswitchError, match="expects 1x"):
        run_tailor(teacher_ckpt, "remove", config=TrainConfig(epochs=4), out_dir=tmp_path, dataset_name="mnist5k")


def test_pace_warning_names_the_recommended_rate(teacher_ckpt, tmp_path, capsys):
    model = create_model("resnet8", num_classes=10, in_channels=1, input_size=8)
    # 3 skips every 3 epochs in 10: the last alteration at epoch 10, past two thirds
    advice = AlterationSchedule(model, "remove", every=3).pace_advice(10)
    assert advice.startswith("3 skips altered every 3 epoch(s) leave 1 of 10 epochs") and "--every 2 " in advice
    assert AlterationSchedule(model, "remove", every=2).pace_advice(10) is None
    assert "--every 1 with --epochs >= 5" in AlterationSchedule(model, "remove", every=1).pace_advice(4)
    run_tailor(teacher_ckpt, "remove", config=TrainConfig(epochs=4, batch_size=128, lr=0.02), out_dir=tmp_path,
               every=1, quiet=True)
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("warning: 3 skips altered every 1 epoch(s)")


def test_alteration_aware_sgd_warms_up_after_an_alteration_and_clips():
    from skipswitch.tailor.stabilise import AlterationAwareSGD

    p = torch.nn.Parameter(torch.zeros(1))
    opt = AlterationAwareSGD([p], lr=1.0, clip=1.0, warmup_steps=4)
    moves = []
    for warm in (True, False):
        opt.begin_epoch(warm)
        for _ in range(5):
            before = p.item()
            p.grad = torch.full((1,), 100.0)  # clipped to norm 1
            opt.step()
            moves.append(round(before - p.item(), 6))
    assert moves == [0.25, 0.5, 0.75, 1.0, 1.0] + [1.0] * 5
    assert opt.param_groups[0]["lr"] == 1.0  # the schedule's rate is restored after each step


def test_bn_statistics_are_recomputed_only_after_an_alteration(teacher_ckpt, digits):
    from skipswitch.tailor.stabilise import AlterationAwareSGD, StabilisedSchedule

    model, _ = load_model(teacher_ckpt)
    opt = AlterationAwareSGD(model.parameters(), lr=0.1)
    hook = StabilisedSchedule(AlterationSchedule(model, "shorten", every=1), opt, digits.train, batch_size=64,
                              seed=0, recalibrate_batches=3)
    last_bn = [m for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d)][-1]
    before = last_bn.running_var.clone()
    hook(0, model)  # no alteration at epoch 0
    assert torch.equal(last_bn.running_var, before)
    hook(1, model)  # block 0 shortened: downstream statistics recomputed over 3 batches
    assert not torch.equal(last_bn.running_var, before) and int(last_bn.num_batches_tracked) == 3


def test_fade_scales_the_next_removed_skip_to_zero_before_its_removal(digits):
    """With fade_steps the skip removed at epoch e is scaled 1 -> 0 over epoch e - 1's first steps,
    so the removal leaves the function as it was; checkpoints keep their keys while a skip fades."""
    import copy

    from skipswitch.tailor.stabilise import AlterationAwareSGD, StabilisedSchedule

    torch.manual_seed(0)
    model = create_model("resnet8", num_classes=10, in_channels=1, input_size=8).eval()
    keys = set(model.state_dict())
    opt = AlterationAwareSGD(model.parameters(), lr=0.1)
    hook = StabilisedSchedule(AlterationSchedule(model, "remove", every=1), opt, digits.train, batch_size=64,
                              seed=0, fade_steps=4)
    block, x = model.blocks()[0], torch.randn(2, 16, 8, 8)
    long_out = block(x)
    removed = copy.deepcopy(block)
    removed.set_skip_mode("none")
    hook(0, model)  # epoch 0: nothing removed, block 0 starts to fade
    assert model.skip_modes == ["long"] * 3 and set(model.state_dict()) == keys
    torch.testing.assert_close(block(x), long_out)  # step 0: scale 1
    opt._epoch_step = 2
    half = torch.relu(removed.bn2(removed.conv2(torch.relu(removed.bn1(removed.conv1(x))))) + 0.5 * x)
    torch.testing.assert_close(block(x), half)
    opt._epoch_step = 4
    faded = block(x)
    torch.testing.assert_close(faded, removed(x))
    hook(1, model)  # block 0 removed: the same function; block 1 starts to fade
    assert model.skip_modes == ["none", "long", "long"] and block.shortcut is None
    torch.testing.assert_close(block(x), faded)
    assert isinstance(model.blocks()[1].shortcut, torch.nn.Sequential)  # its projection carries the fade
    shorten = StabilisedSchedule(AlterationSchedule(model, "shorten", every=1), opt, digits.train, batch_size=64,
                                 seed=0, fade_steps=4)
    assert shorten.fade_steps == 0  # shortening keeps a skip: nothing to fade
    long_fade = StabilisedSchedule(AlterationSchedule(model, "remove", every=1), opt, digits.train, batch_size=512,
                                   seed=0, fade_steps=20)
    assert long_fade.fade_steps == -(-len(digits.train) // 512)  # capped at one epoch: at 0 when removed


def test_cached_teacher_logits_give_the_uncached_loss(teacher_ckpt, digits):
    """The teacher's logits looked up by image content equal its forward on the batch (fp32, 1e-5),
    in a shuffled, channels-last batch; a batch holding an image the cache has not seen is computed."""
    from skipswitch.tailor.kd import TeacherLogits
    from skipswitch.training.device import Runtime

    teacher, _ = load_model(teacher_ckpt)
    student, _ = load_model(teacher_ckpt)
    runtime = Runtime(TrainConfig(device="cpu", channels_last=True))
    plain = DistillationLoss(teacher, kind="kl", alpha=0.5, temperature=4.0)
    cached = DistillationLoss(teacher, kind="kl", alpha=0.5, temperature=4.0)
    cached.cache = TeacherLogits(teacher, digits.train.images, runtime)
    idx = torch.randperm(len(digits.train), generator=torch.Generator().manual_seed(0))[:32]
    x, y = runtime.batch(digits.train.images[idx], digits.train.labels[idx])
    want, _ = plain(student, x, y)
    got, _ = cached(student, x, y)
    assert cached.cache_hits == 1 and torch.allclose(got, want, atol=1e-5, rtol=0)
    unseen = x.clone()
    unseen[0] += 0.5
    assert cached.cache.lookup(unseen) is None
    got, _ = cached(student, unseen, y)
    want, _ = plain(student, unseen, y)
    assert cached.cache_hits == 1 and torch.equal(got, want)
