"""Which skip is altered at which epoch.

The reference alters skips from the input side toward the output, one every 3 epochs
(``skip = epoch // 3 - 1``): alteration i happens at epoch (i + 1) * every. The order is
pluggable: ``register_order(name, fn)`` where ``fn(model) -> block indices``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

from torch import nn

from ..errors import SkipswitchError

METHOD_TARGET = {"remove": "none", "shorten": "short"}

OrderFn = Callable[[nn.Module], list[int]]
_ORDERS: dict[str, OrderFn] = {}


def register_order(name: str, fn: OrderFn) -> None:
    _ORDERS[name] = fn


def list_orders() -> list[str]:
    return sorted(_ORDERS)


def _long_blocks(model: nn.Module) -> list[int]:
    return [i for i, mode in enumerate(model.skip_modes) if mode == "long"]


register_order("input", _long_blocks)
register_order("output", lambda model: list(reversed(_long_blocks(model))))


def recommended_every(alterations: int, epochs: int) -> int:
    """Alterations spread over the first two thirds of the epochs; the last third recovers."""
    return max(1, (2 * epochs // 3) // max(1, alterations))


@dataclass(frozen=True)
class Alteration:
    epoch: int
    block: int
    target: str

    def to_dict(self) -> dict[str, Any]:
        return {"epoch": self.epoch + 1, "block": self.block, "to": self.target}


class AlterationSchedule:
    """Alter one long skip every ``every`` epochs, in ``order``; a callable epoch hook."""

    def __init__(self, model: nn.Module, method: str, every: int = 3, order: str = "input"):
        if method not in METHOD_TARGET:
            raise SkipswitchError(f"unknown Tailor method {method!r}; choose remove or shorten")
        if every < 1:
            raise SkipswitchError(f"--every must be positive, got {every}")
        if order not in _ORDERS:
            raise SkipswitchError(f"unknown skip order {order!r}; choose one of {', '.join(list_orders())}")
        blocks = _ORDERS[order](model)
        target = METHOD_TARGET[method]
        self.method, self.every, self.order = method, every, order
        self.alterations = [Alteration((i + 1) * every, b, target) for i, b in enumerate(blocks)]
        self._by_epoch = {a.epoch: a for a in self.alterations}

    @property
    def last_epoch(self) -> int:
        """0-based epoch of the last alteration (-1 if there is nothing to alter)."""
        return self.alterations[-1].epoch if self.alterations else -1

    def at(self, epoch: int) -> Alteration | None:
        """The alteration scheduled for ``epoch`` (0-based), if any."""
        return self._by_epoch.get(epoch)

    def check_epochs(self, epochs: int) -> None:
        if epochs <= self.last_epoch:
            raise SkipswitchError(
                f"epochs={epochs} is too few: {len(self.alterations)} skips altered every {self.every} epochs "
                f"need at least {self.last_epoch + 1} epochs (more to recover after the last)"
            )

    def pace_advice(self, epochs: int) -> str | None:
        """One line when the alterations run past two thirds of ``epochs`` (too little time left
        to recover), naming the pace the method recommends; ``None`` when the pace is fine."""
        n = len(self.alterations)
        if 3 * self.last_epoch <= 2 * epochs:
            return None
        every = recommended_every(n, epochs)
        fix = f"--every {every}" if 3 * n * every <= 2 * epochs else f"--every {every} with --epochs >= {-(-3 * n * every // 2)}"
        return (f"{n} skips altered every {self.every} epoch(s) leave {epochs - self.last_epoch} of {epochs} epochs "
                f"to recover after the last; recommended: {fix} (alterations within the first two thirds)")

    def __call__(self, epoch: int, model: nn.Module) -> tuple[list[nn.Parameter], dict[str, Any] | None]:
        alteration = self.at(epoch)
        if alteration is None:
            return [], None
        before = model.skip_modes[alteration.block]
        new_params = model.set_skip_mode(alteration.block, alteration.target)
        event = {
            **alteration.to_dict(),
            "from": before,
            "new_params": sum(p.numel() for p in new_params),
            "summary": f"block {alteration.block}: {before} -> {alteration.target}",
        }
        return new_params, event
