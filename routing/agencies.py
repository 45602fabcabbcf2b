"""The name a reporter is shown for the agency that has their report, in their language.

The directory names each responder in the languages it has columns for (`name_th`,
`name_en`); for any other language the reporter sees the kind of agency from their catalog
(`agency.police`: "ရဲ"), so a new language needs only its catalog, never a directory column.
"""

from __future__ import annotations

from typing import Any

from bot.types import Text


def agency_name(state: dict[str, Any], lang: str) -> str | Text:
    """The holder of a dispatch state (`details["dispatch"]`) as the reporter should read it."""
    holder = state.get("holder") or {}
    name = holder.get(f"name_{lang}")
    if name:
        return str(name)
    target = (state.get("targets") or {}).get(holder.get("address"), {})
    kind = holder.get("agency") or target.get("agency")
    if kind:
        return Text(f"agency.{kind}")
    return Text("agency.other")
