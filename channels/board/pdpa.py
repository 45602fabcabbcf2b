"""The board's PDPA page for administrators: `/board/admin/pdpa`.

What the data protection officer must not miss: the open data-subject requests with their
legal deadlines (30 days for access, 90 for erasure; overdue ones first), and what
retention will erase in the coming days (`bot.privacy.retention.due`), so a record someone
still needs can be noticed before its key is destroyed. Admins only; every view is in the
audit trail. Acting on a request stays on the server (`ess subject …`): the page reads.
Its words are kept here, Thai first and English complete (one module for the page).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from aiohttp import web

from bot.privacy import retention
from bot.privacy.processing import ProcessingError, load_processing
from bot.staff import StaffMember
from bot.types import utcnow
from channels.board.auth import csrf_for
from channels.board.pages import e, layout
from storage.audit import AuditEntry
from storage.privacy import SubjectRequest

if TYPE_CHECKING:
    from channels.board import BoardChannel

PATH = "/board/admin/pdpa"
ADMIN = "admin"
VIEW = "board.pdpa.view"  # the audit action of one view of this page
DEFAULT_DAYS, MAX_DAYS = 7, 31

# key: (Thai, English)
WORDS: dict[str, tuple[str, str]] = {
    "title": ("PDPA: คำขอของเจ้าของข้อมูล และการลบตามระยะเวลาเก็บ",
              "PDPA: subject requests and retention"),
    "admin_only": ("หน้านี้สำหรับผู้ดูแลระบบเท่านั้น", "This page is for administrators only."),
    "requests": ("คำขอที่ยังเปิดอยู่", "Open subject requests"),
    "no_requests": ("ไม่มีคำขอที่ยังเปิดอยู่", "No open request."),
    "col_request": ("คำขอ", "Request"),
    "col_kind": ("ประเภท", "Kind"),
    "col_subject": ("เจ้าของข้อมูล", "Subject"),
    "col_received": ("ได้รับเมื่อ", "Received"),
    "col_due": ("ครบกำหนด", "Due"),
    "col_left": ("เหลือ", "Left"),
    "kind_access": ("ขอเข้าถึงและสำเนา (30 วัน)", "access and a copy (30 days)"),
    "kind_erasure": ("ขอลบ (90 วัน)", "erasure (90 days)"),
    "days_left": ("อีก {days} วัน", "{days} day(s)"),
    "overdue": ("เกินกำหนด {days} วัน", "overdue by {days} day(s)"),
    "due_title": ("สิ่งที่จะถูกลบภายใน {days} วัน", "What retention erases in the next {days} days"),
    "nothing_due": ("ไม่มีข้อมูลที่จะถูกลบในช่วงนี้", "Nothing is due for erasure in this period."),
    "col_record": ("รายการ", "Record"),
    "col_erase_at": ("ลบเมื่อ", "Erased at"),
    "col_what": ("สิ่งที่ถูกลบ", "What is erased"),
    "what_incident": ("เบอร์โทร ตำแหน่งที่แน่นอน คำตอบ และข้อความที่ส่งต่อ",
                      "phone, exact location, answers, relay messages"),
    "what_case": ("ผู้ได้รับความช่วยเหลือ ครัวเรือน เลขประจำตัวประชาชน สถานที่ ความต้องการ "
                  "และความยินยอม",
                  "the person, household, Thai IDs, place, needs, consent"),
    "processing_broken": ("ไฟล์บันทึกกิจกรรมการประมวลผล (processing.yaml) ผิดรูปแบบ",
                          "The record of processing (processing.yaml) is broken"),
    "how": ("ดำเนินการตามคำขอบนเซิร์ฟเวอร์: ess subject export|erase|refuse …",
            "Act on a request on the server: ess subject export|erase|refuse …"),
    "days_field": ("ช่วงวัน", "Days"),
    "show": ("แสดง", "Show"),
    "back": ("กลับ", "Back"),
}


def word(lang: str, key: str, **params: object) -> str:
    th, en = WORDS[key]
    return (en if lang == "en" else th).format(**params)


def _when(at: datetime) -> str:
    return at.strftime("%Y-%m-%d %H:%M") + " UTC"


def _days(text: str) -> int:
    try:
        days = int(text)
    except ValueError:
        return DEFAULT_DAYS
    return min(max(days, 1), MAX_DAYS)


def _requests(lang: str, requests: Sequence[SubjectRequest], now: datetime) -> str:
    if not requests:
        return f'<p class="hint">{e(word(lang, "no_requests"))}</p>'
    head = "".join(f"<th>{e(word(lang, k))}</th>" for k in (
        "col_request", "col_kind", "col_subject", "col_received", "col_due", "col_left"))
    rows = []
    for r in sorted(requests, key=lambda r: r.due_at):
        left = (r.due_at - now).days
        late = r.due_at < now
        says = (word(lang, "overdue", days=(now - r.due_at).days) if late
                else word(lang, "days_left", days=left))
        kind = word(lang, f"kind_{r.kind}") if f"kind_{r.kind}" in WORDS else r.kind
        rows.append(f'<tr class="{"overdue" if late else ""}"><td>{e(r.id)}</td>'
                    f"<td>{e(kind)}</td><td><code>{e(r.subject)}</code></td>"
                    f"<td>{e(_when(r.received_at))}</td><td>{e(_when(r.due_at))}</td>"
                    f"<td>{e(says)}</td></tr>")
    return f'<table class="pdpa-requests"><tr>{head}</tr>{"".join(rows)}</table>'


def _due(lang: str, due: Sequence[retention.Due]) -> str:
    if not due:
        return f'<p class="hint">{e(word(lang, "nothing_due"))}</p>'
    head = "".join(f"<th>{e(word(lang, k))}</th>" for k in (
        "col_record", "col_kind", "col_erase_at", "col_what"))
    rows = "".join(
        f"<tr><td>{e(d.reference)}</td><td>{e(d.kind)}</td><td>{e(_when(d.erase_at))}</td>"
        f"<td>{e(word(lang, f'what_{d.kind}') if f'what_{d.kind}' in WORDS else d.what)}"
        "</td></tr>" for d in due)
    return f'<table class="pdpa-due"><tr>{head}</tr>{rows}</table>'


def pdpa_page(lang: str, member: StaffMember, csrf: str, requests: Sequence[SubjectRequest],
              due: Sequence[retention.Due] | None, days: int, now: datetime) -> str:
    """The page: open requests, then what retention erases within `days` (None: the
    record of processing could not be read)."""
    due_html = (f'<p role="alert" class="problem">{e(word(lang, "processing_broken"))}</p>'
                if due is None else _due(lang, due))
    body = (f'<h1>{e(word(lang, "title"))}</h1>'
            f'<h2>{e(word(lang, "requests"))}</h2>{_requests(lang, requests, now)}'
            f'<p class="hint">{e(word(lang, "how"))}</p>'
            f'<h2>{e(word(lang, "due_title", days=days))}</h2>'
            f'<form method="get" action="{PATH}" class="inline">'
            f'<label>{e(word(lang, "days_field"))} <input name="days" type="number" min="1" '
            f'max="{MAX_DAYS}" value="{days}"></label>'
            f'<button type="submit">{e(word(lang, "show"))}</button></form>{due_html}'
            f'<p><a href="/board">{e(word(lang, "back"))}</a></p>')
    return layout(lang, word(lang, "title"), body, member=member, csrf=csrf)


async def pdpa_admin(board: BoardChannel, request: web.Request, member: StaffMember,
                     token: str) -> web.StreamResponse:
    """GET /board/admin/pdpa (a signed-in staff member; refused unless an admin)."""
    lang = board._lang(request, member)
    storage = board.ctx.services.storage
    if ADMIN not in member.roles:
        await storage.audit.append(AuditEntry(f"staff:{member.login}", VIEW + ".refused"))
        return board._html(layout(lang, word(lang, "admin_only"),
                                  f'<p role="alert" class="problem">'
                                  f'{e(word(lang, "admin_only"))}</p>', member=member,
                                  csrf=csrf_for(token)), 403)
    now = utcnow()
    days = _days(request.query.get("days", "")[:4])
    requests = await storage.privacy.requests(open_only=True)
    try:
        due: list[retention.Due] | None = await retention.due(
            storage, load_processing(), now, timedelta(days=days))
    except ProcessingError:
        due = None
    await storage.audit.append(AuditEntry(f"staff:{member.login}", VIEW,
                                          detail=f"{len(requests)} request(s), "
                                                 f"{len(due or [])} due in {days} day(s)"))
    return board._html(pdpa_page(lang, member, csrf_for(token), requests, due, days, now))
