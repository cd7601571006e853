"""skipswitch: resource-efficient DNN inference.

Tailor (skip-connection removal/shortening with knowledge distillation) and
FastSwitch (weight-sharing supernets served with fast subnet switching).
"""

__version__ = "0.1.0"
