"""`ess stats`: the analytics views in a terminal, as JSON or as (HXL-tagged) CSV.

The command line is a national analyst (it holds the database already); suppression applies
to every form of output all the same, so a script cannot get what the page hides.
"""

from __future__ import annotations

import argparse
import json
import re
import sys

from bot.types import utcnow
from config.settings import Settings
from routing.analytics import (
    BY,
    CLI_VIEWER,
    AnalyticsError,
    Period,
    Places,
    check_threshold,
    load,
    scope,
)
from routing.analytics_export import banner, to_csv, to_text

STATS_BY = (*BY, "agency", "level", "response")
_FILTER = re.compile(r"^[a-z][a-z0-9_]{0,31}$")


class StatsError(Exception):
    """What `ess stats` was asked cannot be answered; the message says why."""


def _filter(name: str, value: str | None) -> str | None:
    if value is None:
        return None
    value = value.strip().lower()
    if not _FILTER.match(value):
        raise StatsError(f"--{name} {value!r}: expected a name such as threat or line")
    return value


async def stats(settings: Settings, args: argparse.Namespace) -> int:
    from bot.wiring import open_directory
    from routing.gazetteer import Gazetteer
    from storage.factory import make_sealer, open_storage

    try:
        if args.by not in STATS_BY:
            raise AnalyticsError(f"--by {args.by!r}: expected one of {', '.join(STATS_BY)}")
        threshold = check_threshold(args.min_count if args.min_count is not None
                                    else settings.analytics_min_count)
        period = Period.last(args.days, utcnow())
        places = Places(Gazetteer.load(), open_directory(settings))
        query = scope(CLI_VIEWER, period, places, area=args.area,
                      type=_filter("type", args.type), channel=_filter("channel", args.channel),
                      include_drills=args.include_drills,
                      include_synthetic=not args.exclude_synthetic)
    except (AnalyticsError, StatsError) as exc:
        print(f"ess: {exc}", file=sys.stderr)
        return 2
    storage = await open_storage(settings, make_sealer(settings))
    try:
        view = await load(storage.incidents, args.by, query, period, threshold, places)
    finally:
        await storage.close()
    if args.json:
        print(json.dumps(view.as_dict(), ensure_ascii=False, indent=2))
    elif args.csv or args.hxl:
        sys.stdout.write(to_csv(view, hxl=args.hxl))
        note = banner(view)
        if note:
            print(f"ess: {note}", file=sys.stderr)
    else:
        print(to_text(view))
    return 0
