"""Weight-sharing supernet: configs, active-vs-extracted equality, exact weight sets,
BN recalibration, channel sorting, checkpoints, training strategies, search and CLI."""

import json
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from skipswitch.checkpoint import load_model, read_metadata, save_model
from skipswitch.data import load_dataset
from skipswitch.errors import SkipswitchError
from skipswitch.graph import trace
from skipswitch.models import create_model_from_config
from skipswitch.regions import region_bytes, shared_bytes, unique_bytes
from skipswitch.supernet import (
    ElasticResNet, SubnetConfig, get_space, load_supernet, recalibrate_bn, save_supernet, sort_channels,
    weight_regions,
)
from skipswitch.supernet.search import (ParetoFile, decode, encode, genome_bounds, pareto_mask, search,
                                       write_search)
from skipswitch.supernet.train import SandwichLoss, compound_sample, restrict, train_supernet
from skipswitch.training import TrainConfig

TINY = {"base_width": 8, "max_depth": 2}


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    # The CI box has 2 shared cores: with 2 torch threads these tiny models run ~4x slower.
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def _warm_bn(net: ElasticResNet, steps: int = 3) -> None:
    """Move the shared BN running statistics away from their (0, 1) init so that
    comparisons exercise them."""
    net.train()
    with torch.no_grad():
        for i in range(steps):
            net.set_active(None)
            net(torch.randn(16, net.in_channels, *net.input_size) * (1 + i))
    net.eval()


@pytest.fixture(scope="module")
def cifar_nets():
    torch.manual_seed(0)
    nets = {}
    for mode in ("long", "short", "none"):
        net = ElasticResNet(get_space("resnet-cifar", skip_mode=mode))
        _warm_bn(net)
        nets[mode] = net
    return nets


@pytest.fixture(scope="module")
def ofa_small():
    # OFA-ResNet50 channel counts on 8x8 inputs (CIFAR stem): the real topology, cheap activations.
    torch.manual_seed(0)
    net = ElasticResNet(get_space("ofa-resnet50", num_classes=10, in_channels=1, input_size=8))
    _warm_bn(net, steps=1)
    return net


@pytest.fixture(scope="module")
def digits():
    return load_dataset("digits", seed=0)


# -- configs -----------------------------------------------------------------------------------
def test_config_round_trip_and_validation_names_field_and_allowed_values():
    space = get_space("resnet-cifar")
    config = space.sample(3)
    assert SubnetConfig.from_dict(json.loads(json.dumps(config.to_dict())), space) == config
    largest, smallest = space.largest(), space.smallest()
    assert largest.depths == (3, 3, 3) and smallest.depths == (1, 1, 1)
    bad = {"depths": [4, 1, 1], "expands": [[1.0] * 4, [1.0], [1.0]], "widths": [1.0, 1.0, 1.0]}
    with pytest.raises(SkipswitchError, match=r"depths\[0\]=4: allowed 1, 2, 3"):
        SubnetConfig.from_dict(bad, space)
    with pytest.raises(SkipswitchError, match=r"widths\[1\]=0.6: allowed 0.5, 0.75, 1"):
        space.config([1, 1, 1], 1.0, [1.0, 0.6, 1.0])
    with pytest.raises(SkipswitchError, match=r"expands\[2\]\[0\]=0.3: allowed 0.5, 0.75, 1"):
        space.config([1, 1, 1], [[1.0], [1.0], [0.3]], 1.0)
    with pytest.raises(SkipswitchError, match=r"expands\[1\]: 1 ratios for depths\[1\]=2"):
        space.config([1, 2, 1], [[1.0], [1.0], [1.0]], 1.0)
    with pytest.raises(SkipswitchError, match="missing \\['widths'\\]"):
        SubnetConfig.from_dict({"depths": [1, 1, 1], "expands": [[1], [1], [1]]}, space)
    with pytest.raises(SkipswitchError, match="non-numeric"):
        SubnetConfig.from_dict({"depths": [1, 1, 1], "expands": [["x"], [1], [1]], "widths": [1, 1, 1]})
    with pytest.raises(SkipswitchError, match="unknown search space 'resnet-imagenet'.*ofa-resnet50"):
        get_space("resnet-imagenet")
    ofa = get_space("ofa-resnet50")
    with pytest.raises(SkipswitchError, match=r"depths\[2\]=3: allowed 4, 5, 6"):
        ofa.config([2, 2, 3, 2], 0.25, 1.0)
    # a short-skip CIFAR space has no elastic expand (basic blocks add h unprojected)
    assert get_space("resnet-cifar", skip_mode="short").expand_choices == (1.0,)


def test_config_from_key_reads_back_key_and_table_names():
    space = get_space("resnet-cifar")
    for seed in range(20):
        config = space.sample(seed)
        assert SubnetConfig.from_key(config.key(), space) == config
        assert SubnetConfig.from_key(config.key().replace("|", ";"), space) == config  # as report tables print it
    with pytest.raises(SkipswitchError, match="invalid subnet name 'd1,1-w1'"):
        SubnetConfig.from_key("d1,1-w1")
    with pytest.raises(SkipswitchError, match="non-numeric"):
        SubnetConfig.from_key("d1,1,1-ex;1;1-w1,1,1")
    with pytest.raises(SkipswitchError, match=r"depths\[0\]=4: allowed 1, 2, 3"):
        SubnetConfig.from_key("d4,1,1-e1,1,1,1;1;1-w1,1,1", space)


def test_space_size_and_enumerate_agree():
    space = get_space("resnet-cifar", max_depth=2, expand_choices=(0.5, 1.0), width_choices=(1.0,))
    configs = list(space.enumerate())
    assert len(configs) == space.size() == len({c.key() for c in configs}) == (2 + 4) ** 3
    with pytest.raises(SkipswitchError, match="more than limit"):
        next(get_space("ofa-resnet50").enumerate())


def test_ofa_resnet50_standard_member_is_torchvision_resnet50():
    # depth [3,4,6,3], expand 0.25, width 1.0 is ResNet-50: torchvision's ResNet-50 has 25,557,032 parameters.
    space = get_space("ofa-resnet50")
    config = space.config([3, 4, 6, 3], 0.25, 1.0)
    with torch.device("meta"):
        model = space.build(config)
    assert sum(p.numel() for p in model.parameters()) == 25_557_032
    regions = weight_regions(space, space.largest())
    smallest = weight_regions(space, space.smallest())
    # the smallest subnet's weights are all inside the largest's
    assert shared_bytes(regions, smallest) == region_bytes(smallest)


# -- active vs extracted -------------------------------------------------------------------------
@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(seed=st.integers(0, 2**31 - 1), mode=st.sampled_from(["long", "short", "none"]), batch=st.integers(1, 3))
def test_active_equals_extracted_for_random_configs(cifar_nets, seed, mode, batch):
    net = cifar_nets[mode]
    config = net.space.sample(seed)
    x = torch.randn(batch, 1, 8, 8, generator=torch.Generator().manual_seed(seed))
    net.set_active(config)
    with torch.no_grad():
        active = net(x)
        extracted = net.extract(config).eval()(x)
    net.set_active(None)
    assert (active - extracted).abs().max().item() <= 1e-5


@settings(max_examples=3, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(seed=st.integers(0, 2**31 - 1))
def test_active_equals_extracted_ofa_resnet50(ofa_small, seed):
    config = ofa_small.space.sample(seed)
    x = torch.randn(2, 1, 8, 8, generator=torch.Generator().manual_seed(seed))
    ofa_small.set_active(config)
    with torch.no_grad():
        diff = (ofa_small(x) - ofa_small.extract(config).eval()(x)).abs().max().item()
    ofa_small.set_active(None)
    assert diff <= 1e-5


def test_largest_active_equals_plain_forward_and_uses_shared_weights(cifar_nets):
    net = cifar_nets["long"]
    x = torch.randn(2, 1, 8, 8)
    with torch.no_grad():
        plain = net(x)
        net.set_active(net.space.largest())
        active = net(x)
    assert (plain - active).abs().max().item() <= 1e-5
    # no copy: a gradient through a small subnet lands in the supernet's own tensors
    config = net.space.smallest()
    net.set_active(config)
    net.zero_grad()
    net(x).sum().backward()
    grad = net.stages[0][0].conv1.weight.grad
    mid = net.space.block_channels(config)[0][0][0]
    assert grad is not None and grad[:mid].abs().sum() > 0 and grad[mid:].abs().sum() == 0
    net.set_active(None)
    net.zero_grad()


def test_extracted_names_and_regions_map_back_to_supernet_tensors(cifar_nets):
    net = cifar_nets["long"]
    config = net.space.config([2, 1, 3], [[0.5, 1.0], [0.75], [1.0, 0.5, 0.75]], [0.75, 0.5, 1.0])
    sub = net.extract(config)
    regions = net.weight_regions(config)
    own = net.state_dict()
    sub_state = {k: v for k, v in sub.state_dict().items() if not k.endswith("num_batches_tracked")}
    assert set(regions) == set(sub_state)
    for name, tensor in sub_state.items():
        box = regions[name]
        assert tuple(stop - start for start, stop in box) == tuple(tensor.shape)
        assert torch.equal(own[name][tuple(slice(a, b) for a, b in box)], tensor)
    # the graph IR of the extracted subnet names layers by these same module paths
    targets = {layer.target for layer in trace(sub).layers if layer.op == "conv"}
    assert targets and all(f"{t}.weight" in own for t in targets)
    assert "stages.0.1.conv1" in targets and "stages.1.1.conv1" not in targets


# -- exact weight sets ---------------------------------------------------------------------------
def _masks(net: ElasticResNet, regions) -> dict[str, torch.Tensor]:
    own = net.state_dict()
    masks = {}
    for name, box in regions.items():
        m = torch.zeros(own[name].shape, dtype=torch.bool)
        m[tuple(slice(a, b) for a, b in box)] = True
        masks[name] = m
    return masks


@settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(a=st.integers(0, 10**6), b=st.integers(0, 10**6), bpe=st.sampled_from([1, 2, 4]))
def test_shared_and_unique_bytes_equal_brute_force_mask_count(cifar_nets, a, b, bpe):
    net = cifar_nets["none"]
    ca, cb = net.space.sample(a), net.space.sample(b)
    ra, rb = net.weight_regions(ca), net.weight_regions(cb)
    ma, mb = _masks(net, ra), _masks(net, rb)
    names = set(ma) | set(mb)

    def count(fn):
        total = 0
        for n in names:
            x = ma.get(n, torch.zeros(1, dtype=torch.bool))
            y = mb.get(n, torch.zeros(1, dtype=torch.bool))
            if n not in ma:
                x = torch.zeros_like(y)
            if n not in mb:
                y = torch.zeros_like(x)
            total += int(fn(x, y).sum())
        return total * bpe

    assert shared_bytes(ra, rb, bpe) == net.shared_bytes(ca, cb, bpe) == count(lambda x, y: x & y)
    assert unique_bytes(ra, rb, bpe) == (count(lambda x, y: x & ~y), count(lambda x, y: y & ~x))
    assert net.weight_bytes(ca, bpe) == count(lambda x, y: x)


# -- BatchNorm recalibration and channel sorting -------------------------------------------------
def test_recalibrated_bn_is_exact_batch_statistics_and_used_by_active_and_extracted(cifar_nets):
    net = cifar_nets["long"]
    config = net.space.sample(11)
    batches = [torch.randn(32, 1, 8, 8) for _ in range(3)]
    stats = recalibrate_bn(net, config, batches)
    stem = net.space.stem_channels(config)
    with torch.no_grad():
        feats = torch.cat([torch.nn.functional.conv2d(x, net.stem[0].weight[:stem], padding=1) for x in batches])
    expected = feats.mean(dim=(0, 2, 3))
    assert torch.allclose(stats["stem.1.running_mean"], expected, atol=1e-5)
    net.eval()
    net.set_active(config)
    x = torch.randn(4, 1, 8, 8)
    with torch.no_grad():
        active = net(x)
        sub = net.extract(config).eval()
        assert torch.equal(sub.stem[1].running_mean, stats["stem.1.running_mean"])
        assert (active - sub(x)).abs().max().item() <= 1e-5
    net.set_active(None)
    net.bn_stats.clear()
    net.bn_configs.clear()


def test_sort_channels_keeps_largest_function_orders_importance_and_permutes_momentum():
    torch.manual_seed(1)
    net = ElasticResNet(get_space("ofa-resnet50", num_classes=10, in_channels=1, input_size=8, skip_mode="long"))
    _warm_bn(net, steps=1)
    opt = torch.optim.SGD(net.parameters(), lr=1e-3, momentum=0.9)
    net.train()
    torch.nn.functional.cross_entropy(net(torch.randn(4, 1, 8, 8)), torch.tensor([0, 1, 2, 3])).backward()
    opt.step()
    net.eval()
    x = torch.randn(2, 1, 8, 8)
    block = net.stages[1][0]
    conv1_before = block.conv1.weight.detach().clone()
    buf_before = opt.state[block.conv1.weight]["momentum_buffer"].clone()
    with torch.no_grad():
        before = net(x)
    assert sort_channels(net, opt) == len(net.blocks())
    with torch.no_grad():
        after = net(x)
    assert (before - after).abs().max().item() <= 1e-4 * before.abs().max().item()
    for b in net.blocks():
        importance = b.conv3.weight.abs().sum(dim=(0, 2, 3))
        assert torch.all(importance[:-1] >= importance[1:])
    # the permutation moved the momentum buffer with its parameter rows
    rows = [int(torch.nonzero((conv1_before == r).all(dim=(1, 2, 3)))[0]) for r in block.conv1.weight.detach()]
    assert torch.equal(opt.state[block.conv1.weight]["momentum_buffer"], buf_before[rows])


# -- checkpoints ---------------------------------------------------------------------------------
def test_supernet_checkpoint_round_trips_weights_bn_and_subnet(tmp_path, cifar_nets):
    net = cifar_nets["short"]
    config = net.space.sample(5)
    recalibrate_bn(net, config, [torch.randn(16, 1, 8, 8)])
    path = tmp_path / "supernet.safetensors"
    save_supernet(path, net, {"dataset": {"name": "digits"}})
    loaded, meta = load_supernet(path)
    assert meta["space"]["name"] == "resnet-cifar" and meta["skip_mode"] == "short"
    assert meta["package_version"] and meta["bn_configs"] == [config.to_dict()]
    x = torch.randn(3, 1, 8, 8)
    loaded.eval()
    for n in (net, loaded):
        n.set_active(config)
    with torch.no_grad():
        assert torch.equal(net(x), loaded(x))
    for n in (net, loaded):
        n.set_active(None)
    net.bn_stats.clear()
    net.bn_configs.clear()
    # an extracted subnet is a plain model checkpoint that rebuilds from its own config
    sub = loaded.extract(config).eval()
    save_model(tmp_path / "sub.safetensors", sub, {})
    again, sub_meta = load_model(tmp_path / "sub.safetensors")
    assert sub_meta["model"]["arch"]["block"] == "BasicBlock"
    with torch.no_grad():
        assert torch.equal(again.eval()(x), sub(x))
    assert type(create_model_from_config(sub.config)) is type(sub)


def test_corrupted_or_mismatched_supernet_checkpoints_are_one_line_errors(tmp_path, cifar_nets):
    net = cifar_nets["long"]
    path = tmp_path / "s.safetensors"
    save_supernet(path, net, {})
    broken = tmp_path / "broken.safetensors"
    broken.write_bytes(path.read_bytes()[:200])
    with pytest.raises(SkipswitchError, match="corrupted"):
        load_supernet(broken)
    # metadata claiming another space shape: the weights no longer fit
    from skipswitch.checkpoint import load_tensors, save_tensors

    tensors, meta = load_tensors(path)
    meta["space"]["args"]["base_width"] = 8
    save_tensors(tmp_path / "mismatch.safetensors", tensors, meta)
    with pytest.raises(SkipswitchError, match="does not match its declared space"):
        load_supernet(tmp_path / "mismatch.safetensors")
    save_model(tmp_path / "model.safetensors", net.extract(net.space.smallest()), {})
    with pytest.raises(SkipswitchError, match="not a supernet checkpoint"):
        load_supernet(tmp_path / "model.safetensors")


# -- training strategies -------------------------------------------------------------------------
def test_sampling_strategies_and_sandwich_loss_reach_shared_weights():
    space = get_space("resnet-cifar", **TINY)
    gen = torch.Generator().manual_seed(0)
    for _ in range(20):
        c = compound_sample(space, gen)
        for s, d in enumerate(c.depths):
            k = space.depth_choices[s].index(d)
            assert set(c.expands[s]) == {space.expand_choices[round(k * 2 / 1)]}
    r = restrict(space, space.smallest(), ("depth",))
    assert r.depths == (1, 1, 1) and r.widths == space.largest().widths
    assert all(e == max(space.expand_choices) for stage in r.expands for e in stage)
    progressive = SandwichLoss(space, strategy="progressive", epochs=4)
    assert progressive.subnets() == []  # phase 0 trains the full network only
    progressive.set_epoch(3)
    assert progressive.phase == ("depth", "expand", "width")
    from skipswitch.supernet.train import SupernetEpochHook

    hook = SupernetEpochHook(SandwichLoss(space, strategy="progressive", epochs=8), sort_every=1)
    net = ElasticResNet(space)
    sorted_at = [e for e in range(8) if "sorted_blocks" in (hook(e, net)[1] or {})]
    assert sorted_at == [4]  # phases: full 0-1, depth 2-3, +expand 4-5, +width 6-7
    with pytest.raises(SkipswitchError, match="unknown supernet training strategy 'random'"):
        SandwichLoss(space, strategy="random")
    net = ElasticResNet(space)
    loss_fn = SandwichLoss(space, n_random=1)
    loss, logits = loss_fn(net, torch.randn(8, 1, 8, 8), torch.randint(0, 10, (8,)))
    loss.backward()
    assert net.active is None and logits.shape == (8, 10) and torch.isfinite(loss)
    assert net.stem[0].weight.grad.abs().sum() > 0


def test_train_search_and_cli_end_to_end(tmp_path, digits, capsys):
    from skipswitch.cli import main

    def cli(*argv):
        old = sys.argv
        sys.argv = ["skipswitch", *map(str, argv)]
        try:
            main()
            code = 0
        except SystemExit as exc:
            code = exc.code
        finally:
            sys.argv = old
        return code, capsys.readouterr()

    run = tmp_path / "run"
    code, out = cli("supernet", "train", "--dataset", "digits", "--epochs", "1", "--batch-size", "128",
                    "--base-width", "4", "--max-depth", "2", "--n-random", "1", "--out", run, "-q")
    assert code == 0, out.err
    ckpt = run / "supernet.safetensors"
    meta = read_metadata(ckpt)
    assert meta["kind"] == "supernet" and len(meta["bn_configs"]) == 2 and meta["dataset"]["name"] == "digits"
    results = json.loads((run / "results.json").read_text())
    assert results["status"] == "ok" and results["strategy"] == "sandwich"
    code, out = cli("supernet", "search", ckpt, "--population", "4", "--generations", "2", "--out", tmp_path / "s")
    assert code == 0, out.err
    pareto = json.loads((tmp_path / "s" / "pareto.json").read_text())
    objectives = np.array([[1 - p["val_acc"], p["cost"]] for p in pareto["pareto"]])
    assert pareto_mask(objectives).all() and pareto["cost_unit"] == "MMACs"
    assert (tmp_path / "s" / "pareto.png").read_bytes()[:4] == b"\x89PNG"
    searched, _ = load_supernet(tmp_path / "s" / "supernet.safetensors")
    assert {c.key() for c in searched.bn_configs.values()} == {p["key"] for p in pareto["pareto"]}
    code, out = cli("supernet", "search", ckpt, "--cost", "flops")
    assert code == 2 and out.err.strip() == "error: unknown search cost 'flops'; choose one of cpu-latency, macs, params"
    code, out = cli("supernet", "train", "--space", "nope", "--epochs", "1", "--out", tmp_path / "x")
    assert code == 2 and "unknown search space 'nope'" in out.err


def test_search_genome_round_trip_and_pareto_mask(digits):
    space = get_space("ofa-resnet50")
    for seed in range(5):
        config = space.sample(seed)
        genes = encode(space, config)
        assert np.all(genes <= genome_bounds(space)) and decode(space, genes) == config
    points = np.array([[0.1, 5], [0.2, 3], [0.15, 6], [0.3, 3], [0.05, 9]])
    assert pareto_mask(points).tolist() == [True, True, False, False, True]


def test_search_on_tiny_supernet_writes_consistent_pareto(tmp_path, digits):
    torch.manual_seed(0)
    net = ElasticResNet(get_space("resnet-cifar", num_classes=10, in_channels=1, input_size=8, **TINY))
    result = search(net, digits, cost="params", population=4, generations=2, calibration=1)
    keys = {r["key"] for r in result["evaluated"]}
    assert net.space.largest().key() in keys and net.space.smallest().key() in keys
    for p in result["pareto"]:
        config = SubnetConfig.from_dict(p["config"], net.space)
        graph_params = trace(net.extract(config)).to_dict()["params"]
        assert p["cost"] == pytest.approx(graph_params / 1e3)
        assert p["weight_bytes"] == net.weight_bytes(config)
    assert set(net.bn_stats) == {p["key"] for p in result["pareto"]}
    json_path, png_path = write_search(result, tmp_path)
    assert json.loads(json_path.read_text())["cost"] == "params" and png_path.stat().st_size > 1000
    assert ParetoFile.load(json_path).model_dump() == result  # the file round-trips through its model
    for field, value, found in (("kind", "skipswitch.workload", "kind 'skipswitch.workload' version 1"),
                                ("version", 2, "kind 'skipswitch.pareto' version 2")):
        (tmp_path / "other.json").write_text(json.dumps({**result, field: value}))
        with pytest.raises(SkipswitchError) as err:
            ParetoFile.load(tmp_path / "other.json")
        assert str(err.value) == (f"{tmp_path / 'other.json'} is {found}; "
                                  "expected kind 'skipswitch.pareto' version 1")


def test_supernet_training_resumes_to_the_same_weights(tmp_path, digits):
    """Sampling and channel sorting depend only on (seed, epoch), and sorting permutes SGD
    momentum with the weights, so an interrupted run resumes exactly."""
    from skipswitch.training import Trainer

    config = TrainConfig(epochs=2, batch_size=256, lr=0.05)
    space = get_space("resnet-cifar", num_classes=10, in_channels=1, input_size=8, base_width=4, max_depth=2)

    def trainer(run_dir):
        torch.manual_seed(0)
        net = ElasticResNet(space)
        loss = SandwichLoss(space, n_random=1, epochs=config.epochs)
        from skipswitch.supernet.train import SupernetEpochHook

        hook = SupernetEpochHook(loss, sort_every=1)
        t = Trainer(net, digits, config, run_dir, loss_fn=loss, epoch_hook=hook, quiet=True)
        hook.optimizer = t.optimizer
        return t

    straight = trainer(tmp_path / "a").fit()
    assert straight.history[1]["event"]["sorted_blocks"] == 6
    first = trainer(tmp_path / "b")
    original = first._train_epoch

    def crash_on_second(epoch, progress):
        if epoch == 1:
            raise KeyboardInterrupt
        return original(epoch, progress)

    first._train_epoch = crash_on_second
    with pytest.raises(KeyboardInterrupt):
        first.fit()
    resumed = trainer(tmp_path / "b").fit(resume=True)
    for k, v in straight.model.state_dict().items():
        assert torch.equal(v, resumed.model.state_dict()[k]), k


def test_a_supernet_refuses_a_per_block_skip_mode_change():
    from skipswitch.supernet import supernet_for

    net = supernet_for("resnet-cifar", skip_mode="none", num_classes=10, in_channels=1, input_size=8)
    with pytest.raises(SkipswitchError, match=r"skip mode is fixed \(none\)"):
        net.set_skip_mode(3, "long")
