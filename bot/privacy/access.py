"""The audit entries every part writes when a person touches personal data.

One place names the actions, so `ess audit show` and the board read one vocabulary. The
board calls `record_login` on every sign-in attempt (and `record_logout`,
`record_password_set` when a one-time link sets an account's password), and
`record_read` whenever a staff member opens a report or a case; the CLI does for `ess
incidents show`.
"""

from __future__ import annotations

from bot.privacy.subjects import Digest
from storage.audit import AuditEntry, AuditRecord
from storage.ports import Storage

LOGIN, LOGIN_FAILED, LOGOUT, READ = ("staff.login", "staff.login_failed", "staff.logout",
                                     "record.read")
PASSWORD_SET, PASSWORD_SET_FAILED = "staff.password_set", "staff.password_set_failed"
NO_ACCOUNT = "link?"  # a set-password link that names no account (unknown, used, expired)


def staff_actor(login: str) -> str:
    """How the audit trail names a staff account."""
    return f"staff:{login}"


def unknown_login_actor(digest: Digest, login: str) -> str:
    """How the audit trail names a sign-in with a login that has no account: keyed, so a
    mistyped password pasted into the login field never lands in the trail, while repeated
    tries of one name still group together (`ess audit show --staff NAME` finds them)."""
    return "login?" + digest(f"board-login:{login.strip()[:64].casefold()}")[:16]


async def record_login(storage: Storage, staff: str, *, ok: bool,
                       method: str = "password") -> AuditRecord:
    """A sign-in, successful or not: `staff` is the actor (`staff_actor` or
    `unknown_login_actor`), `method` how it succeeded or why it was refused (never a
    password)."""
    return await storage.audit.append(AuditEntry(staff, LOGIN if ok else LOGIN_FAILED,
                                                 detail=method))


async def record_password_set(storage: Storage, staff: str | None) -> AuditRecord:
    """A password set from a one-time link (`staff`: the account's actor), or a try with a
    link that opens none (None; the link itself, a secret, never reaches the trail)."""
    if staff is None:
        return await storage.audit.append(AuditEntry(NO_ACCOUNT, PASSWORD_SET_FAILED,
                                                     detail="link unknown, used or expired"))
    return await storage.audit.append(AuditEntry(staff, PASSWORD_SET, detail="one-time link"))


async def record_logout(storage: Storage, staff: str) -> AuditRecord:
    """A sign-out (the session ended by its owner)."""
    return await storage.audit.append(AuditEntry(staff, LOGOUT))


async def record_read(storage: Storage, staff: str, reference: str, *, subject: str = "",
                      what: str = "") -> AuditRecord:
    """A person read a record's personal data (a report on the board, a case)."""
    return await storage.audit.append(AuditEntry(staff, READ, subject, reference, what))
