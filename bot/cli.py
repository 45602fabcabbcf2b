"""The `ess` command: serve, chat, flows check, incidents list/show.

Every failure a user can cause (bad settings, a broken flow, an unknown reference, a database
that is not there) ends with one clear line on stderr and exit status 2, never a traceback.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bot.i18n import CatalogError
from bot.incident import Incident, normalize_reference
from bot.logs import configure_logging
from config.settings import Settings, SettingsError, load_settings
from flows.loader import FlowError
from storage.ports import StorageError

if TYPE_CHECKING:
    from bot.app import ServicesHook

EXIT_USAGE = 2


class CliError(Exception):
    """A user-facing failure: the message is the whole story."""


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="ess", description="Emergency social services bot.")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("serve", help="run the web service (all channels, dispatcher)")
    chat = sub.add_parser("chat", help="talk to a flow in the terminal")
    chat.add_argument("--flow", default="report", help="report or silent (default report)")
    chat.add_argument("--lang", default=None, help="th or en (default: the service default)")
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
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        settings = load_settings()
        configure_logging(settings.log_format, settings.log_level)
        return _run(args, settings)
    except (SettingsError, FlowError, CatalogError, StorageError, CliError) as exc:
        print(f"ess: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        return 130


def _run(args: argparse.Namespace, settings: Settings) -> int:
    if args.command == "serve":
        return _serve(settings)
    if args.command == "chat":
        return asyncio.run(_chat(settings, args.flow, args.lang or settings.default_lang))
    if args.command == "flows":
        return _check_flows(settings, args.files)
    if args.command == "incidents":
        return asyncio.run(_incidents(settings, args))
    if args.command == "db":
        return asyncio.run(_migrate(settings))
    raise CliError(f"unknown command {args.command}")


def _serve(settings: Settings) -> int:
    return serve(settings)


def serve(settings: Settings, hooks: list[ServicesHook] | None = None) -> int:
    """Run the service until a signal; `hooks` mount extra routes (channels, tests)."""
    from aiohttp import web

    from bot.app import create_app

    # Fail before binding the port: a broken flow or catalog must stop start-up loudly.
    from bot.wiring import default_registries, load_all_flows, load_catalogs

    inputs, actions = default_registries()
    load_all_flows(settings, load_catalogs(settings), inputs, actions)
    # ... and so must a database or Redis that cannot be reached or has the wrong schema.
    asyncio.run(_check_storage(settings))
    app = create_app(settings, hooks)
    url = f"http://{settings.host}:{settings.port}"
    print(f"ess: listening on {url}  (health {url}/healthz)", flush=True)
    web.run_app(app, host=settings.host, port=settings.port, print=None,
                handle_signals=True)
    return 0


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


async def _chat(settings: Settings, flow: str, lang: str) -> int:
    from bot.wiring import open_services
    from channels.terminal import chat

    services = await open_services(settings)
    try:
        if flow not in services.flows:
            raise CliError(f"no flow {flow!r}; flows: {', '.join(sorted(services.flows))}")
        if not services.catalogs.has(lang):
            raise CliError(f"no catalog for {lang!r}; languages: "
                           f"{', '.join(lang.code for lang in services.catalogs.languages)}")
        refs = await chat(services.engine, services.catalogs, sys.stdin, sys.stdout, flow, lang)
    finally:
        await services.close()
    for ref in refs:
        print(f"reference: {ref}")
    return 0


def _check_flows(settings: Settings, files: list[Path]) -> int:
    from bot.wiring import default_registries, load_catalogs
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


def _summary(incident: Incident) -> dict[str, Any]:
    return {
        "reference": incident.reference, "type": incident.type, "status": incident.status,
        "created_at": incident.created_at.isoformat(), "channel": incident.channel,
        "silent": incident.silent, "do_not_call": incident.do_not_call,
        "drill": incident.drill, "area_codes": incident.area_codes,
    }


async def _incidents(settings: Settings, args: argparse.Namespace) -> int:
    from storage.factory import make_sealer, open_storage

    storage = await open_storage(settings, make_sealer(settings))
    try:
        if args.incidents_command == "list":
            items = [_summary(i) for i in await storage.incidents.recent(args.limit)]
            if args.json:
                print(json.dumps(items, ensure_ascii=False, indent=2))
            else:
                for i in items:
                    flags = " ".join(f for f in ("silent", "do_not_call", "drill") if i[f])
                    print(f"{i['reference']}  {i['created_at'][:19]}  {i['status']:<12} "
                          f"{i['type']:<12} {flags}")
            return 0
        reference = normalize_reference(args.reference)
        incident = await storage.incidents.get(reference)
        if incident is None:
            raise CliError(f"no incident {reference}")
        # A person is reading personal data: that read is audited (invariant 4).
        await storage.incidents.record_access("cli", "incident.show", incident.reference)
        data = _summary(incident) | {
            "phone": incident.phone, "location": incident.location.to_dict(),
            "details": incident.details,
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


if __name__ == "__main__":
    sys.exit(main())
