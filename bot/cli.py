"""The `ess` command: serve, flows check, incidents list/show, groups code, directory, stats,
and whatever the installed channels add (`ess chat`, `ess respond`, `ess line richmenu`):
each channel contributes its own subcommands through the plugin contract.

Every failure a user can cause (bad settings, a broken flow, an unknown reference, a database
that is not there) ends with one clear line on stderr and exit status 2, never a traceback.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bot import cases_cli, privacy_cli
from bot.i18n import CatalogError
from bot.incident import Incident, normalize_reference
from bot.logs import configure_logging
from channels.base import CommandContext, CommandError
from channels.registry import channel_classes
from config.settings import Settings, SettingsError, load_settings
from flows.loader import FlowError
from routing.directory import DirectoryError
from routing.programmes import ProgrammeError
from storage.ports import StorageError

if TYPE_CHECKING:
    from bot.app import ServicesHook
    from bot.services import Services

EXIT_USAGE = 2


class CliError(Exception):
    """A user-facing failure: the message is the whole story."""


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="ess", description="Emergency social services bot.")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("serve", help="run the web service (all channels, dispatcher)")
    flows = sub.add_parser("flows", help="flow files").add_subparsers(dest="flows_command",
                                                                      required=True)
    check = flows.add_parser("check", help="validate flow files")
    check.add_argument("files", nargs="+", type=Path)
    incidents = sub.add_parser("incidents", help="stored incidents").add_subparsers(
        dest="incidents_command", required=True)
    listing = incidents.add_parser("list", help="the latest incidents")
    listing.add_argument("--json", action="store_true")
    listing.add_argument("--limit", type=int, default=50)
    show = incidents.add_parser("show", help="one incident with its timeline")
    show.add_argument("reference")
    show.add_argument("--json", action="store_true")
    db = sub.add_parser("db", help="the database schema").add_subparsers(dest="db_command",
                                                                       required=True)
    db.add_parser("migrate", help="apply pending migrations (PostgreSQL; SQLite migrates "
                                  "itself on start)")
    groups = sub.add_parser("groups", help="responder groups").add_subparsers(
        dest="groups_command", required=True)
    code = groups.add_parser("code", help="a one-time code that binds a group to an area")
    code.add_argument("--area", required=True,
                      help="province code (65), district code (6501), a station id, or national")
    code.add_argument("--agency", required=True, help="e.g. police, msdhs, shelter")
    code.add_argument("--ttl", default="24h", help="how long the code is valid (default 24h)")
    directory = sub.add_parser("directory", help="the responder directory").add_subparsers(
        dest="directory_command", required=True)
    dcheck = directory.add_parser("check", help="validate a directory folder")
    dcheck.add_argument("folder", type=Path, nargs="?", default=None,
                        help="default: ESS_DIRECTORY_DIR, else the shipped sample")
    stats = sub.add_parser("stats", help="prevention analytics: counts and response times "
                                         "(counts below the threshold shown as <5)")
    stats.add_argument("--days", type=float, default=30.0, help="reports from the last N days")
    stats.add_argument("--by", default="response",
                       help="type, area, hour, channel, silent, day, week, month, outcome, "
                            "agency, level or response (default)")
    stats.add_argument("--area", default=None,
                       help="drill down: a province (65), a district (6501) or a station")
    stats.add_argument("--type", default=None, help="only incidents of this type")
    stats.add_argument("--channel", default=None, help="only incidents from this channel")
    stats.add_argument("--min-count", type=int, default=None,
                       help="suppression threshold (default ESS_ANALYTICS_MIN_COUNT, 5)")
    stats.add_argument("--include-drills", action="store_true")
    stats.add_argument("--exclude-synthetic", action="store_true")
    form = stats.add_mutually_exclusive_group()
    form.add_argument("--json", action="store_true")
    form.add_argument("--csv", action="store_true")
    form.add_argument("--hxl", action="store_true", help="CSV with an HXL hashtag row")
    demo = sub.add_parser("demo", help="synthetic data for a demonstration").add_subparsers(
        dest="demo_command", required=True)
    seed = demo.add_parser("seed", help="a synthetic history (marked synthetic, never "
                                        "dispatched)")
    seed.add_argument("--incidents", type=int, required=True)
    seed.add_argument("--days", type=float, default=90.0)
    seed.add_argument("--seed", type=int, default=None, help="random seed (repeatable runs)")
    privacy_cli.add_commands(sub)
    cases_cli.add_commands(sub)
    for channel in channel_classes():
        channel.add_commands(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        settings = load_settings()
        configure_logging(settings.log_format, settings.log_level)
        return _run(args, settings)
    except DirectoryError as exc:
        # Every problem on its own line, file:line: field: why (as `ess directory check`).
        for problem in exc.problems:
            print(f"ess: {problem}", file=sys.stderr)
        return EXIT_USAGE
    except (SettingsError, FlowError, CatalogError, StorageError, CliError,
            CommandError, cases_cli.CaseCliError, ProgrammeError) as exc:
        print(f"ess: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        return 130


def _run(args: argparse.Namespace, settings: Settings) -> int:
    run = getattr(args, "run", None)
    if run is not None:  # a channel's own subcommand
        async def services() -> Services:
            from bot.wiring import open_services

            return await open_services(settings)

        return int(asyncio.run(run(args, CommandContext(settings, services))))
    if args.command == "serve":
        return _serve(settings)
    if args.command in cases_cli.COMMANDS:
        return int(asyncio.run(cases_cli.run(args, settings)))
    if args.command == "flows":
        return _check_flows(settings, args.files)
    if args.command == "incidents":
        return asyncio.run(_incidents(settings, args))
    if args.command == "db":
        return asyncio.run(_migrate(settings))
    if args.command == "groups":
        return asyncio.run(_groups_code(settings, args.area, args.agency, args.ttl))
    if args.command == "directory":
        return _check_directory(settings, args.folder)
    if args.command == "demo":
        return asyncio.run(_demo_seed(settings, args.incidents, args.days, args.seed))
    if args.command == "stats":
        from bot.stats_cli import stats

        return asyncio.run(stats(settings, args))
    if args.command in privacy_cli.COMMANDS:
        return asyncio.run(privacy_cli.run(settings, args))
    raise CliError(f"unknown command {args.command}")


def _serve(settings: Settings) -> int:
    return serve(settings)


def serve(settings: Settings, hooks: list[ServicesHook] | None = None) -> int:
    """Run the service until a signal; `hooks` mount extra routes (channels, tests)."""
    from aiohttp import web

    from bot.app import create_app

    # Fail before binding the port: a broken flow or catalog must stop start-up loudly.
    from bot.i18n import load_catalogs
    from bot.wiring import default_registries, load_all_flows, open_directory, programme_paths

    inputs, actions = default_registries()
    load_all_flows(settings, load_catalogs(settings), inputs, actions)
    open_directory(settings)  # a broken directory stops start-up with every problem listed
    from routing.programmes import load_programmes

    load_programmes(programme_paths(settings))  # and so does a broken programme rules file
    # ... and so must a database or Redis that cannot be reached or has the wrong schema.
    asyncio.run(_check_storage(settings))
    app = create_app(settings, hooks)
    url = f"http://{settings.host}:{settings.port}"
    print(f"ess: listening on {url}  (health {url}/healthz)", flush=True)
    web.run_app(app, host=settings.host, port=settings.port, print=None,
                handle_signals=True, loop=event_loop())
    return 0


def event_loop() -> asyncio.AbstractEventLoop:
    """uvloop's loop when it is installed (the `fast` extra): its socket writes and
    callbacks cost about half of asyncio's, which a busy `ess serve` spends most on."""
    try:
        uvloop = importlib.import_module("uvloop")
    except ImportError:
        return asyncio.new_event_loop()
    loop: asyncio.AbstractEventLoop = uvloop.new_event_loop()
    return loop


async def _check_storage(settings: Settings) -> None:
    from storage.factory import make_sealer, open_storage

    storage = await open_storage(settings, make_sealer(settings))
    await storage.close()


async def _migrate(settings: Settings) -> int:
    from storage.factory import is_postgres

    if not is_postgres(settings):
        from storage.factory import make_sealer, open_storage

        await (await open_storage(settings, make_sealer(settings))).close()
        print(f"ess: SQLite database {settings.sqlite_path} is up to date")
        return 0
    from storage.postgres import describe_dsn, migrate

    before, after = await migrate(settings)
    where = describe_dsn(settings.database_url)
    if before == after:
        print(f"ess: {where} is up to date (schema version {after})")
    else:
        print(f"ess: {where} migrated from schema version {before} to {after}")
    return 0


def _check_flows(settings: Settings, files: list[Path]) -> int:
    from bot.i18n import load_catalogs
    from bot.wiring import default_registries
    from flows.registry import load_flows

    catalogs = load_catalogs(settings)
    inputs, actions = default_registries()
    failed = False
    for path in files:
        try:
            load_flows([path], inputs=inputs.kinds, actions=actions.names(),
                       validators=inputs.validators,
                       catalog_keys=catalogs.keys(catalogs.default))
            print(f"{path}: ok")
        except FlowError as exc:
            failed = True
            for problem in exc.problems:
                print(problem, file=sys.stderr)
    return 1 if failed else 0


def _check_directory(settings: Settings, folder: Path | None) -> int:
    from bot.wiring import directory_path
    from routing.directory import load_directory

    path = folder or directory_path(settings)
    try:
        directory = load_directory(path)
    except DirectoryError as exc:
        for problem in exc.problems:
            print(problem, file=sys.stderr)
        print(f"{path}: {len(exc.problems)} problem(s)", file=sys.stderr)
        return 1
    print(f"{path}: ok ({len(directory.stations)} stations, {len(directory.groups)} groups, "
          f"{len(directory.jurisdictions)} jurisdictions, "
          f"{len(directory.national)} national fallback group(s))")
    return 0


async def _demo_seed(settings: Settings, incidents: int, days: float,
                     seed: int | None) -> int:
    import random

    from bot.types import utcnow
    from bot.wiring import open_directory
    from routing.demo import SeedError
    from routing.demo import seed as run_seed
    from storage.factory import make_sealer, open_storage

    directory = open_directory(settings)
    storage = await open_storage(settings, make_sealer(settings))
    try:
        result = await run_seed(
            storage, directory, incidents, days, utcnow(), random.Random(seed),
            lambda n: print(f"ess: {n} synthetic incidents written", file=sys.stderr))
    except SeedError as exc:
        raise CliError(str(exc)) from None
    finally:
        await storage.close()
    print(f"ess: {result.incidents} synthetic incidents over the last {days:g} days "
          "(marked synthetic; nothing was dispatched)")
    return 0


def _summary(incident: Incident) -> dict[str, Any]:
    return {
        "reference": incident.reference, "type": incident.type, "status": incident.status,
        "created_at": incident.created_at.isoformat(), "channel": incident.channel,
        "silent": incident.silent, "do_not_call": incident.do_not_call,
        "drill": incident.drill, "synthetic": incident.synthetic,
        "area_codes": incident.area_codes,
    }


async def _incidents(settings: Settings, args: argparse.Namespace) -> int:
    from storage.factory import make_sealer, open_storage
    from storage.vault import ERASED, is_erased

    storage = await open_storage(settings, make_sealer(settings))
    try:
        if args.incidents_command == "list":
            items = [_summary(i) for i in await storage.incidents.recent(args.limit)]
            if args.json:
                print(json.dumps(items, ensure_ascii=False, indent=2))
            else:
                for i in items:
                    flags = " ".join(f for f in ("silent", "do_not_call", "drill", "synthetic")
                                     if i[f])
                    print(f"{i['reference']}  {i['created_at'][:19]}  {i['status']:<12} "
                          f"{i['type']:<12} {flags}")
            return 0
        reference = normalize_reference(args.reference)
        incident = await storage.incidents.get(reference)
        if incident is None:
            raise CliError(f"no incident {reference}")
        # A person is reading personal data: that read is audited (invariant 4).
        await storage.incidents.record_access(privacy_cli.operator(), "incident.show",
                                              incident.reference)
        erased = is_erased(incident)  # its key is destroyed: nothing personal opens
        data = _summary(incident) | {
            "phone": ERASED if erased else incident.phone,
            "location": ERASED if erased else incident.location.to_dict(),
            "details": ERASED if erased else incident.details,
            "timeline": [{"at": e.at.isoformat(), "kind": e.kind, "actor": e.actor,
                          "channel": e.channel, "data": e.data}
                         for e in await storage.incidents.timeline(incident.id)],
        }
        if args.json:
            print(json.dumps(data, ensure_ascii=False, indent=2))
        else:
            for key, value in data.items():
                if key != "timeline":
                    print(f"{key:>12}: {value}")
            for event in data["timeline"]:
                print(f"{'':>12}  {event['at'][:19]}  {event['kind']} by {event['actor']} "
                      f"via {event['channel']}")
        return 0
    finally:
        await storage.close()


async def _groups_code(settings: Settings, area: str, agency: str, ttl: str) -> int:
    from datetime import UTC, datetime

    from bot.durations import parse_duration
    from bot.wiring import open_directory
    from routing.directory import NATIONAL
    from storage.factory import make_sealer, open_storage

    seconds = parse_duration(ttl)
    if not seconds:
        raise CliError(f"--ttl {ttl!r}: expected a duration such as 30m or 24h")
    area = area.strip()
    # A code for an area the directory does not know would bind a group that never hears
    # of anything: refuse it here, where the mistake is made.
    directory = open_directory(settings)
    known = {a for s in directory.stations for a in s.areas} | {NATIONAL}
    if area not in known:
        raise CliError(f"--area {area!r} is not an area of the directory: use a province "
                       "code (65), a district code (6501), a station id (st6501) or "
                       f"{NATIONAL}")
    storage = await open_storage(settings, make_sealer(settings))
    try:
        code = await storage.bindings.create_code(area, agency.strip(), seconds,
                                                  datetime.now(UTC))
    finally:
        await storage.close()
    print(code)
    print(f"type '/register {code}' within {ttl} in the chat to bind (a LINE group, or an "
          f"SMS or web chat of a responder) to {area} ({agency})", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
