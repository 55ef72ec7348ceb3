"""`syncdsl stream`: always-on, durable streaming export of profiles to HubSpot.

Module map: `queue` (durable SQLite WAL queue), `intake` (HTTP `POST /v1/profiles` and the
`--input` follower), `batcher` (per-email coalescing, batches of 100), `worker` (the dispatcher
and the upsert workers), `metrics` (counters, quantiles, Prometheus text), `logs` (structured
log lines, rejects file), `service` (schema bootstrap, wiring, drain).
"""

from __future__ import annotations

from syncdsl.stream.service import StreamOptions, StreamService

__all__ = ["StreamOptions", "StreamService"]
