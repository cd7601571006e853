"""The shared training loop, its configuration, progress bars and run helpers.

Names load on first use (PEP 562) so that the CLI can read TrainConfig without importing torch.
"""

from .._lazy import lazy_exports

__getattr__, __all__ = lazy_exports(__name__, {
    "TrainConfig": "config", "cosine_lr": "config", "validated": "config",
    "RunResult": "trainer", "Trainer": "trainer", "cross_entropy_loss": "trainer", "evaluate": "trainer",
    "kl_distillation": "trainer", "make_optimizer": "trainer", "train_step": "trainer",
})
