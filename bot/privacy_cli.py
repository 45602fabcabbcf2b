"""The PDPA commands of `ess`: audit, subject, pdpa, breach, keys (see docs/pdpa.md).

Every failure a user can cause ends in one clear line and exit status 2 (bot.cli's contract);
`ess audit verify` exits 1 when the chain is broken, naming the first broken row.
"""

from __future__ import annotations

import argparse
import getpass
import json
import sys
from typing import Any

from channels.base import CommandError
from config.settings import Settings

COMMANDS = ("audit",)


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


def operator() -> str:
    """Who runs the command, as the audit trail names them."""
    try:
        return f"cli:{getpass.getuser()}"
    except (KeyError, OSError):
        return "cli:unknown"


async def run(settings: Settings, args: argparse.Namespace) -> int:
    from storage.factory import make_sealer, open_storage

    storage = await open_storage(settings, make_sealer(settings))
    try:
        if args.command == "audit":
            return await _audit(storage, args)
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
