"""The projector's Prometheus metrics (served on POINTSVIEW_METRICS_PORT when set)."""

from prometheus_client import Counter, Gauge

EVENTS_APPLIED = Counter("pointsview_events_applied_total", "Events applied to the read-model")
EVENTS_SKIPPED = Counter(
    "pointsview_events_skipped_total", "Records that were no-ops (redelivered or duplicate eventId)"
)
DEAD_LETTERED = Counter("pointsview_events_deadlettered_total", "Records sent to the dead-letter topic")
KEY_MISMATCH = Counter(
    "pointsview_record_key_mismatch_total", "Records whose key disagrees with the envelope's customer"
)
CONSUMER_LAG = Gauge("pointsview_consumer_lag", "Records behind the partition's end", ["topic", "partition"])
REPLAYS = Counter("pointsview_replays_total", "Partitions replayed because Redis lost data")
STALLED = Counter(
    "pointsview_projector_stalled_total",
    "Stalls: the lag stayed above 0 while the projector read, applied and saved nothing for POINTSVIEW_STALL_SECONDS",
)
