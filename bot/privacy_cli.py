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

COMMANDS = ("audit", "subject", "pdpa", "breach", "keys")


def _selector_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--phone", help="the phone number the person reported from or gave")
    parser.add_argument("--line-user", help="their LINE user id (U…)")
    parser.add_argument("--reference", help="the reference of a report they made")
    parser.add_argument("--case", help="the reference of their welfare case (CASE-…)")


def add_commands(sub: Any) -> None:
    audit = sub.add_parser("audit", help="the audit trail").add_subparsers(
        dest="audit_command", required=True)
    check = audit.add_parser("verify", help="check the hash chain and its anchored end; exit "
                                            "1 naming the first bad row or the missing tail")
    check.add_argument("--head", action="append", default=[], metavar="SEQ:HASH",
                       help="a head noted down earlier (as verify prints it, or from the "
                            "log's audit.head): the chain must still reach it; repeatable")
    show = audit.add_parser("show", help="audit rows about a subject, a staff member or a "
                                         "reference")
    show.add_argument("--subject", help="a subject id (as `ess subject find` prints it)")
    show.add_argument("--staff", help="an actor: a board login (its sign-ins, and the tries of "
                                      "that name when no account has it), staff:<login>, "
                                      "cli:<user>")
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

    pdpa = sub.add_parser("pdpa", help="the record of processing and retention").add_subparsers(
        dest="pdpa_command", required=True)
    record = pdpa.add_parser("record", help="the record of processing (Markdown)")
    record.add_argument("--out", type=Path, help="write it to this file (default: stdout)")
    due = pdpa.add_parser("due", help="what retention erases in the next days")
    due.add_argument("--days", type=float, default=7.0)
    due.add_argument("--json", action="store_true")
    pdpa.add_parser("retain", help="erase what retention says is due now (the sweeper "
                                   "does this hourly)")

    breach = sub.add_parser("breach", help="personal data breaches (72-hour clock)")
    bsub = breach.add_subparsers(dest="breach_command", required=True)
    bopen = bsub.add_parser("open", help="start the clock, list what is affected, draft the "
                                         "notice to the PDPC")
    bopen.add_argument("--keys", help="comma-separated ids of leaked service keys "
                                      "(`ess keys list`)")
    bopen.add_argument("--since", help="records written since (YYYY-MM-DD or ISO time)")
    bopen.add_argument("--description", default="", help="what happened")
    bopen.add_argument("--notice", type=Path, help="also write the draft notice here")
    bsub.add_parser("list", help="breaches and their deadlines")

    keys = sub.add_parser("keys", help="service keys").add_subparsers(
        dest="keys_command", required=True)
    keys.add_parser("list", help="the configured service keys' ids, newest first")
    keys.add_parser("rewrap", help="re-wrap every data key with the newest service key "
                                   "(after a rotation; the data is not re-encrypted)")


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
    if args.command == "pdpa" and args.pdpa_command == "record":
        return _record(args.out)
    sealer = make_sealer(settings)
    if args.command == "keys" and args.keys_command == "list":
        for key_id in sealer.key_ids():
            print(key_id)
        return 0
    storage = await open_storage(settings, sealer)
    try:
        if args.command == "audit":
            return await _audit(storage, sealer.digest, args)
        if args.command == "subject":
            return await _subject(storage, sealer.digest, args)
        if args.command == "pdpa":
            return await _pdpa(storage, args)
        if args.command == "breach":
            return await _breach(storage, args)
        if args.command == "keys":
            print(f"ess: {await storage.vault.rewrap()} data key(s) re-wrapped with the "
                  f"newest service key {sealer.key_ids()[0]}")
            return 0
        raise CommandError(f"unknown command {args.command}")
    finally:
        await storage.close()


def _actors(digest: Any, staff: str | None) -> list[str | None]:
    """The actors `--staff` names: as given when it has a kind (`staff:…`, `cli:…`); a bare
    board login is its account and the keyed name of sign-in tries with it."""
    from bot.privacy.access import staff_actor, unknown_login_actor

    if staff is None or ":" in staff or staff.startswith("login?"):
        return [staff]
    return [staff_actor(staff), unknown_login_actor(digest, staff)]


async def _audit(storage: Any, digest: Any, args: argparse.Namespace) -> int:
    from bot.incident import normalize_reference
    from storage.audit import parse_head

    if args.audit_command == "verify":
        try:
            heads = [parse_head(h) for h in args.head]
        except ValueError as exc:
            raise CommandError(f"--head: {exc}") from None
        verdict = await storage.audit.verify(heads)
        if verdict.intact:
            print(f"ess: audit trail intact: {verdict.rows} row(s)"
                  + (f", {verdict.legacy} from before the chain" if verdict.legacy else "")
                  + f"; head {verdict.head[:16]}"
                  + (f" (note it as --head {verdict.head_seq}:{verdict.head[:16]})"
                     if verdict.head_seq else "")
                  + ("" if verdict.anchored or not verdict.head_seq
                     else "; its end is not anchored yet (the next append anchors it)"))
            return 0
        print(f"ess: audit trail BROKEN at row {verdict.broken_at}: {verdict.reason}",
              file=sys.stderr)
        return 1
    if not (args.subject or args.staff or args.reference):
        raise CommandError("audit show needs --subject, --staff or --reference")
    if args.limit < 1:
        raise CommandError("--limit must be at least 1")
    reference = normalize_reference(args.reference) if args.reference else None
    rows = []
    for actor in _actors(digest, args.staff):
        rows += await storage.audit.find(subject=args.subject, staff=actor,
                                         reference=reference, limit=args.limit)
    rows = sorted(rows, key=lambda r: r.seq, reverse=True)[:args.limit]
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
        selector = Selector.parse(args.phone, args.line_user, args.reference,
                                  args.case)
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


def _processing() -> Any:
    from bot.privacy.processing import ProcessingError, load_processing

    try:
        return load_processing()
    except ProcessingError as exc:
        raise CommandError(str(exc)) from None


def _record(out: Path | None) -> int:
    from bot.privacy.processing import record_markdown

    text = record_markdown(_processing(), datetime.now(UTC).date().isoformat())
    if out is None:
        print(text)
        return 0
    try:
        out.write_text(text, encoding="utf-8")
    except OSError as exc:
        raise CommandError(f"--out {out}: {exc.strerror}") from None
    print(f"ess: record of processing written to {out}")
    return 0


async def _pdpa(storage: Any, args: argparse.Namespace) -> int:
    from datetime import timedelta

    from bot.privacy import retention

    processing = _processing()
    now = datetime.now(UTC)
    if args.pdpa_command == "retain":
        print(f"ess: {await retention.run(storage, processing, now)} record(s) or "
              "message(s) erased")
        return 0
    if not 0 < args.days <= 3650:
        raise CommandError("--days: a number of days between 0 and 3650")
    due = await retention.due(storage, processing, now, timedelta(days=args.days))
    items = [{"kind": d.kind, "reference": d.reference, "erase_at": d.erase_at.isoformat(),
              "what": d.what} for d in due]
    if args.json:
        print(json.dumps(items, ensure_ascii=False, indent=2))
        return 0
    print(f"{len(items)} record(s) to be erased in the next {args.days:g} days")
    for i in items:
        print(f"  {i['erase_at'][:16]}  {i['kind']:<9} {i['reference']}  {i['what']}")
    return 0


def _moment(text: str) -> datetime:
    try:
        at = datetime.fromisoformat(text.strip())
    except ValueError:
        raise CommandError(f"--since {text!r}: expected a date or time such as 2026-11-30 "
                           "or 2026-11-30T08:00") from None
    return at if at.tzinfo else at.replace(tzinfo=UTC)


async def _breach(storage: Any, args: argparse.Namespace) -> int:
    from bot.privacy.breach import open_breach

    now = datetime.now(UTC)
    if args.breach_command == "list":
        for b in await storage.privacy.breaches():
            left = b.deadline - now
            clock = f"{left.total_seconds() / 3600:.0f} h left" if left.total_seconds() > 0 \
                else "deadline passed"
            print(f"{b.id}  opened {b.opened_at.isoformat()[:16]}  notify by "
                  f"{b.deadline.isoformat()[:16]} ({clock})  {len(b.references)} record(s)")
        return 0
    if not args.keys and not args.since:
        raise CommandError("breach open needs --keys or --since")
    key_ids = [k.strip().lower() for k in args.keys.split(",") if k.strip()] \
        if args.keys else None
    if key_ids is not None and (not key_ids or not all(
            len(k) == 16 and all(c in "0123456789abcdef" for c in k) for k in key_ids)):
        raise CommandError("--keys: key ids are 16 hex characters, as `ess keys list` "
                           "prints them")
    since = _moment(args.since) if args.since else None
    breach = await open_breach(storage, _processing(), operator(), now, key_ids=key_ids,
                               since=since, description=args.description)
    if args.notice:
        try:
            args.notice.write_text(breach.notice, encoding="utf-8")
        except OSError as exc:
            raise CommandError(f"--notice {args.notice}: {exc.strerror}") from None
    print(f"ess: breach {breach.id} opened; notify the PDPC by "
          f"{breach.deadline.isoformat()[:16]} UTC; {len(breach.references)} record(s) "
          "affected")
    if not args.notice:
        print(breach.notice)
    return 0
