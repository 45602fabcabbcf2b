"""Response-time statistics per area, the way emergency services are judged (NENA/NFPA
style percentiles): report → first notification delivered, report → first acknowledgement,
acknowledgement → on scene, and the share of reports never acknowledged. Pure functions over
`Milestone` rows; `ess stats` prints them.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from storage.analytics import nearest_rank
from storage.ports import Milestone

DELIVERED_KINDS = ("dispatched", "delivered")
ACK = "acknowledged"
ON_SCENE = "on_scene"
KINDS = (*DELIVERED_KINDS, ACK, ON_SCENE)
PERCENTILES = (50, 90, 99)
ALL = "all"


# Nearest rank (a value that occurred, never an interpolation): the analytics' own.
percentile = nearest_rank


@dataclass
class AreaStats:
    reports: int = 0
    to_delivered: list[float] = field(default_factory=list)  # seconds
    to_ack: list[float] = field(default_factory=list)
    ack_to_scene: list[float] = field(default_factory=list)
    settled: int = 0  # old enough to judge "never acknowledged"
    never_acked: int = 0

    @property
    def never_acked_share(self) -> float | None:
        return self.never_acked / self.settled if self.settled else None

    def summary(self) -> dict[str, object]:
        def pcts(values: list[float]) -> dict[str, float | None]:
            return {f"p{p}": percentile(values, p) for p in PERCENTILES}
        return {
            "reports": self.reports,
            "report_to_first_delivered_s": pcts(self.to_delivered),
            "report_to_first_ack_s": pcts(self.to_ack),
            "ack_to_on_scene_s": pcts(self.ack_to_scene),
            "never_acknowledged_share": self.never_acked_share,
            "judged": self.settled,
        }


def response_stats(rows: Iterable[Milestone], now: datetime,
                   settle: timedelta = timedelta(hours=1)) -> dict[str, AreaStats]:
    """Per province code (and `all`). A report younger than `settle` with no acknowledgement
    yet is not counted as never acknowledged: it may still be."""
    incidents: dict[str, tuple[datetime, str, dict[str, datetime]]] = {}
    for row in rows:
        created, area, marks = incidents.setdefault(
            row.incident_id, (row.created_at, row.area_codes[0] if row.area_codes else "-",
                              {}))
        if row.kind is not None and row.at is not None:
            marks[row.kind] = min(row.at, marks.get(row.kind, row.at))
    stats: dict[str, AreaStats] = {}
    for created, area, marks in incidents.values():
        delivered = [marks[k] for k in DELIVERED_KINDS if k in marks]
        for key in (area, ALL):
            s = stats.setdefault(key, AreaStats())
            s.reports += 1
            if delivered:
                s.to_delivered.append((min(delivered) - created).total_seconds())
            if ACK in marks:
                s.to_ack.append((marks[ACK] - created).total_seconds())
                if ON_SCENE in marks:
                    s.ack_to_scene.append((marks[ON_SCENE] - marks[ACK]).total_seconds())
            if ACK in marks or now - created >= settle:
                s.settled += 1
                s.never_acked += ACK not in marks
    return stats
