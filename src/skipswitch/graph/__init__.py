"""The network IR traced with torch.fx: layers, shapes, MACs, parameters, skip edges."""

from .ir import Layer, NetworkGraph, SkipEdge, trace

__all__ = ["Layer", "NetworkGraph", "SkipEdge", "trace"]
