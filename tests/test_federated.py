"""Federated weight-shared supernet training: aggregation, partitions, profiles, faults, resume, CLI."""

import json

import numpy as np
import pytest
import torch

from skipswitch.errors import SkipswitchError
from skipswitch.federated.aggregate import SliceUpdate, aggregate_slices, slice_state
from skipswitch.federated.config import fed_config
from skipswitch.federated.partition import label_histogram, partition_indices
from skipswitch.federated.profiles import (ClientProfile, ProfileSet, assign_subnet, cost_of, fits_profile, ladder,
                                          load_profiles)
from skipswitch.federated.task import TASK_KEY, ClientTask

pytest.importorskip("flwr")

# A small supernet keeps every federated test to seconds: base width 8, at most 2 blocks per stage.
SMALL = {"space_args": {"base_width": 8, "max_depth": 2}, "batch_size": 64, "eval_every": 0}


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    """Local recomputation of client updates is tiny: one torch thread avoids oversubscribing
    a busy machine (and matches the in-process grid, which trains clients with one thread each)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _space():
    from skipswitch.supernet import get_space

    return get_space("resnet-cifar", num_classes=10, in_channels=1, input_size=8, base_width=8, max_depth=2)


# -- aggregation ---------------------------------------------------------------------------------
def _hand_example():
    state = {"w": torch.full((4,), 10.0), "m": torch.full((2, 2), 10.0), "untouched": torch.arange(3.0)}
    a = SliceUpdate({"w": torch.tensor([1.0, 2.0]), "m": torch.tensor([[1.0, 2.0]])},
                    {"w": ((0, 2),), "m": ((0, 1), (0, 2))}, num_examples=1, client="a")
    b = SliceUpdate({"w": torch.tensor([3.0, 4.0, 5.0, 6.0]), "m": torch.tensor([[3.0], [4.0]])},
                    {"w": ((0, 4),), "m": ((0, 2), (0, 1))}, num_examples=3, largest=True, client="b")
    return state, [a, b]


def test_overlapping_slices_match_hand_computed_example():
    state, updates = _hand_example()
    count, holders = aggregate_slices(state, updates, weighting="count")
    # w: elements 0,1 held by a and b (plain mean), 2,3 only by b.
    assert torch.allclose(count["w"], torch.tensor([2.0, 3.0, 5.0, 6.0]), atol=1e-12)
    # m: (0,0) by both -> (1+3)/2; (0,1) only a -> 2; (1,0) only b -> 4; (1,1) by nobody -> keeps 10.
    assert torch.allclose(count["m"], torch.tensor([[2.0, 2.0], [4.0, 10.0]]), atol=1e-12)
    assert torch.equal(count["untouched"], state["untouched"])
    assert holders["m"].tolist() == [[2, 1], [1, 0]]

    samples, _ = aggregate_slices(state, updates, weighting="samples")  # a: 1 example, b: 3
    assert torch.allclose(samples["w"], torch.tensor([(1 + 9) / 4, (2 + 12) / 4, 5.0, 6.0]), atol=1e-12)
    assert torch.allclose(samples["m"], torch.tensor([[(1 + 9) / 4, 2.0], [4.0, 10.0]]), atol=1e-12)

    # SuperFedNAS: b trained the largest subnet and gets share 0.75 where both hold an element.
    beta, _ = aggregate_slices(state, updates, weighting="count", largest_weight=0.75)
    assert torch.allclose(beta["w"], torch.tensor([0.75 * 3 + 0.25 * 1, 0.75 * 4 + 0.25 * 2, 5.0, 6.0]), atol=1e-12)
    assert torch.allclose(beta["m"], torch.tensor([[0.75 * 3 + 0.25 * 1, 2.0], [4.0, 10.0]]), atol=1e-12)
    assert torch.equal(state["w"], torch.full((4,), 10.0)), "the input state must not be modified"


def test_bad_updates_are_rejected():
    state, (a, _) = _hand_example()
    a.tensors["w"] = torch.zeros(3)
    with pytest.raises(SkipswitchError, match="w has shape"):
        aggregate_slices(state, [a])
    state, (a, _) = _hand_example()
    a.tensors["w"] = torch.tensor([1.0, float("nan")])
    with pytest.raises(SkipswitchError, match="non-finite"):
        aggregate_slices(state, [a])


def test_sent_slices_equal_the_extracted_subnet():
    from skipswitch.supernet import ElasticResNet

    torch.manual_seed(0)
    supernet = ElasticResNet(_space())
    config = supernet.space.smallest()
    sent = slice_state(supernet.state_dict(), supernet.weight_regions(config))
    extracted = {k: v for k, v in supernet.extract(config).state_dict().items() if not k.endswith("num_batches_tracked")}
    assert sent.keys() == extracted.keys()
    for name in sent:
        assert torch.equal(sent[name], extracted[name]), name


# -- partitions and profiles ----------------------------------------------------------------------
def test_partitions_are_seeded_disjoint_and_skewed():
    labels = np.repeat(np.arange(10), 100)
    for scheme in ("iid", "dirichlet"):
        parts = partition_indices(labels, 10, scheme, alpha=0.5, seed=3, min_size=8)
        everything = np.concatenate(parts)
        assert len(everything) == len(labels) and len(np.unique(everything)) == len(labels)
        again = partition_indices(labels, 10, scheme, alpha=0.5, seed=3, min_size=8)
        assert all(np.array_equal(p, q) for p, q in zip(parts, again))
        assert min(len(p) for p in parts) >= 8
    other = partition_indices(labels, 10, "dirichlet", alpha=0.5, seed=4)
    assert not all(np.array_equal(p, q) for p, q in zip(parts, other))

    def mean_max_share(parts):
        hist = label_histogram(labels, parts, 10)
        return float((hist.max(1) / hist.sum(1)).mean())

    iid = mean_max_share(partition_indices(labels, 10, "iid", seed=0))
    skewed = mean_max_share(partition_indices(labels, 10, "dirichlet", alpha=0.1, seed=0))
    assert iid < 0.2 < skewed  # iid clients see ~10% of each class; alpha=0.1 clients are dominated by one


def test_profiles_pick_the_largest_subnet_that_fits(tmp_path):
    space = _space()
    chain = ladder(space)
    costs = [cost_of(space, c, 32) for c in chain]
    assert chain[0] == space.smallest() and chain[-1] == space.largest()
    assert all(a.macs <= b.macs and a.memory_bytes <= b.memory_bytes for a, b in zip(costs, costs[1:]))
    middle = costs[len(chain) // 2]
    profile = ClientProfile(name="mid", memory_mb=middle.memory_mb * 1.0001, mmacs=middle.mmacs * 1.0001)
    assert assign_subnet(space, profile, 32) == chain[len(chain) // 2]
    assert assign_subnet(space, ClientProfile(name="big", memory_mb=1e6, mmacs=1e6), 32) == space.largest()
    # Compute-bound: plenty of memory but the MACs of the smallest subnet only.
    tight = ClientProfile(name="mcu", memory_mb=1e6, mmacs=costs[0].mmacs * 1.0001)
    assert assign_subnet(space, tight, 32) == space.smallest()
    with pytest.raises(SkipswitchError, match="fits no subnet"):
        assign_subnet(space, ClientProfile(name="tiny", memory_mb=1e-6, mmacs=1e6), 32)

    path = tmp_path / "profiles.toml"
    path.write_text('assignment = ["a", "b", "a"]\n[[profiles]]\nname = "a"\nmemory_mb = 1\nmmacs = 1\n'
                    '[[profiles]]\nname = "b"\nmemory_mb = 2\nmmacs = 2\n')
    assert [p.name for p in load_profiles(path).for_clients(3)] == ["a", "b", "a"]
    with pytest.raises(SkipswitchError, match="lists 3 clients but the run has 4"):
        load_profiles(path).for_clients(4)
    path.write_text('[[profiles]]\nname = "a"\nmemory_mb = -1\nmmacs = 1\n')
    with pytest.raises(SkipswitchError, match="invalid profiles.0.memory_mb=-1"):
        load_profiles(path)
    with pytest.raises(SkipswitchError, match="unknown profile 'c'"):
        ProfileSet(profiles=[ClientProfile(name="a", memory_mb=1, mmacs=1)], assignment=["c"]).for_clients(1)


def test_client_task_round_trips_through_a_config_record_and_rejects_another_kind_or_version():
    from flwr.app import ConfigRecord

    task = ClientTask(server_round=2, subnet={"depths": [1]}, space={"name": "resnet-cifar", "args": {}},
                      skip_mode="long", dataset="digits", partition="iid", alpha=0.5, min_partition_size=8, seed=0,
                      num_partitions=3, local_epochs=1, batch_size=32, lr=0.05, momentum=0.9, weight_decay=1e-4,
                      fault="timeout", deadline=12.5)
    assert ClientTask.from_record(ConfigRecord(task.to_record())) == task
    for field, value, found in (("kind", "skipswitch.pareto", "kind 'skipswitch.pareto' version 4"),
                                ("version", 1, "kind 'skipswitch.client-task' version 1")):
        with pytest.raises(SkipswitchError) as err:
            ClientTask.from_record({TASK_KEY: json.dumps({**task.model_dump(), field: value})})
        assert str(err.value) == f"the train message's task is {found}; expected kind 'skipswitch.client-task' version 4"
    with pytest.raises(SkipswitchError, match=r"^the train message's task: invalid fault='melt': .*'crash'"):
        ClientTask.from_record({TASK_KEY: json.dumps({**task.model_dump(), "fault": "melt"})})


# -- server optimizers and client sandwich training -----------------------------------------------
def _flower_reply(state):
    from flwr.app import ArrayRecord, ConfigRecord, Message, MessageType, MetricRecord, RecordDict

    query = Message(RecordDict({"config": ConfigRecord({})}), dst_node_id=1, message_type=MessageType.TRAIN)
    return Message(RecordDict({"arrays": ArrayRecord(dict(state)), "metrics": MetricRecord({"num-examples": 1})}),
                   reply_to=query)


def test_server_optimizers_match_flower_on_whole_tensors_and_leave_unheld_elements_alone():
    from flwr.app import ArrayRecord
    from flwr.serverapp.strategy import FedAdam, FedAvgM, FedYogi

    from skipswitch.federated.server_opt import ServerOptimizer

    gen = torch.Generator().manual_seed(0)
    start = {"w": torch.randn(3, 4, generator=gen, dtype=torch.float64)}
    everywhere = {"w": torch.ones(3, 4)}
    for flower, ours in [(FedAvgM(server_learning_rate=0.5, server_momentum=0.9), ServerOptimizer("fedavgm", lr=0.5)),
                         (FedAdam(eta=0.1, beta_1=0.9, beta_2=0.99, tau=1e-3), ServerOptimizer("fedadam", lr=0.1)),
                         (FedYogi(eta=0.1, beta_1=0.9, beta_2=0.99, tau=1e-3), ServerOptimizer("fedyogi", lr=0.1))]:
        current = dict(start)
        for step in range(3):
            aggregate = {"w": current["w"] + 0.1 * torch.randn(3, 4, generator=gen, dtype=torch.float64)}
            # what Flower's configure_train stores
            if isinstance(flower, FedAvgM):
                flower.current_arrays = flower.current_arrays or ArrayRecord(dict(current))
            else:
                flower.current_arrays = {k: v.numpy() for k, v in current.items()}
            # Flower's Adam bias correction uses exponent server_round + 1: pass the step count - 1
            expected, _ = flower.aggregate_train(step, [_flower_reply(aggregate)])
            current = ours.step(current, aggregate, everywhere, {"w"})
            assert torch.allclose(current["w"], torch.as_tensor(expected["w"].numpy()), atol=1e-12, rtol=0), \
                (type(flower).__name__, step)
        assert not torch.allclose(current["w"], aggregate["w"]), "the server step differs from plain averaging"

    # Per element: what no client held this round neither moves nor changes its moments.
    opt = ServerOptimizer("fedadam", lr=0.1)
    held = {"w": torch.tensor([[1, 1, 0, 0]] * 3)}
    x = {"w": torch.zeros(3, 4)}
    new = opt.step(x, {"w": torch.ones(3, 4)}, held, {"w"})
    assert torch.equal(new["w"][:, 2:], torch.zeros(3, 2)) and (new["w"][:, :2] > 0).all()
    assert torch.equal(opt.state["m.w"][:, 2:], torch.zeros(3, 2)) and torch.equal(opt.state["t.w"][:, :2], torch.ones(3, 2))
    # buffers (not in params) take the aggregate as is
    assert torch.equal(opt.step(x, {"w": torch.ones(3, 4)}, held, set())["w"], torch.ones(3, 4))


def test_client_sandwich_trains_subnets_within_its_capability():
    from skipswitch.federated.client import sample_within, step_subnets
    from skipswitch.federated.profiles import ladder

    space = _space()
    cap = ladder(space)[len(ladder(space)) // 2]
    gen = torch.Generator().manual_seed(0)
    drawn = [sample_within(space, cap, gen) for _ in range(200)]
    for config in drawn:
        assert all(d <= c for d, c in zip(config.depths, cap.depths))
        assert all(w <= c for w, c in zip(config.widths, cap.widths))
        assert all(e <= c for stage, top in zip(config.expands, cap.expands) for e, c in zip(stage, top))
    assert len(set(drawn)) > 10, "draws vary"
    # every choice up to the capability is reachable, per dimension
    assert {c.depths[0] for c in drawn} == {d for d in space.depth_choices[0] if d <= cap.depths[0]}
    assert {c.widths[1] for c in drawn} == {w for w in space.width_choices if w <= cap.widths[1]}
    assert {c.expands[2][0] for c in drawn} == {e for e in space.expand_choices if e <= cap.expands[2][0]}

    def task(**values):
        return ClientTask(server_round=1, subnet=cap.to_dict(), space=space.to_dict(), skip_mode="long",
                          dataset="digits", partition="iid", alpha=0.5, min_partition_size=8, seed=0, num_partitions=1,
                          local_epochs=1, batch_size=32, lr=0.05, momentum=0.9, weight_decay=1e-4, **values)

    assert step_subnets(space, cap, task(client_subnets="fixed"), gen) == []
    subnets = step_subnets(space, cap, task(client_subnets="sampled", random_subnets=2), gen)
    assert subnets[0] == space.smallest() and cap not in subnets and 1 <= len(subnets) <= 3
    # the smallest client's capability is the smallest subnet: nothing to add
    assert step_subnets(space, space.smallest(), task(client_subnets="sampled"), gen) == []


def test_width_ladder_gives_every_tier_the_full_depth_and_sampled_subnets_fit_the_budget():
    from types import SimpleNamespace

    from skipswitch.federated.client import sample_within, step_subnets
    from skipswitch.federated.profiles import default_profiles
    from skipswitch.federated.simulate import build_strategy

    def contains(big, small):
        return (all(s <= b for s, b in zip(small.depths, big.depths)) and all(
            s <= b for s, b in zip(small.widths, big.widths)) and all(
            e <= t for stage, top in zip(small.expands, big.expands) for e, t in zip(stage, top)))

    space = _space()
    chain = ladder(space, "width")
    assert len(chain) == 1 + 2 * (len(space.width_choices) - 1) and chain[-1] == space.largest()
    assert all(c.depths == space.largest().depths for c in chain), "HeteroFL: every tier has the full depth"
    assert all(contains(big, small) and big != small for small, big in zip(chain, chain[1:])), "nested, growing"
    tiers = default_profiles(space, 32, kind="width").profiles
    caps = [assign_subnet(space, p, 32, kind="width") for p in tiers]
    assert caps == [chain[0], chain[len(chain) // 2], chain[-1]]
    assert ladder(space)[0] == space.smallest() != chain[0]  # the default ladder's small tier is the smallest subnet
    gen = torch.Generator().manual_seed(0)
    for profile, cap in zip(tiers, caps):
        task = SimpleNamespace(client_subnets="sampled", random_subnets=2)
        drawn = [c for _ in range(30) for c in step_subnets(space, cap, task, gen)] + [
            sample_within(space, cap, gen) for _ in range(30)]
        assert space.smallest() in drawn, "the sandwich keeps training the space's smallest subnet"
        assert all(fits_profile(cost_of(space, c, 32), profile) and contains(cap, c) for c in drawn)
    # the server assigns the ladder's tiers; a bad ladder name is a one-line error naming it
    strategy = build_strategy(fed_config(clients=3, rounds=1, partition="iid", ladder="width", **SMALL), "unused")
    assert strategy.subnets == caps
    with pytest.raises(SkipswitchError, match="invalid ladder='depth'"):
        fed_config(ladder="depth")
    with pytest.raises(SkipswitchError, match="fits no subnet of the width ladder"):
        assign_subnet(space, ClientProfile(name="mcu", memory_mb=1e6, mmacs=cost_of(space, space.smallest(), 32).mmacs),
                      32, kind="width")


def test_client_kd_and_sampling_change_the_local_update():
    from skipswitch.federated.client import local_train
    from skipswitch.federated.simulate import build_strategy
    from skipswitch.supernet import weight_regions

    config = fed_config(clients=3, rounds=1, partition="iid", **SMALL)
    strategy = build_strategy(config, "unused")
    subnet = strategy.subnets[2]  # the largest tier
    regions = weight_regions(strategy.space, subnet, strategy.skip_mode)
    sent = slice_state(strategy.supernet.state_dict(), regions)
    outputs = {}
    for label, values in {"fixed": {}, "kd": {"client_subnets": "sampled"},
                          "labels": {"client_subnets": "sampled", "kd": False}}.items():
        task = strategy.client_task(1, subnet, "none", 0.0).model_copy(update=values)
        outputs[label], metrics = local_train(dict(sent), task, 2)
        # fixed: one subnet per image; sampled: the largest allowed, the smallest and up to 2 drawn
        assert (metrics["subnet-samples"] == metrics["samples-seen"]) == (label == "fixed")
        assert metrics["samples-seen"] <= metrics["subnet-samples"] <= 4 * metrics["samples-seen"]
    again, _ = local_train(dict(sent), strategy.client_task(1, subnet, "none", 0.0).model_copy(
        update={"client_subnets": "sampled"}), 2)
    name = "stages.0.0.conv1.weight"
    assert torch.equal(again[name], outputs["kd"][name]), "seeded: the same round replays the same training"
    assert not torch.equal(outputs["fixed"][name], outputs["kd"][name])
    assert not torch.equal(outputs["kd"][name], outputs["labels"][name])


def test_client_mixed_precision_trains_close_to_fp32():
    """--amp reaches the clients' local steps: the bf16 and fp16 updates differ from fp32's (the autocast
    ran) but point the same way (cosine > 0.7 after one local epoch, ~7 steps) at the same loss (within 2 %)."""
    from skipswitch.federated.client import local_train
    from skipswitch.federated.simulate import build_strategy
    from skipswitch.supernet import weight_regions

    strategy = build_strategy(fed_config(clients=3, rounds=1, partition="iid", **SMALL), "unused")
    subnet = strategy.subnets[2]
    sent = slice_state(strategy.supernet.state_dict(), weight_regions(strategy.space, subnet, strategy.skip_mode))
    runs = {amp: local_train(dict(sent), strategy.client_task(1, subnet, "none", 0.0).model_copy(update={"amp": amp}), 2)
            for amp in ("off", "bf16", "fp16")}
    update = {amp: torch.cat([(out[k] - sent[k]).float().flatten() for k in sorted(sent)]) for amp, (out, _) in runs.items()}
    for amp in ("bf16", "fp16"):
        assert not torch.equal(update[amp], update["off"]), amp
        assert torch.nn.functional.cosine_similarity(update[amp], update["off"], 0) > 0.7, amp
        assert abs(runs[amp][1]["train-loss"] / runs["off"][1]["train-loss"] - 1) < 0.02, amp


def test_logit_adjusted_client_loss_learns_the_balanced_posterior_not_the_clients_label_skew():
    from types import SimpleNamespace

    from skipswitch.federated.client import label_log_prior, sandwich_loss

    prior = label_log_prior(torch.tensor([0, 0, 1]), 3, tau=1.0)  # counts 2, 1, 0 -> add-one: 3/6, 2/6, 1/6
    assert torch.allclose(prior, torch.log(torch.tensor([3 / 6, 2 / 6, 1 / 6])))
    assert torch.allclose(label_log_prior(torch.tensor([0, 0, 1]), 3, tau=0.5), 0.5 * prior)

    class Bias(torch.nn.Module):
        """Logits that ignore the input: the loss's minimiser is its view of the class prior."""
        def __init__(self):
            super().__init__()
            self.b = torch.nn.Parameter(torch.zeros(3))

        def set_active(self, config):
            pass

        def forward(self, x):
            return self.b.expand(x.shape[0], 3)

    y = torch.tensor([0] * 600 + [1] * 300 + [2] * 100)  # a skewed client
    fitted = {}
    for label, log_prior in (("plain", None), ("adjusted", label_log_prior(y, 3, tau=1.0))):
        model = Bias()
        loss_fn = sandwich_loss(None, SimpleNamespace(client_subnets="fixed"), None, None, log_prior)
        optimizer = torch.optim.SGD(model.parameters(), lr=1.0)
        for _ in range(300):
            optimizer.zero_grad()
            loss_fn(model, torch.zeros(len(y), 1), y)[0].backward()
            optimizer.step()
        fitted[label] = torch.softmax(model.b.detach(), 0)
    assert torch.allclose(fitted["plain"], torch.tensor([0.6, 0.3, 0.1]), atol=0.01)
    assert torch.allclose(fitted["adjusted"], torch.full((3,), 1 / 3), atol=0.01)


# -- rounds through the Flower apps ---------------------------------------------------------------
def _state_of(path):
    from skipswitch.supernet import load_supernet

    return load_supernet(path)[0].state_dict()


def _client_updates(strategy, state, server_round, partitions):
    """What the given clients produce from ``state``, trained locally without Flower."""
    from skipswitch.federated.client import local_train
    from skipswitch.supernet import weight_regions

    updates = []
    for p in partitions:
        subnet = strategy.subnets[p]
        regions = weight_regions(strategy.space, subnet, strategy.skip_mode)
        task = strategy.client_task(server_round, subnet, "none", 0.0)
        tensors, metrics = local_train(slice_state(state, regions), task, p)
        updates.append(SliceUpdate(tensors, regions, metrics["num-examples"], largest=subnet == strategy.largest))
    return updates


def _recompute_round(strategy, state, server_round, partitions):
    updates = _client_updates(strategy, state, server_round, partitions)
    return aggregate_slices(state, updates, weighting=strategy.config.weighting)[0]


def _assert_states_close(a, b, atol=1e-5):
    assert a.keys() == b.keys()
    for name in a:
        if a[name].is_floating_point():
            assert torch.allclose(a[name], b[name], atol=atol), name


def test_failures_complete_the_round_and_every_survivor_is_applied(tmp_path):
    from skipswitch.federated.simulate import build_strategy, run_federated

    config = fed_config(clients=5, rounds=2, fail_fraction=0.4, **SMALL)
    results = run_federated(config, tmp_path, engine="local", save_every_round=True)
    assert results["rounds_aggregated"] == 2
    strategy = build_strategy(config, tmp_path / "fresh")
    state = strategy.supernet.state_dict()
    for record in results["history"]:
        attempt = record["attempts"][-1]
        assert len(attempt["failed"]) == 2 and len(attempt["survivors"]) == 3 and not attempt["timed_out"]
        assert set(attempt["survivors"]) | {f["client"] for f in attempt["failed"]} == set(range(5))
        crashed = attempt["failed"][0]["client"]
        updates = _client_updates(strategy, state, record["round"], attempt["survivors"] + [crashed])
        expected = aggregate_slices(state, updates[:-1], weighting=config.weighting)[0]
        got = _state_of(tmp_path / f"round-{record['round']:04d}.safetensors")
        _assert_states_close(got, expected)
        # The check can fail: adding the crashed client's update would give a different supernet.
        with_failed = aggregate_slices(state, updates, weighting=config.weighting)[0]
        assert any(not torch.allclose(got[k], with_failed[k], atol=1e-5) for k in got if got[k].is_floating_point())
        state = got


def test_too_few_survivors_retries_then_skips_and_keeps_the_supernet(tmp_path):
    from skipswitch.federated.simulate import build_strategy, run_federated

    config = fed_config(clients=3, rounds=1, fail_fraction=1.0, min_clients=1, on_too_few="retry", max_retries=1, **SMALL)
    lines = []
    results = run_federated(config, tmp_path, engine="local", on_round=lines.append)
    record = results["history"][0]
    assert record["status"] == "skipped" and len(record["attempts"]) == 2
    assert [r["message"] for r in lines if r.get("status") == "too-few"] == [
        "round 1: only 0 of 3 clients answered (minimum 1); retrying (attempt 2 of 2)",
        "round 1: only 0 of 3 clients answered (minimum 1); skipping the round: the supernet stays unchanged",
    ]
    initial = build_strategy(config, tmp_path / "fresh").supernet.state_dict()
    _assert_states_close(_state_of(tmp_path / "supernet.safetensors"), initial, atol=0)


def test_stragglers_past_the_deadline_are_dropped(tmp_path):
    from skipswitch.federated.simulate import build_strategy, run_federated

    config = fed_config(clients=3, rounds=1, timeout_fraction=0.34, round_timeout_s=10.0, **SMALL)
    results = run_federated(config, tmp_path, engine="local")
    attempt = results["history"][0]["attempts"][0]
    assert len(attempt["timed_out"]) == 1 and len(attempt["survivors"]) == 2, attempt
    strategy = build_strategy(config, tmp_path / "fresh")
    expected = _recompute_round(strategy, strategy.supernet.state_dict(), 1, attempt["survivors"])
    _assert_states_close(_state_of(tmp_path / "supernet.safetensors"), expected)


def test_resume_after_a_killed_round_gives_the_same_supernet(tmp_path):
    from skipswitch.federated.client import make_client_app
    from skipswitch.federated.simulate import LocalGrid, build_strategy, run_federated

    # FedAdam and client sandwich training: the server optimizer's state must resume too.
    config = fed_config(clients=3, rounds=3, fail_fraction=0.34, server_optimizer="fedadam", server_lr=0.01,
                        client_subnets="sampled", **SMALL)
    run_federated(config, tmp_path / "straight", engine="local")
    assert [p.name for p in (tmp_path / "straight").glob("server-optimizer-*")] == ["server-optimizer-0003.safetensors"]

    class KilledGrid(LocalGrid):
        """The server process dies while round 2's replies are outstanding."""
        def send_and_receive(self, messages, *, timeout=None):
            messages = list(messages)
            records = messages[0].content.config_records if messages else {}
            if "config" in records and ClientTask.from_record(records["config"]).server_round == 2:
                raise KeyboardInterrupt("killed")
            return super().send_and_receive(messages, timeout=timeout)

    grid = KilledGrid(make_client_app(), config.clients)
    with pytest.raises(KeyboardInterrupt):
        build_strategy(config, tmp_path / "killed").start(grid)
    grid.close()
    assert json.loads((tmp_path / "killed" / "results.json").read_text())["rounds_completed"] == 1
    results = run_federated(config, tmp_path / "killed", engine="local", resume=True)
    assert [r["round"] for r in results["history"]] == [1, 2, 3]
    _assert_states_close(_state_of(tmp_path / "killed" / "supernet.safetensors"),
                         _state_of(tmp_path / "straight" / "supernet.safetensors"), atol=1e-6)
    with pytest.raises(SkipswitchError, match="different federated settings"):
        build_strategy(fed_config(clients=3, rounds=3, fail_fraction=0.0, **SMALL), tmp_path / "killed", resume=True)
    (tmp_path / "killed" / "server-optimizer-0003.safetensors").unlink()
    with pytest.raises(SkipswitchError, match="server-optimizer-0003.safetensors .* is missing"):
        build_strategy(config, tmp_path / "killed", resume=True)


def test_cli_runs_and_rejects_bad_flags(cli, tmp_path):
    code, out, err = cli("fed", "run", "--engine", "local", "--clients", "2", "--rounds", "1", "--out", tmp_path,
                         "--eval-every", "1", "--batch-size", "64")
    assert code == 0, err
    assert "round   1: aggregated  2/2 clients" in err and "val acc largest" in out
    for argv, message in [(["--fail-fraction", "0.8", "--timeout-fraction", "0.5"], "fail_fraction + timeout_fraction"),
                          (["--partition", "shards"], "invalid partition='shards'"),
                          (["--ladder", "depth"], "invalid ladder='depth'"),
                          (["--min-clients", "20"], "min_clients=20 exceeds clients=10"),
                          (["--engine", "spark"], "unknown engine 'spark'")]:
        code, _, err = cli("fed", "run", "--out", tmp_path / "bad", *argv)
        assert code == 2 and message in err and err.startswith("error: ") and len(err.strip().splitlines()) == 1, err


@pytest.mark.slow
def test_flower_simulation_with_30_percent_failures(tmp_path):
    """The real Flower simulation (Ray): 10 clients, 3 crash; the round completes with the 7
    survivors and the supernet equals their aggregate recomputed locally."""
    from skipswitch.federated.simulate import build_strategy, run_federated

    config = fed_config(clients=10, rounds=1, fail_fraction=0.3, **SMALL)
    results = run_federated(config, tmp_path, engine="flower")
    attempt = results["history"][0]["attempts"][0]
    assert results["history"][0]["status"] == "aggregated"
    assert len(attempt["failed"]) == 3 and len(attempt["survivors"]) == 7
    assert all("injected crash" in f["reason"] for f in attempt["failed"])
    strategy = build_strategy(config, tmp_path / "fresh")
    expected = _recompute_round(strategy, strategy.supernet.state_dict(), 1, attempt["survivors"])
    # Ray actors run torch with their own intra-op thread count, so float sums may round
    # differently from this process: 1e-4 absolute on weights of magnitude ~0.1-1.
    _assert_states_close(_state_of(tmp_path / "supernet.safetensors"), expected, atol=1e-4)


def test_deployment_apps_read_the_flower_run_config():
    from skipswitch.federated import apps
    from skipswitch.federated.config import fed_config_from_run_config

    assert apps.server_app is not None and apps.client_app is not None
    config = fed_config_from_run_config({"clients": 4, "space-args": '{"base_width": 8}', "fail-fraction": 0.25,
                                         "round-timeout-s": 30.0, "profiles": ""})
    assert (config.clients, config.space_args, config.fail_fraction, config.round_timeout_s, config.profiles) == \
        (4, {"base_width": 8}, 0.25, 30.0, None)
    with pytest.raises(SkipswitchError, match="invalid bogus=1"):
        fed_config_from_run_config({"bogus": 1})
    with pytest.raises(SkipswitchError, match="space-args='{' is not JSON"):
        fed_config_from_run_config({"space-args": "{"})


def test_resume_identity_fills_fields_added_since_the_checkpoint():
    from skipswitch.federated.config import fed_config
    cfg = fed_config(clients=2, rounds=1)
    current = json.loads(json.dumps(cfg.run_identity()))
    older = {k: v for k, v in current.items() if k != "ladder"}  # written before the ladder option existed
    assert cfg.identity_with_defaults(older) == current
    assert cfg.identity_with_defaults({**older, "alpha": 123.0}) != current
