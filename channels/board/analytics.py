"""`/board/analytics`: the prevention analytics page of the board, SVG charts each beside
its table, and CSV / HXL-tagged CSV exports through short-lived, signed, audited download links.

Who looks is the board's signed-in staff member (its session in the shared store), seen as a
`routing.analytics.Viewer`: their areas scope every figure, and only the roles analyst,
supervisor and admin may look. Every page view and every download is audited.
"""

from __future__ import annotations

import asyncio
import base64
import hmac
import json
import time
from collections.abc import Callable, Hashable
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from functools import cache, lru_cache
from html import escape
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import structlog
import yaml
from aiohttp import web

from bot.i18n import Catalogs
from bot.services import Services
from bot.staff import ROLES, StaffMember
from bot.types import Text, utcnow
from channels.board.analytics_share import Figures, Pace, Shared
from channels.board.analytics_svg import bars, heat_grid, hex_map, series
from channels.board.auth import csrf_for
from channels.board.pages import layout
from routing.analytics import (
    AnalyticsError,
    Period,
    Places,
    View,
    Viewer,
    check_threshold,
    drill,
    load,
    scope,
)
from routing.analytics_export import to_csv
from routing.directory import NATIONAL
from routing.hexbins import CELLS_CACHED, boundary

log = structlog.get_logger(__name__)

WORDS = Path(__file__).parent / "catalogs" / "analytics"
LANGS = ("th", "en")
LINK_SECONDS = 300  # a download link lives five minutes
EXPORTABLE = ("day", "type", "area", "hour", "channel", "silent", "outcome", "response",
              "agency", "hex")
DEFAULT_DAYS = 30
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)

Html = Callable[..., web.Response]  # the board's page answer (its CSP and headers)


def _flat(data: dict[str, Any], prefix: str = "analytics.") -> dict[str, str]:
    out: dict[str, str] = {}
    for key, value in data.items():
        if isinstance(value, dict):
            out.update(_flat(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = str(value)
    return out


@cache
def analytics_catalogs() -> Catalogs:
    """The page's words, Thai and English, beside the board's own (a page of the board)."""
    tables: dict[str, dict[str, str | tuple[str, ...]]] = {}
    for lang in LANGS:
        tables[lang] = dict(_flat(yaml.safe_load(
            (WORDS / f"{lang}.yaml").read_text(encoding="utf-8")) or {}))
    return Catalogs(tables, "th")


def say(lang: str, key: str, **params: object) -> str:
    return analytics_catalogs().render(lang if lang in LANGS else "th",
                                       Text(f"analytics.{key}", dict(params)))


def viewer_of(member: StaffMember) -> Viewer:
    """The analytics viewer a staff account is: its areas and roles (an admin has every
    role), audited as the board audits it."""
    return Viewer(tuple(member.areas), frozenset(r for r in ROLES if member.has(r)),
                  f"staff:{member.login}")


@dataclass(frozen=True, slots=True)
class Ask:
    """What the page or an export was asked (validated)."""

    days: float
    area: str | None
    drills: bool
    lang: str

    def params(self) -> dict[str, str]:
        out = {"days": f"{self.days:g}", "lang": self.lang}
        if self.area:
            out["area"] = self.area
        if self.drills:
            out["drills"] = "1"
        return out


def _ask(query: Any, fallback: str = "th") -> Ask:
    lang = query.get("lang", fallback)
    if lang not in LANGS:
        lang = fallback
    raw = query.get("days", str(DEFAULT_DAYS))
    try:
        days = float(raw)
    except ValueError:
        raise AnalyticsError(f"days {raw[:20]!r} is not a number") from None
    if days != days:  # NaN
        raise AnalyticsError("days is not a number")
    area = (query.get("area") or "").strip() or None
    return Ask(days, area, query.get("drills") == "1", lang)


class Links:
    """Signed export links: view, question, viewer and expiry under an HMAC."""

    def __init__(self, key: bytes):
        self._key = key

    def _sign(self, body: bytes) -> str:
        return base64.urlsafe_b64encode(
            hmac.new(self._key, body, "sha256").digest()).decode().rstrip("=")

    def make(self, viewer: Viewer, by: str, ask: Ask, hxl: bool, now: float) -> str:
        body = json.dumps({"by": by, "ask": ask.params(), "hxl": hxl, "actor": viewer.actor,
                           "exp": int(now) + LINK_SECONDS}, sort_keys=True).encode()
        return f"{base64.urlsafe_b64encode(body).decode().rstrip('=')}.{self._sign(body)}"

    def open(self, token: str, viewer: Viewer, now: float) -> dict[str, Any] | None:
        try:
            part, signature = token.split(".", 1)
            body = base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))
        except ValueError:
            return None
        if not hmac.compare_digest(self._sign(body).encode(), signature.encode()):
            return None
        data: dict[str, Any] = json.loads(body)
        if data.get("exp", 0) < now or data.get("actor") != viewer.actor:
            return None
        return data


@lru_cache(maxsize=CELLS_CACHED)
def _map_cell(cell: str, count: int, hot: bool, lang: str) -> str:
    """One hexagon of the map script, JSON-encoded: its corners (5 decimals, about a
    metre), count and label. Kept: the same cells, mostly with the same counts, are drawn
    on every load, and formatting and encoding them again was most of the map's cost."""
    return json.dumps({
        "cell": cell, "count": count, "hot": hot,
        "label": say(lang, "map_hot" if hot else "map_cell", count=count),
        "boundary": [[round(a, 5), round(b, 5)] for a, b in boundary(cell)]},
        ensure_ascii=False)


@dataclass(frozen=True, slots=True)
class _Parts:
    places: Places
    links: Links
    threshold: int
    shared: Shared[dict[str, View]]
    pace: Pace


class AnalyticsPages:
    """The page and its exports, for the board's signed-in staff (`BoardChannel.routes`)."""

    def __init__(self, services: Callable[[], Services], html: Html, tile_url: str = "",
                 attribution: str = ""):
        self._services = services
        self._html = html
        self.tile_url, self.attribution = tile_url, attribution
        self._ready: _Parts | None = None

    @property
    def services(self) -> Services:
        return self._services()

    def _parts(self) -> _Parts:
        # Built at the first request: the services (directory, settings) exist only then.
        if self._ready is None:
            from routing.gazetteer import Gazetteer
            from storage.factory import make_sealer

            services = self.services
            settings = services.settings
            key = make_sealer(settings).digest("analytics-export-links").encode()
            self._ready = _Parts(Places(Gazetteer.load(), services.directory), Links(key),
                                 check_threshold(settings.analytics_min_count),
                                 Shared(settings.analytics_fresh),
                                 Pace(settings.analytics_pace))
        return self._ready

    async def close(self) -> None:
        """At the board's stop: no computation outlives the stores."""
        if self._ready is not None:
            await self._ready.shared.close()

    @property
    def places(self) -> Places:
        return self._parts().places

    @property
    def links(self) -> Links:
        return self._parts().links

    @property
    def threshold(self) -> int:
        return self._parts().threshold

    def _question(self, viewer: Viewer, ask: Ask) -> Hashable:
        """What the figures for `ask` depend on: the store query as `viewer` may ask it,
        without its clock, and the period and language asked; AnalyticsError when it cannot
        be asked. Before the pace and the sharing, so a bad question is answered at once."""
        query = scope(viewer, Period.last(ask.days, utcnow()), self.places, area=ask.area,
                      include_drills=ask.drills)
        return replace(query, since=_EPOCH, until=_EPOCH), ask.days, ask.lang

    async def _views(self, viewer: Viewer, ask: Ask,
                     question: Hashable) -> Figures[dict[str, View]]:
        """Every view of the page, shared by whoever asks the same `question` (from
        `_question`) while fresh: the query, the viewer's areas, never who they are."""
        async def compute() -> dict[str, View]:
            period = Period.last(ask.days, utcnow())
            query = scope(viewer, period, self.places, area=ask.area,
                          include_drills=ask.drills)
            store = self.services.storage.incidents
            return {by: await load(store, by, query, period, self.threshold, self.places,
                                   ask.lang)
                    for by in EXPORTABLE}

        return await self._parts().shared.get(question, compute)

    def _message(self, lang: str, text: str, member: StaffMember, token: str,
                 status: int) -> web.Response:
        body = (f'<p role="alert" class="problem">{escape(text)}</p>'
                f'<p><a href="/board">{escape(say(lang, "back"))}</a></p>')
        return self._html(layout(lang, text, body, member=member, csrf=csrf_for(token)),
                          status)

    async def page(self, request: web.Request, member: StaffMember,
                   token: str) -> web.StreamResponse:
        viewer = viewer_of(member)
        lang = request.query.get("lang", "")
        lang = lang if lang in LANGS else member.lang if member.lang in LANGS else "th"
        if not viewer.may_view():
            log.warning("analytics.refused", staff=member.login)
            return self._message(lang, say(lang, "forbidden"), member, token, 403)
        try:
            ask = _ask(request.query, lang)
            question = self._question(viewer, ask)
            retry = await self._turn(viewer)
            if retry is not None:
                refused = self._message(lang, say(lang, "too_fast"), member, token, 429)
                refused.headers["Retry-After"] = str(retry)
                return refused
            figures = await self._views(viewer, ask, question)
        except AnalyticsError as exc:
            return self._message(lang, say(lang, "bad_request", reason=str(exc)), member,
                                 token, 400)
        await self.services.storage.incidents.record_access(
            viewer.actor, "analytics.view", f"{ask.area or 'all'}:{ask.days:g}d")
        return self._html(layout(lang, say(lang, "title"),
                                 self.render(viewer, ask, figures.value, figures.at),
                                 member=member, csrf=csrf_for(token)))

    async def _turn(self, viewer: Viewer) -> int | None:
        """Wait for the viewer's turn (ESS_ANALYTICS_PACE); the seconds for a Retry-After
        instead when too many of their loads already wait."""
        pace = self._parts().pace
        wait = pace.turn(viewer.actor)
        if wait is None:
            return pace.retry_after(viewer.actor)
        if wait:
            await asyncio.sleep(wait)
        return None

    async def export(self, request: web.Request, member: StaffMember,
                     token: str) -> web.StreamResponse:
        viewer = viewer_of(member)
        if not viewer.may_view():
            return web.Response(status=403, text="forbidden\n", headers=_NO_STORE)
        data = self.links.open(request.query.get("token", ""), viewer, time.time())
        if data is None or data.get("by") not in EXPORTABLE:
            return web.Response(status=410, text=say("en", "expired_link") + "\n",
                                headers=_NO_STORE)
        try:
            ask = _ask(data["ask"])
            question = self._question(viewer, ask)
            retry = await self._turn(viewer)  # a download loop is paced as a reload loop is
            if retry is not None:
                lang = member.lang if member.lang in LANGS else "th"
                return web.Response(status=429, text=say(lang, "too_fast") + "\n",
                                    headers={**_NO_STORE, "Retry-After": str(retry)})
            # The page's figures: a file downloaded from the page holds what it showed.
            view = (await self._views(viewer, ask, question)).value[data["by"]]
        except AnalyticsError as exc:
            return web.Response(status=400, text=f"{exc}\n", headers=_NO_STORE)
        subject = f"{data['by']}:{ask.area or 'all'}:{ask.days:g}d"
        await self.services.storage.incidents.record_access(
            viewer.actor, "analytics.export", subject)
        log.info("analytics.exported", view=data["by"], hxl=bool(data["hxl"]))
        name = f"ess-{data['by']}{'-hxl' if data['hxl'] else ''}.csv"
        return web.Response(text=to_csv(view, hxl=bool(data["hxl"])), content_type="text/csv",
                            charset="utf-8",
                            headers={**_NO_STORE,
                                     "Content-Disposition": f'attachment; filename="{name}"'})

    def render(self, viewer: Viewer, ask: Ask, views: dict[str, View],
               at: float | None = None) -> str:
        """The page's body: `views` as computed at `at` (wall clock; now when not given)."""
        lang = ask.lang
        now = time.time()
        at = now if at is None else at
        synthetic = max(v.synthetic for v in views.values())
        other = "en" if lang == "th" else "th"
        parts = ['<link rel="stylesheet" href="/board/static/analytics.css">'
                 f'<div class="intro"><h1>{escape(say(lang, "title"))}</h1>'
                 f'<p>{escape(say(lang, "subtitle"))}</p>'
                 f'<p><a href="?{urlencode({**ask.params(), "lang": other})}" '
                 f'lang="{other}">{"English" if other == "en" else "ไทย"}</a></p></div>']
        if synthetic:
            parts.append(f'<p class="banner" role="status">'
                         f'{escape(say(lang, "synthetic_banner", count=synthetic))}</p>')
        parts.append(self._form(ask))
        stamp = datetime.fromtimestamp(at, UTC)
        as_of = (f'<time datetime="{stamp.isoformat(timespec="seconds")}">'
                 f'{stamp.strftime("%Y-%m-%d %H:%M:%S")} UTC</time>')
        parts.append(f'<p class="note">{escape(say(lang, "period", days=f"{ask.days:g}"))}'
                     f' · {escape(say(lang, "suppressed_note", threshold=self.threshold))}'
                     f' · {escape(say(lang, "as_of"))} {as_of}</p>')
        for by, view in views.items():
            parts.append(self._section(viewer, ask, by, view, now))
        parts.append(self._map_script(views["hex"], lang))
        return "\n".join(parts)

    def _map_script(self, view: View, lang: str) -> str:
        """The hexagons for the board's Leaflet (analytics.js): only cells whose count is a
        number, that is at least the threshold; a "<5" cell is never drawn on the map."""
        count, hot = view.columns.index("count"), view.columns.index("hot_spot")
        cells = []
        for r in view.rows:
            n = r[count]
            if not isinstance(n, int) or isinstance(n, bool) or n < self.threshold:
                continue
            cells.append(_map_cell(str(r[0]), n, r[hot] == "yes", lang))
        # json.dumps of the whole config, spliced from the cells' cached encodings.
        rest = json.dumps({"tileUrl": self.tile_url, "attribution": self.attribution},
                          ensure_ascii=False)
        data = f'{{"cells": [{", ".join(cells)}], {rest[1:]}'.replace("</", "<\\/")
        return (f'<script id="analytics-config" type="application/json">{data}</script>'
                '<script src="/board/static/leaflet/leaflet.js" defer></script>'
                '<script src="/board/static/analytics.js" defer></script>')

    def _form(self, ask: Ask) -> str:
        lang = ask.lang
        up = ""
        if ask.area:
            parent = None if len(ask.area) == 2 or ask.area == NATIONAL else \
                ask.area[:2] if len(ask.area) == 4 else self._district_of(ask.area)
            params = {**ask.params()}
            params.pop("area", None)
            if parent:
                params["area"] = parent
            up = f' <a href="?{urlencode(params)}">{escape(say(lang, "up"))}</a>'
        return (f'<form method="get" class="analytics">'
                f'<input type="hidden" name="lang" value="{lang}">'
                f'<label>{escape(say(lang, "filter_days"))} <input name="days" type="number" '
                f'min="1" max="731" step="any" value="{ask.days:g}"></label> '
                f'<label>{escape(say(lang, "filter_area"))} <input name="area" '
                f'value="{escape(ask.area or "")}" size="8"></label> '
                f'<label class="check"><input type="checkbox" name="drills" value="1"'
                f'{" checked" if ask.drills else ""}> {escape(say(lang, "filter_drills"))}'
                f'</label> <button>{escape(say(lang, "filter_apply"))}</button>{up}</form>')

    def _district_of(self, station: str) -> str | None:
        found = self.places.directory.station(station)
        return found.district_code if found else None

    def _section(self, viewer: Viewer, ask: Ask, by: str, view: View, now: float) -> str:
        lang = ask.lang
        title = say(lang, f"view.{by}")
        chart = self._chart(by, view, title, ask)
        links = " ".join(
            f'<a class="export" href="/board/analytics/export?'
            f'{urlencode({"token": self.links.make(viewer, by, ask, hxl, now)})}">'
            f'{escape(say(lang, "hxl" if hxl else "csv"))}</a>' for hxl in (False, True))
        if by == "hex":  # the Leaflet map where script runs; the SVG stays the fallback
            chart = (f'<div id="analytics-map" role="region" aria-label="{escape(title)}" '
                     f'hidden></div>{chart}')
        return (f'<section id="{by}" aria-labelledby="h-{by}"><h2 id="h-{by}">'
                f'{escape(title)}</h2><p>{escape(say(lang, "total", total=view.total))} · '
                f'{links}</p><div class="pair"><div class="figure">{chart}</div>'
                f'{self._table(by, view, title, ask)}</div></section>')

    def _chart(self, by: str, view: View, title: str, ask: Ask) -> str:
        if not view.rows:
            return f'<p>{escape(say(ask.lang, "no_data"))}</p>'
        if by == "day":
            return series(view, title)
        if by == "hour":
            return heat_grid(view, title)
        if by == "hex":
            return hex_map(view, title)
        if by == "response":
            column = view.columns.index("acknowledged_p50_s")
            return bars(view, 0, column, title, [str(r[1]) for r in view.rows])
        value = view.columns.index("count") if "count" in view.columns else 1
        names = [str(r[1]) for r in view.rows] if "name" in view.columns else None
        return bars(view, 0, value, title, names)

    def _table(self, by: str, view: View, title: str, ask: Ask) -> str:
        head = "".join(f'<th scope="col">{escape(c)}</th>' for c in view.columns)
        body = []
        drillable = by in ("area", "response") and drill(ask.area) != "station"
        for row in view.rows:
            cells = []
            for k, value in enumerate(row):
                text = "" if value is None else f"{value:g}" if isinstance(value, float) \
                    else str(value)
                if k == 0 and drillable and text != "-":
                    params = {**ask.params(), "area": text}
                    text_html = f'<a href="?{urlencode(params)}#{by}">{escape(text)}</a>'
                else:
                    text_html = escape(text)
                cells.append(f"<td>{text_html}</td>")
            body.append(f"<tr>{''.join(cells)}</tr>")
        return (f'<div class="table"><table><caption>{escape(title)} — '
                f'{escape(say(ask.lang, "table"))}</caption><thead><tr>{head}</tr></thead>'
                f'<tbody>{"".join(body)}</tbody></table></div>')


_NO_STORE = {"Cache-Control": "no-store", "X-Content-Type-Options": "nosniff",
             "Referrer-Policy": "same-origin"}
