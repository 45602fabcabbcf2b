"""Counters for `GET /metrics` in the Prometheus text format, with no extra dependency.

Labels are a fixed, small vocabulary (channel names, outcomes): never a person, a
conversation or a reference, so the metrics can leave the building.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable


class Metrics:
    """Monotonic counters by name and labels; one instance per process."""

    def __init__(self) -> None:
        self._counts: Counter[tuple[str, tuple[tuple[str, str], ...]]] = Counter()
        self._help: dict[str, str] = {}

    def describe(self, name: str, help_text: str) -> None:
        self._help[name] = help_text

    def inc(self, name: str, amount: int = 1, **labels: str) -> None:
        self._counts[(name, tuple(sorted(labels.items())))] += amount

    def value(self, name: str, **labels: str) -> int:
        return self._counts[(name, tuple(sorted(labels.items())))]

    def render(self, gauges: Iterable[tuple[str, str, float]] = ()) -> str:
        """The exposition text; `gauges` are (name, help, value) read at scrape time."""
        lines: list[str] = []
        names = sorted({name for name, _ in self._counts} | set(self._help))
        for name in names:
            lines.append(f"# HELP {name} {self._help.get(name, name)}")
            lines.append(f"# TYPE {name} counter")
            for (n, labels), count in sorted(self._counts.items()):
                if n == name:
                    text = ",".join(f'{k}="{v}"' for k, v in labels)
                    lines.append(f"{name}{{{text}}} {count}" if text else f"{name} {count}")
        for name, help_text, value in gauges:
            lines += [f"# HELP {name} {help_text}", f"# TYPE {name} gauge", f"{name} {value:g}"]
        return "\n".join(lines) + "\n"


def standard() -> Metrics:
    metrics = Metrics()
    metrics.describe("ess_inbound_total", "Inbound events by channel and outcome")
    metrics.describe("ess_reports_total", "Submitted reports by outcome")
    metrics.describe("ess_journal_total",
                     "Inbound journal: events stored, spooled, refused (5xx) and handled")
    return metrics
