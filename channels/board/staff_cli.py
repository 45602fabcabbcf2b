"""`ess staff add|list|disable|reset`: the board's accounts from the command line."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from bot.staff import NATIONAL, ROLES, StaffMember, valid_login
from bot.types import utcnow
from channels.base import CommandContext, CommandError, optional_setting
from channels.board import totp, totp_roles_setting
from channels.board.auth import hash_password, password_problem, set_password_link
from storage.factory import make_sealer, open_storage
from storage.ports import StaffStore

LANGS = ("th", "en")


def add_commands(commands: argparse._SubParsersAction[Any]) -> None:
    staff = commands.add_parser("staff", help="board accounts").add_subparsers(
        dest="staff_command", required=True)
    add = staff.add_parser("add", help="create a board account")
    add.add_argument("login")
    add.add_argument("--role", action="append", choices=ROLES, default=[],
                     help="responder | supervisor | analyst | admin (repeatable)")
    add.add_argument("--area", nargs="+", default=[],
                     help=f"province, district or station codes, or {NATIONAL} for all")
    add.add_argument("--agency", action="append", default=[])
    add.add_argument("--name", default="")
    add.add_argument("--lang", choices=LANGS, default="th")
    add.add_argument("--password-stdin", action="store_true",
                     help="read the password from standard input (else: print a link)")
    add.add_argument("--admin", action="store_true",
                     help=f"an administrator of the whole country (role admin, area {NATIONAL})")
    add.set_defaults(run=staff_command)
    listing = staff.add_parser("list", help="every board account")
    listing.set_defaults(run=staff_command)
    for name, text in (("disable", "disable an account and end its sessions"),
                       ("reset", "a new one-time link to set the password")):
        one = staff.add_parser(name, help=text)
        one.add_argument("login")
        one.set_defaults(run=staff_command)
    enrol = staff.add_parser("totp", help="set up the one-time-code second factor (prints "
                                          "its secret once)")
    enrol.add_argument("login")
    enrol.add_argument("--remove", action="store_true", help="remove the second factor")
    enrol.set_defaults(run=staff_command)


async def staff_command(args: argparse.Namespace, ctx: CommandContext) -> int:
    # The accounts need the store only: not the flows, the directory or the channels.
    storage = await open_storage(ctx.settings, make_sealer(ctx.settings))
    store = storage.staff
    base = optional_setting(ctx.settings, "ESS_PUBLIC_URL")
    try:
        if args.staff_command == "list":
            for m in await store.all():
                state = "disabled" if m.disabled else "active"
                print(f"{m.login}\t{m.name}\t{','.join(m.roles)}\t{','.join(m.areas)}\t"
                      f"{','.join(m.agencies) or '-'}\t{m.lang}\t{state}")
            return 0
        if args.staff_command == "disable":
            if not await store.disable(args.login):
                raise CommandError(f"no board account {args.login!r}")
            print(f"{args.login}: disabled; every session ended")
            return 0
        if args.staff_command == "totp":
            return await _totp(args, store)
        if args.staff_command == "reset":
            member = await store.get(args.login)
            if member is None or member.disabled:
                raise CommandError(f"no active board account {args.login!r}")
            print(await set_password_link(store, args.login, utcnow(), base))
            return 0
        return await _add(args, store, base, totp_roles_setting(ctx.settings))
    finally:
        await storage.close()


async def _add(args: argparse.Namespace, store: StaffStore, base: str,
               totp_roles: tuple[str, ...]) -> int:
    login = args.login.strip()
    if not valid_login(login):
        raise CommandError("a login is 1-64 letters, digits, '.', '-' or '_'")
    roles = tuple(dict.fromkeys([*args.role, *(["admin"] if args.admin else [])]))
    areas = tuple(dict.fromkeys([a.strip().upper() for a in args.area if a.strip()]
                                + ([NATIONAL] if args.admin else [])))
    if not roles:
        raise CommandError("give at least one --role (or --admin)")
    if not areas:
        raise CommandError(f"give at least one --area (a province code such as TH-65, or "
                           f"{NATIONAL})")
    password_hash = None
    if args.password_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
        problem = password_problem(password)
        if problem:
            raise CommandError("the password must be 10 to 256 characters")
        password_hash = hash_password(password)
    member = StaffMember(login, args.name or login, args.lang, roles, areas,
                         tuple(args.agency))
    if not await store.add(member, password_hash):
        raise CommandError(f"the login {login!r} is taken")
    print(f"{login}: added ({', '.join(roles)}; {', '.join(areas)})")
    if set(roles) & set(totp_roles):
        print(f"{login} signs in with a one-time code too: set it up with "
              f"`ess staff totp {login}`")
    if password_hash is None:
        print(await set_password_link(store, login, utcnow(), base))
    return 0


async def _totp(args: argparse.Namespace, store: StaffStore) -> int:
    member = await store.get(args.login)
    if member is None or member.disabled:
        raise CommandError(f"no active board account {args.login!r}")
    if args.remove:
        await store.set_totp(member.login, None)
        print(f"{member.login}: one-time codes removed")
        return 0
    secret = totp.new_secret()
    await store.set_totp(member.login, secret)
    # Shown this once: the store keeps it sealed and nothing prints it again.
    print(f"{member.login}: add this to an authenticator app (shown once; running this "
          "again replaces it)")
    print(totp.provisioning_uri(secret, member.login))
    print(f"secret: {totp.secret_text(secret)}")
    return 0
