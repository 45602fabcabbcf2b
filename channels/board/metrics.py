"""The board's Prometheus metrics (served on `/metrics` with the others)."""

from __future__ import annotations

from prometheus_client import Gauge, Histogram

BOARD_VIEWERS = Gauge("ess_board_viewers", "Board live streams open on this process")
BOARD_LAG = Histogram("ess_board_event_to_viewer_seconds",
                      "From an incident change being committed to its event reaching a viewer",
                      buckets=(0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10))
