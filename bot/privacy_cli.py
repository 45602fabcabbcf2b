"""The PDPA commands of `ess`: audit, subject, pdpa, breach, keys (see docs/pdpa.md).

Every failure a user can cause ends in one clear line and exit status 2 (bot.cli's contract);
`ess audit verify` exits 1 when the chain is broken, naming the first broken row.
"""

from __future__ import annotations

import argparse
import getpass
import json
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from channels.base import CommandError
from config.settings import Settings

COMMANDS = ("audit", "subject")


def _selector_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--phone", help="the phone number the person reported from or gave")
    parser.add_argument("--line-user", help="their LINE user id (U…)")
    parser.add_argument("--reference", help="the reference of a report they made")


def add_commands(sub: Any) -> None:
    audit = sub.add_parser("audit", help="the audit trail").add_subparsers(
        dest="audit_command", required=True)
    audit.add_parser("verify", help="check the hash chain; exit 1 naming the first bad row")
    show = audit.add_parser("show", help="audit rows about a subject, a staff member or a "
                                         "reference")
    show.add_argument("--subject", help="a subject id (as `ess subject find` prints it)")
    show.add_argument("--staff", help="an actor (staff id, cli:<user>)")
    show.add_argument("--reference", help="an incident or case reference")
    show.add_argument("--limit", type=int, default=200)
    show.add_argument("--json", action="store_true")

    subject = sub.add_parser("subject", help="data-subject rights (PDPA s.30-s.33)")
    subs = subject.add_subparsers(dest="subject_command", required=True)
    find = subs.add_parser("find", help="the records held about a person, by reference")
    _selector_args(find)
    find.add_argument("--json", action="store_true")
    request = subs.add_parser("request", help="record a request received (its deadline runs "
                                              "from --received)")
    request.add_argument("kind", choices=("access", "erasure"))
    _selector_args(request)
    request.add_argument("--received", help="when it was received (YYYY-MM-DD; default now)")
    export = subs.add_parser("export", help="everything held, sealed to a one-time password")
    _selector_args(export)
    export.add_argument("--out", required=True, type=Path, help="the file to write (new)")
    export.add_argument("--request", help="the access request this answers")
    erase = subs.add_parser("erase", help="erase a person's data everywhere (backups too)")
    _selector_args(erase)
    erase.add_argument("--reason", required=True, help="why (kept with the request)")
    erase.add_argument("--request", help="the erasure request this answers")
    erase.add_argument("--yes", action="store_true", help="confirm: it cannot be undone")
    refuse = subs.add_parser("refuse", help="refuse a request, with the written reason")
    refuse.add_argument("request")
    refuse.add_argument("--reason", required=True)
    listing = subs.add_parser("requests", help="requests and their legal deadlines")
    listing.add_argument("--all", action="store_true", help="closed ones too")
    listing.add_argument("--json", action="store_true")
    unseal = subs.add_parser("unseal", help="open an export (password on stdin)")
    unseal.add_argument("file", type=Path)


def operator() -> str:
    """Who runs the command, as the audit trail names them."""
    try:
        return f"cli:{getpass.getuser()}"
    except (KeyError, OSError):
        return "cli:unknown"


async def run(settings: Settings, args: argparse.Namespace) -> int:
    from storage.factory import make_sealer, open_storage

    if args.command == "subject" and args.subject_command == "unseal":
        return _unseal(args.file)
    sealer = make_sealer(settings)
    storage = await open_storage(settings, sealer)
    try:
        if args.command == "audit":
            return await _audit(storage, args)
        if args.command == "subject":
            return await _subject(storage, sealer.digest, args)
        raise CommandError(f"unknown command {args.command}")
    finally:
        await storage.close()


async def _audit(storage: Any, args: argparse.Namespace) -> int:
    from bot.incident import normalize_reference

    if args.audit_command == "verify":
        verdict = await storage.audit.verify()
        if verdict.intact:
            print(f"ess: audit trail intact: {verdict.rows} row(s)"
                  + (f", {verdict.legacy} from before the chain" if verdict.legacy else "")
                  + f"; head {verdict.head[:16]}")
            return 0
        print(f"ess: audit trail BROKEN at row {verdict.broken_at}: {verdict.reason}",
              file=sys.stderr)
        return 1
    if not (args.subject or args.staff or args.reference):
        raise CommandError("audit show needs --subject, --staff or --reference")
    if args.limit < 1:
        raise CommandError("--limit must be at least 1")
    reference = normalize_reference(args.reference) if args.reference else None
    rows = await storage.audit.find(subject=args.subject, staff=args.staff,
                                    reference=reference, limit=args.limit)
    items = [{"seq": r.seq, "at": r.at.isoformat(), "actor": r.entry.actor,
              "action": r.entry.action, "subject": r.entry.subject,
              "reference": r.entry.reference, "detail": r.entry.detail} for r in rows]
    if args.json:
        print(json.dumps(items, ensure_ascii=False, indent=2))
    else:
        for i in items:
            print(f"{i['seq']:>6}  {i['at'][:19]}  {i['actor']:<20} {i['action']:<18} "
                  f"{i['subject'] or '-':<14} {i['reference'] or '-':<10} {i['detail']}")
    return 0


def _when(text: str | None, now: datetime) -> datetime:
    if not text:
        return now
    try:
        day = datetime.strptime(text.strip(), "%Y-%m-%d").replace(tzinfo=UTC)
    except ValueError:
        raise CommandError(f"--received {text!r}: expected a date such as 2026-11-30") \
            from None
    if day > now:
        raise CommandError("--received: that date is in the future")
    return day


async def _subject(storage: Any, digest: Any, args: argparse.Namespace) -> int:
    from bot.privacy.rights import RequestError, Rights
    from bot.privacy.sealed_export import new_password, seal_export, write_private
    from bot.privacy.subjects import Selector, SubjectError

    now = datetime.now(UTC)
    rights = Rights(storage, digest, operator())
    command = args.subject_command
    try:
        if command == "requests":
            return _requests(await storage.privacy.requests(open_only=not args.all), now,
                             args.json)
        if command == "refuse":
            request = await rights.refuse(args.request, args.reason, now)
            print(f"ess: request {request.id} refused; the reason is kept")
            return 0
        selector = Selector.parse(args.phone, args.line_user, args.reference)
        if command == "find":
            found = await rights.find(selector)
            items = [{"kind": h.kind, "reference": h.reference,
                      "created_at": h.created_at.isoformat() if h.created_at else None,
                      "summary": h.summary} for h in found.held]
            if args.json:
                print(json.dumps({"subject": found.subject.id, "records": items},
                                 ensure_ascii=False, indent=2))
            else:
                print(f"subject {found.subject.id}: {len(items)} record(s) held")
                for i in items:
                    print(f"  {i['kind']:<13} {i['reference']:<18} "
                          f"{(i['created_at'] or '')[:19]}  {i['summary']}")
            return 0
        if command == "request":
            request = await rights.open_request(args.kind, selector, now,
                                                _when(args.received, now))
            print(f"ess: request {request.id} ({request.kind}) for subject {request.subject}:"
                  f" due {request.due_at.date().isoformat()}")
            return 0
        if command == "export":
            if args.out.exists():
                raise CommandError(f"--out {args.out}: the file exists; an export never "
                                   "replaces a file")
            if not args.out.parent.is_dir():
                raise CommandError(f"--out {args.out}: no such folder")
            request, data = await rights.export(selector, now, args.request)
            password = new_password()
            write_private(args.out, seal_export(data, password))
            print(f"ess: {len(data['records'])} record(s) of subject {data['subject']} "
                  f"written to {args.out} (request {request.id})")
            print(f"one-time password (shown once, never stored): {password}")
            return 0
        if command == "erase":
            found = await rights.find(selector)
            if not args.yes:
                raise CommandError(
                    f"erasing {len(found.held)} record(s) of subject {found.subject.id} "
                    "cannot be undone: add --yes to confirm")
            request, erased = await rights.erase(selector, args.reason, now, args.request)
            print(f"ess: subject {found.subject.id}: {erased} record(s) erased, "
                  f"backups included (request {request.id})")
            return 0
    except (SubjectError, RequestError) as exc:
        raise CommandError(str(exc)) from None
    raise CommandError(f"unknown command subject {command}")


def _requests(requests: list[Any], now: datetime, as_json: bool) -> int:
    items = [{"id": r.id, "kind": r.kind, "subject": r.subject, "status": r.status,
              "received_at": r.received_at.isoformat(), "due_at": r.due_at.isoformat(),
              "days_left": (r.due_at - now).days, "reason": r.reason,
              "references": list(r.references)} for r in requests]
    if as_json:
        print(json.dumps(items, ensure_ascii=False, indent=2))
        return 0
    if not items:
        print("no open requests")
    for i in items:
        late = " OVERDUE" if i["days_left"] < 0 and i["status"] == "open" else ""
        print(f"{i['id']}  {i['kind']:<8} {i['subject']}  {i['status']:<8} due "
              f"{i['due_at'][:10]} ({i['days_left']} days){late}")
    return 0


def _unseal(path: Path) -> int:
    from bot.privacy.sealed_export import ExportError, open_export

    try:
        blob = path.read_bytes()
    except OSError as exc:
        raise CommandError(f"{path}: {exc.strerror}") from None
    password = sys.stdin.readline()
    try:
        data = open_export(blob, password)
    except ExportError as exc:
        raise CommandError(f"{path}: {exc}") from None
    print(json.dumps(data, ensure_ascii=False, indent=2))
    return 0
