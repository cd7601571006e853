"""Serving metrics in the Prometheus text exposition format (version 0.0.4), thread-safe.

Small on purpose: counters (optionally labelled), gauges read at scrape time, and
cumulative histograms; enough for requests, switches, SLO misses and latencies.
"""

from __future__ import annotations

import bisect
import math
import threading
from typing import Callable, Sequence

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128)


def _labels(labels: dict[str, str]) -> str:
    if not labels:
        return ""
    inner = ",".join(f'{k}="{str(v).replace(chr(92), chr(92) * 2).replace(chr(34), chr(92) + chr(34))}"'
                     for k, v in sorted(labels.items()))
    return "{" + inner + "}"


def _num(value: float) -> str:
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    return repr(float(value)) if not float(value).is_integer() else str(int(value))


class Metrics:
    def __init__(self, prefix: str = "skipswitch"):
        self.prefix = prefix
        self._lock = threading.Lock()
        self._help: dict[str, tuple[str, str]] = {}  # name -> (type, help)
        self._counters: dict[str, dict[tuple, float]] = {}
        self._gauges: dict[str, Callable[[], float]] = {}
        self._hists: dict[str, tuple[Sequence[float], dict[tuple, list[float]]]] = {}

    def _full(self, name: str) -> str:
        return f"{self.prefix}_{name}"

    def counter(self, name: str, help: str) -> None:
        self._help[self._full(name)] = ("counter", help)
        self._counters.setdefault(self._full(name), {})

    def gauge(self, name: str, help: str, read: Callable[[], float]) -> None:
        self._help[self._full(name)] = ("gauge", help)
        self._gauges[self._full(name)] = read

    def histogram(self, name: str, help: str, buckets: Sequence[float]) -> None:
        self._help[self._full(name)] = ("histogram", help)
        self._hists[self._full(name)] = (tuple(sorted(buckets)), {})

    def inc(self, name: str, amount: float = 1.0, **labels: str) -> None:
        key = tuple(sorted(labels.items()))
        with self._lock:
            series = self._counters[self._full(name)]
            series[key] = series.get(key, 0.0) + amount

    def observe(self, name: str, value: float, **labels: str) -> None:
        buckets, series = self._hists[self._full(name)]
        key = tuple(sorted(labels.items()))
        with self._lock:
            # per series: one count per bucket (non-cumulative), then count and sum
            row = series.setdefault(key, [0.0] * (len(buckets) + 2))
            index = bisect.bisect_left(buckets, value)  # first bucket with value <= bound
            if index < len(buckets):
                row[index] += 1
            row[-2] += 1
            row[-1] += value

    def value(self, name: str, **labels: str) -> float:
        """A counter's current value (0 if never incremented)."""
        with self._lock:
            return self._counters[self._full(name)].get(tuple(sorted(labels.items())), 0.0)

    def total(self, name: str) -> float:
        """A counter summed over all its label sets."""
        with self._lock:
            return sum(self._counters[self._full(name)].values())

    def hist_count(self, name: str, **labels: str) -> int:
        with self._lock:
            row = self._hists[self._full(name)][1].get(tuple(sorted(labels.items())))
            return 0 if row is None else int(row[-2])

    def render(self) -> str:
        lines = []
        with self._lock:
            for name, (kind, help) in self._help.items():
                lines.append(f"# HELP {name} {help}")
                lines.append(f"# TYPE {name} {kind}")
                if kind == "counter":
                    series = self._counters[name] or {(): 0.0}
                    for key, value in sorted(series.items()):
                        lines.append(f"{name}{_labels(dict(key))} {_num(value)}")
                elif kind == "gauge":
                    lines.append(f"{name} {_num(self._gauges[name]())}")
                else:
                    buckets, series = self._hists[name]
                    for key, row in sorted(series.items()):
                        cumulative = 0.0
                        for bound, count in zip(buckets, row):
                            cumulative += count
                            lines.append(f"{name}_bucket{_labels({**dict(key), 'le': _num(bound)})} {_num(cumulative)}")
                        lines.append(f"{name}_bucket{_labels({**dict(key), 'le': '+Inf'})} {_num(row[-2])}")
                        lines.append(f"{name}_count{_labels(dict(key))} {_num(row[-2])}")
                        lines.append(f"{name}_sum{_labels(dict(key))} {_num(row[-1])}")
        return "\n".join(lines) + "\n"


def parse_prometheus(text: str) -> dict[str, float]:
    """``{'name{labels}': value}`` for every sample line (for tests and the load generator)."""
    out = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        name, _, value = line.rpartition(" ")
        out[name] = float(value)
    return out
