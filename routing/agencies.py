"""The name a reporter is shown for the agency that has their report, in their language.

The directory names each responder in the languages it has columns for (`name_th`,
`name_en`); for any other language the reporter sees the kind of agency from their catalog
(`agency.police`: "ရဲ"), so a new language needs only its catalog, never a directory column.
"""

from __future__ import annotations

from typing import Any

from bot.types import Text

WELFARE = "welfare"
EDUCATION = "education"  # the education-side group of a province (Zero Dropout follow-up)
VOLUNTEER = "volunteer"  # a volunteer's own chat: opens cases, never receives incidents
# Agencies told of welfare cases only, never of ESS incidents.
CASE_ONLY = frozenset({EDUCATION, VOLUNTEER})
AGENCIES = frozenset({"police", "welfare", "shelter", "191", "1300", "station", "fallback",
                      EDUCATION, VOLUNTEER})


def agency_kind(code: str) -> Text:
    """An agency code as words in the reader's language (catalog `agency.*`)."""
    return Text(f"agency.{code if code in AGENCIES else 'other'}")


def agency_name(state: dict[str, Any], lang: str) -> str | Text:
    """The holder of a dispatch state (`details["dispatch"]`) as the reporter should read it:
    never a bare code such as `police` inside Thai text."""
    holder = state.get("holder") or {}
    target = (state.get("targets") or {}).get(holder.get("address"), {})
    kind = str(holder.get("agency") or target.get("agency") or "")
    name = holder.get(f"name_{lang}")
    if name and name != kind:
        return str(name)
    return agency_kind(kind)
