"""The shared training loop, its configuration, progress bars and run helpers.

Names load on first use (PEP 562) so that the CLI can read TrainConfig without importing torch.
"""

from importlib import import_module

_EXPORTS = {"TrainConfig": "config", "validated": "config", "RunResult": "trainer", "Trainer": "trainer",
            "cross_entropy_loss": "trainer", "evaluate": "trainer", "make_optimizer": "trainer"}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name in _EXPORTS:
        return getattr(import_module(f".{_EXPORTS[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
