"""Serving: switching modes agree with extracted subnets, the policy, the HTTP server."""

from __future__ import annotations

import copy
import io
import json

import numpy as np
import pytest
import torch

from skipswitch.errors import SkipswitchError
from skipswitch.serve import ServingEngine
from skipswitch.serve.engine import InPlaceBackend, regularise, union_bytes
from skipswitch.serve.metrics import Metrics, parse_prometheus
from skipswitch.serve.policy import FixedPolicy, MaxOnTimePolicy, Request, SlackFitPolicy, make_policy, profile_table
from skipswitch.serve.scheduler import QueueFull, Result, Scheduler
from skipswitch.supernet import supernet_for
from skipswitch.supernet.bn import recalibrate_bn
from skipswitch.supernet.io import save_supernet
from skipswitch.supernet.search import ParetoFile, SearchPoint

# Activated subnets and extracted subnets run the same float32 ops on the same values;
# the budget mode's unified copies are bit-identical, so 1e-5 is loose.
ATOL = 1e-5


def _fixture_supernet():
    torch.manual_seed(0)
    supernet = supernet_for("resnet-cifar", num_classes=10, in_channels=1, input_size=8, base_width=8, max_depth=2)
    space = supernet.space
    configs = [space.smallest(), space.config([1, 2, 1], [[0.75], [0.5, 1.0], [1.0]], [0.75, 1.0, 0.5]),
               space.largest()]
    gen = torch.Generator().manual_seed(1)
    batches = [torch.randn(32, 1, 8, 8, generator=gen) for _ in range(2)]
    for config in configs[:2]:  # the largest keeps the shared statistics: both paths must handle it
        recalibrate_bn(supernet, config, batches)
    return supernet.eval(), configs


@pytest.fixture(scope="module")
def supernet_and_configs():
    torch.set_num_threads(1)  # stable, fast profiles on a shared 2-core machine
    return _fixture_supernet()


@pytest.fixture(scope="module")
def shared_engine(supernet_and_configs):
    """One profiled in-place engine for the HTTP tests (apps are cheap, profiling is not)."""
    return _engine(supernet_and_configs)


def _write_pareto(path, supernet, configs, accuracies):
    """A pareto.json as ``skipswitch supernet search`` writes it (costs are not read by serving)."""
    points = [SearchPoint(config=c.to_dict(), key=c.key(), val_acc=a, cost=0.0) for c, a in zip(configs, accuracies)]
    ParetoFile(space=supernet.space.to_dict(), skip_mode="long", dataset={"name": "digits"}, cost="macs",
               cost_unit="MMACs", population=2, generations=1, seed=0, evaluated=points, pareto=points).save(path)
    return path


def _engine(supernet_and_configs, mode="inplace", **kw):
    supernet, configs = supernet_and_configs
    kw.setdefault("batch_sizes", (1, 4, 16))
    kw.setdefault("profile_repeats", 1)
    return ServingEngine(supernet, list(zip(configs, [0.6, 0.7, 0.8])), mode=mode, **kw)


@pytest.mark.parametrize("mode", ["inplace", "spatial", "temporal", "budget"])
def test_every_activated_subnet_equals_its_extracted_subnet(supernet_and_configs, mode, tmp_path):
    supernet, configs = supernet_and_configs
    engine = _engine(supernet_and_configs, mode, profile=False, work_dir=tmp_path if mode == "temporal" else None)
    x = torch.randn(6, 1, 8, 8, generator=torch.Generator().manual_seed(2))
    # Visit the subnets in an order with switches both ways (small->large->small).
    for name in ["s2", "s0", "s1", "s2", "s1", "s0"]:
        subnet = engine.get(name)
        expected = supernet.extract(subnet.config).eval()(x)
        got = engine.infer(name, x)
        assert torch.allclose(got, expected, atol=ATOL, rtol=0), (mode, name, (got - expected).abs().max())
    assert engine.switches == 6
    # No autograd graph, even for an input that asks for one (infer runs without a no-grad context).
    assert not engine.infer("s0", x.clone().requires_grad_()).requires_grad
    # Dynamic batching splits back per request exactly.
    parts = engine.infer_many("s1", [x[:1], x[1:4], x[4:]])
    assert [p.shape[0] for p in parts] == [1, 3, 2]
    assert torch.allclose(torch.cat(parts), engine.infer("s1", x), atol=ATOL, rtol=0)


def test_subnets_are_ordered_and_profiled(supernet_and_configs, shared_engine):
    engine = shared_engine
    assert [s.accuracy for s in engine.subnets] == [0.6, 0.7, 0.8]
    assert engine.largest.config == supernet_and_configs[1][2]
    for s in engine.subnets:
        assert sorted(s.latency) == [1, 4, 16] and all(v > 0 for v in s.latency.values())
        assert s.latency_for(3) == s.latency[4]
        assert s.latency_for(32) == pytest.approx(s.latency[16] * 2)
    assert engine.get(engine.subnets[1].config.key()) is engine.subnets[1]
    assert [s.per_subnet_bn for s in engine.subnets] == [True, True, False]
    with pytest.raises(SkipswitchError, match="unknown subnet 'nope'"):
        engine.get("nope")
    with pytest.raises(SkipswitchError, match="unknown serving mode"):
        _engine(supernet_and_configs, "hybrid")


def test_resident_memory_of_each_mode(supernet_and_configs):
    supernet, configs = supernet_and_configs
    engines = {m: _engine(supernet_and_configs, m, profile=False) for m in ["inplace", "spatial", "temporal", "budget"]}
    sizes = [supernet.weight_bytes(c) for c in configs]
    assert engines["spatial"].resident_bytes() == sum(sizes)
    assert engines["temporal"].resident_bytes() == 0
    engines["temporal"].activate("s1")
    assert engines["temporal"].resident_bytes() == sizes[1]
    budget = engines["budget"].backend
    # PB: what all subnets read; DB: the largest dynamic part, here the largest subnet's rest.
    shared_all = sum(t.numel() * 4 for t in budget.pb.values())
    assert budget.persistent_bytes() == shared_all > 0
    assert budget.dynamic_bytes() == max(sizes) - shared_all
    assert engines["budget"].resident_bytes() == max(sizes)
    assert engines["budget"].resident_bytes() < engines["spatial"].resident_bytes()
    # In place: the supernet trimmed to the Pareto set's bounding box (all of it here, since the
    # largest subnet is in the set) plus the stored per-subnet BN statistics.
    full = sum(t.numel() * 4 for k, t in supernet.state_dict().items() if not k.endswith("num_batches_tracked"))
    stats = sum(t.numel() * 4 for c in configs[:2] for t in supernet.bn_stats[c.key()].values())
    # ... and the contiguous copies of non-contiguous views that fit 5% of that.
    cached = engines["inplace"].backend.cache.bytes
    assert 0 < cached <= 0.05 * (full + stats)
    assert engines["inplace"].resident_bytes() == full + stats + cached
    small = ServingEngine(supernet, [(configs[0], 0.5), (configs[1], 0.6)], profile=False)
    assert small.resident_bytes() < full
    # Each subnet's skeleton holds views of the trimmed tensors or the cache's copies, nothing else.
    trimmed = {t.untyped_storage().data_ptr() for t in small.backend.supernet.state_dict().values()}
    stored = {t.untyped_storage().data_ptr() for st in small.backend.supernet.bn_stats.values() for t in st.values()}
    copies = {e[1].untyped_storage().data_ptr() for es in small.backend.cache.entries.values() for e in es}
    for model in small.backend.models.values():
        assert all(t.untyped_storage().data_ptr() in trimmed | stored | copies
                   for k, t in model.state_dict().items() if not k.endswith("num_batches_tracked"))
    # The union of the served regions: the largest subnet's when it contains the others,
    # and never more than the sum.
    regions = [supernet.weight_regions(c) for c in configs]
    assert union_bytes(regions) == full and union_bytes(regions[:1]) == sizes[0]
    assert max(sizes[:2]) <= union_bytes(regions[:2]) <= sum(sizes[:2])
    x = torch.randn(2, 1, 8, 8)
    for s in small.subnets:  # trimming keeps every served subnet's outputs
        assert torch.allclose(small.infer(s.name, x), supernet.extract(s.config).eval()(x), atol=ATOL, rtol=0)
    # A switch copies exactly the subnet's bytes outside the persistent buffer.
    budget.bytes_copied = 0
    engines["budget"].activate("s0")
    assert budget.bytes_copied == sizes[0] - shared_all


def test_contiguous_cache_serves_current_weights(supernet_and_configs):
    supernet, configs = supernet_and_configs
    engine = _engine(supernet_and_configs, profile=False)
    backend = engine.backend = InPlaceBackend(engine.supernet, engine.subnets, engine.device, cache_fraction=1.0)
    # With room for all of them, no non-contiguous view is left, and views equal in elements share a copy.
    assert backend.cache.bytes > 0 and backend.to_dict()["noncontiguous_views"] == {"s0": 0, "s1": 0, "s2": 0}
    assert all(p.is_contiguous() for m in backend.models.values() for p in m.parameters())
    copies = {id(e[1]): e[1] for es in backend.cache.entries.values() for e in es}
    assert backend.cache.bytes == sum(t.numel() * 4 for t in copies.values())
    assert len(copies) < sum(map(len, backend.cache.entries.values()))
    x = torch.randn(3, 1, 8, 8, generator=torch.Generator().manual_seed(3))
    reference = copy.deepcopy(supernet)
    for step in range(2):  # before and after an in-place write to the served weights
        for name in ["s1", "s0", "s2", "s1", "s0"]:
            expected = reference.extract(engine.get(name).config).eval()(x)
            assert torch.allclose(engine.infer(name, x), expected, atol=ATOL, rtol=0), (step, name)
        with torch.no_grad():  # as load_state_dict or an optimiser step would: the cached copies go stale
            for model in (engine.backend.supernet, reference):
                for param in model.parameters():
                    param.mul_(0.5).add_(0.1)


def test_checkpoint_round_trip_and_pareto_file(supernet_and_configs, tmp_path):
    supernet, configs = supernet_and_configs
    path = tmp_path / "supernet.safetensors"
    save_supernet(path, supernet, {"dataset": {"name": "digits", "seed": 0}})
    pareto = _write_pareto(tmp_path / "pareto.json", supernet, configs, [0.5, 0.9, 0.7])
    engine = ServingEngine.from_checkpoint(path, pareto, profile=False)
    assert [s.accuracy for s in engine.subnets] == [0.5, 0.7, 0.9]
    x = torch.randn(3, 1, 8, 8)
    for s in engine.subnets:
        assert torch.allclose(engine.infer(s.name, x), supernet.extract(s.config).eval()(x), atol=ATOL, rtol=0)
    # Without a Pareto file: the subnets with stored BN statistics, accuracy measured.
    stored = ServingEngine.from_checkpoint(path, profile=False)
    assert {s.config.key() for s in stored.subnets} == {c.key() for c in configs[:2]}
    assert all(0 <= s.accuracy <= 1 for s in stored.subnets)
    bad = json.loads(pareto.read_text())
    del bad["pareto"][0]["val_acc"]
    (tmp_path / "bad.json").write_text(json.dumps(bad))
    with pytest.raises(SkipswitchError, match=r"bad.json: pareto.0.val_acc is missing$"):
        ServingEngine.from_checkpoint(path, tmp_path / "bad.json", profile=False)
    (tmp_path / "old.json").write_text(json.dumps({"pareto": [{"config": configs[0].to_dict(), "val_acc": 0.5}]}))
    with pytest.raises(SkipswitchError, match=r"old.json is kind None version None; "
                                              r"expected kind 'skipswitch.pareto' version 1$"):
        ServingEngine.from_checkpoint(path, tmp_path / "old.json", profile=False)


# -- policy -------------------------------------------------------------------------------------
class _FakeEngine:
    """Just what a policy reads: subnets with accuracy and latency, active subnet, switch cost."""

    def __init__(self, engine):
        self.subnets, self.max_batch, self.active, self.switch_estimate = engine.subnets, 16, None, 0.0
        for s, per_example in zip(self.subnets, [1e-3, 2e-3, 4e-3]):
            s.latency = {b: per_example * b for b in (1, 4, 16)}
        self.largest, self.smallest = self.subnets[-1], self.subnets[0]

    def get(self, name):
        return next(s for s in self.subnets if s.name == name)


def _req(i, now, deadline_ms=None, **kw):
    return Request(i, torch.zeros(1, 1, 8, 8), now, None if deadline_ms is None else now + deadline_ms / 1e3, **kw)


def test_max_on_time_serves_most_accurate_that_fits_and_degrades_then_sheds(supernet_and_configs):
    engine = _FakeEngine(_engine(supernet_and_configs, profile=False))
    policy, now = MaxOnTimePolicy(), 100.0
    # One request, loose deadline: the most accurate subnet.
    d = policy.decide([_req(0, now, 50)], now, engine)
    assert d.subnet.name == "s2" and len(d.batch) == 1 and not d.shed
    # Eight requests, 20 ms: s2 needs 64 ms for the batch (profile 16 -> 4 ms/ex), s1 32, s0 16.
    queue = [_req(i, now, 20) for i in range(8)]
    d = policy.decide(queue, now, engine)
    assert d.subnet.name == "s0" and len(d.batch) == 8
    # A floor keeps the batch above it: it shrinks the batch instead.
    queue = [_req(i, now, 20, accuracy_floor=0.7) for i in range(8)]
    d = policy.decide(queue, now, engine)
    assert d.subnet.accuracy >= 0.7 and d.subnet.latency_for(sum(r.size for r in d.batch)) <= 0.020
    # Already hopeless requests are shed with a reason, the rest served.
    queue = [_req(0, now - 1, 1), _req(1, now, 50)]
    d = policy.decide(queue, now, engine)
    assert [r.id for r, _ in d.shed] == [0] and "shed" in d.shed[0][1] and [r.id for r in d.batch] == [1]
    # A costly switch (temporal mode) counts: with 10 ms of slack, stay on the active subnet.
    engine.active, engine.switch_estimate = engine.get("s0"), 0.015
    d = policy.decide([_req(0, now, 10)], now, engine)
    assert d.subnet.name == "s0"
    engine.switch_estimate = 0.0
    assert policy.decide([_req(0, now, 10)], now, engine).subnet.name == "s2"
    # A named subnet is always honoured.
    d = policy.decide([_req(0, now, 1, subnet=engine.get("s2"))], now, engine)
    assert d.subnet.name == "s2" and not d.shed
    assert FixedPolicy("s0").decide([_req(0, now, 1000)], now, engine).subnet.name == "s0"
    with pytest.raises(SkipswitchError, match="unknown policy"):
        make_policy("best", engine)


def test_slackfit_picks_the_bucket_the_most_urgent_slack_fits(supernet_and_configs):
    # Hand-made profile (ms): s0 1/4/16, s1 2/8/32, s2 4/16/64 at batch 1/4/16; 10 buckets of
    # 6.4 ms over (0, 64] when 16 examples are queued.
    engine = _FakeEngine(_engine(supernet_and_configs, profile=False))
    policy, now = SlackFitPolicy(buckets=10, lookahead=False), 100.0  # the bucket rule alone
    backlog = lambda ms, first=0: [_req(first, now, ms)] + [_req(i, now, 1000) for i in range(1, 16)]  # noqa: E731
    # 5 ms of slack fits only bucket 1 (0, 6.4]: s0@1, s1@1, s2@1, s0@4 -> the most examples served.
    d = policy.decide(backlog(5), now, engine)
    assert (d.subnet.name, len(d.batch), d.batch[0].id) == ("s0", 4, 0) and not d.shed
    # 10 ms: the highest bucket that fits is 2 (6.4, 12.8], holding only s1@4.
    d = policy.decide(backlog(10), now, engine)
    assert (d.subnet.name, len(d.batch)) == ("s1", 4)
    # 20 ms: bucket 3 (12.8, 19.2] holds s0@16 and s2@4; throughput first -> s0 with all 16.
    d = policy.decide(backlog(20), now, engine)
    assert (d.subnet.name, len(d.batch)) == ("s0", 16)
    # Only the head queued: every choice serves one example, so the most accurate that fits.
    assert policy.decide([_req(0, now, 5)], now, engine).subnet.name == "s2"
    assert policy.decide([_req(0, now, 3)], now, engine).subnet.name == "s1"
    # The table itself: capped batches, switch cost added off the active subnet.
    engine.active, engine.switch_estimate = engine.get("s0"), 0.002
    d = policy.decide([_req(0, now, 3.5)], now, engine)
    assert d.subnet.name == "s0"  # s1 would need 2 + 2 ms
    engine.active, engine.switch_estimate = None, 0.0


def _spread(deadlines_ms, now):
    """Requests that arrived evenly over the last 0.1 s (the window SlackFit estimates the rate over)."""
    n = len(deadlines_ms)
    return [Request(i, torch.zeros(1, 1, 8, 8), now - 0.1 + 0.1 * i / n, now + ms / 1e3) for i, ms in enumerate(deadlines_ms)]


def test_slackfit_lookahead_degrades_to_small_subnets_at_large_batches_as_the_queue_grows(supernet_and_configs):
    # Same hand-made profile: s0 1/4/16, s1 2/8/32, s2 4/16/64 ms at batch 1/4/16 (full batches:
    # 1000, 500, 250 per second; SlackFit allows a subnet up to 50% of that).
    engine = _FakeEngine(_engine(supernet_and_configs, profile=False))
    now = 100.0
    decide = lambda queue, **kw: SlackFitPolicy(**kw).decide(queue, now, engine)  # noqa: E731 - a fresh rate estimate
    # 20.5 ms for everyone: a short queue gets the most accurate subnet, a longer one the smallest at a full batch.
    picks = [(d.subnet.name, len(d.batch)) for n in (1, 4, 16) for d in [decide(_spread([20.5] * n, now))]]
    assert picks == [("s2", 1), ("s2", 4), ("s0", 16)]
    # Head 10 ms, seven more at 11.5 ms. The head's slack alone picks s1@4 (8 ms, the top bucket that
    # fits); at the best rate (1 ms per example) the last of the four left finishes at 12 ms and misses.
    # s0@4 (4 ms) leaves time for them; so would s2/s1/s0 at batch 1, in a lower bucket of batch 1.
    queue = _spread([10] + [11.5] * 7, now)
    d = decide(queue, lookahead=False)
    assert (d.subnet.name, len(d.batch)) == ("s1", 4)
    d = decide(queue)
    assert (d.subnet.name, len(d.batch)) == ("s0", 4)
    table = [c for c in profile_table(engine, engine.subnets, 8) if c.latency <= 0.010]
    least = {(c.subnet.name, c.batch) for c in SlackFitPolicy.least_misses(table, queue, now, engine)}
    assert least == {("s0", 4), ("s0", 1), ("s1", 1), ("s2", 1)}
    # Overload: 64 requests, 22.5 ms each: the smallest subnet at the largest batch, as fixed-smallest.
    d = decide(_spread([22.5] * 64, now))
    assert (d.subnet.name, len(d.batch)) == ("s0", 16)
    # 200 requests/s: s2's full batches (250/s) would run at 80% utilisation, above the 50% allowed,
    # so even with a second of slack for everyone the most accurate subnet that can (s1, 40%) serves.
    fresh, queue = SlackFitPolicy(), _spread([1000] * 20, now)
    d = fresh.decide(queue, now, engine)
    assert fresh.arrival_rate() == pytest.approx(200) and d.subnet.name == "s1"
    assert decide(queue, max_utilisation=1.0).subnet.name == "s2"
    assert decide(queue, lookahead=False).subnet.name == "s2"
    # A burst's onset: 5 requests over 75 ms, then 5 in the last 25 ms: 100/s over the 0.1 s window
    # (s2 at 40 % would do), 200/s over the burst window, where only s1 (and s0) keep up at <= 50 %.
    burst = [_req(i, now - 0.1 + 0.015 * i, 1000) for i in range(5)] + [
        _req(5 + i, now - 0.024 + 0.005 * i, 1000) for i in range(5)]
    fresh = SlackFitPolicy()
    assert fresh.decide(burst, now, engine).subnet.name == "s1" and fresh.arrival_rate() == pytest.approx(200)
    slow = SlackFitPolicy(burst_window=None)
    assert slow.decide(burst, now, engine).subnet.name == "s2" and slow.arrival_rate() == pytest.approx(100)
    plain = SlackFitPolicy(lookahead=False)  # reads no rate, so it keeps no arrival windows
    assert plain.decide(burst, now, engine).subnet.name == "s2" and plain.arrival_rate() == 0.0
    # A cold start (everything arrived just now) reads as a high rate, not as an idle server.
    assert decide([_req(i, now, 1000) for i in range(20)]).subnet.name == "s0"
    # Batching that pays (s0: 1/2/4 ms at 1/4/16, as on a GPU): a head with 2 ms left would force a
    # small batch; serving the next 16 at once leaves fewer deadlines missed, so the head is shed.
    engine.get("s0").latency = {1: 1e-3, 4: 2e-3, 16: 4e-3}
    queue = _spread([2] + [10] * 47, now)
    d = decide(queue)
    assert (d.subnet.name, [r.id for r in d.batch]) == ("s0", list(range(1, 17)))
    assert [r.id for r, _ in d.shed] == [0] and "serves the queue best" in d.shed[0][1]
    d = make_policy("slackfit-noshed", engine).decide(queue, now, engine)
    assert (d.subnet.name, [r.id for r in d.batch], d.shed) == ("s0", list(range(16)), [])


def test_slackfit_plain_spends_the_head_slack_where_ours_keeps_the_backlog_on_time(supernet_and_configs):
    # Same hand-made profile: s0 1/4/16, s1 2/8/32, s2 4/16/64 ms at batch 1/4/16. A backlog of 32,
    # all due in 70 ms, that arrived 10 s ago (no recent arrivals: the rate filter lets every subnet in).
    engine = _FakeEngine(_engine(supernet_and_configs, profile=False))
    now = 100.0
    queue = [Request(i, torch.zeros(1, 1, 8, 8), now - 10, now + 0.070) for i in range(32)]
    plain, ours = make_policy("slackfit-plain", engine), make_policy("slackfit", engine)
    assert plain.name == "slackfit-plain" and not plain.lookahead and ours.lookahead
    # Plain: 70 ms fits every row, so the top bucket (57.6, 64] -> s2@16, after which the other
    # 16 finish at 64 + 16 ms at best and all miss.
    d = plain.decide(queue, now, engine)
    assert (d.subnet.name, len(d.batch)) == ("s2", 16)
    # Ours: s2@16 is dropped by the least-misses filter; the highest remaining bucket is s1@16 (32 ms).
    d = ours.decide(queue, now, engine)
    assert (d.subnet.name, len(d.batch)) == ("s1", 16)
    # The plain rule ignores the arrival rate: the same backlog arriving over the last 0.1 s
    # (320/s, above s2's and s1's 50 % capacity) still gets s2 from it, s0 from ours.
    queue = _spread([70] * 32, now)
    assert make_policy("slackfit-plain", engine).decide(queue, now, engine).subnet.name == "s2"
    assert make_policy("slackfit", engine).decide(queue, now, engine).subnet.name == "s0"


def test_latency_profile_is_regularised():
    # A preempted timing at batch 16 (10.5 ms after 1.67 ms at 8) is capped at two batches of 8;
    # a faster-than-smaller figure is raised to the smaller one's.
    profile = {1: 0.38e-3, 8: 1.67e-3, 16: 10.5e-3, 32: 3.0e-3}
    regularise(profile)
    assert profile == pytest.approx({1: 0.38e-3, 8: 1.67e-3, 16: 3.34e-3, 32: 3.34e-3})


def test_slackfit_sheds_when_nothing_fits(supernet_and_configs):
    engine = _FakeEngine(_engine(supernet_and_configs, profile=False))
    now = 100.0
    queue = _spread([0.5, 0.9, 50], now)  # s0 alone needs 1 ms
    d = SlackFitPolicy().decide(queue, now, engine)
    assert [r.id for r, _ in d.shed] == [0, 1] and "s0 needs 1.0 ms" in d.shed[0][1]
    assert d.subnet.name == "s2" and [r.id for r in d.batch] == [2]
    d = SlackFitPolicy().decide(queue[:2], now, engine)
    assert d.subnet is None and not d.batch and len(d.shed) == 2
    # Without shedding the head is served by the fastest choice.
    d = make_policy("slackfit-noshed", engine).decide(queue[:2], now, engine)
    assert d.subnet.name == "s0" and not d.shed and [r.id for r in d.batch] == [0]
    with pytest.raises(SkipswitchError, match="at least one latency bucket"):
        SlackFitPolicy(buckets=0)


# -- scheduler and HTTP -------------------------------------------------------------------------
def test_scheduler_drains_every_accepted_request(shared_engine):
    engine = shared_engine
    scheduler = Scheduler(engine, make_policy("slackfit", engine), capacity=8)
    outcomes = []
    accepted = rejected = 0
    for i in range(40):  # worker not started yet: the queue fills
        try:
            scheduler.submit(torch.randn(1, 1, 8, 8), done=outcomes.append)
            accepted += 1
        except QueueFull:
            rejected += 1
    assert (accepted, rejected) == (8, 32)
    scheduler.start()
    scheduler.stop(drain=True, timeout=30)
    assert len(outcomes) == 8 and all(isinstance(o, Result) for o in outcomes)
    assert scheduler.metrics.total("served_total") == 8


@pytest.fixture()
def client(shared_engine):
    from fastapi.testclient import TestClient

    from skipswitch.serve.server import create_app

    engine = shared_engine
    engine.active = None  # every test starts with no subnet active
    app = create_app(engine, make_policy("slackfit", engine), capacity=4)
    with TestClient(app) as c:
        yield c


def test_predict_json_npy_and_subnets(client, supernet_and_configs):
    supernet, configs = supernet_and_configs
    x = torch.randn(2, 1, 8, 8)
    r = client.post("/v1/predict", json={"inputs": x.tolist(), "subnet": "s1"})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["subnet"] == "s1" and len(body["predictions"]) == 2
    expected = supernet.extract(configs[1]).eval()(x)
    assert np.allclose(body["outputs"], expected.detach().numpy(), atol=ATOL)
    buf = io.BytesIO()
    np.save(buf, x[0].numpy())  # one example without a batch dimension
    r = client.post("/v1/predict?accuracy_floor=0.75", content=buf.getvalue(),
                    headers={"Content-Type": "application/x-npy"})
    assert r.status_code == 200 and r.json()["subnet"] == "s2"
    r = client.get("/v1/subnets")
    assert [s["name"] for s in r.json()["subnets"]] == ["s0", "s1", "s2"]
    assert client.get("/health").json()["status"] == "ok"


@pytest.mark.parametrize("body,ctype,message", [
    (b"{not json", "application/json", "not valid JSON"),
    (b"[1, 2]", "application/json", "must be an object"),
    (b'{"input": [1]}', "application/json", "unknown field"),
    (b'{"inputs": [[1, 2], [3]]}', "application/json", "rectangular"),
    (b'{"inputs": [1, 2, 3]}', "application/json", "does not match the served input"),
    (json.dumps({"inputs": torch.zeros(1, 8, 8).tolist(), "subnet": "s9"}).encode(), "application/json", "unknown subnet"),
    (json.dumps({"inputs": torch.zeros(1, 8, 8).tolist(), "deadline_ms": -3}).encode(), "application/json", "deadline_ms"),
    (json.dumps({"inputs": torch.zeros(1, 8, 8).tolist(), "accuracy_floor": 0.99}).encode(), "application/json",
     "above the most accurate"),
    (json.dumps({"inputs": torch.zeros(1, 8, 8).tolist(), "subnet": "s0", "accuracy_floor": 0.5}).encode(),
     "application/json", "either subnet or accuracy_floor"),
    (b"\x93NUMPY garbage", "application/x-npy", "not a valid .npy"),
])
def test_malformed_bodies_get_422_with_one_line(client, body, ctype, message):
    r = client.post("/v1/predict", content=body, headers={"Content-Type": ctype})
    assert r.status_code == 422, r.text
    error = r.json()["error"]
    assert message in error and "\n" not in error


def test_nan_input_is_422(client):
    body = json.dumps({"inputs": [[[float("nan")] * 8] * 8]}).encode()  # Python's json writes NaN
    r = client.post("/v1/predict", content=body, headers={"Content-Type": "application/json"})
    assert r.status_code == 422 and "NaN" in r.json()["error"]


def test_metrics_count_requests_switches_and_misses(client):
    x = torch.zeros(1, 1, 8, 8).tolist()
    for name in ["s0", "s0", "s2", "s1"]:
        assert client.post("/v1/predict", json={"inputs": x, "subnet": name}).status_code == 200
    assert client.post("/v1/predict", json={"inputs": "x"}).status_code == 422
    # A deadline no subnet can meet: shed (503) and counted as an SLO miss.
    r = client.post("/v1/predict", json={"inputs": x, "deadline_ms": 1e-6})
    assert r.status_code == 503 and r.json()["reason"] == "shed"
    m = parse_prometheus(client.get("/metrics").text)
    assert m['skipswitch_requests_total{outcome="ok"}'] == 4
    assert m['skipswitch_requests_total{outcome="invalid"}'] == 1
    assert m['skipswitch_requests_total{outcome="shed"}'] == 1
    assert m["skipswitch_switches_total"] == 3  # s0, s2, s1
    assert m["skipswitch_slo_misses_total"] == 1
    assert m['skipswitch_served_total{subnet="s0"}'] == 2
    assert m['skipswitch_request_latency_seconds_count{subnet="s0"}'] == 2
    assert m['skipswitch_request_latency_seconds_bucket{le="+Inf",subnet="s0"}'] == 2
    assert m["skipswitch_batch_size_count"] == 4


def test_overload_gets_503_and_never_drops_an_accepted_request(shared_engine):
    """A real uvicorn server on a random loopback port, flooded by concurrent clients."""
    import asyncio

    import httpx

    from skipswitch.serve.server import create_app
    from skipswitch.serve.server import run_in_thread

    engine = shared_engine
    app = create_app(engine, make_policy("fixed-largest", engine), capacity=4)
    with run_in_thread(app) as url:
        async def flood():
            payload = {"inputs": torch.zeros(1, 1, 8, 8).tolist()}
            async with httpx.AsyncClient(base_url=url, timeout=60) as http:
                return await asyncio.gather(*(http.post("/v1/predict", json=payload) for _ in range(60)))

        responses = asyncio.run(flood())
        codes = [r.status_code for r in responses]
        assert set(codes) <= {200, 503} and codes.count(503) > 0 and codes.count(200) >= 4
        assert all(r.json()["reason"] == "queue_full" for r in responses if r.status_code == 503)
        m = parse_prometheus(httpx.get(f"{url}/metrics").text)
        # Every accepted request was answered: served == ok == 200s; rejected == 503s.
        assert m['skipswitch_requests_total{outcome="ok"}'] == codes.count(200) == m['skipswitch_served_total{subnet="s2"}']
        assert m['skipswitch_requests_total{outcome="rejected"}'] == codes.count(503)
        assert httpx.get(f"{url}/health").json()["status"] == "ok"


def test_metrics_render_histogram_cumulative():
    from prometheus_client.parser import text_string_to_metric_families

    m = Metrics()
    m.histogram("lat", "h", (0.1, 1.0))
    m.counter("requests_total", "r", ["outcome"])
    for v in (0.05, 0.5, 5.0):
        m.observe("lat", v)
    m.inc("requests_total", outcome="ok")
    m.inc("requests_total", 2, outcome="shed")
    families = {f.name: f for f in text_string_to_metric_families(m.render())}
    assert families["skipswitch_lat"].type == "histogram" and families["skipswitch_requests"].type == "counter"
    buckets = {float(s.labels["le"]): s.value for s in families["skipswitch_lat"].samples if s.name.endswith("_bucket")}
    assert buckets == {0.1: 1, 1.0: 2, float("inf"): 3}
    parsed = parse_prometheus(m.render())
    assert parsed['skipswitch_lat_bucket{le="+Inf"}'] == 3 == parsed["skipswitch_lat_count"]
    assert parsed["skipswitch_lat_sum"] == pytest.approx(5.55)
    assert parsed['skipswitch_requests_total{outcome="shed"}'] == 2 == m.value("requests_total", outcome="shed")
    assert m.total("requests_total") == 3 and m.hist_count("lat") == 3


def test_graceful_shutdown_answers_every_request_in_flight(shared_engine, monkeypatch):
    """uvicorn's own shutdown (should_exit) with requests queued and in the engine: every request the server
    has received is answered. The stop comes when the 30th request is handed to the scheduler (a request
    still unread on its connection is not in flight: uvicorn closes such connections)."""
    import asyncio
    import time

    import httpx

    from skipswitch.serve.server import create_app, run_in_thread

    engine = shared_engine
    forward = engine.backend.forward
    monkeypatch.setattr(engine.backend, "forward", lambda x: (time.sleep(0.02), forward(x))[1])  # batches take a while
    app = create_app(engine, make_policy("fixed-largest", engine), capacity=64)
    scheduler, received, busy = app.state.scheduler, [], []
    submit = scheduler.submit

    def submit_then_stop_at_the_last(*args, **kwargs):
        submit(*args, **kwargs)
        received.append(1)
        if len(received) == 30:
            busy.append(bool(scheduler.queue or scheduler.in_flight))
            app.state.uvicorn_server.should_exit = True

    scheduler.submit = submit_then_stop_at_the_last
    with run_in_thread(app) as url:
        async def send():
            payload = {"inputs": torch.zeros(1, 1, 8, 8).tolist()}
            async with httpx.AsyncClient(base_url=url, timeout=60) as http:
                return await asyncio.gather(*[http.post("/v1/predict", json=payload) for _ in range(30)])

        responses = asyncio.run(send())
    assert busy == [True]  # the stop came with work queued or in the engine
    assert [r.status_code for r in responses] == [200] * 30, [r.text for r in responses]
    assert not app.state.scheduler.queue and not app.state.scheduler.accepting


# -- load generator and CLI -----------------------------------------------------------------------
def test_traces_have_the_requested_rate_and_shape(tmp_path):
    from skipswitch.serve.loadgen import check_loopback, make_trace, read_trace

    poisson = make_trace("poisson", 200, 20, seed=1)
    assert abs(len(poisson) - 4000) < 4 * 4000 ** 0.5 and all(0 <= t < 20 for t in poisson)
    bursty = make_trace("bursty", 200, 20, seed=1)
    assert abs(len(bursty) - 4000) < 4 * 4000 ** 0.5
    in_burst = sum((t % 1.0) < 0.2 for t in bursty)
    # bursts: 20% of the time at 4x the mean rate -> 80% of the arrivals
    assert 0.75 < in_burst / len(bursty) < 0.85
    ramp = np.asarray(make_trace("ramp", 200, 20, seed=1))
    # 0.25x -> 1.75x the mean: the last quarter holds (1.375 + 1.75) / 8 of the arrivals, the first (0.25 + 0.625) / 8.
    assert abs(len(ramp) - 4000) < 4 * 4000 ** 0.5
    assert (ramp >= 15).mean() == pytest.approx(3.125 / 8, abs=0.03) and (ramp < 5).mean() == pytest.approx(0.875 / 8, abs=0.03)
    azure = np.asarray(make_trace("azure", 200, 60, seed=1))
    per_window = np.bincount(azure.astype(int), minlength=60)
    # Same mean load, far burstier than Poisson (whose per-window counts have CV 1/sqrt(200) = 0.07).
    assert abs(len(azure) / 60 - 200) < 0.5 * 200 and per_window.std() / per_window.mean() > 0.5
    f = tmp_path / "trace.txt"
    f.write_text("0\n0.5\n0.5\n2.5\n")
    assert read_trace(f, duration=2.0) == [0.0, 0.5, 0.5]
    f.write_text("1\n0.5\n")
    with pytest.raises(SkipswitchError, match="non-decreasing"):
        read_trace(f)
    with pytest.raises(SkipswitchError, match="more than the limit"):
        make_trace("poisson", 1e6, 100)
    with pytest.raises(SkipswitchError, match="unknown trace"):
        make_trace("flat", 1, 1)
    for url in ("http://127.0.0.1:8000", "http://localhost:1", "http://[::1]:80"):
        assert check_loopback(url) == url
    for url in ("http://10.0.0.1:8000", "https://example.com"):
        with pytest.raises(SkipswitchError, match="non-loopback"):
            check_loopback(url)


@pytest.mark.slow
def test_cli_serve_and_loadgen_end_to_end(supernet_and_configs, tmp_path):
    """`skipswitch serve` in a subprocess, `skipswitch loadgen` against it, SIGINT drains."""
    import os
    import signal
    import subprocess
    import sys

    import httpx

    from skipswitch.serve.server import free_loopback_port, wait_until_healthy

    supernet, configs = supernet_and_configs
    ckpt = tmp_path / "supernet.safetensors"
    save_supernet(ckpt, supernet, {"dataset": {"name": "digits", "seed": 0}})
    pareto = _write_pareto(tmp_path / "pareto.json", supernet, configs, [0.6, 0.7, 0.8])
    port = free_loopback_port()
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    server = subprocess.Popen([sys.executable, "-m", "skipswitch.cli", "serve", str(ckpt), "--pareto", str(pareto),
                               "--port", str(port), "--max-batch", "4"], env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    url = f"http://127.0.0.1:{port}"
    try:
        try:
            wait_until_healthy(url, server, timeout_s=120)
        except SkipswitchError as exc:
            pytest.fail(f"{exc}: {server.stdout.read()}")
        report = tmp_path / "report.json"
        done = subprocess.run([sys.executable, "-m", "skipswitch.cli", "loadgen", "--trace", "poisson", "--rate", "40",
                               "--duration", "1.5", "--url", url, "--deadline-ms", "500", "--out", str(report)],
                              env=env, capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, done.stderr
        data = json.loads(report.read_text())
        assert data["sent"] > 20 and data["ok"] + data["rejected"] + data["shed"] + data["errors"] == data["sent"]
        assert data["errors"] == 0 and data["p50_ms"] is not None and 0 <= data["slo_attainment"] <= 1
        assert set(data["subnets"]) <= {"s0", "s1", "s2"} and 0.6 <= data["served_accuracy"] <= 0.8
        m = parse_prometheus(httpx.get(f"{url}/metrics").text)
        assert m['skipswitch_requests_total{outcome="ok"}'] == data["ok"]
    finally:
        server.send_signal(signal.SIGINT)
        out, _ = server.communicate(timeout=60)
    assert server.returncode == 0, out
    assert "serving 3 subnets" in out and "Traceback" not in out


def test_direct_replay_accounts_for_every_request(shared_engine, digits):
    from skipswitch.serve.loadgen import make_trace, replay

    engine = shared_engine
    scheduler = Scheduler(engine, make_policy("slackfit", engine), capacity=64)
    scheduler.start()
    arrivals = make_trace("poisson", 100, 0.3, seed=3)
    report = replay(scheduler, arrivals, digits.test.images.numpy(), digits.test.labels.numpy(), deadline_ms=2000)
    scheduler.stop()
    assert report.sent == len(arrivals) == report.ok + report.shed + report.rejected + report.errors
    assert report.ok == scheduler.metrics.total("served_total") and report.errors == 0
    assert report.served_accuracy is not None and 0.6 <= report.served_accuracy <= 0.8
    assert sum(report.subnets.values()) == report.ok


def test_online_profile_tracks_observed_batch_times(supernet_and_configs):
    engine = _engine(supernet_and_configs, profile=False)
    subnet = engine.get("s1")
    subnet.latency = {1: 0.001, 4: 0.004, 16: 0.016}
    engine.observe(subnet, 3, 0.014)  # bucket 4 moves 20% of the way to 14 ms
    assert subnet.latency[4] == pytest.approx(0.8 * 0.004 + 0.2 * 0.014)
    assert subnet.latency[1] == 0.001 and subnet.latency[16] == 0.016
    engine.observe(subnet, 64, 1.0)  # beyond the largest profiled batch: ignored
    assert subnet.latency[16] == 0.016
    engine.online_profile = False
    engine.observe(subnet, 1, 1.0)
    assert subnet.latency[1] == 0.001
