"""Data-subject rights acted on from the board: find, export, erase, refuse (admins only).

The same functions as `ess subject …` (`bot.privacy.rights.Rights`, the sealed export of
`bot.privacy.sealed_export`), acted on by `staff:<login>`, so the audit trail says who did
what and the request keeps why. Every form is a POST with the CSRF token (a phone number
never sits in a URL). An export's one-time password is shown once on the page; its file,
sealed to it, waits in the shared store (`storage.exports`, the link's token kept only as a
keyed digest) for one download by the admin who made it, from any process, within
`ESS_EXPORT_DOWNLOAD_TTL`. An erasure asks for a written reason, then a confirmation.
"""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from aiohttp import web

from bot.privacy.access import staff_actor
from bot.privacy.rights import DEADLINES, Found, RequestError, Rights
from bot.privacy.sealed_export import new_password, seal_export
from bot.privacy.subjects import Selector, SubjectError
from bot.staff import StaffMember
from bot.types import utcnow
from channels.board.auth import csrf_for
from channels.board.pages import e, layout
from channels.board.pdpa import (
    PATH,
    SELECTORS,
    admin_only,
    find_form,
    hidden,
    overview,
    pdpa_admin,
    problem_html,
    requests_table,
    when,
    word,
)
from channels.board.words import LANGS
from storage.audit import AuditEntry
from storage.exports import HeldExport
from storage.privacy import ACCESS, ERASURE, SubjectRequest

if TYPE_CHECKING:
    from channels.board import BoardChannel

DOWNLOADED = "board.pdpa.download"


class Problem(Exception):
    """What the admin must fix, said on the page (`key`: a `pdpa_` word)."""

    def __init__(self, status: int, key: str, **params: object):
        super().__init__(key)
        self.status, self.key, self.params = status, key, params


def selector_of(form: dict[str, str]) -> Selector:
    by, value = form.get("by", ""), form.get("value", "").strip()[:64]
    if by not in SELECTORS or not value:
        raise Problem(400, "bad_selector")
    try:
        return Selector.parse(*(value if by == k else None for k in SELECTORS))
    except SubjectError:
        raise Problem(400, f"bad_{by.replace('-', '_')}") from None


def _records(lang: str, found: Found) -> str:
    if not found.held:
        return f'<p class="hint" role="status">{e(word(lang, "nothing_held"))}</p>'
    head = "".join(f"<th>{e(word(lang, k))}</th>" for k in (
        "col_kind", "col_record", "col_created", "col_summary"))
    rows = "".join(f"<tr><td>{e(h.kind)}</td><td>{e(h.reference)}</td>"
                   f"<td>{e(when(h.created_at) if h.created_at else '')}</td>"
                   f"<td>{e(h.summary)}</td></tr>" for h in found.held)
    return f'<table class="pdpa-held"><tr>{head}</tr>{rows}</table>'


def _answers(lang: str, theirs: Sequence[SubjectRequest], kind: str) -> str:
    """Which request the action answers: the subject's soonest open one of that kind is
    chosen; or a new one, received now."""
    mine = sorted((r for r in theirs if r.kind == kind), key=lambda r: r.due_at)
    options = [f'<option value="">{e(word(lang, "new_request"))}</option>'] + [
        f'<option value="{e(r.id)}"{" selected" if i == 0 else ""}>{e(r.id)} '
        f"({e(when(r.due_at))})</option>" for i, r in enumerate(mine)]
    return (f'<label>{e(word(lang, "answers"))} <select name="request">{"".join(options)}'
            "</select></label>")


def _due(theirs: Sequence[SubjectRequest], kind: str, now: datetime) -> datetime:
    """The deadline the action meets: the soonest open request of that kind, else a new
    one's (received now)."""
    dues = [r.due_at for r in theirs if r.kind == kind]
    return min(dues) if dues else now + DEADLINES[kind]


def subject_page(lang: str, member: StaffMember, csrf: str, selector: Selector,
                 found: Found, theirs: Sequence[SubjectRequest], now: datetime, *,
                 problem: str = "", reason: str = "") -> str:
    """One subject: the records held, their open requests, and the three actions, each
    with the deadline the law gives it."""
    who = hidden(csrf, by=selector.kind, value=selector.value)
    body = (f'<h1>{e(word(lang, "subject_title", subject=found.subject.id))}</h1>'
            f'{problem_html(problem)}'
            f'<p>{e(word(lang, "held", count=len(found.held)))}</p>{_records(lang, found)}')
    if theirs:
        body += (f'<h2>{e(word(lang, "requests"))}</h2>'
                 f'{requests_table(lang, theirs, now, csrf)}')
    if found.held:
        export_due = when(_due(theirs, ACCESS, now))
        erase_due = when(_due(theirs, ERASURE, now))
        body += (f'<section class="pdpa-export"><h2>{e(word(lang, "export_title"))}</h2>'
                 f'<p>{e(word(lang, "export_deadline", due=export_due))}</p>'
                 f'<form method="post" action="{PATH}/export">{who}'
                 f'{_answers(lang, theirs, ACCESS)}'
                 f'<button type="submit">{e(word(lang, "export_button"))}</button></form>'
                 f'</section><section class="pdpa-erase">'
                 f'<h2>{e(word(lang, "erase_title"))}</h2>'
                 f'<p>{e(word(lang, "erase_deadline", due=erase_due))}</p>'
                 f'<form method="post" action="{PATH}/erase">{who}'
                 f'{_answers(lang, theirs, ERASURE)}'
                 f'<label>{e(word(lang, "reason"))} <textarea name="reason" rows="2" '
                 f'maxlength="500">{e(reason)}</textarea></label>'
                 f'<button type="submit">{e(word(lang, "erase_button"))}</button></form>'
                 "</section>")
    body += (find_form(lang, csrf, selector.kind, selector.value)
             + f'<p><a href="{PATH}">{e(word(lang, "back"))}</a></p>')
    return layout(lang, word(lang, "subject_title", subject=found.subject.id), body,
                  member=member, csrf=csrf)


def confirm_page(lang: str, member: StaffMember, csrf: str, selector: Selector, found: Found,
                 reason: str, request_id: str) -> str:
    title = word(lang, "confirm_title", count=len(found.held), subject=found.subject.id)
    fields = hidden(csrf, by=selector.kind, value=selector.value, reason=reason,
                    request=request_id, confirm="yes")
    body = (f'<h1>{e(title)}</h1><p role="alert" class="problem">'
            f'{e(word(lang, "confirm_body"))}</p>'
            f'<p>{e(word(lang, "confirm_reason", reason=reason))}</p>'
            f'<form method="post" action="{PATH}/erase">{fields}'
            f'<button type="submit" class="danger">{e(word(lang, "confirm_button"))}'
            f'</button></form><p><a href="{PATH}">{e(word(lang, "cancel"))}</a></p>')
    return layout(lang, title, body, member=member, csrf=csrf)


def exported_page(lang: str, member: StaffMember, csrf: str, subject: str, count: int,
                  request_id: str, password: str, token: str, minutes: int) -> str:
    title = word(lang, "exported_title")
    said = word(lang, "exported", count=count, subject=subject, request=request_id)
    body = (f'<h1>{e(title)}</h1><p role="status">{e(said)}</p>'
            f'<p>{e(word(lang, "password_once"))}</p>'
            f'<p><code class="password" id="password">{e(password)}</code></p>'
            f'<p><a class="download" href="{PATH}/download/{e(token)}" download>'
            f'{e(word(lang, "download", minutes=minutes))}</a></p>'
            f'<p><a href="{PATH}">{e(word(lang, "back"))}</a></p>')
    return layout(lang, title, body, member=member, csrf=csrf)


class SubjectDesk:
    """The PDPA page's handlers, mounted by the board channel."""

    def __init__(self, board: BoardChannel):
        self.board = board

    def routes(self, router: web.UrlDispatcher) -> None:
        b = self.board
        router.add_get(PATH, b._page(pdpa_admin(b)))
        for name, handler in (("find", self.find), ("export", self.export),
                              ("erase", self.erase), ("refuse", self.refuse)):
            router.add_post(f"{PATH}/{name}",
                            b._post(admin_only(b, f"board.pdpa.{name}", handler)))
            # The header's language link on a page an action answered: back to the page.
            router.add_get(f"{PATH}/{name}", self.back)
        router.add_get(PATH + "/download/{token}",
                       b._page(admin_only(b, DOWNLOADED, self.download), redirect=False))

    async def back(self, request: web.Request) -> web.StreamResponse:
        lang = request.query.get("lang", "")
        raise web.HTTPSeeOther(PATH + (f"?lang={lang}" if lang in LANGS else ""))

    def _rights(self, member: StaffMember) -> Rights:
        return Rights(self.board.ctx.services.storage, self.board.digest,
                      staff_actor(member.login))

    def _form(self, request: web.Request) -> dict[str, str]:
        from channels.board import FORM

        form: dict[str, str] = request[FORM]
        return form

    async def _problem(self, request: web.Request, member: StaffMember, token: str,
                       problem: Problem) -> web.StreamResponse:
        lang = self.board._lang(request, member)
        return await overview(self.board, request, member, token,
                              problem=word(lang, problem.key, **problem.params),
                              status=problem.status)

    async def _found(self, member: StaffMember, selector: Selector
                     ) -> tuple[Found, list[SubjectRequest]]:
        try:
            found = await self._rights(member).find(selector)
        except SubjectError:  # a reference that names no report or case
            raise Problem(404, "not_found") from None
        requests = await self.board.ctx.services.storage.privacy.requests(open_only=True)
        return found, [r for r in requests if r.subject == found.subject.id]

    async def _subject(self, request: web.Request, member: StaffMember, token: str,
                       selector: Selector, *, problem: str = "", reason: str = "",
                       status: int = 200) -> web.StreamResponse:
        found, theirs = await self._found(member, selector)
        lang = self.board._lang(request, member)
        return self.board._html(subject_page(
            lang, member, csrf_for(token), selector, found, theirs, utcnow(),
            problem=word(lang, problem) if problem else "", reason=reason), status)

    async def find(self, request: web.Request, member: StaffMember,
                   token: str) -> web.StreamResponse:
        """POST …/find: the records held about a subject (audited as `subject.find`)."""
        try:
            return await self._subject(request, member, token, selector_of(self._form(request)))
        except Problem as problem:
            return await self._problem(request, member, token, problem)

    async def export(self, request: web.Request, member: StaffMember,
                     token: str) -> web.StreamResponse:
        """POST …/export: everything held, sealed to a one-time password shown once."""
        form = self._form(request)
        lang = self.board._lang(request, member)
        try:
            selector = selector_of(form)
            request_id = form.get("request", "")[:40] or None
            try:
                answered, data = await self._rights(member).export(selector, utcnow(),
                                                                   request_id)
            except RequestError:
                raise Problem(409, "request_problem", request=request_id) from None
            except SubjectError:  # a reference that names no report or case
                raise Problem(404, "not_found") from None
        except Problem as problem:
            return await self._problem(request, member, token, problem)
        password = new_password()
        blob = await asyncio.to_thread(seal_export, data, password)  # scrypt: not on the loop
        link, now = secrets.token_urlsafe(32), utcnow()
        ttl = self.board.ctx.services.settings.export_download_ttl
        await self.board.ctx.services.storage.exports.put(link, HeldExport(
            member.login, data["subject"], answered.id, blob, now + timedelta(seconds=ttl)),
            now)
        return self.board._html(exported_page(lang, member, csrf_for(token), data["subject"],
                                              len(data["records"]), answered.id, password,
                                              link, max(1, round(ttl / 60))))

    async def download(self, request: web.Request, member: StaffMember,
                       token: str) -> web.StreamResponse:
        """GET …/download/{token}: the sealed file, once, for the admin who exported it (from
        any process: the store hands it to exactly one download)."""
        waiting = await self.board.ctx.services.storage.exports.take(
            request.match_info["token"][:64], member.login, utcnow())
        if waiting is None:
            lang = self.board._lang(request, member)
            return self.board._html(layout(lang, word(lang, "download_gone"),
                                           problem_html(word(lang, "download_gone")),
                                           member=member, csrf=csrf_for(token)), 404)
        await self.board.ctx.services.storage.audit.append(
            AuditEntry(staff_actor(member.login), DOWNLOADED, waiting.subject,
                       detail=waiting.request))
        return web.Response(body=waiting.blob, content_type="application/json", headers={
            "Cache-Control": "no-store", "X-Content-Type-Options": "nosniff",
            "Content-Disposition": f'attachment; filename="ess-export-{waiting.subject}.json"'})

    async def erase(self, request: web.Request, member: StaffMember,
                    token: str) -> web.StreamResponse:
        """POST …/erase: a written reason, then a confirmation, then the keys destroyed."""
        form = self._form(request)
        reason = form.get("reason", "").strip()[:500]
        request_id = form.get("request", "")[:40]
        try:
            selector = selector_of(form)
            if not reason:
                return await self._subject(request, member, token, selector,
                                           problem="reason_needed", status=400)
            if form.get("confirm") != "yes":
                found, _ = await self._found(member, selector)
                return self.board._html(confirm_page(
                    self.board._lang(request, member), member, csrf_for(token), selector,
                    found, reason, request_id))
            try:
                done, erased = await self._rights(member).erase(selector, reason, utcnow(),
                                                                request_id or None)
            except RequestError:
                raise Problem(409, "request_problem", request=request_id) from None
            except SubjectError:
                raise Problem(404, "not_found") from None
        except Problem as problem:
            return await self._problem(request, member, token, problem)
        lang = self.board._lang(request, member)
        return await overview(self.board, request, member, token, said=word(
            lang, "erased", count=erased, subject=done.subject, request=done.id))

    async def refuse(self, request: web.Request, member: StaffMember,
                     token: str) -> web.StreamResponse:
        """POST …/refuse: a request refused, its written reason kept (PDPA s.39)."""
        form = self._form(request)
        request_id, reason = form.get("request", "")[:40], form.get("reason", "").strip()
        lang = self.board._lang(request, member)
        if not reason:
            return await self._problem(request, member, token,
                                       Problem(400, "refuse_reason_needed"))
        try:
            refused = await self._rights(member).refuse(request_id, reason[:500], utcnow())
        except RequestError:
            return await self._problem(request, member, token,
                                       Problem(409, "request_problem", request=request_id))
        return await overview(self.board, request, member, token,
                              said=word(lang, "refused", request=refused.id))
