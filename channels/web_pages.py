"""The web pages channels serve (the web chat, the SMS locate page), filled from the catalogs
(every visible word is catalog text)."""

from __future__ import annotations

import html
import json
from collections.abc import Sequence
from functools import cache
from pathlib import Path
from typing import Any

import xstatic.pkg.leaflet as xleaflet
import xstatic.pkg.leaflet_markercluster as xcluster
from aiohttp import web

from bot.i18n import Catalogs
from bot.lang_pick import accept_language, best_language
from bot.types import Text
from routing.gazetteer import Place

STATIC = Path(__file__).parent / "webchat" / "static"  # shared with the SMS locate page
STATIC_NAMES = frozenset(p.name for p in STATIC.iterdir() if p.is_file())
# Leaflet as the installed XStatic packages ship it: the board and the web chat serve these
# same files from their own URL folders (no CDN, so the pages keep `script-src 'self'`).
VENDORED = {"leaflet": Path(xleaflet.BASE_DIR), "markercluster": Path(xcluster.BASE_DIR)}
VENDORED_TYPES = {".js": "text/javascript", ".css": "text/css", ".png": "image/png",
                  ".svg": "image/svg+xml"}


@cache
def static_file(name: str) -> bytes | None:
    """A shipped static file's bytes, read once per process; None for any other name (the
    set of names is fixed at import, so a request can never reach outside the folder)."""
    if name not in STATIC_NAMES:
        return None
    return (STATIC / name).read_bytes()
def vendored_response(pkg: str, name: str) -> web.Response:
    """A file of a vendored package (`VENDORED`), or 404 for anything outside it."""
    base = VENDORED.get(pkg)
    if base is None or ".." in name.split("/"):
        raise web.HTTPNotFound()
    path = (base / name).resolve()
    if not path.is_relative_to(base.resolve()) or not path.is_file() or \
            path.suffix not in VENDORED_TYPES:
        raise web.HTTPNotFound()
    return web.Response(body=path.read_bytes(), content_type=VENDORED_TYPES[path.suffix],
                        headers={"Cache-Control": "max-age=86400",
                                 "X-Content-Type-Options": "nosniff"})


UI_KEYS = (
    "title", "neutral_title", "exit", "exit_hint", "send", "message_label", "phone_label",
    "phone_hint", "use_location", "locating", "location_denied", "map_label", "map_send",
    "map_no_tiles", "zoom_in", "zoom_out", "address_label", "silent_button", "connecting",
    "offline", "busy", "chat_label", "exit_page", "locate.prompt", "locate.done", "locate.expired",
)


def page_lang(request: web.Request, catalogs: Catalogs, default: str) -> str:
    """`?lang=` when we have it, else the browser's first language we have, else the default."""
    wanted = request.query.get("lang", "")
    if catalogs.has(wanted):
        return wanted
    tags = accept_language(request.headers.get("Accept-Language", ""))
    return best_language(tags, catalogs) or default


def ui_strings(catalogs: Catalogs, lang: str) -> dict[str, str]:
    return {key: catalogs.render(lang, Text(f"web.{key}")) for key in UI_KEYS}


def _json_for_script(data: Any) -> str:
    # Inside <script type="application/json"> only "</" could end the element early.
    return json.dumps(data, ensure_ascii=False).replace("</", "<\\/")


def chat_page(catalogs: Catalogs, lang: str, *, silent: bool, tile_url: str,
              exit_url: str, attribution: str = "", places: Sequence[Place] = ()) -> str:
    """The chat page; `silent` gives it a neutral title and icon from the first byte.
    `places` (province centres) name the map when there is no tile server."""
    ui = ui_strings(catalogs, lang)
    e = {k: html.escape(v) for k, v in ui.items()}
    title = e["neutral_title"] if silent else e["title"]
    icon = "neutral" if silent else "ess"
    # Every language's labels, so the page can follow the conversation's language when the
    # reporter changes it (a few kB; no second request, nothing for the CSP to allow).
    uis = {other.code: ui_strings(catalogs, other.code) for other in catalogs.languages}
    # Each centre in every language of the page (the gazetteer's Thai, else its English),
    # so the map's names follow a language switch as the labels do.
    named = [{"names": {other.code: p.name_th if other.code == "th" else p.name_en
                        for other in catalogs.languages}, "lat": p.lat, "lon": p.lon}
             for p in places if p.lat is not None and p.lon is not None] if not tile_url else []
    config = {"lang": lang, "silent": silent, "tileUrl": tile_url, "attribution": attribution,
              "exitUrl": exit_url, "places": named, "ui": ui, "uis": uis}
    template = (static_file("chat.html") or b"").decode("utf-8")
    values = {
        "lang": html.escape(lang), "title": title, "icon": icon,
        "body_class": "silent" if silent else "",
        "config": _json_for_script(config), **{f"ui_{k.replace('.', '_')}": v
                                              for k, v in e.items()},
    }
    for key, value in values.items():
        template = template.replace("{{" + key + "}}", value)
    return template


def exit_page(catalogs: Catalogs, lang: str) -> str:
    """Where quick exit lands: a page that says nothing about what was open before."""
    title = html.escape(catalogs.render(lang, Text("web.neutral_title")))
    text = html.escape(catalogs.render(lang, Text("web.exit_page")))
    return (f'<!doctype html><html lang="{html.escape(lang)}"><head><meta charset="utf-8">'
            '<meta name="viewport" content="width=device-width, initial-scale=1">'
            f'<title>{title}</title><link rel="icon" href="/chat/static/neutral.svg">'
            f"</head><body><p>{text}</p></body></html>")


def locate_page(catalogs: Catalogs, lang: str, valid: bool, static: str) -> str:
    """The one-time page an SMS links to: it sends the phone's position, once.

    `static` is the URL folder its script and style are served from (the SMS channel's own,
    so the page works whether or not the web chat is on).
    """
    ui = {k: html.escape(v) for k, v in ui_strings(catalogs, lang).items()}
    if not valid:
        body = f'<p role="alert">{ui["locate.expired"]}</p>'
    else:
        body = (f'<p>{ui["locate.prompt"]}</p>'
                f'<button id="locate" type="button" class="primary">{ui["use_location"]}'
                f'</button><p id="locate-status" role="status" aria-live="polite"></p>'
                '<script id="ess-config" type="application/json">'
                f'{_json_for_script({"ui": ui_strings(catalogs, lang)})}</script>'
                f'<script src="{static}/locate.js" defer></script>')
    return (f'<!doctype html><html lang="{html.escape(lang)}"><head><meta charset="utf-8">'
            '<meta name="viewport" content="width=device-width, initial-scale=1">'
            f'<title>{ui["neutral_title"]}</title>'
            f'<link rel="icon" href="{static}/neutral.svg">'
            f'<link rel="stylesheet" href="{static}/chat.css"></head>'
            f"<body><main>{body}</main></body></html>")
