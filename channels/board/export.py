"""`GET /board/export.csv`: the board's filtered list as CSV, for supervisors, admins and
analysts; every export is audited with its filter (`board.export:<filter>`).

The columns are the board row's, never a phone number, a position or any free text (notes,
relay messages); a cell that a spreadsheet would read as a formula is quoted as text.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Awaitable, Callable, Sequence
from urllib.parse import urlencode

import structlog
from aiohttp import web

from bot.staff import StaffMember
from channels.board import BoardChannel, can_export
from channels.board.pages import message_page
from channels.board.views import BoardRow
from channels.board.words import say

log = structlog.get_logger(__name__)

COLUMNS = ("reference", "type", "status", "reported_at", "escalate_at", "eta_minutes",
           "en_route_at", "on_scene_at", "holder", "where", "areas", "agencies", "silent",
           "do_not_call", "drill")
FORMULA = ("=", "+", "-", "@", "\t", "\r")


def cell(value: object) -> str:
    text = "" if value is None else str(value)
    return "'" + text if text.startswith(FORMULA) else text


def csv_text(rows: Sequence[BoardRow]) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(COLUMNS)
    for r in rows:
        writer.writerow([cell(v) for v in (
            r.reference, r.type, r.status, r.created_at, r.escalate_at, r.eta_minutes,
            r.en_route_at, r.on_scene_at, r.holder, r.where, " ".join(r.areas),
            " ".join(r.agencies), int(r.silent), int(r.do_not_call), int(r.drill))])
    return out.getvalue()


def export(board: BoardChannel) -> Callable[[web.Request, StaffMember, str],
                                            Awaitable[web.StreamResponse]]:
    async def handler(request: web.Request, member: StaffMember,
                      token: str) -> web.StreamResponse:
        lang = board._lang(request, member)
        if not can_export(member):
            return board._html(message_page(lang, "export_refused"), 403)
        filters, rows = await board.listed(request, member, lang)
        await board.ctx.services.storage.incidents.record_access(
            f"staff:{member.login}", f"board.export:{urlencode(sorted(filters.items()))}",
            f"{len(rows)} incidents")
        log.info("board.export", staff=member.login, count=len(rows))
        # A BOM so that spreadsheet programs read the Thai as UTF-8.
        return web.Response(body=("\ufeff" + csv_text(rows)).encode(), headers={
            "Content-Type": "text/csv; charset=utf-8", "Cache-Control": "no-store",
            "X-Content-Type-Options": "nosniff",
            "Content-Disposition": f'attachment; filename="{say("en", "export_file")}"'})
    return handler
