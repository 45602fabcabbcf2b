"""The board's HTML, every visible word from the board's catalogs, every value escaped.

Server-rendered pages with plain forms (they work without script); `board.js` adds the
live updates, the ticking timers and the map.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from html import escape
from typing import Any
from urllib.parse import urlencode

from bot.i18n import Catalogs
from bot.incident import Incident, TimelineEvent
from bot.staff import StaffMember
from bot.types import Text
from channels.board.views import BoardRow, where_words
from channels.board.words import LANGS, board_catalogs, say
from routing import lifecycle as lc
from routing.analytics import ANALYTICS_ROLES
from routing.directory import Station

STATUSES = lc.STATES
OUTCOMES = ("resolve", "refer_protection", "refer_welfare", "unfounded", "duplicate")
REVEAL_REASONS = ("callback", "locate", "welfare", "supervision")
KEYS = frozenset(k.removeprefix("board.") for k in board_catalogs().keys("th"))


def e(value: object) -> str:
    return escape(str(value), quote=True)


def _json(data: Any) -> str:
    return json.dumps(data, ensure_ascii=False).replace("</", "<\\/")


def layout(lang: str, title: str, body: str, *, member: StaffMember | None = None,
           csrf: str = "", config: Mapping[str, Any] | None = None,
           styles: Sequence[str] = ()) -> str:
    top = ""
    if member is not None:
        other = "en" if lang == "th" else "th"
        top = (f'<header><a class="brand" href="/board">{e(say(lang, "title"))}</a>'
               f'<a class="nav" href="/board/cases">{e(say(lang, "cases_nav"))}</a>'
               + (f'<a class="nav" href="/board/analytics">{e(say(lang, "analytics_nav"))}</a>'
                  if set(member.roles) & ANALYTICS_ROLES else "") +
               f'<span class="who">{e(member.name)} · '
               f'{e(say(lang, "areas", areas=", ".join(member.areas)))}</span>'
               f'<a class="lang" href="?lang={other}" lang="{other}">{other.upper()}</a>'
               + (f'<a href="/board/admin/staff">{e(say(lang, "staff_link"))}</a>'
                  f'<a class="nav" href="/board/admin/pdpa">{e(say(lang, "pdpa_nav"))}</a>'
                  if "admin" in member.roles else "") +
               f'<form method="post" action="/board/logout" class="inline">'
               f'<input type="hidden" name="csrf" value="{e(csrf)}">'
               f'<button type="submit">{e(say(lang, "sign_out"))}</button></form></header>')
    script = ""
    if config is not None:
        script = (f'<script id="board-config" type="application/json">{_json(config)}'
                  '</script><script src="/board/static/leaflet/leaflet.js" defer></script>'
                  '<script src="/board/static/markercluster/leaflet.markercluster.js" defer>'
                  '</script><script src="/board/static/board.js" defer></script>')
    return (f'<!doctype html><html lang="{e(lang)}"><head><meta charset="utf-8">'
            '<meta name="viewport" content="width=device-width, initial-scale=1">'
            f'<title>{e(title)}</title><link rel="icon" href="data:,">'
            '<link rel="stylesheet" href="/board/static/leaflet/leaflet.css">'
            '<link rel="stylesheet" href="/board/static/markercluster/MarkerCluster.css">'
            '<link rel="stylesheet" href="/board/static/board.css">'
            + "".join(f'<link rel="stylesheet" href="{e(href)}">' for href in styles)
            + f'</head><body>{top}<main>{body}</main>{script}</body></html>')


def message_page(lang: str, key: str, *, link: str = "/board") -> str:
    text = say(lang, key)
    return layout(lang, text, f'<p role="alert" class="problem">{e(text)}</p>'
                              f'<p><a href="{e(link)}">{e(say(lang, "back"))}</a></p>')


def login_page(lang: str, problem: str = "", setup: bool = False) -> str:
    alert = f'<p role="alert" class="problem">{e(say(lang, problem))}</p>' if problem else ""
    hint = f'<p class="hint">{e(say(lang, "empty_setup"))}</p>' if setup else ""
    langs = " ".join(f'<a href="?lang={c}" lang="{c}">{c.upper()}</a>' for c in LANGS)
    body = (f'<h1>{e(say(lang, "login_title"))}</h1>{alert}{hint}'
            '<form method="post" action="/board/login" class="login">'
            f'<input type="hidden" name="lang" value="{e(lang)}">'
            f'<label>{e(say(lang, "login_field"))}<input name="login" autocomplete="username" '
            'required maxlength="64" autofocus></label>'
            f'<label>{e(say(lang, "password_field"))}<input name="password" type="password" '
            'autocomplete="current-password" required maxlength="256"></label>'
            f'<label>{e(say(lang, "code_field"))}<input name="code" inputmode="numeric" '
            'autocomplete="one-time-code" pattern="[0-9 ]*" maxlength="8"></label>'
            f'<button type="submit" class="primary">{e(say(lang, "sign_in"))}</button></form>'
            f'<p class="langs">{langs}</p>')
    return layout(lang, say(lang, "login_title"), body)


def password_page(lang: str, token: str, problem: str = "") -> str:
    alert = f'<p role="alert" class="problem">{e(say(lang, problem))}</p>' if problem else ""
    body = (f'<h1>{e(say(lang, "password_title"))}</h1>{alert}'
            '<form method="post" action="/board/password" class="login">'
            f'<input type="hidden" name="token" value="{e(token)}">'
            f'<input type="hidden" name="lang" value="{e(lang)}">'
            f'<label>{e(say(lang, "password_new"))}<input name="password" type="password" '
            'autocomplete="new-password" required minlength="10" maxlength="256"></label>'
            f'<button type="submit" class="primary">{e(say(lang, "password_submit"))}</button>'
            '</form>')
    return layout(lang, say(lang, "password_title"), body)


def _select(name: str, label: str, options: Sequence[tuple[str, str]], chosen: str,
            lang: str) -> str:
    items = [f'<option value="">{e(say(lang, "filter_any"))}</option>'] + [
        f'<option value="{e(v)}"{" selected" if v == chosen else ""}>{e(t)}</option>'
        for v, t in options]
    return f'<label>{e(label)}<select name="{e(name)}">{"".join(items)}</select></label>'


def row_html(r: BoardRow, lang: str) -> str:
    flags = ""
    if r.silent or r.do_not_call:
        flags += f'<span class="flag dnc">{e(say(lang, "do_not_call"))}</span>'
    if r.drill:
        flags += f'<span class="flag drill">{e(say(lang, "drill"))}</span>'
    data = e(json.dumps(r.to_json(), ensure_ascii=False))
    return (f'<tr id="row-{e(r.reference)}" class="status-{e(r.status)}" data-row="{data}">'
            f'<td><a href="/board/i/{e(r.reference)}">{e(r.reference)}</a>{flags}</td>'
            f'<td>{e(r.type_label)}</td>'
            f'<td><span class="badge status-{e(r.status)}">{e(r.status_label)}</span></td>'
            f'<td class="times" data-times></td>'
            f'<td>{e(r.holder or say(lang, "nobody"))}</td><td>{e(r.where)}</td></tr>')


def board_page(lang: str, member: StaffMember, csrf: str, rows: Sequence[BoardRow],
               catalogs: Catalogs, filters: Mapping[str, str], after: int,
               tile_url: str, attribution: str, exports: bool = False,
               stations: Sequence[Station] = ()) -> str:
    types = sorted({r.type for r in rows} | {filters.get("type", "")} - {""})
    statuses = [(s, say(lang, f"status_{s}")) for s in STATUSES]
    areas = [(a, a) for a in member.areas]
    agencies = sorted({a for r in rows for a in r.agencies} | set(member.agencies))
    form = ('<form method="get" action="/board" class="filters">'
            + _select("area", say(lang, "filter_area"), areas, filters.get("area", ""), lang)
            + _select("agency", say(lang, "filter_agency"), [(a, a) for a in agencies],
                      filters.get("agency", ""), lang)
            + _select("status", say(lang, "filter_status"), statuses,
                      filters.get("status", ""), lang)
            + _select("type", say(lang, "filter_type"),
                      [(t, catalogs.render(lang, Text(f"incident.{t}"))) for t in types],
                      filters.get("type", ""), lang)
            + f'<input type="hidden" name="lang" value="{e(lang)}">'
            f'<button type="submit">{e(say(lang, "filter_apply"))}</button></form>'
            + (f'<a class="export" href="/board/export.csv?{e(urlencode(dict(filters)))}" '
               f'download>{e(say(lang, "export_csv"))}</a>' if exports else "") +
            '<form method="get" action="/board/find" class="find">'
            f'<label>{e(say(lang, "search"))}<input name="ref" placeholder="ESS-7K3F9" '
            f'maxlength="20"></label><button type="submit">{e(say(lang, "search_go"))}'
            '</button></form>')
    head = "".join(f"<th>{e(say(lang, k))}</th>" for k in (
        "col_reference", "col_type", "col_status", "col_times", "col_holder", "col_where"))
    empty = "" if rows else f'<p class="empty" id="empty">{e(say(lang, "empty"))}</p>'
    body = (f'<div class="bar"><span id="live" class="live" aria-live="polite">'
            f'{e(say(lang, "offline"))}</span><span id="alarm" class="alarm" role="alert" '
            f'hidden></span><button type="button" id="sound" class="sound" '
            f'aria-pressed="false" hidden>{e(say(lang, "sound_off"))}</button></div>'
            f'{form}<div class="split"><section class="list">'
            f'<table><thead><tr>{head}</tr></thead><tbody id="rows">'
            f'{"".join(row_html(r, lang) for r in rows)}</tbody></table>{empty}</section>'
            f'<section class="map" aria-label="{e(say(lang, "map"))}"><div id="map"></div>'
            f'<p class="hint" id="no-tiles" hidden>{e(say(lang, "map_no_tiles"))}</p>'
            '</section></div>')
    words = {k: say(lang, k) for k in ("live", "offline", "nobody", "do_not_call", "drill",
                                       "escalation_due", "empty", "undelivered", "sound_on",
                                       "sound_off")}
    templates = {k: say(lang, k, minutes="{minutes}", countdown="{countdown}",
                        elapsed="{elapsed}", count="{count}")
                 for k in ("since", "escalates_in", "eta", "eta_late", "on_scene_for", "alarm")}
    config = {"mode": "board", "lang": lang, "after": after, "filters": dict(filters),
              "tileUrl": tile_url, "attribution": attribution, "words": words,
              "templates": templates, "stations": [
                  {"name": s.name_en if lang == "en" else s.name_th, "lat": s.lat,
                   "lon": s.lon} for s in stations]}
    return layout(lang, say(lang, "title"), body, member=member, csrf=csrf, config=config)


def event_label(kind: str, lang: str) -> str:
    """A timeline kind in words: a status, or one of the board's event words."""
    for key in (f"status_{kind}", f"event_{kind}"):
        if key in KEYS:
            return say(lang, key)
    return kind


def _timeline(events: Sequence[TimelineEvent], lang: str) -> str:
    items = []
    for ev in events:
        extra = ", ".join(f"{k}={v}" for k, v in ev.data.items()
                          if k in ("level", "eta_minutes", "to", "of", "direction", "count"))
        items.append(f'<li><time datetime="{e(ev.at.isoformat())}">'
                     f'{e(ev.at.strftime("%Y-%m-%d %H:%M:%S"))} UTC</time> '
                     f'<b>{e(event_label(ev.kind, lang))}</b> · {e(ev.actor)} · '
                     f'{e(ev.channel)}'
                     f'{" · " + e(extra) if extra else ""}</li>')
    return f'<ol class="timeline">{"".join(items)}</ol>'


def incident_page(lang: str, member: StaffMember, csrf: str, incident: Incident, r: BoardRow,
                  events: Sequence[TimelineEvent], catalogs: Catalogs, *, phone: str = "",
                  answer: str = "", event_id: str = "", problem: str = "",
                  after: int = 0, tile_url: str = "", attribution: str = "",
                  can_act: bool = True, record: str = "") -> str:
    ref = e(incident.reference)
    hidden = (f'<input type="hidden" name="csrf" value="{e(csrf)}">'
              f'<input type="hidden" name="event" value="{e(event_id)}">')

    def action(name: str, label: str, extra: str = "") -> str:
        return (f'<form method="post" action="/board/i/{ref}/act" class="act">{hidden}'
                f'<input type="hidden" name="action" value="{e(name)}">{extra}'
                f'<button type="submit">{e(label)}</button></form>')

    forms: list[str] = []
    if not can_act:
        pass  # an analyst reads only
    elif incident.status in lc.WAITING:
        forms.append(action("acknowledge", say(lang, "act_acknowledge")))
    if can_act and incident.status in (lc.ACKNOWLEDGED, lc.EN_ROUTE):
        forms.append(action("en_route", say(lang, "act_eta"),
                            '<input name="minutes" type="number" min="1" max="1440" '
                            f'value="15" aria-label="{e(say(lang, "minutes"))}">'))
        forms.append(action("on_scene", say(lang, "act_on_scene")))
    if can_act and incident.status in lc.HELD:
        options = "".join(f'<option value="{o}">'
                          f'{e(catalogs.render(lang, Text(f"dispatch.outcome.{o}")))}</option>'
                          for o in OUTCOMES)
        forms.append(action("close", say(lang, "act_close"),
                            f'<label>{e(say(lang, "outcome"))}<select name="outcome">'
                            f'{options}</select></label><input name="detail" maxlength="20" '
                            'placeholder="ESS-…" aria-label="duplicate of">'))
        forms.append(f'<form method="post" action="/board/i/{ref}/relay" class="act">{hidden}'
                     f'<label>{e(say(lang, "relay"))}<textarea name="text" maxlength="1000" '
                     f'required></textarea></label><button type="submit">'
                     f'{e(say(lang, "relay_send"))}</button></form>')
    if can_act and incident.status not in lc.CLOSED:
        forms.append(action("note", say(lang, "act_note"),
                            f'<label>{e(say(lang, "note"))}<textarea name="detail" '
                            'maxlength="1000" required></textarea></label>'))
    flags = ""
    if incident.silent or incident.do_not_call:
        flags += f'<p class="flag dnc big">{e(say(lang, "do_not_call"))}</p>'
    if incident.drill:
        flags += f'<p class="flag drill big">{e(say(lang, "drill"))}</p>'
    if phone:
        number = f'<span class="phone">{e(phone)}</span>'
    elif incident.phone and can_act:
        reasons = "".join(f'<option value="{x}">{e(say(lang, f"reason_{x}"))}</option>'
                          for x in REVEAL_REASONS)
        number = (f'<span class="masked">{e(say(lang, "phone_masked"))}</span>'
                  f'<form method="post" action="/board/i/{ref}/reveal" class="inline">'
                  f'<input type="hidden" name="csrf" value="{e(csrf)}">'
                  f'<label>{e(say(lang, "reveal_reason"))}<select name="reason">{reasons}'
                  f'</select></label><button type="submit">{e(say(lang, "reveal"))}</button>'
                  '</form>')
    elif incident.phone:
        number = f'<span class="masked">{e(say(lang, "phone_masked"))}</span>'
    else:
        number = e(say(lang, "phone_none"))
    notes = incident.details.get("notes") or []
    notes_html = "".join(f'<li><b>{e(n.get("by", ""))}</b> '
                         f'<time>{e(str(n.get("at", ""))[:19])}</time>: {e(n.get("text", ""))}'
                         '</li>' for n in notes if isinstance(n, dict))
    said = f'<p role="status" class="answer">{e(answer)}</p>' if answer else ""
    alert = f'<p role="alert" class="problem">{e(say(lang, problem))}</p>' if problem else ""
    data = e(json.dumps(r.to_json(), ensure_ascii=False))
    body = (f'<p><a href="/board">{e(say(lang, "back"))}</a></p>'
            f'<h1>{e(say(lang, "incident_title", reference=incident.reference))}</h1>'
            f'{flags}{said}{alert}<div class="incident status-{e(r.status)}" id="incident" '
            f'data-row="{data}"><p><span class="badge status-{e(r.status)}" id="status">'
            f'{e(r.status_label)}</span> {e(r.type_label)} · '
            f'{e(r.holder or say(lang, "nobody"))}</p><p class="times" data-times></p>'
            f'<h2>{e(say(lang, "where"))}</h2><p>{e(where_words(incident, lang))}</p>'
            f'<div id="map" class="small"></div>'
            f'<h2>{e(say(lang, "phone"))}</h2><div>{number}</div>'
            f'<h2>{e(say(lang, "actions"))}</h2><div class="actions">{"".join(forms)}</div>'
            f'<h2>{e(say(lang, "notes"))}</h2><ul class="notes">{notes_html}</ul>'
            f'{record}<h2>{e(say(lang, "timeline"))}</h2>{_timeline(events, lang)}</div>')
    words = {k: say(lang, k) for k in ("live", "offline", "nobody", "do_not_call", "drill",
                                       "escalation_due", "empty", "undelivered")}
    templates = {k: say(lang, k, minutes="{minutes}", countdown="{countdown}",
                        elapsed="{elapsed}", count="{count}")
                 for k in ("since", "escalates_in", "eta", "eta_late", "on_scene_for", "alarm")}
    config = {"mode": "incident", "reference": incident.reference, "lang": lang,
              "after": after, "filters": {}, "tileUrl": tile_url, "attribution": attribution,
              "words": words, "templates": templates}
    return layout(lang, incident.reference, body, member=member, csrf=csrf, config=config)
