"""Stream metrics: counters, batch-size histogram, latency quantiles; JSON and Prometheus text."""

from __future__ import annotations

import math
import threading
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

#: Contacts per batch upsert (HubSpot takes at most 100).
BATCH_BUCKETS: tuple[float, ...] = (1, 5, 10, 25, 50, 75, 100)
QUANTILES: tuple[float, ...] = (0.5, 0.95, 0.99)
#: Latency quantiles are computed over the most recent samples (a sliding reservoir).
LATENCY_SAMPLES = 20_000
PREFIX = "syncdsl_stream_"

COUNTERS: dict[str, str] = {
    "events_received": "Events stored in the durable queue (HTTP and --input).",
    "events_applied": "Events whose contact HubSpot accepted.",
    "events_rejected": "Events rejected (mapping, or HubSpot 400); written to the rejects file.",
    "events_coalesced": "Events merged into a later event for the same email before sending.",
    "events_skipped": "Events with nothing to send (no value, and an exit for a non-member).",
    "events_not_member": "Events for people who are members of no audience and were never exported "
    "(never sent).",
    "events_no_consent": "Events for people whose consent withholds them and who were never "
    "exported (never sent).",
    "events_not_in_hubspot": "update_only: events for people with no HubSpot contact the state "
    "knows of (never created).",
    "exits_of_deleted": "Exits of members deleted in HubSpot by hand (not recreated).",
    "batches_sent": "Batch upserts HubSpot answered (accepted or isolated rejects).",
    "batch_failures": "Batches that failed after the client's retries; their events were retried.",
    "intake_refused": "HTTP intake requests answered 4xx/5xx (bad payload, auth, full queue).",
}


def quantile(sorted_values: list[float], q: float) -> float:
    """The nearest-rank quantile of already sorted values (NaN when there are none)."""
    if not sorted_values:
        return math.nan
    rank = max(1, math.ceil(q * len(sorted_values)))
    return sorted_values[rank - 1]


@dataclass
class StreamMetrics:
    """Thread-safe counters of one stream service; gauges are read through callbacks."""

    counters: dict[str, int] = field(default_factory=lambda: dict.fromkeys(COUNTERS, 0))
    batch_buckets: list[int] = field(default_factory=lambda: [0] * len(BATCH_BUCKETS))
    batch_count: int = 0
    batch_sum: int = 0
    latency_sum: float = 0.0
    latency_count: int = 0
    _latencies: deque[float] = field(default_factory=lambda: deque(maxlen=LATENCY_SAMPLES))
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def add(self, name: str, amount: int = 1) -> None:
        with self._lock:
            self.counters[name] += amount

    def get(self, name: str) -> int:
        with self._lock:
            return self.counters[name]

    def observe_batch(self, contacts: int) -> None:
        with self._lock:
            self.batch_count += 1
            self.batch_sum += contacts
            for index, bound in enumerate(BATCH_BUCKETS):
                if contacts <= bound:
                    self.batch_buckets[index] += 1

    def observe_latencies(self, seconds: Iterable[float]) -> None:
        with self._lock:
            for value in seconds:
                value = max(value, 0.0)
                self._latencies.append(value)
                self.latency_sum += value
                self.latency_count += 1

    def latency_quantiles(self) -> dict[float, float]:
        with self._lock:
            ordered = sorted(self._latencies)
        return {q: quantile(ordered, q) for q in QUANTILES}

    def snapshot(self) -> dict[str, object]:
        """Counters and quantiles as plain JSON-able data (for /status and the benchmark)."""
        quantiles = self.latency_quantiles()
        with self._lock:
            return {
                **self.counters,
                "batches": self.batch_count,
                "mean_batch_size": round(self.batch_sum / self.batch_count, 2)
                if self.batch_count
                else None,
                "latency_seconds": {
                    f"p{round(q * 100)}": None if math.isnan(v) else round(v, 4)
                    for q, v in quantiles.items()
                },
            }


def _number(value: float) -> str:
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    return repr(float(value)) if not float(value).is_integer() else str(int(value))


def render_prometheus(
    metrics: StreamMetrics,
    gauges: dict[str, tuple[str, Callable[[], float]]],
    client_counters: dict[str, tuple[str, int]],
) -> str:
    """The Prometheus text exposition format (version 0.0.4)."""
    lines: list[str] = []

    def family(name: str, kind: str, help_text: str) -> str:
        full = PREFIX + name
        lines.append(f"# HELP {full} {help_text}")
        lines.append(f"# TYPE {full} {kind}")
        return full

    with metrics._lock:
        counters = dict(metrics.counters)
        buckets = list(metrics.batch_buckets)
        batch_count, batch_sum = metrics.batch_count, metrics.batch_sum
        latency_sum, latency_count = metrics.latency_sum, metrics.latency_count
    for name, help_text in COUNTERS.items():
        full = family(f"{name}_total", "counter", help_text)
        lines.append(f"{full} {counters[name]}")
    for name, (help_text, total) in client_counters.items():
        full = family(f"{name}_total", "counter", help_text)
        lines.append(f"{full} {total}")
    for name, (help_text, read) in gauges.items():
        full = family(name, "gauge", help_text)
        lines.append(f"{full} {_number(read())}")
    full = family("batch_size", "histogram", "Contacts per batch upsert sent to HubSpot.")
    for bound, count in zip(BATCH_BUCKETS, buckets):
        lines.append(f'{full}_bucket{{le="{_number(bound)}"}} {count}')
    lines.append(f'{full}_bucket{{le="+Inf"}} {batch_count}')
    lines.append(f"{full}_sum {batch_sum}")
    lines.append(f"{full}_count {batch_count}")
    full = family(
        "latency_seconds",
        "summary",
        "Seconds from receipt of an event to HubSpot's acceptance of its contact.",
    )
    for q, value in metrics.latency_quantiles().items():
        lines.append(f'{full}{{quantile="{q}"}} {_number(value)}')
    lines.append(f"{full}_sum {_number(latency_sum)}")
    lines.append(f"{full}_count {latency_count}")
    return "\n".join(lines) + "\n"
