"""The board's cases tab in HTML: the caseload of the viewer's areas and one case's page.

Every visible word comes from the board's catalogs (`cases.*.yaml`) or the bot's (statuses,
hardships, programmes); every value is escaped. The person, the place, the needs and the
consent record stay hidden until the viewer reveals them with a reason (audited), as an
incident's phone number does; photos of documents open one by one, with a reason, audited.
Flags, screening and referrals are the officer's working view and are shown at once; the
hardships are named on the case page (an audited view), the list shows only how many and
whether one is sensitive.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime

from bot.case import (
    DUPLICATE,
    SENSITIVE_HARDSHIPS,
    ZERO_DROPOUT,
    Case,
    CasePhoto,
    Person,
    Referral,
)
from bot.i18n import Catalogs
from bot.incident import TimelineEvent
from bot.staff import StaffMember
from bot.types import Text
from channels.board.pages import _select, e, layout
from channels.board.words import say
from routing import case_lifecycle as cl

FLAGS = (ZERO_DROPOUT, DUPLICATE)
REVEAL_REASONS = ("assessment", "referral", "visit")
# Timeline data an officer may read on the page: no free text but the reasons they typed.
SHOWN_DATA = ("to", "reason", "due_at", "incident", "duplicates", "flags", "offices", "case")
STYLES = ("/board/static/cases.css",)


@dataclass(frozen=True, slots=True)
class CaseRow:
    """What the list shows of one case (nothing that identifies the person, no hardship
    by name)."""

    case: Case
    open_referrals: int
    overdue: int


def open_referrals(case: Case) -> list[Referral]:
    return [r for r in case.referrals if r.state in cl.OPEN_REFERRAL]


def overdue(case: Case, now: datetime) -> list[Referral]:
    """Referrals still pending or accepted after their follow-up date, on an open case."""
    if case.status == cl.CLOSED:
        return []
    return [r for r in open_referrals(case) if r.due_at <= now]


def case_row(case: Case, now: datetime) -> CaseRow:
    return CaseRow(case, len(open_referrals(case)), len(overdue(case, now)))


def _bot(catalogs: Catalogs, lang: str, key: str) -> str:
    return catalogs.render(lang, Text(key))


def status_label(catalogs: Catalogs, lang: str, status: str) -> str:
    return _bot(catalogs, lang, f"case.status.{status}")


def _flags(case: Case, lang: str) -> str:
    return "".join(f'<span class="flag case-{e(f)}">{e(say(lang, f"flag_{f}"))}</span>'
                   for f in case.flags if f in FLAGS)


def _hardships(case: Case, catalogs: Catalogs, lang: str) -> str:
    return ", ".join(_bot(catalogs, lang, f"case.hardship.{h}") for h in case.hardships)


def _hardships_counted(case: Case, lang: str) -> str:
    """What the list shows of the hardships: how many, and a neutral marker when one is
    sensitive; their names are on the case page, an audited read."""
    shown = say(lang, "hardships_count", count=len(case.hardships))
    if set(case.hardships) & SENSITIVE_HARDSHIPS:
        shown += f" · {say(lang, 'hardships_sensitive')}"
    return shown


def _when(at: datetime) -> str:
    return f'<time datetime="{e(at.isoformat())}">{e(at.strftime("%Y-%m-%d %H:%M"))}</time>'


def list_page(lang: str, member: StaffMember, csrf: str, rows: Sequence[CaseRow],
              catalogs: Catalogs, filters: Mapping[str, str]) -> str:
    statuses = [(s, status_label(catalogs, lang, s)) for s in cl.CASE_STATES]
    overdue_box = (f'<label class="check"><span>{e(say(lang, "filter_overdue"))}</span>'
                   f'<input type="checkbox" name="overdue" value="1"'
                   f'{" checked" if filters.get("overdue") else ""}></label>')
    form = ('<form method="get" action="/board/cases" class="filters">'
            + _select("area", say(lang, "filter_area"), [(a, a) for a in member.areas],
                      filters.get("area", ""), lang)
            + _select("status", say(lang, "filter_status"), statuses,
                      filters.get("status", ""), lang)
            + _select("flag", say(lang, "filter_flag"),
                      [(f, say(lang, f"flag_{f}")) for f in FLAGS], filters.get("flag", ""),
                      lang)
            + overdue_box + f'<input type="hidden" name="lang" value="{e(lang)}">'
            f'<button type="submit">{e(say(lang, "filter_apply"))}</button></form>'
            '<form method="get" action="/board/cases" class="find">'
            f'<label>{e(say(lang, "search"))}<input name="ref" placeholder="CASE-7K3F9" '
            f'maxlength="20"></label><button type="submit">{e(say(lang, "search_go"))}'
            '</button></form>')
    head = "".join(f"<th>{e(say(lang, k))}</th>" for k in (
        "col_reference", "col_opened", "case_status", "col_area", "col_hardships",
        "col_referrals"))
    items = []
    for r in rows:
        c = r.case
        referrals = say(lang, "referrals_open", count=r.open_referrals)
        if r.overdue:
            referrals += (f' <span class="flag case-overdue">'
                          f'{e(say(lang, "overdue_count", count=r.overdue))}</span>')
        else:
            referrals = e(referrals)
        items.append(
            f'<tr class="case-status-{e(c.status)}{" late" if r.overdue else ""}">'
            f'<td><a href="/board/cases/{e(c.reference)}">{e(c.reference)}</a>'
            f'{_flags(c, lang)}</td><td>{_when(c.created_at)}</td>'
            f'<td><span class="badge case-badge">{e(status_label(catalogs, lang, c.status))}'
            f'</span></td><td>{e(c.area)}</td><td>{e(_hardships_counted(c, lang))}</td>'
            f'<td>{referrals}</td></tr>')
    empty = "" if rows else f'<p class="empty">{e(say(lang, "cases_empty"))}</p>'
    body = (f'<h1>{e(say(lang, "cases_title"))}</h1>{form}<section class="list"><table>'
            f'<thead><tr>{head}</tr></thead><tbody>{"".join(items)}</tbody></table>{empty}'
            '</section>')
    return layout(lang, say(lang, "cases_title"), body, member=member, csrf=csrf,
                  styles=STYLES)


def _person(p: Person, catalogs: Catalogs, lang: str, *, with_id: bool) -> str:
    """One person in words, already escaped."""
    parts = []
    if p.relation:
        parts.append(e(_bot(catalogs, lang, f"case.relation.{p.relation}")))
    if p.birth_year is not None:
        parts.append(e(f'{say(lang, "person_born")} {p.birth_year} (BE {p.birth_year + 543})'))
    if p.sex:
        parts.append(e(f'{say(lang, "person_sex")}: '
                       f'{_bot(catalogs, lang, f"case.sex.{p.sex}")}'))
    if with_id:
        shown = (f"{p.thai_id[0]}-{p.thai_id[1:5]}-{p.thai_id[5:10]}-{p.thai_id[10:12]}-"
                 f"{p.thai_id[12]}" if p.thai_id else say(lang, "person_id_none"))
        parts.append(f'{e(say(lang, "person_id"))}: <span class="thai-id">{e(shown)}</span>')
    return " · ".join(parts)


def _personal(case: Case, catalogs: Catalogs, lang: str) -> str:
    """The revealed part: who, where, what is needed, and the consent as recorded."""
    loc = case.location
    where = [loc.text or "", loc.place_id or ""]
    if loc.lat is not None and loc.lon is not None:
        where.append(say(lang, "pin", lat=f"{loc.lat:.5f}", lon=f"{loc.lon:.5f}"))
    members = "".join(f"<li>{_person(m, catalogs, lang, with_id=False)}</li>"
                      for m in case.members)
    consent = case.consent
    if consent is None:
        agreed = say(lang, "consent_none")
    else:
        key = "consent_vital" if consent.ground == "vital_interest" else "consent_given"
        agreed = say(lang, key, at=consent.at.strftime("%Y-%m-%d %H:%M"),
                     by=consent.recorded_by, version=consent.version)
    return (f'<div class="personal" id="personal"><p>'
            f'{_person(case.person, catalogs, lang, with_id=True)}</p>'
            + (f'<h3>{e(say(lang, "members"))}</h3><ul>{members}</ul>' if members else "")
            + f'<h3>{e(say(lang, "case_where"))}</h3>'
            f'<p>{e(", ".join(w for w in where if w) or case.area)}</p>'
            f'<h3>{e(say(lang, "case_needs"))}</h3><p class="needs">{e(case.needs)}</p>'
            f'<h3>{e(say(lang, "consent"))}</h3><p>{e(agreed)}</p></div>')


def _screening(case: Case, catalogs: Catalogs, lang: str) -> str:
    if not case.screening:
        return f'<p>{e(say(lang, "screening_none"))}</p>'
    items = []
    for f in case.screening:
        docs = ", ".join(str(d) for d in f.get("documents") or [])
        items.append(
            f'<li><b>{e(_bot(catalogs, lang, "programme." + str(f.get("programme"))))}</b>'
            f': {e(f.get("why", ""))}'
            + (f'<br>{e(say(lang, "still_to_ask"))}: {e(f["missing"])}'
               if f.get("missing") else "")
            + (f'<br>{e(say(lang, "amount"))}: {e(f["amount"])}' if f.get("amount") else "")
            + (f'<br>{e(say(lang, "documents"))}: {e(docs)}' if docs else "") + "</li>")
    return f'<ul class="screening">{"".join(items)}</ul>'


def _hidden(csrf: str, event_id: str) -> str:
    return (f'<input type="hidden" name="csrf" value="{e(csrf)}">'
            f'<input type="hidden" name="event" value="{e(event_id)}">')


def _referrals(case: Case, catalogs: Catalogs, lang: str, now: datetime, csrf: str,
               event_id: str, can_act: bool) -> str:
    if not case.referrals:
        return f'<p>{e(say(lang, "referrals_none"))}</p>'
    ref = e(case.reference)
    items = []
    for r in case.referrals:
        late = r in overdue(case, now)
        due = r.due_at.strftime("%Y-%m-%d")
        when = say(lang, "referral_overdue" if late else "referral_due", due=due)
        name = _bot(catalogs, lang, f"programme.{r.to}")
        name = r.to if name == f"programme.{r.to}" else name  # a directory group's id
        forms = ""
        if can_act and r.state in cl.OPEN_REFERRAL:
            for trigger in cl.REFERRALS.allowed(r.state):
                reason = (f'<input name="reason" maxlength="500" required '
                          f'aria-label="{e(say(lang, "referral_reason"))}" '
                          f'placeholder="{e(say(lang, "referral_reason"))}">'
                          if trigger == "reject" else "")
                forms += (f'<form method="post" action="/board/cases/{ref}/referral" '
                          f'class="act">{_hidden(csrf, event_id)}'
                          f'<input type="hidden" name="referral" value="{e(r.id)}">'
                          f'<input type="hidden" name="trigger" value="{e(trigger)}">{reason}'
                          f'<button type="submit">{e(say(lang, f"referral_{trigger}"))}'
                          '</button></form>')
        items.append(f'<li class="referral{" late" if late else ""}"><b>{e(name)}</b> · '
                     f'{e(say(lang, f"referral_state_{r.state}"))}'
                     f'{" · " + e(r.reason) if r.reason else ""} · {e(when)}'
                     f'<div class="actions">{forms}</div></li>')
    return f'<ul class="referrals">{"".join(items)}</ul>'


def _moves(case: Case, member: StaffMember, lang: str, csrf: str, event_id: str) -> str:
    ref = e(case.reference)
    forms = []
    for trigger in cl.CASES.allowed(case.status):
        if trigger == "refer":
            continue  # a referral names where to: the form below
        if trigger in cl.NEEDS_SUPERVISOR and not member.has("supervisor"):
            forms.append(f'<p class="hint">{e(say(lang, "close_needs_supervisor"))}</p>')
            continue
        reason = (f'<label>{e(say(lang, "case_move_reason"))}<textarea name="reason" '
                  'maxlength="500" required></textarea></label>'
                  if trigger in cl.NEEDS_REASON else "")
        forms.append(f'<form method="post" action="/board/cases/{ref}/move" class="act">'
                     f'{_hidden(csrf, event_id)}'
                     f'<input type="hidden" name="trigger" value="{e(trigger)}">{reason}'
                     f'<button type="submit">{e(say(lang, f"move_{trigger}"))}</button>'
                     '</form>')
    return "".join(forms)


def _refer_form(case: Case, lang: str, csrf: str, event_id: str,
                suggestions: Sequence[str]) -> str:
    if case.status not in (cl.ASSESSED, cl.REJECTED, cl.REFERRED, cl.ACCEPTED,
                           cl.IN_SERVICE):
        return ""
    options = "".join(f'<option value="{e(s)}"></option>' for s in suggestions)
    return (f'<h3>{e(say(lang, "refer_title"))}</h3>'
            f'<form method="post" action="/board/cases/{e(case.reference)}/refer" '
            f'class="act">{_hidden(csrf, event_id)}'
            f'<label>{e(say(lang, "refer_to"))}<input name="to" list="refer-to" '
            'maxlength="40" required pattern="[A-Za-z0-9_\\-]+"></label>'
            f'<datalist id="refer-to">{options}</datalist>'
            f'<label>{e(say(lang, "refer_days"))}<input name="days" type="number" min="1" '
            'max="365" value="14" required></label>'
            f'<button type="submit">{e(say(lang, "refer_submit"))}</button></form>')


def _photos(case: Case, photos: Sequence[CasePhoto], lang: str, csrf: str,
            can_open: bool) -> str:
    """How many photos of documents, and one form per photo: each opens (in a new tab)
    only with a reason, recorded, as the person is revealed."""
    title = f'<h2>{e(say(lang, "photos_title", count=len(photos)))}</h2>'
    if not photos or not can_open:
        return title
    reasons = "".join(f'<option value="{x}">{e(say(lang, f"reason_{x}"))}</option>'
                      for x in REVEAL_REASONS)
    items = []
    for n, photo in enumerate(photos, 1):
        items.append(
            f'<li><form method="post" target="_blank" class="act" '
            f'action="/board/cases/{e(case.reference)}/photos/{e(photo.id)}">'
            f'<input type="hidden" name="csrf" value="{e(csrf)}">'
            f'<label>{e(say(lang, "reveal_reason"))}<select name="reason">{reasons}</select>'
            f'</label><button type="submit">{e(say(lang, "photo_open", n=n))}</button> '
            f'<span class="hint">{e(say(lang, "photo_about", kb=max(1, photo.size // 1024)))}'
            f' · {_when(photo.at)}</span></form></li>')
    return f'{title}<ul class="photos">{"".join(items)}</ul>'


def _timeline(events: Sequence[TimelineEvent], lang: str) -> str:
    items = []
    for ev in events:
        extra = "; ".join(
            f"{k}: {', '.join(map(str, v)) if isinstance(v, list) else v}"
            for k, v in ev.data.items() if k in SHOWN_DATA and v not in ("", [], None))
        label = say(lang, f"case_event_{ev.kind}") if ev.kind in (
            "opened", "referral", "overdue", *cl.CASE_TRANSITIONS,
            *(f"referral_{t}" for t in cl.REFERRAL_TRANSITIONS)) else ev.kind
        items.append(f'<li>{_when(ev.at)} UTC <b>{e(label)}</b> · {e(ev.actor)} · '
                     f'{e(ev.channel)}{" · " + e(extra) if extra else ""}</li>')
    return f'<ol class="timeline">{"".join(items)}</ol>'


def case_page(lang: str, member: StaffMember, csrf: str, case: Case,
              events: Sequence[TimelineEvent], catalogs: Catalogs, now: datetime, *,
              revealed: bool = False, answer: str = "", problem: str = "",
              event_id: str = "", can_act: bool = True, incident_reference: str = "",
              suggestions: Sequence[str] = (), photos: Sequence[CasePhoto] = ()) -> str:
    ref = e(case.reference)
    if revealed:
        personal = _personal(case, catalogs, lang)
    else:
        reasons = "".join(f'<option value="{x}">{e(say(lang, f"reason_{x}"))}</option>'
                          for x in REVEAL_REASONS)
        personal = (f'<p class="masked-note">{e(say(lang, "personal_masked"))}</p>'
                    f'<form method="post" action="/board/cases/{ref}/reveal" class="act">'
                    f'<input type="hidden" name="csrf" value="{e(csrf)}">'
                    f'<label>{e(say(lang, "reveal_reason"))}<select name="reason">{reasons}'
                    f'</select></label><button type="submit">{e(say(lang, "case_reveal"))}'
                    '</button></form>')
    link = ""
    if case.incident_id:
        link = (f'<p><a href="/board/i/{e(incident_reference)}">'
                f'{e(say(lang, "from_incident", reference=incident_reference))}</a></p>'
                if incident_reference else f'<p>{e(say(lang, "from_incident_gone"))}</p>')
    said = f'<p role="status" class="answer">{e(answer)}</p>' if answer else ""
    alert = f'<p role="alert" class="problem">{e(problem)}</p>' if problem else ""
    actions = ""
    if can_act:
        actions = (f'<h2>{e(say(lang, "case_moves"))}</h2><div class="actions">'
                   f'{_moves(case, member, lang, csrf, event_id)}</div>'
                   f'{_refer_form(case, lang, csrf, event_id, suggestions)}')
    body = (f'<p><a href="/board/cases">{e(say(lang, "back"))}</a></p>'
            f'<h1>{e(say(lang, "case_title", reference=case.reference))}</h1>'
            f'{said}{alert}<div class="case" id="case"><p>'
            f'<span class="badge case-badge" id="status">'
            f'{e(status_label(catalogs, lang, case.status))}</span> · {e(case.area)} · '
            f'{_when(case.created_at)}{_flags(case, lang)}</p>{link}'
            f'<h2>{e(say(lang, "col_hardships"))}</h2>'
            f'<p>{e(_hardships(case, catalogs, lang) or "-")}</p>'
            f'<h2>{e(say(lang, "person"))}</h2>{personal}'
            f'{_photos(case, photos, lang, csrf, can_act)}'
            f'<h2>{e(say(lang, "screening"))}</h2>{_screening(case, catalogs, lang)}'
            f'<h2>{e(say(lang, "referrals"))}</h2>'
            f'{_referrals(case, catalogs, lang, now, csrf, event_id, can_act)}'
            f'{actions}<h2>{e(say(lang, "timeline"))}</h2>{_timeline(events, lang)}</div>')
    return layout(lang, case.reference, body, member=member, csrf=csrf, styles=STYLES)
