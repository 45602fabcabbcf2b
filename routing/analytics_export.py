"""A View as CSV (optionally HXL-tagged) or text: the same suppressed cells, nothing more."""

from __future__ import annotations

import csv
import io

from routing.analytics import Cell, View

SYNTHETIC_COLUMN = "synthetic_included"
SYNTHETIC_HXL = "#meta+synthetic"


def _text(value: Cell) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


def to_csv(view: View, hxl: bool = False) -> str:
    """Header, an HXL hashtag row when asked, then the rows; every row says whether
    synthetic incidents are among those counted."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow([*view.columns, SYNTHETIC_COLUMN])
    if hxl:
        writer.writerow([*view.hxl(), SYNTHETIC_HXL])
    flag = "true" if view.synthetic else "false"
    for row in view.rows:
        writer.writerow([*(_text(c) for c in row), flag])
    return out.getvalue()


def banner(view: View) -> str | None:
    """What a view that counts synthetic incidents must say above itself."""
    if not view.synthetic:
        return None
    return ("includes synthetic incidents (ess demo seed); not real reports")


def to_text(view: View, width: int = 14) -> str:
    """A fixed-width table for a terminal."""
    lines = [f"{view.name}: {view.period.since:%Y-%m-%d %H:%M} → "
             f"{view.period.until:%Y-%m-%d %H:%M} UTC, total {_text(view.total)}, "
             f"counts below {view.threshold} shown as <{view.threshold}"]
    note = banner(view)
    if note:
        lines.append(f"NOTE: {note}")
    widths = [max(len(c), *(len(_text(r[k])) for r in view.rows)) if view.rows else len(c)
              for k, c in enumerate(view.columns)]
    widths = [min(w, width * 2) for w in widths]
    lines.append("  ".join(c[:w].ljust(w) for c, w in zip(view.columns, widths, strict=True)))
    for row in view.rows:
        lines.append("  ".join(_text(v)[:w].ljust(w)
                               for v, w in zip(row, widths, strict=True)))
    if not view.rows:
        lines.append("(no incidents)")
    return "\n".join(line.rstrip() for line in lines)
