"""Tailor: KD loss, skip alteration schedule, retraining (Skip Remover / Skip Shortener)."""

from .kd import DistillationLoss, freeze
from .retrain import run_tailor
from .schedule import METHOD_TARGET, AlterationSchedule, list_orders, register_order


def _cost_order(model):
    # the hardware estimator ranks skips by buffer cost; imported on use to keep tailor light
    from ..fpga.order import cost_order

    return cost_order(model)


register_order("cost", _cost_order)

__all__ = ["METHOD_TARGET", "AlterationSchedule", "DistillationLoss", "freeze", "list_orders", "register_order", "run_tailor"]
