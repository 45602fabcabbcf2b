"""The latency histograms an emergency service is judged on, through `prometheus_client`
(served on `/metrics` after the counters of `bot.metrics`).

Labels are a fixed vocabulary (channel names), never a person or a reference. Each process
has its own; Prometheus sums them across processes.
"""

from __future__ import annotations

from prometheus_client import Histogram

_SECONDS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)
_MINUTES = (1, 5, 15, 30, 60, 120, 300, 600, 1200, 1800, 3600)

WEBHOOK_ANSWER = Histogram("ess_webhook_answer_seconds",
                           "From a webhook request arriving to its answer", ["channel"],
                           buckets=_SECONDS)
FIRST_DELIVERY = Histogram("ess_report_to_first_card_seconds",
                           "From a report to its first responder card reaching a channel",
                           buckets=_MINUTES)
FIRST_ACK = Histogram("ess_report_to_first_ack_seconds",
                      "From a report to its first acknowledgement by a responder",
                      buckets=_MINUTES)
OUTBOX_AGE = Histogram("ess_outbox_age_seconds",
                       "From a message being queued to its delivery", ["channel"],
                       buckets=_MINUTES)
