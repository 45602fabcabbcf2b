"""Where: H3 hexagon bins of report counts, small cells merged upward, and hot spots.

Stores keep each incident's cell at resolution 7 (about 5 km²), never the pin. A cell with
fewer reports than the threshold gives its count to its parent cell (resolution 6, 5, …);
what is still too small at the coarsest resolution (about 12,000 km²) is shown as "<5". So
no shown hexagon holds fewer reports than the threshold, yet no report disappears from the
map. A hot spot is a cell of the finest resolution that clears the threshold and holds at
least twice the mean of its six neighbours: a repeat location worth prevention work.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache

import h3

from routing.analytics import WITHHELD, Period, View, suppress, withhold
from storage.analytics import CELL_RESOLUTION, NO_VALUE, CountRow

COARSEST = 3
HOT_FACTOR = 2.0
CELLS_CACHED = 1 << 16  # per function; the cells of Thailand a map shows number thousands


# A cell's geometry never changes, and every load of the page asks for the same cells'
# corners, centres, neighbours and parents: h3 computing them again was a third of what
# an analyst's page cost `ess serve`. Pure functions, so memoizing them is correct in any
# process.
@lru_cache(maxsize=CELLS_CACHED)
def boundary(cell: str) -> tuple[tuple[float, float], ...]:
    """The cell's corners as (lat, lon)."""
    return tuple((float(a), float(b)) for a, b in h3.cell_to_boundary(cell))


@lru_cache(maxsize=CELLS_CACHED)
def centre(cell: str) -> tuple[float, float]:
    lat, lon = h3.cell_to_latlng(cell)
    return float(lat), float(lon)


@lru_cache(maxsize=CELLS_CACHED)
def neighbours(cell: str) -> tuple[str, ...]:
    """The cells around `cell` (six, or five beside a pentagon)."""
    return tuple(str(c) for c in h3.grid_disk(cell, 1) if c != cell)


@lru_cache(maxsize=CELLS_CACHED)
def parent(cell: str, resolution: int) -> str:
    return str(h3.cell_to_parent(cell, resolution))


@dataclass(frozen=True, slots=True)
class Bin:
    cell: str
    resolution: int
    count: int
    hot: bool


def merge(counts: dict[str, int], threshold: int) -> list[Bin]:
    """Cells at their finest resolution that reaches the threshold (see the module doc)."""
    level = dict(counts)
    kept: list[Bin] = []
    hot = hot_spots(counts, threshold)
    for resolution in range(CELL_RESOLUTION, COARSEST - 1, -1):
        parents: dict[str, int] = {}
        for cell, n in level.items():
            if n >= threshold or resolution == COARSEST:
                kept.append(Bin(cell, resolution, n, cell in hot))
            else:
                up = parent(cell, resolution - 1)
                parents[up] = parents.get(up, 0) + n
        level = parents
    return sorted(kept, key=lambda b: (-b.count, b.cell))


def hot_spots(counts: dict[str, int], threshold: int) -> set[str]:
    hot = set()
    for cell, n in counts.items():
        if n < threshold:
            continue
        ring = neighbours(cell)
        mean = sum(counts.get(c, 0) for c in ring) / max(1, len(ring))
        if n >= HOT_FACTOR * mean:
            hot.add(cell)
    return hot


def hex_view(rows: Sequence[CountRow], period: Period, threshold: int) -> View:
    """The map's table: cell, resolution, centre, count (suppressed), hot spot."""
    counts = {r.keys[0]: r.count for r in rows if r.keys[0] != NO_VALUE}
    unplaced = sum(r.count for r in rows if r.keys[0] == NO_VALUE)
    out = []
    bins = merge(counts, threshold)
    # The reports without a point are one more cell of the sum (they are in the total).
    *shown, unplaced_shown = withhold([*(b.count for b in bins), unplaced], threshold)
    for b, count in zip(bins, shown, strict=True):
        lat, lon = centre(b.cell)
        out.append((b.cell, b.resolution, round(lat, 3), round(lon, 3), count,
                    "yes" if b.hot and count != WITHHELD else "no"))
    notes = (f"reports without a point: {unplaced_shown}",) if unplaced else ()
    return View("hex", ("cell", "resolution", "lat", "lon", "count", "hot_spot"), tuple(out),
                suppress(sum(r.count for r in rows), threshold),
                sum(r.synthetic for r in rows), threshold, period, notes)
