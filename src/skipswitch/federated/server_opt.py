"""Server-side optimizers applied to the aggregated slices (FedOpt).

The aggregate of a round defines a pseudo-gradient ``delta = aggregate - current`` per
supernet element, and the server steps the supernet along it:

* ``fedavg``:  x += lr * delta  (lr 1: the aggregate itself; McMahan et al. 2017)
* ``fedavgm``: v = momentum * v + delta;  x += lr * v
  (Hsu, Qi, Brown, "Measuring the Effects of Non-Identical Data Distribution for Federated
  Visual Classification", 2019)
* ``fedadam``: m = b1 m + (1 - b1) delta;  v = b2 v + (1 - b2) delta^2;
  x += lr * sqrt(1 - b2^t) / (1 - b1^t) * m / (sqrt(v) + tau)
* ``fedyogi``: m as Adam;  v = v - (1 - b2) delta^2 sign(v - delta^2);  x += lr * m / (sqrt(v) + tau)
  (Reddi et al., "Adaptive Federated Optimization", ICLR 2021, Algorithm 2)

The update rules, initial state (zeros) and defaults are those of Flower's
``flwr.serverapp.strategy`` FedAvgM / FedAdam / FedYogi (flwr 1.32), which step every whole
array every round. Here clients train slices, so the step is per element: only elements that
at least one surviving client held this round move (elsewhere ``delta`` is undefined, not 0),
and state is kept per full supernet tensor, so an element's moments persist between the
rounds that train it. Adam's bias correction counts each element's own steps ``t`` (Flower
uses the round number, the same thing when every array is stepped every round).
BatchNorm running statistics are not gradients' targets: they take the aggregate as is.
"""

from __future__ import annotations

import torch


class ServerOptimizer:
    def __init__(self, name: str, *, lr: float = 1.0, momentum: float = 0.9, beta1: float = 0.9,
                 beta2: float = 0.99, tau: float = 1e-3):
        self.name, self.lr, self.momentum = name, lr, momentum
        self.beta1, self.beta2, self.tau = beta1, beta2, tau
        # "<m|v|t>.<tensor name>" -> full-shape state; empty for plain FedAvg.
        self.state: dict[str, torch.Tensor] = {}

    def step(self, current: dict[str, torch.Tensor], aggregate: dict[str, torch.Tensor],
             holders: dict[str, torch.Tensor], params: set[str]) -> dict[str, torch.Tensor]:
        """The new supernet state. ``holders[name]`` counts the clients that held each element
        this round; ``params`` are the trainable tensors (others take ``aggregate`` as is)."""
        out = dict(aggregate)
        if self.name == "fedavg" and self.lr == 1.0:
            return out  # x + (aggregate - x), without the rounding
        for name, held in holders.items():
            if name not in params:
                continue
            mask = held > 0
            x = current[name]
            delta = torch.where(mask, aggregate[name] - x, 0.0)
            step = self._direction(name, delta, mask)
            out[name] = torch.where(mask, x + self.lr * step, x)
        return out

    def _moment(self, key: str, like: torch.Tensor) -> torch.Tensor:
        return self.state.setdefault(key, torch.zeros_like(like))

    def _direction(self, name: str, delta: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        if self.name == "fedavg":
            return delta
        if self.name == "fedavgm":
            v = self._moment(f"v.{name}", delta)
            v.copy_(torch.where(mask, self.momentum * v + delta, v))
            return v
        m, v = self._moment(f"m.{name}", delta), self._moment(f"v.{name}", delta)
        m.copy_(torch.where(mask, self.beta1 * m + (1 - self.beta1) * delta, m))
        square = delta * delta
        if self.name == "fedadam":
            v.copy_(torch.where(mask, self.beta2 * v + (1 - self.beta2) * square, v))
            t = self._moment(f"t.{name}", delta)
            t.add_(mask.to(t.dtype))
            scale = torch.sqrt(1 - self.beta2 ** t.clamp_min(1)) / (1 - self.beta1 ** t.clamp_min(1))
        else:  # fedyogi
            v.copy_(torch.where(mask, v - (1 - self.beta2) * square * torch.sign(v - square), v))
            scale = 1.0
        return scale * m / (torch.sqrt(v) + self.tau)

    def state_dict(self) -> dict[str, torch.Tensor]:
        return dict(self.state)

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        self.state = {k: v.clone() for k, v in state.items()}
