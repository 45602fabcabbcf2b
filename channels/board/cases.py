"""The board's cases tab: the welfare caseload of the viewer's areas, and acting on a case.

Reads go through the store's scoped reads (`CaseStore.recent(areas=…)`, `get_in`), so
another area's case reads as one that does not exist (404) for every page and action.
Every read is audited (`board.case.list`, `board.case.view`, `board.case.reveal:<reason>`,
`board.case.photo:<reason>` for a photo of documents, served with its stored type only);
every change goes through `Casework` as `board:<login>` (closing approved when the member
is a supervisor), so the volunteer is told as from the command line. The forms are the
board's: session, CSRF token and Origin checked by `BoardChannel._post`, an analyst 403.
"""

from __future__ import annotations

import re
import secrets
from datetime import timedelta

import structlog
from aiohttp import web

from bot.case import Case, normalize_case_reference
from bot.casework import Changed, province
from bot.staff import StaffMember
from channels.board import FORM, HEADERS, BoardChannel, can_act
from channels.board import cases_pages as cp
from channels.board.auth import csrf_for
from channels.board.pages import message_page
from channels.board.words import say
from routing import case_lifecycle as cl

log = structlog.get_logger(__name__)

LIST_LIMIT = 200
REPLAY_WINDOW = timedelta(days=1)  # a form sent twice (a double tap, a reload) acts once
TARGET = re.compile(r"^[A-Za-z0-9_\-]{1,40}$")
WHY = {"a reason is required": "why_reason", "not allowed": "why_not_allowed",
       "a supervisor must approve": "close_needs_supervisor",
       "no such referral": "why_no_referral"}


class CaseDesk:
    """The cases tab's handlers, mounted by the board channel."""

    def __init__(self, board: BoardChannel):
        self.board = board

    def routes(self, router: web.UrlDispatcher) -> None:
        b = self.board
        router.add_get("/board/cases", b._page(self.listing))
        router.add_get("/board/cases/{reference}", b._page(self.show, redirect=False))
        for name, handler in (("move", self.move), ("refer", self.refer),
                              ("referral", self.referral), ("reveal", self.reveal)):
            router.add_post(f"/board/cases/{{reference}}/{name}", b._post(b._act(handler)))
        router.add_post("/board/cases/{reference}/photos/{photo}", b._post(b._act(self.photo)))

    # -- reads ------------------------------------------------------------------------------

    async def listing(self, request: web.Request, member: StaffMember,
                      token: str) -> web.StreamResponse:
        if request.query.get("ref"):
            reference = normalize_case_reference(request.query["ref"][:20])
            raise web.HTTPSeeOther(f"/board/cases/{reference}")
        services = self.board.ctx.services
        lang = self.board._lang(request, member)
        filters = {k: request.query.get(k, "")[:40] for k in ("area", "status", "flag",
                                                               "overdue")}
        filters = {k: v for k, v in filters.items() if v}
        areas = member.areas
        if filters.get("area"):
            areas = (filters["area"],) if filters["area"] in member.areas else ()
        flag = filters.get("flag") if filters.get("flag") in cp.FLAGS else None
        found = await services.storage.cases.recent(LIST_LIMIT, areas=areas, flag=flag)
        await self.board._audit(member, "board.case.list",
                                ",".join(areas) + (f"|{flag}" if flag else ""))
        now = services.casework.clock()
        rows = [cp.case_row(c, now) for c in found
                if not filters.get("status") or c.status == filters["status"]]
        if filters.get("overdue"):
            rows = [r for r in rows if r.overdue]
        rows.sort(key=lambda r: (-r.overdue, r.case.status == cl.CLOSED,
                                 -r.case.created_at.timestamp()))
        return self.board._html(cp.list_page(lang, member, csrf_for(token), rows,
                                             services.catalogs, filters))

    async def _scoped(self, request: web.Request, member: StaffMember) -> Case:
        reference = normalize_case_reference(request.match_info["reference"][:20])
        case = await self.board.ctx.services.storage.cases.get_in(reference, member.areas)
        if case is None:
            # Another area's case reads exactly as one that does not exist.
            log.warning("board.case_out_of_scope", staff=member.login)
            raise web.HTTPNotFound(
                text=message_page(self.board._lang(request, member), "case_not_found",
                                  link="/board/cases"),
                content_type="text/html", headers=HEADERS)
        return case

    async def show(self, request: web.Request, member: StaffMember, token: str, *,
                   revealed: bool = False, answer: str = "", problem: str = "",
                   case: Case | None = None) -> web.StreamResponse:
        if case is None:
            case = await self._scoped(request, member)
        services = self.board.ctx.services
        lang = self.board._lang(request, member)
        await self.board._audit(member, "board.case.view", case.reference)
        events = await services.storage.cases.timeline(case.id)
        incident_reference = ""
        if case.incident_id:
            incident = await services.storage.incidents.get_by_id(case.incident_id)
            incident_reference = incident.reference if incident else ""
        suggestions = [str(f.get("programme")) for f in case.screening] + [
            g.id for g in services.directory.groups_for([province(case.area)])
            if g.agency in ("welfare", "education")]
        return self.board._html(cp.case_page(
            lang, member, csrf_for(token), case, events, services.catalogs,
            services.casework.clock(), revealed=revealed, answer=answer, problem=problem,
            event_id=secrets.token_hex(8), can_act=can_act(member),
            incident_reference=incident_reference,
            suggestions=list(dict.fromkeys(suggestions)),
            photos=await services.storage.case_photos.listed(case.id)))

    async def reveal(self, request: web.Request, member: StaffMember,
                     token: str) -> web.StreamResponse:
        case = await self._scoped(request, member)
        reason = request[FORM].get("reason", "")
        if reason not in cp.REVEAL_REASONS:
            return await self._refused(request, member, token, case, "bad_request", 400)
        await self.board._audit(member, f"board.case.reveal:{reason}", case.reference)
        return await self.show(request, member, token, revealed=True, case=case)

    async def photo(self, request: web.Request, member: StaffMember,
                    token: str) -> web.StreamResponse:
        """One photo of documents, with a reason, audited before it is served; its bytes
        with the type stored (JPEG or PNG, read from the bytes when kept), never cached."""
        case = await self._scoped(request, member)
        reason = request[FORM].get("reason", "")
        if reason not in cp.REVEAL_REASONS:
            return await self._refused(request, member, token, case, "bad_request", 400)
        photo = await self.board.ctx.services.storage.case_photos.get(
            case.id, request.match_info["photo"][:64])
        if photo is None:
            return await self._refused(request, member, token, case, "photo_not_found", 404)
        await self.board._audit(member, f"board.case.photo:{reason}", case.reference)
        return web.Response(body=photo.data, content_type=photo.content_type, headers={
            **HEADERS, "Content-Security-Policy": "default-src 'none'; frame-ancestors 'none'",
            "Content-Disposition": "inline"})

    # -- changes ----------------------------------------------------------------------------

    def _actor(self, member: StaffMember) -> str:
        return f"board:{member.login}"

    async def _first(self, request: web.Request, member: StaffMember) -> bool:
        """False when this very form was already acted on (a double submit)."""
        event = request[FORM].get("event", "")[:32]
        if not event:
            return True
        services = self.board.ctx.services
        return await services.storage.dedupe.first(
            f"board:case:{member.login}:{event}", REPLAY_WINDOW, services.casework.clock())

    async def _refused(self, request: web.Request, member: StaffMember, token: str,
                       case: Case, why_key: str, status: int) -> web.StreamResponse:
        lang = self.board._lang(request, member)
        why = say(lang, why_key)
        response = await self.show(request, member, token, case=case,
                                   problem=say(lang, "case_refused", why=why))
        response.set_status(status)
        return response

    async def _after(self, request: web.Request, member: StaffMember, token: str,
                     case: Case, done: Changed, what: str) -> web.StreamResponse:
        lang = self.board._lang(request, member)
        log.info("board.case_act", staff=member.login, action=what,
                 outcome=done.error or "done")
        if done.case is None:
            key = "case_busy" if done.error == "busy" else "case_not_found"
            response = await self.show(request, member, token, case=case,
                                       problem=say(lang, key))
            response.set_status(409)
            return response
        if done.error:
            return await self._refused(request, member, token, done.case,
                                       WHY.get(done.error, "why_not_allowed"), 409)
        status = cp.status_label(self.board.ctx.services.catalogs, lang, done.case.status)
        return await self.show(request, member, token, case=done.case,
                               answer=say(lang, "case_moved", status=status))

    async def move(self, request: web.Request, member: StaffMember,
                   token: str) -> web.StreamResponse:
        case = await self._scoped(request, member)
        form = request[FORM]
        trigger = form.get("trigger", "")
        if trigger not in cl.CASE_TRANSITIONS or trigger == "refer":
            return await self._refused(request, member, token, case, "why_not_allowed", 400)
        if not await self._first(request, member):
            return await self.show(request, member, token, case=case)
        done = await self.board.ctx.services.casework.move(
            case.reference, trigger, self._actor(member),
            reason=form.get("reason", "").strip()[:500],
            supervisor=member.has("supervisor"), channel="board")
        return await self._after(request, member, token, case, done, trigger)

    async def refer(self, request: web.Request, member: StaffMember,
                    token: str) -> web.StreamResponse:
        case = await self._scoped(request, member)
        form = request[FORM]
        to = form.get("to", "").strip()
        if not TARGET.match(to):
            return await self._refused(request, member, token, case, "why_bad_to", 400)
        try:
            days = int(form.get("days", ""))
        except ValueError:
            days = 0
        if not 1 <= days <= 365:
            return await self._refused(request, member, token, case, "why_bad_days", 400)
        if case.status not in (cl.ASSESSED, cl.REJECTED, cl.REFERRED, cl.ACCEPTED,
                               cl.IN_SERVICE):
            return await self._refused(request, member, token, case, "why_not_allowed", 409)
        if not await self._first(request, member):
            return await self.show(request, member, token, case=case)
        done = await self.board.ctx.services.casework.refer(
            case.reference, to, self._actor(member), due=timedelta(days=days),
            channel="board")
        return await self._after(request, member, token, case, done, "refer")

    async def referral(self, request: web.Request, member: StaffMember,
                       token: str) -> web.StreamResponse:
        case = await self._scoped(request, member)
        form = request[FORM]
        trigger = form.get("trigger", "")
        if trigger not in cl.REFERRAL_TRANSITIONS:
            return await self._refused(request, member, token, case, "why_not_allowed", 400)
        if not await self._first(request, member):
            return await self.show(request, member, token, case=case)
        done = await self.board.ctx.services.casework.move_referral(
            case.reference, form.get("referral", "")[:20], trigger, self._actor(member),
            reason=form.get("reason", "").strip()[:500], channel="board")
        return await self._after(request, member, token, case, done, f"referral_{trigger}")

