"""The audit entries every part writes when a person touches personal data.

One place names the actions, so `ess audit show` and the board read one vocabulary. Issue 11
(staff accounts) calls `record_login` on every sign-in attempt and `record_read` whenever a
staff member opens a report or a case; the CLI already does for `ess incidents show`.
"""

from __future__ import annotations

from storage.audit import AuditEntry, AuditRecord
from storage.ports import Storage

LOGIN, LOGIN_FAILED, READ = "staff.login", "staff.login_failed", "record.read"


async def record_login(storage: Storage, staff: str, *, ok: bool,
                       method: str = "password") -> AuditRecord:
    """A sign-in, successful or not (`staff` is the account id; never a password)."""
    return await storage.audit.append(AuditEntry(staff, LOGIN if ok else LOGIN_FAILED,
                                                 detail=method))


async def record_read(storage: Storage, staff: str, reference: str, *, subject: str = "",
                      what: str = "") -> AuditRecord:
    """A person read a record's personal data (a report on the board, a case)."""
    return await storage.audit.append(AuditEntry(staff, READ, subject, reference, what))
