"""Staff administration in the board (`/board/admin/staff`), for the role admin.

The same as `ess staff add|list|disable|reset`, within the administrator's own areas: they
see and change only the accounts whose areas all lie inside theirs, and grant only areas
inside theirs (`bot.staff.within`). Every form goes through the board's CSRF and Origin
checks; every change is written to the audit trail (`board.staff.*`, by `staff:<login>`,
the subject the account changed).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from html import escape
from typing import TYPE_CHECKING

import structlog
from aiohttp import web

from bot.staff import ROLES, StaffMember, valid_login, within
from bot.types import utcnow
from channels.base import optional_setting
from channels.board import FORM, Handler
from channels.board.auth import csrf_for, set_password_link
from channels.board.pages import layout
from channels.board.words import LANGS, say
from storage.ports import StaffStore

if TYPE_CHECKING:
    from channels.board import BoardChannel

log = structlog.get_logger(__name__)

ROOT = "/board/admin/staff"


def e(value: object) -> str:
    return escape(str(value), quote=True)


def manages(admin: StaffMember, member: StaffMember) -> bool:
    """An administrator manages the accounts whose every area lies inside their own."""
    return bool(member.areas) and all(within(a, admin.areas) for a in member.areas)


def codes(text: str, *, upper: bool) -> tuple[str, ...]:
    words = (w.strip() for w in text.replace(",", " ").split())
    return tuple(dict.fromkeys(w.upper() if upper else w for w in words if w))[:50]


class StaffAdmin:
    """The pages and forms; `board` gives the sign-in, CSRF, language and HTML plumbing."""

    def __init__(self, board: BoardChannel):
        self.board = board

    def routes(self, router: web.UrlDispatcher) -> None:
        board = self.board
        router.add_get(ROOT, board._page(self._admin(self.listing)))
        router.add_post(f"{ROOT}/add", board._post(self._admin(self.add)))
        router.add_post(f"{ROOT}/{{login}}/save", board._post(self._admin(self.save)))
        router.add_post(f"{ROOT}/{{login}}/disable", board._post(self._admin(self.disable)))
        router.add_post(f"{ROOT}/{{login}}/reset", board._post(self._admin(self.reset)))

    def _admin(self, handler: Handler) -> Handler:
        async def only_admins(request: web.Request, member: StaffMember,
                              token: str) -> web.StreamResponse:
            if "admin" not in member.roles:
                log.warning("board.staff.refused", staff=member.login)
                return self.board._html(layout(
                    self.board._lang(request, member), say(self.board._lang(request, member),
                                                           "admin_only"),
                    f'<p role="alert" class="problem">'
                    f'{e(say(self.board._lang(request, member), "admin_only"))}</p>'), 403)
            return await handler(request, member, token)
        return only_admins

    @property
    def _store(self) -> StaffStore:
        return self.board.ctx.services.storage.staff

    async def _audit(self, admin: StaffMember, action: str, login: str) -> None:
        await self.board.ctx.services.storage.incidents.record_access(
            f"staff:{admin.login}", action, f"staff:{login}")

    async def _target(self, request: web.Request, admin: StaffMember) -> StaffMember:
        member = await self._store.get(request.match_info["login"][:64])
        if member is None or not manages(admin, member):
            # Another area's account reads exactly as one that does not exist.
            raise web.HTTPNotFound(text=layout(
                self.board._lang(request, admin), say(self.board._lang(request, admin),
                                                      "staff_unknown"),
                f'<p role="alert" class="problem">'
                f'{e(say(self.board._lang(request, admin), "staff_unknown"))}</p>'
                f'<p><a href="{ROOT}">{e(say(self.board._lang(request, admin), "back"))}'
                '</a></p>'), content_type="text/html")
        return member

    def _fields(self, form: dict[str, str], admin: StaffMember
                ) -> tuple[tuple[str, ...], tuple[str, ...], tuple[str, ...], str | None]:
        """Roles, areas and agencies from a form, and the problem with them (a word key)."""
        roles = tuple(r for r in ROLES if form.get(f"role_{r}"))
        areas = codes(form.get("areas", ""), upper=True)
        agencies = codes(form.get("agencies", ""), upper=False)
        if not roles:
            return roles, areas, agencies, "staff_no_role"
        if not areas:
            return roles, areas, agencies, "staff_no_area"
        if not all(within(a, admin.areas) for a in areas):
            return roles, areas, agencies, "staff_outside"
        return roles, areas, agencies, None

    def _link_base(self, request: web.Request) -> str:
        base = optional_setting(self.board.ctx.services.settings, "ESS_PUBLIC_URL")
        return base or f"{request.scheme}://{request.host}"

    async def listing(self, request: web.Request, admin: StaffMember, token: str, *,
                      said: str = "", problem: str = "", status: int = 200
                      ) -> web.StreamResponse:
        lang = self.board._lang(request, admin)
        members = [m for m in await self._store.all() if manages(admin, m)]
        enrolled = {m.login for m in members if await self._store.totp_secret(m.login)}
        html = staff_page(lang, admin, csrf_for(token), members, enrolled, said=said,
                          problem=say(lang, problem, areas=", ".join(admin.areas))
                          if problem else "")
        return self.board._html(html, status)

    async def add(self, request: web.Request, admin: StaffMember,
                  token: str) -> web.StreamResponse:
        form: dict[str, str] = request[FORM]
        login = form.get("login", "").strip()
        if not valid_login(login):
            return await self.listing(request, admin, token, problem="staff_bad_login",
                                      status=400)
        roles, areas, agencies, problem = self._fields(form, admin)
        if problem:
            return await self.listing(request, admin, token, problem=problem, status=400)
        lang = form.get("lang") if form.get("lang") in LANGS else "th"
        member = StaffMember(login, form.get("name", "").strip()[:100] or login, str(lang),
                             roles, areas, agencies)
        if not await self._store.add(member, None):
            return await self.listing(request, admin, token, problem="staff_taken",
                                      status=409)
        await self._audit(admin, f"board.staff.add:{','.join(roles)}:{','.join(areas)}",
                          login)
        link = await set_password_link(self._store, login, utcnow(), self._link_base(request))
        log.info("board.staff.added", staff=admin.login, login=login)
        lang_ = self.board._lang(request, admin)
        return await self.listing(request, admin, token,
                                  said=say(lang_, "staff_added", login=login, link=link))

    async def save(self, request: web.Request, admin: StaffMember,
                   token: str) -> web.StreamResponse:
        member = await self._target(request, admin)
        form: dict[str, str] = request[FORM]
        roles, areas, agencies, problem = self._fields(form, admin)
        if problem:
            return await self.listing(request, admin, token, problem=problem, status=400)
        lang = form.get("lang") if form.get("lang") in LANGS else member.lang
        changed = replace(member, name=form.get("name", "").strip()[:100] or member.name,
                          lang=str(lang), roles=roles, areas=areas, agencies=agencies)
        await self._store.update(changed)
        await self._audit(admin, f"board.staff.save:{','.join(roles)}:{','.join(areas)}",
                          member.login)
        log.info("board.staff.saved", staff=admin.login, login=member.login)
        return await self.listing(request, admin, token, said=say(
            self.board._lang(request, admin), "staff_saved", login=member.login))

    async def disable(self, request: web.Request, admin: StaffMember,
                      token: str) -> web.StreamResponse:
        member = await self._target(request, admin)
        await self._store.disable(member.login)
        await self._audit(admin, "board.staff.disable", member.login)
        log.info("board.staff.disabled", staff=admin.login, login=member.login)
        if member.login == admin.login:
            raise web.HTTPSeeOther("/board/login")  # their own session ended with it
        return await self.listing(request, admin, token, said=say(
            self.board._lang(request, admin), "staff_disabled_done", login=member.login))

    async def reset(self, request: web.Request, admin: StaffMember,
                    token: str) -> web.StreamResponse:
        member = await self._target(request, admin)
        if member.disabled:
            return await self.listing(request, admin, token, problem="staff_unknown",
                                      status=404)
        link = await set_password_link(self._store, member.login, utcnow(),
                                       self._link_base(request))
        await self._audit(admin, "board.staff.reset", member.login)
        log.info("board.staff.reset", staff=admin.login, login=member.login)
        return await self.listing(request, admin, token, said=say(
            self.board._lang(request, admin), "staff_link_made", login=member.login,
            link=link))


def _member_form(lang: str, csrf: str, action: str, member: StaffMember | None,
                 button: str) -> str:
    roles = member.roles if member else ("responder",)
    boxes = "".join(f'<label class="check"><input type="checkbox" name="role_{r}" value="1"'
                    f'{" checked" if r in roles else ""}> {e(r)}</label>' for r in ROLES)
    langs = "".join(f'<option value="{c}"{" selected" if member and member.lang == c else ""}'
                    f'>{c.upper()}</option>' for c in LANGS)
    login = "" if member else (
        f'<label>{e(say(lang, "staff_login"))}<input name="login" required maxlength="64" '
        'pattern="[A-Za-z0-9._\\-]+" autocomplete="off"></label>')
    return (f'<form method="post" action="{e(action)}" class="staff-form">'
            f'<input type="hidden" name="csrf" value="{e(csrf)}">{login}'
            f'<label>{e(say(lang, "staff_name"))}<input name="name" maxlength="100" '
            f'value="{e(member.name if member else "")}"></label>'
            f'<label>{e(say(lang, "staff_lang"))}<select name="lang">{langs}</select></label>'
            f'<fieldset><legend>{e(say(lang, "staff_roles"))}</legend>{boxes}</fieldset>'
            f'<label>{e(say(lang, "staff_areas"))}<input name="areas" required maxlength="500" '
            f'value="{e(" ".join(member.areas) if member else "")}"></label>'
            f'<label>{e(say(lang, "staff_agencies"))}<input name="agencies" maxlength="500" '
            f'value="{e(" ".join(member.agencies) if member else "")}"></label>'
            f'<button type="submit" class="primary">{e(button)}</button></form>')


def staff_page(lang: str, admin: StaffMember, csrf: str, members: Sequence[StaffMember],
               enrolled: set[str], *, said: str = "", problem: str = "") -> str:
    rows = []
    for m in members:
        base = f"{ROOT}/{e(m.login)}"
        state = say(lang, "staff_disabled" if m.disabled else "staff_active")
        manage = ""
        if not m.disabled:
            edit = _member_form(lang, csrf, f"{ROOT}/{m.login}/save", m, say(lang, "staff_save"))
            manage = (f'<details><summary>{e(say(lang, "staff_edit"))}</summary>{edit}'
                      f'</details><form method="post" action="{base}/reset" class="inline">'
                      f'<input type="hidden" name="csrf" value="{e(csrf)}"><button '
                      f'type="submit">{e(say(lang, "staff_reset"))}</button></form>'
                      f'<form method="post" action="{base}/disable" class="inline">'
                      f'<input type="hidden" name="csrf" value="{e(csrf)}"><button '
                      f'type="submit">{e(say(lang, "staff_disable"))}</button></form>')
        rows.append(f'<tr id="staff-{e(m.login)}" class="{"off" if m.disabled else "on"}">'
                    f'<td><b>{e(m.login)}</b><br>{e(m.name)}</td>'
                    f'<td>{e(", ".join(m.roles))}</td><td>{e(", ".join(m.areas))}</td>'
                    f'<td>{e(", ".join(m.agencies) or "-")}</td><td>{e(state)}</td>'
                    f'<td>{"✓" if m.login in enrolled else "-"}</td><td>{manage}</td></tr>')
    head = "".join(f"<th>{e(say(lang, k))}</th>" for k in (
        "staff_login", "col_role_list", "staff_areas", "staff_agencies", "staff_state",
        "staff_totp", "actions"))
    notice = f'<p role="status" class="answer">{e(said)}</p>' if said else ""
    alert = f'<p role="alert" class="problem">{e(problem)}</p>' if problem else ""
    body = (f'<p><a href="/board">{e(say(lang, "back"))}</a></p>'
            f'<h1>{e(say(lang, "staff_title"))}</h1>{notice}{alert}'
            f'<table class="staff"><thead><tr>{head}</tr></thead><tbody>{"".join(rows)}'
            f'</tbody></table><h2>{e(say(lang, "staff_add"))}</h2>'
            f'{_member_form(lang, csrf, f"{ROOT}/add", None, say(lang, "staff_add"))}')
    return layout(lang, say(lang, "staff_title"), body, member=admin, csrf=csrf)
