"""Request figures for balancers and dashboards: a rolling last-minute window and Prometheus metrics.

The rolling window counts the traffic an instance serves, not the probes balancers send: requests to
/health* and /metrics are left out of it (they are still counted in Prometheus, by route), so that
health checks neither inflate the request rate nor flatten the latency percentiles.
"""

from __future__ import annotations

import math
import time
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import GaugeMetricFamily, CounterMetricFamily
from prometheus_client.registry import Collector

WINDOW_SECONDS = 60
# Percentiles come from the most recent requests within the window, at most this many.
LATENCY_SAMPLES = 4096


@dataclass(frozen=True)
class WindowFigures:
    requests_per_minute: int
    error_rate_percent: float
    response_time_avg_ms: float | None
    response_time_p95_ms: float | None
    response_time_p99_ms: float | None


def percentile(sorted_values: list[float], fraction: float) -> float:
    """Nearest-rank percentile of an ascending, non-empty list."""
    rank = math.ceil(fraction * len(sorted_values))
    return sorted_values[min(len(sorted_values), max(rank, 1)) - 1]


class RollingWindow:
    """Requests, server errors and latencies of the last minute, in one-second buckets."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._second = [-1] * WINDOW_SECONDS
        self._count = [0] * WINDOW_SECONDS
        self._errors = [0] * WINDOW_SECONDS
        self._latency = [0.0] * WINDOW_SECONDS
        self._samples: deque[tuple[float, float]] = deque(maxlen=LATENCY_SAMPLES)

    def record(self, seconds: float, status: int) -> None:
        now = self._clock()
        second = int(now)
        slot = second % WINDOW_SECONDS
        if self._second[slot] != second:
            self._second[slot] = second
            self._count[slot] = self._errors[slot] = 0
            self._latency[slot] = 0.0
        self._count[slot] += 1
        self._latency[slot] += seconds
        if status >= 500:
            self._errors[slot] += 1
        self._samples.append((now, seconds))

    def figures(self) -> WindowFigures:
        now = self._clock()
        oldest = int(now) - WINDOW_SECONDS + 1
        live = [i for i in range(WINDOW_SECONDS) if self._second[i] >= oldest]
        count = sum(self._count[i] for i in live)
        errors = sum(self._errors[i] for i in live)
        total_latency = sum(self._latency[i] for i in live)
        recent = sorted(d for t, d in self._samples if t >= now - WINDOW_SECONDS)

        def ms(value: float | None) -> float | None:
            return None if value is None else round(value * 1000, 3)

        return WindowFigures(
            requests_per_minute=count,
            error_rate_percent=round(100.0 * errors / count, 3) if count else 0.0,
            response_time_avg_ms=ms(total_latency / count) if count else None,
            response_time_p95_ms=ms(percentile(recent, 0.95)) if recent else None,
            response_time_p99_ms=ms(percentile(recent, 0.99)) if recent else None,
        )


class _CallbackCollector(Collector):
    """Figures read at scrape time from the live objects (pool, cache, readiness)."""

    def __init__(self, collect: Callable[[], Iterator[GaugeMetricFamily | CounterMetricFamily]]) -> None:
        self._collect = collect

    def collect(self) -> Iterator[GaugeMetricFamily | CounterMetricFamily]:
        yield from self._collect()


class Metrics:
    """One registry per application instance (no process-global metrics)."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.window = RollingWindow()
        self.in_flight = 0
        self.requests = Counter("http_requests_total", "HTTP requests answered",
                                ["method", "route", "status"], registry=self.registry)
        self.latency = Histogram("http_request_duration_seconds", "Time to answer an HTTP request",
                                 ["route"], registry=self.registry,
                                 buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10))
        self.in_flight_gauge = Gauge("http_requests_in_flight", "Requests being answered now",
                                     registry=self.registry)
        self.in_flight_gauge.set_function(lambda: self.in_flight)
        self.rate_limited = Counter("inventory_rate_limited_total", "Requests refused with 429",
                                    registry=self.registry)

    def add_collector(self, collect: Callable[[], Iterator[GaugeMetricFamily | CounterMetricFamily]]) -> None:
        self.registry.register(_CallbackCollector(collect))

    def observe(self, method: str, route: str, status: int, seconds: float, *, probe: bool) -> None:
        self.requests.labels(method, route, str(status)).inc()
        self.latency.labels(route).observe(seconds)
        if not probe:
            self.window.record(seconds, status)
