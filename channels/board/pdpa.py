"""The board's PDPA page for administrators: `/board/admin/pdpa`.

What the data protection officer must not miss: the open data-subject requests with their
legal deadlines (30 days for access, 90 for erasure; overdue ones first), and what
retention will erase in the coming days (`bot.privacy.retention.due`), so a record someone
still needs can be noticed before its key is destroyed. Admins only; every view is in the
audit trail. Acting on a subject (find, export, erase, refuse) is `channels/board/
pdpa_rights.py`. Words: `catalogs/pdpa.{th,en}.yaml` (keys `pdpa_…`).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from aiohttp import web

from bot.privacy import retention
from bot.privacy.access import staff_actor
from bot.privacy.processing import ProcessingError, load_processing
from bot.staff import StaffMember
from bot.types import utcnow
from channels.board.auth import csrf_for
from channels.board.pages import e, layout
from channels.board.words import say
from storage.audit import AuditEntry
from storage.privacy import ACCESS, ERASURE, SubjectRequest

if TYPE_CHECKING:
    from channels.board import BoardChannel

PATH = "/board/admin/pdpa"
ADMIN = "admin"
VIEW = "board.pdpa.view"  # the audit action of one view of this page
DEFAULT_DAYS, MAX_DAYS = 7, 31
KINDS = (ACCESS, ERASURE)
RECORDS = ("incident", "case")  # what retention erases, in words
SELECTORS = ("phone", "line-user", "reference", "case")  # as `ess subject find` names one
Handler = Callable[[web.Request, StaffMember, str], Awaitable[web.StreamResponse]]


def word(lang: str, key: str, **params: object) -> str:
    """A word of this page (`pdpa_<key>` in the board's catalogs)."""
    return say(lang, f"pdpa_{key}", **params)


def when(at: datetime) -> str:
    return at.strftime("%Y-%m-%d %H:%M") + " UTC"


def _days(text: str) -> int:
    try:
        days = int(text)
    except ValueError:
        return DEFAULT_DAYS
    return min(max(days, 1), MAX_DAYS)


def kind_word(lang: str, kind: str) -> str:
    return word(lang, f"kind_{kind}") if kind in KINDS else kind


def left_word(lang: str, r: SubjectRequest, now: datetime) -> str:
    """Days left before the legal deadline, or how late it is."""
    if r.due_at < now:
        return word(lang, "overdue", days=(now - r.due_at).days)
    return word(lang, "days_left", days=(r.due_at - now).days)


def hidden(csrf: str, **fields: str) -> str:
    return "".join(f'<input type="hidden" name="{e(k)}" value="{e(v)}">'
                   for k, v in {"csrf": csrf, **fields}.items())


def _refuse_form(lang: str, csrf: str, r: SubjectRequest) -> str:
    return (f'<form method="post" action="{PATH}/refuse" class="refuse">'
            f"{hidden(csrf, request=r.id)}"
            f'<label>{e(word(lang, "reason"))} <input name="reason" maxlength="500"></label>'
            f'<button type="submit">{e(word(lang, "refuse_button"))}</button></form>')


def requests_table(lang: str, requests: Sequence[SubjectRequest], now: datetime,
                   csrf: str) -> str:
    """Open requests, soonest deadline first, each with its refusal form."""
    if not requests:
        return f'<p class="hint">{e(word(lang, "no_requests"))}</p>'
    head = "".join(f"<th>{e(word(lang, k))}</th>" for k in (
        "col_request", "col_kind", "col_subject", "col_received", "col_due", "col_left",
        "col_act"))
    rows = [f'<tr class="{"overdue" if r.due_at < now else ""}" id="{e(r.id)}">'
            f"<td>{e(r.id)}</td><td>{e(kind_word(lang, r.kind))}</td>"
            f"<td><code>{e(r.subject)}</code></td><td>{e(when(r.received_at))}</td>"
            f"<td>{e(when(r.due_at))}</td><td>{e(left_word(lang, r, now))}</td>"
            f"<td>{_refuse_form(lang, csrf, r)}</td></tr>"
            for r in sorted(requests, key=lambda r: r.due_at)]
    return f'<table class="pdpa-requests"><tr>{head}</tr>{"".join(rows)}</table>'


def _due(lang: str, due: Sequence[retention.Due]) -> str:
    if not due:
        return f'<p class="hint">{e(word(lang, "nothing_due"))}</p>'
    head = "".join(f"<th>{e(word(lang, k))}</th>" for k in (
        "col_record", "col_kind", "col_erase_at", "col_what"))
    rows = "".join(
        f"<tr><td>{e(d.reference)}</td><td>{e(d.kind)}</td><td>{e(when(d.erase_at))}</td>"
        f"<td>{e(word(lang, f'what_{d.kind}') if d.kind in RECORDS else d.what)}"
        "</td></tr>" for d in due)
    return f'<table class="pdpa-due"><tr>{head}</tr>{rows}</table>'


def find_form(lang: str, csrf: str, kind: str = "phone", value: str = "") -> str:
    """Find a subject: a POST, so a phone number never sits in a URL or an access log."""
    options = "".join(
        f'<option value="{k}"{" selected" if k == kind else ""}>'
        f'{e(word(lang, "by_" + k.replace("-", "_")))}</option>' for k in SELECTORS)
    return (f'<h2>{e(word(lang, "find_title"))}</h2>'
            f'<form method="post" action="{PATH}/find" class="pdpa-find">{hidden(csrf)}'
            f'<label>{e(word(lang, "find_by"))} <select name="by">{options}</select></label>'
            f'<label>{e(word(lang, "find_value"))} <input name="value" maxlength="64" '
            f'autocomplete="off" value="{e(value)}"></label>'
            f'<button type="submit">{e(word(lang, "find_button"))}</button></form>')


def problem_html(text: str) -> str:
    return f'<p role="alert" class="problem">{e(text)}</p>' if text else ""


def pdpa_page(lang: str, member: StaffMember, csrf: str, requests: Sequence[SubjectRequest],
              due: Sequence[retention.Due] | None, days: int, now: datetime, *,
              problem: str = "", said: str = "") -> str:
    """The page: a problem or an outcome first, open requests, the subject search, then
    what retention erases within `days` (None: the record of processing could not be
    read)."""
    due_html = problem_html(word(lang, "processing_broken")) if due is None else \
        _due(lang, due)
    body = (f'<h1>{e(word(lang, "title"))}</h1>{problem_html(problem)}'
            + (f'<p role="status" class="said">{e(said)}</p>' if said else "")
            + f'<h2>{e(word(lang, "requests"))}</h2>{requests_table(lang, requests, now, csrf)}'
            f'<p class="hint">{e(word(lang, "how"))}</p>{find_form(lang, csrf)}'
            f'<h2>{e(word(lang, "due_title", days=days))}</h2>'
            f'<form method="get" action="{PATH}" class="inline">'
            f'<label>{e(word(lang, "days_field"))} <input name="days" type="number" min="1" '
            f'max="{MAX_DAYS}" value="{days}"></label>'
            f'<button type="submit">{e(word(lang, "show"))}</button></form>{due_html}'
            f'<p><a href="/board">{e(word(lang, "back"))}</a></p>')
    return layout(lang, word(lang, "title"), body, member=member, csrf=csrf)


def admin_only(board: BoardChannel, action: str, handler: Handler) -> Handler:
    """`handler` for admins; anyone else gets 403, and the attempt is audited."""
    async def guarded(request: web.Request, member: StaffMember,
                      token: str) -> web.StreamResponse:
        if ADMIN in member.roles:
            return await handler(request, member, token)
        await board.ctx.services.storage.audit.append(
            AuditEntry(staff_actor(member.login), action + ".refused"))
        lang = board._lang(request, member)
        return board._html(layout(lang, word(lang, "admin_only"),
                                  problem_html(word(lang, "admin_only")), member=member,
                                  csrf=csrf_for(token)), 403)
    return guarded


async def overview(board: BoardChannel, request: web.Request, member: StaffMember,
                   token: str, *, problem: str = "", said: str = "",
                   status: int = 200) -> web.StreamResponse:
    """The page as an admin sees it (GET /board/admin/pdpa, and after an action)."""
    lang = board._lang(request, member)
    storage = board.ctx.services.storage
    now = utcnow()
    days = _days(request.query.get("days", "")[:4])
    requests = await storage.privacy.requests(open_only=True)
    try:
        due: list[retention.Due] | None = await retention.due(
            storage, load_processing(), now, timedelta(days=days))
    except ProcessingError:
        due = None
    await storage.audit.append(AuditEntry(staff_actor(member.login), VIEW,
                                          detail=f"{len(requests)} request(s), "
                                                 f"{len(due or [])} due in {days} day(s)"))
    return board._html(pdpa_page(lang, member, csrf_for(token), requests, due, days, now,
                                 problem=problem, said=said), status)


def pdpa_admin(board: BoardChannel) -> Handler:
    """GET /board/admin/pdpa (a signed-in staff member; refused unless an admin)."""
    async def view(request: web.Request, member: StaffMember,
                   token: str) -> web.StreamResponse:
        return await overview(board, request, member, token)
    return admin_only(board, VIEW, view)
