"""Tailor: KD loss, skip alteration schedule, retraining (Skip Remover / Skip Shortener)."""

from .kd import DistillationLoss, freeze
from .retrain import run_tailor
from .schedule import METHOD_TARGET, AlterationSchedule, list_orders, register_order

__all__ = ["METHOD_TARGET", "AlterationSchedule", "DistillationLoss", "freeze", "list_orders", "register_order", "run_tailor"]
