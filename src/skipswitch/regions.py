"""Exact weight-set arithmetic on subnet regions.

A region maps a supernet tensor name to one ``(start, stop)`` range per dimension: the
box of elements a subnet reads. The intersection of two boxes is a box, so the bytes two
subnets share are a sum of box volumes: no element masks needed (the tests check this
against a brute-force mask count).
"""

from __future__ import annotations

import math

Regions = dict[str, tuple[tuple[int, int], ...]]


Box = tuple[tuple[int, int], ...]


def box_volume(box: Box) -> int:
    """Elements in a box (empty ranges count zero)."""
    return math.prod(max(0, stop - start) for start, stop in box)


def box_overlap(a: Box, b: Box) -> int:
    """Elements in the intersection of two boxes of the same rank."""
    return box_volume(tuple((max(sa, sb), min(ea, eb)) for (sa, ea), (sb, eb) in zip(a, b)))


def region_bytes(regions: Regions, bytes_per_element: int = 4) -> int:
    """Bytes of all elements in ``regions``."""
    return sum(box_volume(box) for box in regions.values()) * bytes_per_element


def shared_bytes(a: Regions, b: Regions, bytes_per_element: int = 4) -> int:
    """Bytes of the elements both subnets read."""
    total = 0
    for name in a.keys() & b.keys():
        box_a, box_b = a[name], b[name]
        if len(box_a) != len(box_b):
            raise ValueError(f"regions disagree on the rank of {name}: {box_a} vs {box_b}")
        total += box_overlap(box_a, box_b)
    return total * bytes_per_element


def unique_bytes(a: Regions, b: Regions, bytes_per_element: int = 4) -> tuple[int, int]:
    """(bytes only ``a`` reads, bytes only ``b`` reads): what a switch a->b must load is the second."""
    shared = shared_bytes(a, b, bytes_per_element)
    return region_bytes(a, bytes_per_element) - shared, region_bytes(b, bytes_per_element) - shared
