"""Aggregation of overlapping subnet slices into the supernet (HeteroFL / FjORD / SuperFedNAS).

Every client trains one subnet, i.e. one box ``[start, stop)`` per dimension of some
supernet tensors (``weight_regions``). The new value of each supernet element is the
weighted mean over the clients whose box contains it:

    w_new[e] = sum_i a_i * w_i[e] / sum_i a_i      over clients i holding e

with ``a_i = 1`` (``count``: HeteroFL) or ``a_i = num_examples_i`` (``samples``: FjORD).
Elements nobody held this round keep their value (SuperFedNAS's ``sum / max(count, 1)``
written so that zero-count elements are left alone instead of zeroed).

Largest-subnet weighting (SuperFedNAS, ``largest_weight = beta``): the clients that
trained the largest subnet form one group, all others a second; where both groups hold
an element it becomes ``beta * mean_largest + (1 - beta) * mean_others``; where only one
group holds it, that group's mean.

BatchNorm: ``running_mean``/``running_var`` are in the regions like any weight, so they
are averaged element-wise over holders. Each client's statistics were measured on its
own subnet and data, so the averaged values are a mixture, only approximately right
for any one subnet: subnets are evaluated after recalibrating their BN statistics
(``supernet.recalibrate_bn``), as OFA does for every subnet. ``num_batches_tracked`` is
a counter, not in any region, and is left unchanged.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable, Optional

import torch

from ..errors import SkipswitchError
from ..regions import Box


@dataclass
class SliceUpdate:
    """One client's trained slices: ``tensors[name]`` holds the elements of ``regions[name]``."""

    tensors: dict[str, torch.Tensor]
    regions: dict[str, Box]
    num_examples: int
    largest: bool = False
    client: str = ""


def _index(box: Box) -> tuple[slice, ...]:
    return tuple(slice(start, stop) for start, stop in box)


def slice_state(state: dict[str, torch.Tensor], regions: dict[str, Box]) -> dict[str, torch.Tensor]:
    """The subnet's part of a supernet state dict (copies, contiguous)."""
    missing = sorted(set(regions) - set(state))
    if missing:
        raise SkipswitchError(f"supernet has no tensor {missing[0]!r} named by the subnet's regions")
    return {name: state[name][_index(box)].clone().contiguous() for name, box in regions.items()}


def check_update(update: SliceUpdate, state: dict[str, torch.Tensor]) -> None:
    """Reject a reply whose tensors do not match its regions (a client bug or a bad message)."""
    missing = sorted(set(update.regions) - set(update.tensors))
    if missing:
        raise SkipswitchError(f"update from {update.client or 'a client'} lacks tensor {missing[0]!r}")
    for name, box in update.regions.items():
        if name not in state:
            raise SkipswitchError(f"update from {update.client or 'a client'} names unknown tensor {name!r}")
        expected = tuple(stop - start for start, stop in box)
        got = tuple(update.tensors[name].shape)
        if got != expected or len(box) != state[name].dim():
            raise SkipswitchError(f"update from {update.client or 'a client'}: {name} has shape {got}, "
                                  f"its region {box} needs {expected}")
        if any(stop > size for (_, stop), size in zip(box, state[name].shape)):
            raise SkipswitchError(f"region {box} of {name} exceeds the supernet shape {tuple(state[name].shape)}")
        if not torch.isfinite(update.tensors[name].float()).all():
            raise SkipswitchError(f"update from {update.client or 'a client'}: {name} holds non-finite values")


def _group_means(state, updates: list[SliceUpdate], weighting: str):
    """Per tensor: weighted sum / weight total (float64) and the weight total, over ``updates``."""
    sums: dict[str, torch.Tensor] = {}
    totals: dict[str, torch.Tensor] = {}
    for update in updates:
        a = 1.0 if weighting == "count" else float(update.num_examples)
        for name, box in update.regions.items():
            if name not in sums:
                sums[name] = torch.zeros(state[name].shape, dtype=torch.float64)
                totals[name] = torch.zeros(state[name].shape, dtype=torch.float64)
            index = _index(box)
            sums[name][index] += a * update.tensors[name].to(torch.float64)
            totals[name][index] += a
    means = {name: sums[name] / totals[name].clamp_min(1e-300) for name in sums}
    return means, totals


def aggregate_slices(state: dict[str, torch.Tensor], updates: Iterable[SliceUpdate], *, weighting: str = "samples",
                     largest_weight: Optional[float] = None) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
    """(new state, per-tensor count of clients holding each element). ``state`` is not modified."""
    updates = list(updates)
    if weighting not in ("count", "samples"):
        raise SkipswitchError(f"unknown weighting {weighting!r}; choose count or samples")
    if largest_weight is not None and not 0 < largest_weight < 1:
        raise SkipswitchError(f"largest_weight must lie in (0, 1), got {largest_weight}")
    for update in updates:
        check_update(update, state)
        if weighting == "samples" and update.num_examples <= 0:
            raise SkipswitchError(f"update from {update.client or 'a client'} reports {update.num_examples} examples")
    counts: dict[str, torch.Tensor] = {}
    for update in updates:
        for name, box in update.regions.items():
            counts.setdefault(name, torch.zeros(state[name].shape, dtype=torch.int64))[_index(box)] += 1
    if largest_weight is None:
        groups = [(1.0, updates)]
    else:
        groups = [(largest_weight, [u for u in updates if u.largest]),
                  (1.0 - largest_weight, [u for u in updates if not u.largest])]
    group_stats = [(share, *_group_means(state, members, weighting)) for share, members in groups if members]
    new_state = {}
    for name, value in state.items():
        if name not in counts or not value.is_floating_point():
            new_state[name] = value.clone()
            continue
        held = [(share, means[name], totals[name] > 0) for share, means, totals in group_stats if name in means]
        numerator = torch.zeros(value.shape, dtype=torch.float64)
        shares = torch.zeros(value.shape, dtype=torch.float64)
        for share, mean, mask in held:
            numerator += torch.where(mask, share * mean, 0.0)
            shares += mask.to(torch.float64) * share
        touched = shares > 0
        merged = torch.where(touched, numerator / shares.clamp_min(1e-300), value.to(torch.float64))
        new_state[name] = merged.to(value.dtype)
    return new_state, counts
