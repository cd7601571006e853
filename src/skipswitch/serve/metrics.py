"""Serving metrics through ``prometheus_client``: one registry per scheduler, so several
servers in one process (tests) keep separate counts; metric names are ``<prefix>_<name>``."""

from __future__ import annotations

from typing import Callable, Sequence

from prometheus_client import (CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram,
                               disable_created_metrics, generate_latest)
from prometheus_client.parser import text_string_to_metric_families

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128)
CONTENT_TYPE = CONTENT_TYPE_LATEST

# Otherwise every counter and histogram gains a ``_created`` timestamp series the server never exposed.
disable_created_metrics()


class Metrics:
    def __init__(self, prefix: str = "skipswitch"):
        self.prefix = prefix
        self.registry = CollectorRegistry()
        self._metrics: dict[str, Counter | Histogram] = {}

    def _full(self, name: str) -> str:
        return f"{self.prefix}_{name}"

    def counter(self, name: str, help: str, labels: Sequence[str] = ()) -> None:
        self._metrics[name] = Counter(name, help, labels, namespace=self.prefix, registry=self.registry)

    def gauge(self, name: str, help: str, read: Callable[[], float]) -> None:
        Gauge(name, help, namespace=self.prefix, registry=self.registry).set_function(read)

    def histogram(self, name: str, help: str, buckets: Sequence[float], labels: Sequence[str] = ()) -> None:
        self._metrics[name] = Histogram(name, help, labels, namespace=self.prefix, registry=self.registry,
                                        buckets=sorted(buckets))

    def series(self, name: str, **labels: str):
        """The metric's child for ``labels`` (its ``inc``/``observe``), for a hot path to bind once."""
        metric = self._metrics[name]
        return metric.labels(**labels) if labels else metric

    def inc(self, name: str, amount: float = 1.0, **labels: str) -> None:
        self.series(name, **labels).inc(amount)

    def observe(self, name: str, value: float, **labels: str) -> None:
        self.series(name, **labels).observe(value)

    def value(self, name: str, **labels: str) -> float:
        """A counter's current value (0 if never incremented)."""
        return self.registry.get_sample_value(self._full(name), labels) or 0.0

    def total(self, name: str) -> float:
        """A counter summed over all its label sets."""
        return sum(s.value for family in self._metrics[name].collect() for s in family.samples
                   if s.name == self._full(name))

    def hist_count(self, name: str, **labels: str) -> int:
        return int(self.registry.get_sample_value(f"{self._full(name)}_count", labels) or 0)

    def render(self) -> str:
        return generate_latest(self.registry).decode()


def parse_prometheus(text: str) -> dict[str, float]:
    """``{'name{labels sorted by name}': value}`` for every sample (for tests)."""
    out = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            labels = ",".join(f'{k}="{v}"' for k, v in sorted(sample.labels.items()))
            out[sample.name + (f"{{{labels}}}" if labels else "")] = sample.value
    return out
