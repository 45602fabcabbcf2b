"""Server-rendered SVG charts of analytics Views: bars, a time series, the hour-of-week grid
and a hexagon map. Drawn from the suppressed cells only: a "<5" is a hatched stub labelled
"<5", never a bar whose length would tell the number."""

from __future__ import annotations

from functools import lru_cache
from html import escape

from routing.analytics import Cell, View
from routing.hexbins import CELLS_CACHED, boundary, centre

HATCH = ('<defs><pattern id="hatch" width="6" height="6" patternUnits="userSpaceOnUse" '
         'patternTransform="rotate(45)"><rect width="6" height="6" fill="#eef1f5"/>'
         '<line x1="0" y1="0" x2="0" y2="6" stroke="#8a94a6" stroke-width="2"/></pattern>'
         '</defs>')
BAR = "#1f5fa8"
HOT = "#c0392b"


def _number(value: Cell) -> float | None:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) \
        else None


def _label(value: Cell) -> str:
    if value is None:
        return "–"
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


def bars(view: View, label_column: int, value_column: int, title: str,
         labels: list[str] | None = None) -> str:
    """Horizontal bars, one per row."""
    rows = view.rows[:25]
    height = 22 * len(rows) + 10
    numbers = [_number(r[value_column]) or 0.0 for r in rows]
    top = max(numbers, default=0.0) or 1.0
    parts = [f'<svg class="chart" role="img" aria-label="{escape(title)}" viewBox="0 0 520 '
             f'{height}" width="520" height="{height}">{HATCH}']
    for k, row in enumerate(rows):
        y = 5 + 22 * k
        name = labels[k] if labels else _label(row[label_column])
        parts.append(f'<text x="0" y="{y + 15}" font-size="12">{escape(name[:22])}</text>')
        value = row[value_column]
        n = _number(value)
        if n is None:
            parts.append(f'<rect x="170" y="{y + 3}" width="14" height="15" '
                         f'fill="url(#hatch)"/>')
        else:
            width = max(1.0, 260 * n / top)
            parts.append(f'<rect x="170" y="{y + 3}" width="{width:.1f}" height="15" '
                         f'fill="{BAR}"/>')
        parts.append(f'<text x="515" y="{y + 15}" font-size="12" text-anchor="end">'
                     f'{escape(_label(value))}</text>')
    parts.append("</svg>")
    return "".join(parts)


def series(view: View, title: str) -> str:
    """Vertical bars in time order (days, weeks or months)."""
    rows = view.rows
    width = 520
    n = max(1, len(rows))
    step = (width - 40) / n
    numbers = [_number(r[1]) or 0.0 for r in rows]
    top = max(numbers, default=0.0) or 1.0
    parts = [f'<svg class="chart" role="img" aria-label="{escape(title)}" '
             f'viewBox="0 0 {width} 180" width="{width}" height="180">{HATCH}'
             '<line x1="30" y1="150" x2="510" y2="150" stroke="#444"/>']
    for k, row in enumerate(rows):
        x = 32 + k * step
        value = _number(row[1])
        if value is None:
            parts.append(f'<rect x="{x:.1f}" y="140" width="{max(1.0, step - 1):.1f}" '
                         'height="10" fill="url(#hatch)"/>')
        else:
            h = 130 * value / top
            parts.append(f'<rect x="{x:.1f}" y="{150 - h:.1f}" width="{max(1.0, step - 1):.1f}"'
                         f' height="{h:.1f}" fill="{BAR}"><title>{escape(str(row[0]))}: '
                         f'{escape(_label(row[1]))}</title></rect>')
    if rows:
        parts.append(f'<text x="30" y="168" font-size="11">{escape(str(rows[0][0]))}</text>'
                     f'<text x="510" y="168" font-size="11" text-anchor="end">'
                     f'{escape(str(rows[-1][0]))}</text>')
    parts.append(f'<text x="26" y="24" font-size="11" text-anchor="end">{top:g}</text></svg>')
    return "".join(parts)


def heat_grid(view: View, title: str) -> str:
    """Seven weekday rows × 24 hour columns, darker for more reports."""
    numbers = [_number(c) or 0.0 for r in view.rows for c in r[1:]]
    top = max(numbers, default=0.0) or 1.0
    parts = [f'<svg class="chart" role="img" aria-label="{escape(title)}" '
             f'viewBox="0 0 520 190" width="520" height="190">{HATCH}']
    for h in range(0, 24, 3):
        parts.append(f'<text x="{44 + h * 19}" y="12" font-size="10">{h:02d}</text>')
    for d, row in enumerate(view.rows):
        y = 18 + d * 23
        parts.append(f'<text x="0" y="{y + 15}" font-size="11">{escape(str(row[0]))}</text>')
        for h, cell in enumerate(row[1:]):
            n = _number(cell)
            fill = "url(#hatch)" if n is None else \
                f"rgba(31,95,168,{0.06 + 0.94 * n / top:.2f})" if n else "#f6f7f9"
            parts.append(f'<rect x="{40 + h * 19}" y="{y}" width="18" height="21" '
                         f'fill="{fill}"><title>{escape(str(row[0]))} {h:02d}:00 — '
                         f'{escape(_label(cell))}</title></rect>')
    parts.append("</svg>")
    return "".join(parts)


# Thailand and its neighbours' borders, for an equirectangular map without tiles.
LAT_MIN, LAT_MAX, LON_MIN, LON_MAX = 5.4, 20.6, 97.2, 105.8


MAP_WIDTH, MAP_HEIGHT = 360, 620


def _xy(lat: float, lon: float) -> tuple[str, str]:
    x = (lon - LON_MIN) / (LON_MAX - LON_MIN) * MAP_WIDTH
    y = (LAT_MAX - lat) / (LAT_MAX - LAT_MIN) * MAP_HEIGHT
    return f"{x:.1f}", f"{y:.1f}"


# The same cells are drawn on every load: their projected outline and centre are kept.
@lru_cache(maxsize=CELLS_CACHED)
def _outline(cell: str) -> str:
    return " ".join(",".join(_xy(lat, lon)) for lat, lon in boundary(cell))


@lru_cache(maxsize=CELLS_CACHED)
def _dot(cell: str) -> tuple[str, str]:
    return _xy(*centre(cell))


def hex_map(view: View, title: str) -> str:
    """Hexagons coloured by count (hot spots outlined red) on a plain lat/lon frame."""
    width, height = MAP_WIDTH, MAP_HEIGHT

    numbers = [_number(r[4]) or 0.0 for r in view.rows]
    top = max(numbers, default=0.0) or 1.0
    parts = [f'<svg class="chart map" role="img" aria-label="{escape(title)}" '
             f'viewBox="0 0 {width} {height}" width="{width}" height="{height}">{HATCH}'
             f'<rect width="{width}" height="{height}" fill="#f3f6f9"/>']
    for row in sorted(view.rows, key=lambda r: -int(str(r[1]))):  # coarse first, fine on top
        cell, count, hot = str(row[0]), row[4], row[5] == "yes"
        points = _outline(cell)
        n = _number(count)
        fill = "url(#hatch)" if n is None else f"rgba(31,95,168,{0.25 + 0.75 * n / top:.2f})"
        stroke = f' stroke="{HOT}" stroke-width="2"' if hot else ' stroke="#fff"'
        # Cells at resolution 7 are tiny at this scale: a dot at the centre keeps them seen.
        parts.append(f'<polygon points="{points}" fill="{fill}"{stroke}><title>{cell}: '
                     f'{escape(_label(count))}</title></polygon>')
        if int(str(row[1])) >= 6:
            x, y = _dot(cell)
            parts.append(f'<circle cx="{x}" cy="{y}" r="{4 if not hot else 6}" '
                         f'fill="{HOT if hot else BAR}"><title>{cell}: '
                         f'{escape(_label(count))}</title></circle>')
    parts.append("</svg>")
    return "".join(parts)
