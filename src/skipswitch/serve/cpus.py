"""CPU affinity for the inference process (no torch here: the serve job's options validate with it)."""

from __future__ import annotations

import os


def parse_cpu_list(text: str) -> frozenset[int]:
    """CPUs written as taskset does ("0", "0,2", "1-3"); ValueError naming the bad part."""
    cpus: set[int] = set()
    for part in text.split(","):
        first, _, last = part.strip().partition("-")
        try:
            lo, hi = int(first), int(last or first)
        except ValueError:
            raise ValueError(f"{part.strip()!r} is not a CPU number or range (e.g. 0, 0,2 or 1-3)") from None
        if lo < 0 or hi < lo:
            raise ValueError(f"{part.strip()!r} is not a CPU range")
        cpus.update(range(lo, hi + 1))
    return frozenset(cpus)


def pin_threads(cpus: frozenset[int]) -> None:
    """Pin every thread of this process to ``cpus`` (Linux affinity is per thread; new threads inherit it)."""
    for tid in os.listdir("/proc/self/task"):
        try:
            os.sched_setaffinity(int(tid), cpus)
        except ProcessLookupError:  # a thread that ended meanwhile
            pass
