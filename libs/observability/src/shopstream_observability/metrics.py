"""The Prometheus metrics every Shopstream process exposes on ``/metrics``.

Defined once here so the names and labels are the same in every service and dashboards can be
shared. Lags are gauges in events (positions), which stays meaningful whatever the event rate.
"""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

EVENTS_APPENDED = Counter(
    "shopstream_events_appended_total", "Events appended to the service's own event store", ["service"]
)
RELAY_PUBLISHED = Counter(
    "shopstream_relay_published_total", "Public events acknowledged by Kafka", ["service", "topic"]
)
RELAY_LAG = Gauge(
    "shopstream_relay_lag_events", "Store head position minus the relay's checkpoint", ["service"]
)
INBOX_RECEIVED = Counter(
    "shopstream_inbox_received_total", "Kafka messages handled by the inbox", ["service", "outcome"]
)
CONSUMER_LAG = Gauge(
    "shopstream_consumer_lag_messages",
    "High watermark minus committed offset",
    ["service", "topic", "partition"],
)
DEAD_LETTERS = Counter(
    "shopstream_dead_letters_total", "Messages sent to the dead-letter topic", ["service", "topic", "reason"]
)
PROJECTION_LAG = Gauge(
    "shopstream_projection_lag_events",
    "Store head position minus the projection's checkpoint",
    ["service", "projection"],
)
BATCH_SECONDS = Histogram(
    "shopstream_batch_seconds",
    "Time to handle one batch",
    ["service", "stage"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5),
)
POLICY_LAG = Gauge(
    "shopstream_policy_lag_events", "Store head position minus the policy's checkpoint", ["service", "policy"]
)
PROCESSING_FAILURES = Counter(
    "shopstream_processing_failures_total",
    "Batches a projection or policy failed to apply (retried with backoff, never skipped)",
    ["service", "runner"],
)
