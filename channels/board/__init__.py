"""The operations board: a live incident list and map for responders and officials.

One more responder channel: staff sign in (`channels/board/auth.py`), see the open
incidents of their areas (the store's scoped reads), and act through the one responder
path (`routing.responders`), so LINE groups, SMS responders and the reporter are told as
from any other channel. Live updates are server-sent events fed by the durable board log
(`channels/board/live.py`). On with no setting (`ESS_BOARD_ENABLED=false` turns it off);
`ESS_BOARD_TILE_URL` and `ESS_BOARD_TILE_ATTRIBUTION` give the map a basemap.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import secrets
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, ClassVar
from urllib.parse import parse_qsl

import structlog
from aiohttp import HttpVersion11, web

from bot.incident import normalize_reference
from bot.outbound import Outbound, SendResult
from bot.privacy.access import (
    record_login,
    record_logout,
    record_password_set,
    staff_actor,
    unknown_login_actor,
)
from bot.privacy.subjects import Digest
from bot.render import Abilities
from bot.staff import ROLES, StaffMember, in_scope
from bot.types import utcnow
from bot.waits import woken
from channels.base import Channel, ChannelContext, ChannelOff, optional_setting
from channels.board import pages
from channels.board.analytics import AnalyticsPages
from channels.board.auth import (
    COOKIE,
    SESSION_HOURS,
    csrf_for,
    csrf_ok,
    hash_password,
    log_in,
    password_problem,
)
from channels.board.live import Change, Feed, Scope
from channels.board.metrics import BOARD_LAG, BOARD_VIEWERS
from channels.board.record import record_html, relay_chat, told
from channels.board.views import BoardRow, row, urgency
from channels.board.wire import Wire
from channels.board.words import LANGS
from channels.limits import client_address
from channels.web_pages import vendored_response
from config.settings import Settings, SettingsError
from routing import lifecycle as lc
from routing.directory import Station
from routing.responders import Actor, ActResult

log = structlog.get_logger(__name__)

CHANNEL = "board"
MAX_FORM = 8 * 1024  # a form of the board is a few hundred bytes; a 1 MB one is refused
PING_SECONDS = 15.0
MAX_STATIONS = 500  # station markers on the map: a province has tens, the country ~1,500
RECHECK_SECONDS = 30.0  # a live stream re-reads its session: a disable ends it this soon
STATIC = Path(__file__).parent / "static"
TYPES = {".js": "text/javascript", ".css": "text/css", ".png": "image/png",
         ".svg": "image/svg+xml"}
HEADERS = {"Cache-Control": "no-store", "Referrer-Policy": "same-origin",
           "X-Content-Type-Options": "nosniff", "X-Frame-Options": "DENY"}
ABILITIES = Abilities()
TOTP_ROLES = ("supervisor", "admin")  # roles that sign in with a one-time code by default

FORM = web.RequestKey("board_form", dict)
Handler = Callable[[web.Request, StaffMember, str], Awaitable[web.StreamResponse]]


class FormProblem(Exception):
    def __init__(self, status: int, key: str):
        super().__init__(key)
        self.status, self.key = status, key


class BoardChannel(Channel):
    name: ClassVar[str] = CHANNEL
    abilities = ABILITIES

    def __init__(self, tile_url: str = "", attribution: str = "",
                 trust_forwarded: bool = False,
                 totp_roles: tuple[str, ...] = TOTP_ROLES):
        self.tile_url = tile_url
        self.attribution = attribution
        self.trust_forwarded = trust_forwarded
        self.totp_roles = totp_roles
        self._feed: Feed | None = None
        self._analytics: AnalyticsPages | None = None
        self._digest: Digest | None = None

    @classmethod
    def from_settings(cls, settings: Settings) -> BoardChannel:
        if optional_setting(settings, "ESS_BOARD_ENABLED", "true").lower() in (
                "false", "0", "no", "off"):
            raise ChannelOff("board: ESS_BOARD_ENABLED is false")
        return cls(optional_setting(settings, "ESS_BOARD_TILE_URL"),
                   optional_setting(settings, "ESS_BOARD_TILE_ATTRIBUTION"),
                   settings.trust_forwarded, totp_roles_setting(settings))

    @classmethod
    def add_commands(cls, commands: argparse._SubParsersAction[Any]) -> None:
        from channels.board.staff_cli import add_commands

        add_commands(commands)

    def routes(self, router: web.UrlDispatcher) -> None:
        router.add_get("/board", self._page(self.board))
        router.add_get("/board/login", self.login_form)
        router.add_post("/board/login", self.login)
        router.add_post("/board/logout", self._post(self.logout))
        router.add_get("/board/password", self.password_form)
        router.add_post("/board/password", self.password)
        router.add_get("/board/find", self._page(self.find))
        router.add_get("/board/events", self._page(self.events, redirect=False))
        router.add_get("/board/i/{reference}", self._page(self.incident, redirect=False))
        router.add_post("/board/i/{reference}/act", self._post(self._act(self.act)))
        router.add_post("/board/i/{reference}/relay", self._post(self._act(self.relay)))
        router.add_post("/board/i/{reference}/reveal", self._post(self._act(self.reveal)))
        from channels.board.pdpa_rights import SubjectDesk  # here: it builds on this module

        SubjectDesk(self).routes(router)
        from channels.board.cases import CaseDesk  # here: it builds on this module

        CaseDesk(self).routes(router)
        router.add_get("/board/static/{name}", self.static)
        from channels.board.export import export  # these build on this module
        from channels.board.staff_admin import StaffAdmin

        StaffAdmin(self).routes(router)
        router.add_get("/board/export.csv", self._page(export(self)))
        self._analytics = analytics = AnalyticsPages(lambda: self.ctx.services, self._html,
                                                     self.tile_url, self.attribution)
        router.add_get("/board/analytics", self._page(analytics.page))
        router.add_get("/board/analytics/export", self._page(analytics.export, redirect=False))
        router.add_get("/board/static/{pkg}/{name:.+}", self.vendored)

    async def start(self, ctx: ChannelContext) -> None:
        await super().start(ctx)
        self._feed = Feed(ctx.services.storage, render=self._event_bytes)
        await self._feed.start()

    async def stop(self) -> None:
        if self._analytics is not None:
            await self._analytics.close()
        if self._feed is not None:
            await self._feed.stop()

    @property
    def feed(self) -> Feed:
        assert self._feed is not None, "started channels have their feed"
        return self._feed

    async def send(self, address: str, message: Outbound, *, key: str,
                   silent: bool = False) -> SendResult:
        # A message to a board holder (the reporter's relay, a reminder): the board shows
        # the incident's timeline live, so there is nothing to push beyond the event log.
        self.feed.poke()
        return SendResult.sent()

    # -- plumbing ---------------------------------------------------------------------------

    def _lang(self, request: web.Request, member: StaffMember | None = None) -> str:
        wanted = request.query.get("lang", "")
        if wanted in LANGS:
            return wanted
        if member is not None and member.lang in LANGS:
            return member.lang
        return "th"

    def _html(self, text: str, status: int = 200, **headers: str) -> web.Response:
        images = "'self' data:"
        if self.tile_url.startswith(("https://", "http://")):
            scheme, _, rest = self.tile_url.partition("://")
            images += f" {scheme}://{rest.split('/', 1)[0].replace('{s}', '*')}"
        csp = (f"default-src 'self'; img-src {images}; connect-src 'self'; script-src 'self'; "
               "style-src 'self'; frame-ancestors 'none'; base-uri 'none'; "
               "form-action 'self'")
        return web.Response(text=text, status=status, content_type="text/html",
                            headers={**HEADERS, "Content-Security-Policy": csp, **headers})

    async def _member(self, request: web.Request) -> tuple[StaffMember, str] | None:
        token = request.cookies.get(COOKIE, "")
        if not token or len(token) > 100:
            return None
        member = await self.ctx.services.storage.staff.session(token, utcnow())
        return (member, token) if member else None

    def _page(self, handler: Handler, redirect: bool = True
              ) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
        async def page(request: web.Request) -> web.StreamResponse:
            found = await self._member(request)
            if found is None:
                if redirect:
                    raise web.HTTPSeeOther("/board/login")
                lang = self._lang(request)
                return self._html(pages.message_page(lang, "login_title", link="/board/login"),
                                  401)
            return await handler(request, *found)
        return page

    def _act(self, handler: Handler) -> Handler:
        """An action on an incident: for responders, supervisors and admins (an analyst
        reads only)."""
        async def acting(request: web.Request, member: StaffMember,
                         token: str) -> web.StreamResponse:
            if not can_act(member):
                return self._html(pages.message_page(self._lang(request, member),
                                                     "read_only"), 403)
            return await handler(request, member, token)
        return acting

    def _post(self, handler: Handler) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
        async def post(request: web.Request) -> web.StreamResponse:
            lang = self._lang(request)
            try:
                found = await self._member(request)
                if found is None:
                    raise FormProblem(401, "login_title")
                member, token = found
                lang = self._lang(request, member)
                if not self._same_origin(request):
                    raise FormProblem(403, "csrf_failed")
                form = await self._form(request)
                if not csrf_ok(token, form.get("csrf", "")):
                    log.warning("board.csrf_refused", path=request.path)
                    raise FormProblem(403, "csrf_failed")
            except FormProblem as problem:
                link = "/board/login" if problem.status == 401 else "/board"
                return self._html(pages.message_page(lang, problem.key, link=link),
                                  problem.status)
            request[FORM] = form
            return await handler(request, member, token)
        return post

    def _same_origin(self, request: web.Request) -> bool:
        # The pages send "same-origin" referrers: with "no-referrer" a browser sends
        # `Origin: null` on a form, indistinguishable from a sandboxed page of another site.
        origin = request.headers.get("Origin")
        if origin is None:
            return True  # not sent by every client; the CSRF token still guards the form
        scheme = request.scheme
        if self.trust_forwarded:  # TLS ends at the proxy: the browser's origin is https
            scheme = request.headers.get("X-Forwarded-Proto", scheme).split(",")[0].strip()
        return origin == f"{scheme}://{request.host}"

    @staticmethod
    async def _form(request: web.Request) -> dict[str, str]:
        if request.content_length is not None and request.content_length > MAX_FORM:
            raise FormProblem(413, "too_large")
        body = await request.content.read(MAX_FORM + 1)
        if len(body) > MAX_FORM:
            raise FormProblem(413, "too_large")
        if request.content_type != "application/x-www-form-urlencoded":
            raise FormProblem(400, "bad_request")
        try:
            pairs = parse_qsl(body.decode("utf-8"), keep_blank_values=True,
                              max_num_fields=20, strict_parsing=False)
        except (UnicodeDecodeError, ValueError):
            raise FormProblem(400, "bad_request") from None
        form: dict[str, str] = {}
        for k, v in pairs:
            form.setdefault(k, v)
        return form

    def _cookie(self, response: web.StreamResponse, token: str, max_age: int) -> None:
        response.set_cookie(COOKIE, token, max_age=max_age, path="/board", httponly=True,
                            secure=True, samesite="Strict")

    def _audit(self, member: StaffMember, action: str, reference: str) -> Awaitable[None]:
        return self.ctx.services.storage.incidents.record_access(
            f"staff:{member.login}", action, reference)

    # -- sign-in ----------------------------------------------------------------------------

    async def login_form(self, request: web.Request) -> web.Response:
        lang = self._lang(request)
        setup = not await self.ctx.services.storage.staff.all()
        return self._html(pages.login_page(lang, setup=setup))

    async def _public_form(self, request: web.Request) -> tuple[str, dict[str, str]]:
        """The prologue of a form posted without a session (sign-in, setting a password):
        same origin, a bounded body, the language it asks for. Raises `FormProblem`."""
        if not self._same_origin(request):
            raise FormProblem(403, "csrf_failed")
        form = await self._form(request)
        return (form["lang"] if form.get("lang") in LANGS else self._lang(request)), form

    @property
    def digest(self) -> Digest:
        """The service's keyed digest (built at first use: the settings exist only then)."""
        if self._digest is None:
            from storage.factory import make_sealer

            self._digest = make_sealer(self.ctx.services.settings).digest
        return self._digest

    async def login(self, request: web.Request) -> web.StreamResponse:
        try:
            lang, form = await self._public_form(request)
        except FormProblem as problem:
            return self._html(pages.login_page(self._lang(request), problem.key),
                              problem.status)
        services = self.ctx.services
        login = form.get("login", "")
        result = await log_in(services.storage.staff, services.storage.limits,
                              login, form.get("password", ""),
                              client_address(request, self.trust_forwarded), utcnow(),
                              code=form.get("code", ""), totp_roles=self.totp_roles)
        actor = staff_actor(result.account) if result.account else \
            unknown_login_actor(self.digest, login)
        await record_login(services.storage, actor, ok=result.member is not None,
                           method=result.outcome)
        if result.member is None:
            status = 429 if result.problem == "board.locked_out" else \
                403 if result.problem == "board.totp_not_enrolled" else 401
            log.info("board.login_refused", reason=result.problem)
            return self._html(pages.login_page(lang, result.problem.removeprefix("board.")),
                              status)
        log.info("board.login", staff=result.member.login)
        response = web.HTTPSeeOther("/board")
        self._cookie(response, result.token, SESSION_HOURS * 3600)
        raise response

    async def logout(self, request: web.Request, member: StaffMember,
                     token: str) -> web.StreamResponse:
        await self.ctx.services.storage.staff.end_session(token)
        await record_logout(self.ctx.services.storage, staff_actor(member.login))
        response = web.HTTPSeeOther("/board/login")
        self._cookie(response, "", 0)
        raise response

    async def password_form(self, request: web.Request) -> web.Response:
        lang = self._lang(request)
        return self._html(pages.password_page(lang, request.query.get("token", "")[:100]))

    async def password(self, request: web.Request) -> web.Response:
        try:
            lang, form = await self._public_form(request)
        except FormProblem as problem:
            return self._html(pages.message_page(self._lang(request), problem.key),
                              problem.status)
        token, password = form.get("token", ""), form.get("password", "")
        refused = password_problem(password)
        if refused:
            return self._html(pages.password_page(lang, token, refused.removeprefix("board.")),
                              400)
        staff = self.ctx.services.storage.staff
        login = await staff.redeem_token(token, utcnow()) if token else None
        if login is None:
            await record_password_set(self.ctx.services.storage, None)
            return self._html(pages.message_page(lang, "password_link_invalid",
                                                 link="/board/login"), 400)
        await staff.set_password(login, await asyncio.to_thread(hash_password, password))
        await record_password_set(self.ctx.services.storage, staff_actor(login))
        return self._html(pages.message_page(lang, "password_set", link="/board/login"))

    # -- the board --------------------------------------------------------------------------

    def _rows(self, incidents: list[Any], lang: str) -> list[BoardRow]:
        services = self.ctx.services
        return [row(i, services.catalogs, lang, services.settings.escalate_after)
                for i in incidents]

    async def board(self, request: web.Request, member: StaffMember,
                    token: str) -> web.StreamResponse:
        lang = self._lang(request, member)
        after = await self.ctx.services.storage.board.last()
        filters, rows = await self.listed(request, member, lang)
        return self._html(pages.board_page(lang, member, csrf_for(token), rows,
                                           self.ctx.services.catalogs, filters, after,
                                           self.tile_url, self.attribution,
                                           exports=can_export(member),
                                           stations=self.stations_of(member)))

    def stations_of(self, member: StaffMember) -> list[Station]:
        """The directory's stations of the member's areas, for the map (at most 500)."""
        return [s for s in self.ctx.services.directory.stations
                if in_scope(member.areas, s.areas)][:MAX_STATIONS]

    async def listed(self, request: web.Request, member: StaffMember,
                     lang: str) -> tuple[dict[str, str], list[BoardRow]]:
        """The filters in the URL and the open incidents of the member's areas they keep."""
        filters = {k: request.query.get(k, "")[:40] for k in ("area", "agency", "status",
                                                               "type")}
        filters = {k: v for k, v in filters.items() if v}
        areas = member.areas
        if filters.get("area"):
            areas = (filters["area"],) if filters["area"] in member.areas else ()
        incidents = await self.ctx.services.storage.incidents.in_areas(
            areas, agencies=member.agencies, exclude_status=sorted(lc.CLOSED))
        return filters, sorted((r for r in self._rows(incidents, lang) if matches(r, filters)),
                               key=urgency)

    async def find(self, request: web.Request, member: StaffMember,
                   token: str) -> web.StreamResponse:
        reference = normalize_reference(request.query.get("ref", "")[:20])
        raise web.HTTPSeeOther(f"/board/i/{reference}")

    async def _scoped(self, request: web.Request, member: StaffMember) -> Any:
        reference = normalize_reference(request.match_info["reference"][:20])
        incident = await self.ctx.services.storage.incidents.get_in(reference, member.areas,
                                                                     member.agencies)
        if incident is None:
            # Another area's reference reads exactly as one that does not exist.
            log.warning("board.out_of_scope", staff=member.login)
            raise web.HTTPNotFound(text=pages.message_page(self._lang(request, member),
                                                           "not_found"),
                                   content_type="text/html", headers=HEADERS)
        return incident

    async def incident(self, request: web.Request, member: StaffMember, token: str, *,
                       phone: str = "", answer: str = "",
                       problem: str = "") -> web.StreamResponse:
        incident = await self._scoped(request, member)
        lang = self._lang(request, member)
        services = self.ctx.services
        await self._audit(member, "board.incident.view", incident.reference)
        events = await services.storage.incidents.timeline(incident.id)
        outbox = await services.storage.outbox.for_incident(incident.id)
        r = row(incident, services.catalogs, lang, services.settings.escalate_after)
        return self._html(pages.incident_page(
            lang, member, csrf_for(token), incident, r, events, services.catalogs,
            phone=phone, answer=answer, event_id=secrets.token_hex(8), problem=problem,
            can_act=can_act(member),
            after=await services.storage.board.last(), tile_url=self.tile_url,
            attribution=self.attribution, record=record_html(
                lang, told(incident, outbox, lang), relay_chat(incident, outbox, lang))))

    def _actor(self, member: StaffMember) -> Actor:
        return Actor(f"{CHANNEL}:{member.login}", "", member.name, vouched=True)

    def _said(self, result: ActResult, lang: str) -> str:
        return self.ctx.services.catalogs.render(lang, result.reply.text)

    async def act(self, request: web.Request, member: StaffMember,
                  token: str) -> web.StreamResponse:
        incident = await self._scoped(request, member)
        form: dict[str, str] = request[FORM]
        action = form.get("action", "")
        if action == "close":
            action = form.get("outcome", "")
            if action not in pages.OUTCOMES:
                return await self.incident(request, member, token, problem="bad_request")
        if action not in ("acknowledge", "en_route", "on_scene", "note", *pages.OUTCOMES):
            return await self.incident(request, member, token, problem="bad_request")
        minutes = None
        if action == "en_route":
            try:
                minutes = int(form.get("minutes", ""))
            except ValueError:
                return await self.incident(request, member, token, problem="bad_request")
        event = form.get("event", "")[:32]
        result = await self.ctx.services.responders.act(
            incident.reference, action, self._actor(member), CHANNEL, minutes,
            event_id=f"{CHANNEL}:{member.login}:{event}" if event else None,
            detail=form.get("detail", "")[:1000])
        log.info("board.act", staff=member.login, action=action, outcome=result.outcome)
        self.feed.poke()
        lang = self._lang(request, member)
        status = 200 if result.outcome == "done" else 409
        response = await self.incident(request, member, token, answer=self._said(result, lang))
        response.set_status(status)
        return response

    async def relay(self, request: web.Request, member: StaffMember,
                    token: str) -> web.StreamResponse:
        incident = await self._scoped(request, member)
        text = request[FORM].get("text", "").strip()
        if not text:
            return await self.incident(request, member, token, problem="bad_request")
        result = await self.ctx.services.responders.relay_to_reporter(
            incident.reference, self._actor(member), CHANNEL, text)
        self.feed.poke()
        response = await self.incident(request, member, token,
                                       answer=self._said(result, self._lang(request, member)))
        response.set_status(200 if result.outcome == "done" else 409)
        return response

    async def reveal(self, request: web.Request, member: StaffMember,
                     token: str) -> web.StreamResponse:
        incident = await self._scoped(request, member)
        reason = request[FORM].get("reason", "")
        if reason not in pages.REVEAL_REASONS:
            return await self.incident(request, member, token, problem="bad_request")
        await self._audit(member, f"board.phone.reveal:{reason}", incident.reference)
        return await self.incident(request, member, token, phone=incident.phone or "")

    # -- live -------------------------------------------------------------------------------

    async def events(self, request: web.Request, member: StaffMember,
                     token: str) -> web.StreamResponse:
        lang = self._lang(request, member)
        after: int | None = None
        for raw in (request.headers.get("Last-Event-ID"), request.query.get("after")):
            if raw and raw.isdigit() and len(raw) < 19:
                after = int(raw)
                break
        response = web.StreamResponse(headers={
            "Content-Type": "text/event-stream", "Cache-Control": "no-store",
            "X-Accel-Buffering": "no", "X-Content-Type-Options": "nosniff"})
        if request.version >= HttpVersion11:
            response.enable_chunked_encoding()  # the wire frames its chunks as aiohttp does
        await response.prepare(request)
        await response.write(b"retry: 2000\n: hello\n\n")  # also sends the headers
        transport = request.transport
        if transport is None:
            return response  # gone already
        wire = Wire(response, transport)
        feed = self.feed
        viewer = feed.join(Scope.of(member.areas, member.agencies), lang, wire)
        BOARD_VIEWERS.inc()
        staff = self.ctx.services.storage.staff
        checked = time.monotonic()
        try:
            async for batch in feed.catch_up(viewer, after):
                await response.write(feed.frames(batch, lang))
                now = utcnow()
                for change in batch:
                    BOARD_LAG.observe(max(0.0, (now - change.event.at).total_seconds()))
            # Live: the feed writes this viewer's events itself; this task only wakes to
            # ping (which also finds a closed connection) and to re-read the session.
            while not wire.ended.is_set():
                await woken(wire.ended, PING_SECONDS)
                if wire.ended.is_set() or transport.is_closing():
                    break
                await response.write(b": ping\n\n")
                if time.monotonic() - checked > RECHECK_SECONDS:
                    checked = time.monotonic()
                    if await staff.session(token, utcnow()) is None:
                        break  # disabled or signed out meanwhile
        except (ConnectionResetError, asyncio.CancelledError):
            pass
        finally:
            feed.remove(viewer)
            BOARD_VIEWERS.dec()
        if wire.slow:
            log.info("board.viewer_dropped", reason="slow")
        return response

    def _event_bytes(self, change: Change, lang: str) -> bytes:
        data: dict[str, Any] = {"seq": change.event.seq, "kind": change.event.kind,
                                "reference": change.event.reference}
        if change.incident is not None:
            data["row"] = row(change.incident, self.ctx.services.catalogs, lang,
                              self.ctx.services.settings.escalate_after).to_json()
        body = json.dumps(data, ensure_ascii=False)
        return f"id: {change.event.seq}\nevent: incident\ndata: {body}\n\n".encode()

    # -- static -----------------------------------------------------------------------------

    async def static(self, request: web.Request) -> web.Response:
        name = request.match_info["name"]
        path = STATIC / name
        if "/" in name or not path.is_file() or path.suffix not in TYPES:
            raise web.HTTPNotFound()
        return web.Response(body=path.read_bytes(), content_type=TYPES[path.suffix],
                            headers={"Cache-Control": "no-cache",
                                     "X-Content-Type-Options": "nosniff"})

    async def vendored(self, request: web.Request) -> web.Response:
        return vendored_response(request.match_info["pkg"], request.match_info["name"])


def totp_roles_setting(settings: Settings) -> tuple[str, ...]:
    """`ESS_BOARD_TOTP_ROLES`: the roles that must sign in with a one-time code (`none`: no
    role must; an enrolled account always does)."""
    raw = optional_setting(settings, "ESS_BOARD_TOTP_ROLES", ",".join(TOTP_ROLES))
    if raw.lower() == "none":
        return ()
    roles = tuple(r.strip() for r in raw.replace(" ", ",").split(",") if r.strip())
    unknown = [r for r in roles if r not in ROLES]
    if unknown:
        raise SettingsError(f"ESS_BOARD_TOTP_ROLES={raw!r}: unknown roles {unknown}; "
                            f"expected some of {', '.join(ROLES)} or 'none'")
    return roles


def can_export(member: StaffMember) -> bool:
    return any(role in member.roles for role in ("supervisor", "admin", "analyst"))


def can_act(member: StaffMember) -> bool:
    return any(member.has(role) for role in ("responder", "supervisor"))


def matches(r: BoardRow, filters: dict[str, str]) -> bool:
    return ((not filters.get("status") or r.status == filters["status"])
            and (not filters.get("type") or r.type == filters["type"])
            and (not filters.get("agency") or filters["agency"] in r.agencies)
            and (not filters.get("area") or filters["area"] in r.areas))

