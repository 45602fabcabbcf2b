"""`/board/analytics`: the prevention analytics page, SVG charts each beside its table, and
CSV / HXL-tagged CSV exports through short-lived, signed, audited download links.

Who looks is a `routing.analytics.Viewer` (areas + roles), found by the callable stored under
`VIEWER_OF` in the application. Until the board's staff sessions exist (issue 11), the only
viewer is the national demo analyst of `ESS_DEMO_MODE=true`; everyone else gets 403.
"""

from __future__ import annotations

import base64
import hmac
import json
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from functools import cache
from html import escape
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import structlog
import yaml
from aiohttp import web

from bot.analytics_svg import bars, heat_grid, hex_map, series
from bot.services import Services
from bot.types import utcnow
from config.settings import Settings
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

log = structlog.get_logger(__name__)

BOARD_TEXT = Path(__file__).parent / "catalogs" / "board"
LANGS = ("th", "en")
LINK_SECONDS = 300  # a download link lives five minutes
EXPORTABLE = ("day", "type", "area", "hour", "channel", "silent", "outcome", "response",
              "agency", "hex")
DEFAULT_DAYS = 30

ViewerOf = Callable[[web.Request], Awaitable[Viewer | None]]
VIEWER_OF: web.AppKey[ViewerOf] = web.AppKey("analytics_viewer_of")


@cache
def board_text(lang: str) -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load((BOARD_TEXT / f"{lang}.yaml").read_text("utf-8"))
    return data


def say(lang: str, key: str, **params: object) -> str:
    node: Any = board_text(lang)
    for part in key.split("."):
        node = node[part]
    return str(node).format(**params)


def demo_viewer_of(demo_mode: bool) -> ViewerOf:
    """The stand-in until staff sessions: a national analyst in demo mode, else nobody."""
    async def viewer_of(request: web.Request) -> Viewer | None:
        return Viewer((NATIONAL,), frozenset({"analyst"}), "demo") if demo_mode else None
    return viewer_of


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


def _ask(query: Any) -> Ask:
    lang = query.get("lang", "th")
    if lang not in LANGS:
        lang = "th"
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


class AnalyticsPages:
    def __init__(self, services: Services, places: Places, links: Links, threshold: int):
        self.services = services
        self.places = places
        self.links = links
        self.threshold = check_threshold(threshold)

    async def _views(self, viewer: Viewer, ask: Ask) -> dict[str, View]:
        period = Period.last(ask.days, utcnow())
        query = scope(viewer, period, self.places, area=ask.area, include_drills=ask.drills)
        store = self.services.storage.incidents
        return {by: await load(store, by, query, period, self.threshold, self.places,
                               ask.lang)
                for by in EXPORTABLE}

    async def page(self, request: web.Request) -> web.Response:
        viewer = await request.app[VIEWER_OF](request)
        ask_lang = request.query.get("lang", "th") if request.query.get("lang") in LANGS \
            else "th"
        if viewer is None or not viewer.may_view():
            return _html(say(ask_lang, "forbidden"), ask_lang, status=403)
        try:
            ask = _ask(request.query)
            views = await self._views(viewer, ask)
        except AnalyticsError as exc:
            return _html(say(ask_lang, "bad_request", reason=str(exc)), ask_lang, status=400)
        return web.Response(text=self.render(viewer, ask, views), content_type="text/html",
                            charset="utf-8", headers=_NO_STORE)

    async def export(self, request: web.Request) -> web.Response:
        viewer = await request.app[VIEWER_OF](request)
        if viewer is None or not viewer.may_view():
            return web.Response(status=403, text="forbidden\n")
        data = self.links.open(request.query.get("token", ""), viewer, time.time())
        if data is None or data.get("by") not in EXPORTABLE:
            return web.Response(status=410, text=say("en", "expired_link") + "\n")
        try:
            ask = _ask(data["ask"])
            period = Period.last(ask.days, utcnow())
            query = scope(viewer, period, self.places, area=ask.area,
                          include_drills=ask.drills)
            view = await load(self.services.storage.incidents, data["by"], query, period,
                              self.threshold, self.places, ask.lang)
        except AnalyticsError as exc:
            return web.Response(status=400, text=f"{exc}\n")
        subject = f"{data['by']}:{ask.area or 'all'}:{ask.days:g}d"
        await self.services.storage.incidents.record_access(
            viewer.actor, "analytics.export", subject)
        log.info("analytics.exported", view=data["by"], hxl=bool(data["hxl"]))
        name = f"ess-{data['by']}{'-hxl' if data['hxl'] else ''}.csv"
        return web.Response(text=to_csv(view, hxl=bool(data["hxl"])), content_type="text/csv",
                            charset="utf-8",
                            headers={**_NO_STORE,
                                     "Content-Disposition": f'attachment; filename="{name}"'})

    def render(self, viewer: Viewer, ask: Ask, views: dict[str, View]) -> str:
        lang = ask.lang
        now = time.time()
        synthetic = max(v.synthetic for v in views.values())
        other = "en" if lang == "th" else "th"
        parts = [f'<header><h1>{escape(say(lang, "title"))}</h1>'
                 f'<p>{escape(say(lang, "subtitle"))}</p>'
                 f'<p><a href="?{urlencode({**ask.params(), "lang": other})}" '
                 f'lang="{other}">{"English" if other == "en" else "ไทย"}</a></p></header>']
        if synthetic:
            parts.append(f'<p class="banner" role="status">'
                         f'{escape(say(lang, "synthetic_banner", count=synthetic))}</p>')
        parts.append(self._form(ask))
        parts.append(f'<p class="note">{escape(say(lang, "period", days=f"{ask.days:g}"))}'
                     f' · {escape(say(lang, "suppressed_note", threshold=self.threshold))}</p>')
        for by, view in views.items():
            parts.append(self._section(viewer, ask, by, view, now))
        return _PAGE.format(lang=lang, title=escape(say(lang, "title")),
                            body="\n".join(parts))

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
        return (f'<form method="get"><input type="hidden" name="lang" value="{lang}">'
                f'<label>{escape(say(lang, "filter_days"))} <input name="days" type="number" '
                f'min="1" max="731" value="{ask.days:g}"></label> '
                f'<label>{escape(say(lang, "filter_area"))} <input name="area" '
                f'value="{escape(ask.area or "")}" size="8"></label> '
                f'<label><input type="checkbox" name="drills" value="1"'
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
             "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; "
                                        "img-src 'self' data:; form-action 'self'"}

_PAGE = """<!doctype html>
<html lang="{lang}"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<link rel="icon" href="data:,">
<title>{title}</title>
<style>
body {{ font-family: "Noto Sans Thai", "Noto Sans", system-ui, sans-serif; margin: 1rem;
       color: #1d232b; }}
.banner {{ background: #fff4d6; border: 2px solid #b7791f; padding: .6rem; font-weight: 600; }}
.note {{ color: #46505d; }}
section {{ border-top: 1px solid #d5dae1; padding-top: .5rem; margin-top: 1rem; }}
.pair {{ display: flex; flex-wrap: wrap; gap: 1rem; align-items: flex-start; }}
.table {{ max-height: 420px; overflow: auto; }}
table {{ border-collapse: collapse; font-size: .85rem; }}
th, td {{ border: 1px solid #d5dae1; padding: .15rem .4rem; text-align: left; }}
caption {{ text-align: left; font-weight: 600; }}
svg text {{ fill: #1d232b; font-family: inherit; }}
a {{ color: #1f5fa8; }}
</style></head>
<body>{body}</body></html>
"""


def _html(message: str, lang: str, status: int) -> web.Response:
    return web.Response(text=_PAGE.format(lang=lang, title=escape(message),
                                          body=f"<p>{escape(message)}</p>"),
                        content_type="text/html", charset="utf-8", status=status,
                        headers=_NO_STORE)


def mount(app: web.Application, services_key: web.AppKey[Services],
          settings: Settings) -> None:
    """Add the page and its export route; the viewer comes from `app[VIEWER_OF]` (issue 11
    sets it to its staff session), by default the demo-mode stand-in."""
    from routing.gazetteer import Gazetteer

    if VIEWER_OF not in app:
        app[VIEWER_OF] = demo_viewer_of(bool(settings.demo_mode))
    state: dict[str, AnalyticsPages] = {}

    def pages(request: web.Request) -> AnalyticsPages:
        if "p" not in state:
            from storage.factory import make_sealer

            services = request.app[services_key]
            key = make_sealer(settings).digest("analytics-export-links").encode()
            state["p"] = AnalyticsPages(services, Places(Gazetteer.load(), services.directory),
                                        Links(key), settings.analytics_min_count)
        return state["p"]

    async def page(request: web.Request) -> web.Response:
        return await pages(request).page(request)

    async def export(request: web.Request) -> web.Response:
        return await pages(request).export(request)

    app.router.add_get("/board/analytics", page)
    app.router.add_get("/board/analytics/export", export)
