"""`ess volunteers …`, `ess cases …` and `ess programmes check`: the case side's commands.

Reads of cases are audited like reads of incidents (invariant 4): a person is looking at
someone's hardship.
"""

from __future__ import annotations

import argparse
import json
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from bot.case import Case, normalize_case_reference
from config.settings import Settings

COMMANDS = frozenset({"volunteers", "cases", "programmes"})


class CaseCliError(Exception):
    """A user-facing failure of a case command."""


def add_commands(sub: Any) -> None:
    volunteers = sub.add_parser("volunteers", help="social-development volunteers (อพม.)"
                                ).add_subparsers(dest="volunteers_command", required=True)
    code = volunteers.add_parser("code", help="a one-time code a volunteer sends as "
                                              "/register CODE in their own chat")
    code.add_argument("--area", required=True, help="province (65) or district (6501) code")
    code.add_argument("--ttl", default="24h", help="how long the code is valid (default 24h)")
    disable = volunteers.add_parser("disable", help="unregister a volunteer's chat")
    disable.add_argument("address", help="line:U…, sms:+66…, web:…")
    cases = sub.add_parser("cases", help="welfare cases").add_subparsers(
        dest="cases_command", required=True)
    listing = cases.add_parser("list", help="the latest cases (audited)")
    listing.add_argument("--area", action="append", help="only these areas (repeatable)")
    listing.add_argument("--limit", type=int, default=50)
    listing.add_argument("--json", action="store_true")
    zero = cases.add_parser("zero-dropout", help="the area's children out of school or at "
                                                 "risk of dropping out, for follow-up (audited)")
    zero.add_argument("--area", required=True, action="append",
                      help="province (65) or district (6501) code, or TH (repeatable)")
    zero.add_argument("--limit", type=int, default=200)
    zero.add_argument("--json", action="store_true")
    show = cases.add_parser("show", help="one case with its timeline (audited)")
    show.add_argument("reference")
    show.add_argument("--json", action="store_true")
    move = cases.add_parser("move", help="move a case: screen, assess, accept, reject, "
                                         "start_service, close, reopen")
    move.add_argument("reference")
    move.add_argument("trigger")
    move.add_argument("--reason", default="")
    move.add_argument("--supervisor", action="store_true", help="approve as a supervisor")
    refer = cases.add_parser("refer", help="refer a case to a programme or an agency")
    refer.add_argument("reference")
    refer.add_argument("to")
    refer.add_argument("--days", type=float, default=14.0, help="follow-up due in N days")
    refer.add_argument("--override", metavar="REASON", default="",
                       help="as a supervisor: refer without the person's consent, saying why "
                            "(vital interest; kept in the consent store and the audit trail)")
    programmes = sub.add_parser("programmes", help="welfare programme rules").add_subparsers(
        dest="programmes_command", required=True)
    check = programmes.add_parser("check", help="validate programme rule files")
    check.add_argument("files", nargs="*", type=Path,
                       help="default: ESS_PROGRAMMES_DIR's *.yaml, or the sample rules in "
                            "config/programmes")


def summary(case: Case) -> dict[str, Any]:
    return {"reference": case.reference, "status": case.status, "area": case.area,
            "flags": case.flags, "hardships": case.hardships, "channel": case.channel,
            "created_at": case.created_at.isoformat(), "incident_id": case.incident_id,
            "referrals": [r.to_dict() for r in case.referrals]}


async def run(args: argparse.Namespace, settings: Settings) -> int:
    if args.command == "programmes":
        from bot.wiring import programme_paths

        return check_programmes(args.files or programme_paths(settings))
    if args.command == "volunteers" and args.volunteers_command == "code":
        return await _code(settings, args.area, args.ttl)
    from bot.wiring import open_services

    services = await open_services(settings)
    try:
        if args.command == "volunteers":
            removed = await services.storage.bindings.unbind(args.address.strip())
            print(f"ess: {removed} registration(s) removed for that chat")
            return 0 if removed else 1
        return await _cases(services, args)
    finally:
        await services.close()


async def _code(settings: Settings, area: str, ttl: str) -> int:
    from bot.durations import parse_duration
    from bot.wiring import open_directory
    from routing.agencies import VOLUNTEER
    from storage.factory import make_sealer, open_storage

    seconds = parse_duration(ttl)
    if not seconds:
        raise CaseCliError(f"--ttl {ttl!r}: expected a duration such as 30m or 24h")
    area = area.strip()
    known = {a for s in open_directory(settings).stations for a in s.areas}
    if area not in known:
        raise CaseCliError(f"--area {area!r} is not an area of the directory: use a province "
                           "code (65) or a district code (6501)")
    storage = await open_storage(settings, make_sealer(settings))
    try:
        code = await storage.bindings.create_code(area, VOLUNTEER, seconds, datetime.now(UTC))
    finally:
        await storage.close()
    print(code)
    print(f"the volunteer sends '/register {code}' within {ttl} in their own chat (LINE, web "
          f"or SMS) to report cases for {area}", file=sys.stderr)
    return 0


async def _cases(services: Any, args: argparse.Namespace) -> int:
    storage = services.storage
    if args.cases_command == "list":
        found = await storage.cases.recent(args.limit, args.area)
        await storage.incidents.record_access("cli", "case.list", ",".join(args.area or []))
        items = [summary(c) for c in found]
        if args.json:
            print(json.dumps(items, ensure_ascii=False, indent=2))
        for i in items if not args.json else []:
            print(f"{i['reference']}  {i['created_at'][:19]}  {i['status']:<11} "
                  f"{i['area']:<5} {' '.join(i['flags'])}")
        return 0
    if args.cases_command == "zero-dropout":
        return await _zero_dropout(services, args)
    reference = normalize_case_reference(args.reference)
    if args.cases_command == "move":
        done = await services.casework.move(reference, args.trigger, "cli",
                                            reason=args.reason, supervisor=args.supervisor)
        return _changed(done, reference, args.trigger)
    if args.cases_command == "refer":
        if args.override:
            overridden = await services.casework.override_consent(reference, "cli",
                                                                  args.override)
            if overridden.error or overridden.case is None:
                return _changed(overridden, reference, "the consent override")
        done = await services.casework.refer(reference, args.to, "cli",
                                             due=timedelta(days=args.days))
        return _changed(done, reference, f"refer to {args.to}")
    case = await storage.cases.get(reference)
    if case is None:
        raise CaseCliError(f"no case {reference}")
    await storage.incidents.record_access("cli", "case.show", case.reference)
    data = summary(case) | {
        "person": _person(case.person), "members": [_person(m) for m in case.members],
        "location": case.location.to_dict(), "needs": case.needs,
        "consent": case.consent.to_dict() if case.consent else None,
        "screening": case.screening,
        # How many photos of documents (the board opens them, audited one by one).
        "photos": len(await storage.case_photos.listed(case.id)),
        "timeline": [{"at": e.at.isoformat(), "kind": e.kind, "actor": e.actor,
                      "channel": e.channel, "data": e.data}
                     for e in await storage.cases.timeline(case.id)]}
    if args.json:
        print(json.dumps(data, ensure_ascii=False, indent=2))
        return 0
    for key, value in data.items():
        if key != "timeline":
            print(f"{key:>12}: {value}")
    for event in data["timeline"]:
        print(f"{'':>12}  {event['at'][:19]}  {event['kind']} by {event['actor']} "
              f"{event['data'] or ''}")
    return 0


async def _zero_dropout(services: Any, args: argparse.Namespace) -> int:
    """Zero Dropout follow-up: each flagged case of the areas, what schooling hardship, how
    many children, and its open referrals (the education group's among them)."""
    from bot.case import SCHOOLING, ZERO_DROPOUT
    from bot.types import utcnow
    from routing.case_lifecycle import OPEN_REFERRAL

    areas = [a.strip() for a in args.area]
    known = {a for s in services.directory.stations for a in s.areas} | {"TH"}
    unknown = [a for a in areas if a not in known]
    if unknown:
        raise CaseCliError(f"--area {unknown[0]!r} is not an area of the directory: use a "
                           "province code (65), a district code (6501) or TH")
    storage = services.storage
    found = await storage.cases.recent(args.limit, areas, flag=ZERO_DROPOUT)
    await storage.incidents.record_access("cli", "case.zero_dropout", ",".join(areas))
    now = utcnow()
    today = now.year
    items = []
    for case in found:
        children = [p for p in case.everyone
                    if p.birth_year is not None and today - p.birth_year < 18]
        open_referrals = [r for r in case.referrals if r.state in OPEN_REFERRAL]
        items.append({
            "reference": case.reference, "status": case.status, "area": case.area,
            "created_at": case.created_at.isoformat(),
            "schooling": [h for h in case.hardships if h in SCHOOLING],
            "children": len(children),
            "open_referrals": [r.to for r in open_referrals],
            "overdue": sum(1 for r in open_referrals if r.due_at <= now)})
    if args.json:
        print(json.dumps(items, ensure_ascii=False, indent=2))
        return 0
    if not items:
        print(f"ess: no Zero Dropout case in {', '.join(areas)}")
    for i in items:
        print(f"{i['reference']}  {i['created_at'][:10]}  {i['status']:<11} {i['area']:<5} "
              f"{','.join(i['schooling']) or '-':<27} children={i['children']} "
              f"referrals={','.join(i['open_referrals']) or '-'}"
              f"{'  OVERDUE' if i['overdue'] else ''}")
    return 0


def _person(person: Any) -> dict[str, Any]:
    from bot.thai_id import display_thai_id

    return {"birth_year": person.birth_year, "sex": person.sex, "relation": person.relation,
            "thai_id": display_thai_id(person.thai_id) if person.thai_id else None}


def _changed(done: Any, reference: str, what: str) -> int:
    if done.case is None:
        raise CaseCliError(f"no case {reference}" if done.error == "unknown"
                           else f"{reference}: try again ({done.error})")
    if done.error:
        raise CaseCliError(f"{reference}: {what} refused: {done.error} "
                           f"(status {done.case.status})")
    print(f"{reference}: {done.case.status}")
    return 0


def check_programmes(files: list[Path]) -> int:
    from routing.programmes import ProgrammeError, load_programmes

    try:
        found = load_programmes(files)
    except ProgrammeError as exc:
        for problem in exc.problems:
            print(problem, file=sys.stderr)
        return 1
    for programme in found:
        print(f"{programme.path}: ok ({programme.id})")
    return 0
