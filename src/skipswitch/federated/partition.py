"""Seeded partitions of a dataset's training split across federated clients.

* ``iid``: a seeded permutation cut into near-equal parts.
* ``dirichlet``: for every class, the client shares are drawn from Dirichlet(alpha, ..., alpha)
  and that class's (shuffled) samples are cut at those shares (the usual non-IID label-skew
  benchmark; small alpha -> each client sees few classes). A draw that leaves a client with
  fewer than ``min_size`` samples is redrawn (up to 1000 times) from the same seeded stream.

The same (labels, clients, scheme, alpha, seed) always gives the same partition, on any
machine: each SuperNode recomputes its own part from the run's settings.
"""

from __future__ import annotations

import numpy as np
import torch

from ..data import Dataset, Split
from ..errors import SkipswitchError

SCHEMES = ("iid", "dirichlet")


def partition_indices(labels: torch.Tensor | np.ndarray, clients: int, scheme: str = "iid", alpha: float = 0.5,
                      seed: int = 0, min_size: int = 1) -> list[np.ndarray]:
    """Disjoint index arrays, one per client, covering every sample exactly once."""
    labels = np.asarray(labels)
    n = len(labels)
    if clients < 1:
        raise SkipswitchError(f"clients must be >= 1, got {clients}")
    if scheme not in SCHEMES:
        raise SkipswitchError(f"unknown partition scheme {scheme!r}; choose iid or dirichlet")
    if clients * min_size > n:
        raise SkipswitchError(f"cannot give {clients} clients {min_size} samples each from {n} samples")
    rng = np.random.default_rng(seed)
    if scheme == "iid":
        return [np.sort(part) for part in np.array_split(rng.permutation(n), clients)]
    if alpha <= 0:
        raise SkipswitchError(f"dirichlet alpha must be positive, got {alpha}")
    classes = np.unique(labels)
    for _ in range(1000):
        parts: list[list[int]] = [[] for _ in range(clients)]
        for c in classes:
            idx = rng.permutation(np.flatnonzero(labels == c))
            shares = rng.dirichlet(np.full(clients, alpha))
            cuts = (np.cumsum(shares)[:-1] * len(idx)).astype(int)
            for client, chunk in enumerate(np.split(idx, cuts)):
                parts[client].extend(chunk.tolist())
        if min(len(p) for p in parts) >= min_size:
            return [np.sort(np.asarray(p, dtype=np.int64)) for p in parts]
    raise SkipswitchError(f"no Dirichlet(alpha={alpha}) draw gave every one of {clients} clients {min_size} samples "
                          "in 1000 tries; raise alpha or lower min_partition_size")


def client_split(dataset: Dataset, indices: np.ndarray) -> Split:
    index = torch.as_tensor(indices, dtype=torch.long)
    return Split(dataset.train.images[index], dataset.train.labels[index])


def label_histogram(labels: torch.Tensor | np.ndarray, parts: list[np.ndarray], num_classes: int) -> np.ndarray:
    """clients x classes counts (for reports and tests)."""
    labels = np.asarray(labels)
    return np.stack([np.bincount(labels[p], minlength=num_classes) for p in parts])
