"""Build everything a running service needs from settings, in one place.

The web application, `ess chat` and the tests all call `open_services`, so what they run is
the same assembly.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from functools import lru_cache
from pathlib import Path

from bot.casework import Casework, register_case_actions
from bot.engine import Engine
from bot.i18n import Catalogs, load_catalogs
from bot.inbound import InboundRouter
from bot.inbox import LEASE_SECONDS, Inbox
from bot.logs import configure_logging
from bot.my_reports import register_my_reports_actions
from bot.privacy.processing import load_processing
from bot.privacy.retention import run as run_retention
from bot.reports import Reports, register_report_actions
from bot.services import Services
from bot.sweeper import Retention, Sweeper
from bot.types import utcnow
from channels.base import number_setting
from config.settings import Settings, SettingsError
from flows.actions import ActionRegistry
from flows.case_inputs import register_case_inputs
from flows.compiler import CompiledFlow
from flows.inputs import InputContext, InputRegistry
from flows.registry import flow_files, load_flows
from flows.runtime import FlowRunner
from routing.directory import SHIPPED_DIR, Directory, load_directory
from routing.dispatcher import Dispatcher
from routing.gazetteer import Gazetteer
from routing.lifecycle import RESPONDER_TRIGGERS
from routing.ports import Router
from routing.programmes import load_programmes, programme_files, screen
from routing.responders import TYPED_ONLY, Policy, Responders
from routing.router import DirectoryRouter
from routing.sender import ConsoleSender, RoutingSender, Sender
from storage.factory import log_key, make_sealer, open_storage
from storage.ports import Storage


def load_all_flows(settings: Settings, catalogs: Catalogs, inputs: InputRegistry,
                   actions: ActionRegistry) -> dict[str, CompiledFlow]:
    extra = [Path(settings.flows_dir)] if settings.flows_dir else []
    return load_flows(flow_files(extra), inputs=inputs.kinds, actions=actions.names(),
                      validators=inputs.validators,
                      catalog_keys=catalogs.keys(catalogs.default))


def default_registries() -> tuple[InputRegistry, ActionRegistry]:
    inputs = InputRegistry.default()
    actions = ActionRegistry()
    register_report_actions(actions)
    register_my_reports_actions(actions)
    register_case_actions(actions)
    register_case_inputs(inputs)
    actions.load_entry_points()
    return inputs, actions


def directory_path(settings: Settings) -> Path:
    return Path(settings.directory_dir) if settings.directory_dir else SHIPPED_DIR


def programme_paths(settings: Settings) -> list[Path]:
    """The programme rules files: `ESS_PROGRAMMES_DIR`'s (instead of the shipped sample
    rules), or SettingsError when that folder holds none."""
    if not settings.programmes_dir:
        return programme_files()
    folder = Path(settings.programmes_dir)
    if not folder.is_dir():
        raise SettingsError(f"ESS_PROGRAMMES_DIR={folder}: not a folder")
    found = programme_files(folder)
    if not found:
        raise SettingsError(f"ESS_PROGRAMMES_DIR={folder}: no programme rules (*.yaml) in "
                            "that folder; see config/programmes/README.md")
    return found


@lru_cache(maxsize=4)
def _cached_directory(path: str, mtimes: tuple[float, ...]) -> Directory:
    return load_directory(Path(path))


def open_directory(settings: Settings) -> Directory:
    """The configured directory, checked (DirectoryError lists every problem)."""
    path = directory_path(settings)
    # Immutable once loaded: reuse it while its files are unchanged (tests, `ess chat`).
    mtimes = tuple(p.stat().st_mtime for p in sorted(path.glob("*"))) if path.is_dir() else ()
    return _cached_directory(str(path), mtimes)


def typed_words(catalogs: Catalogs) -> dict[str, set[str]]:
    """What responders may type for each action, in every language (catalog data)."""
    return {t: catalogs.words(f"dispatch.words.{t}")
            for t in sorted(RESPONDER_TRIGGERS | TYPED_ONLY)}


def policy(settings: Settings) -> Policy:
    return Policy(escalate_after=settings.escalate_after, remind_after=settings.remind_after)


async def open_services(settings: Settings, router: Router | None = None,
                        sender: Sender | None = None,
                        clock: Callable[[], datetime] = utcnow,
                        storage: Storage | None = None) -> Services:
    """Load catalogs, flows and the directory (failing on any problem), open storage, build
    the engine, the responder service and the dispatcher.

    `sender` defaults to the console for `console:` addresses; the channels add theirs.
    `storage`, when given, is used instead of opening the configured one (tests, benches).
    """
    # Here rather than in the CLI, so that every assembly (tests too) scrubs its logs.
    configure_logging(settings.log_format, settings.log_level, log_key(settings))
    catalogs = load_catalogs(settings)
    inputs, actions = default_registries()
    flows = load_all_flows(settings, catalogs, inputs, actions)
    gazetteer = Gazetteer.load()
    directory = open_directory(settings)
    sealer = make_sealer(settings)
    storage = storage or await open_storage(settings, sealer)
    router = router or DirectoryRouter(directory, storage.bindings, settings.max_station_km,
                                       gazetteer)
    rules = policy(settings)
    reports = Reports(storage, router, rules)
    responders = Responders(storage, router, rules, clock, typed_words(catalogs))
    sender = sender or RoutingSender({"console": ConsoleSender(catalogs)})
    dispatcher = Dispatcher(storage, sender, responders, clock=clock)
    programmes = load_programmes(programme_paths(settings))
    casework = Casework(storage, directory, catalogs, clock, screen=lambda case: [
        f.to_dict() for f in screen(case, programmes, clock().date())])
    dispatcher.cases = casework
    responders.on_welfare_referral = casework.from_incident
    reports.on_queued = responders.on_queued = dispatcher.poke
    reports.on_created = responders.created
    runner = FlowRunner(flows, inputs, actions, catalogs, InputContext(catalogs, gazetteer))
    services = Services(settings, storage, catalogs, gazetteer, router, reports, flows,
                        engine=None,  # type: ignore[arg-type]
                        sweeper=Sweeper(storage, clock=clock,
                                        retention=retention_for(storage)),
                        directory=directory,
                        responders=responders, dispatcher=dispatcher,
                        inbound=None,  # type: ignore[arg-type]
                        inbox=None,  # type: ignore[arg-type]
                        casework=casework)
    services.engine = Engine(storage, runner, catalogs, settings, services, clock=clock,
                             metrics=reports.metrics)
    services.inbound = InboundRouter(services.engine, responders, storage.bindings,
                                     storage.dedupe, settings.default_lang, clock=clock)
    services.inbox = Inbox.open(storage, settings.data_path, sealer, metrics=reports.metrics,
                                lease_seconds=journal_lease(settings))
    return services


def retention_for(storage: Storage) -> Retention:
    """The sweeper's retention step: processing.yaml's periods, enforced (a broken file
    stops start-up, like a broken flow)."""
    processing = load_processing()

    async def retain(now: datetime) -> int:
        return await run_retention(storage, processing, now)

    return retain


def journal_lease(settings: Settings) -> float:
    """`ESS_JOURNAL_LEASE`: seconds a process holds a conversation of the inbound journal
    before another may take it over (renewed while it works)."""
    return number_setting(settings, "ESS_JOURNAL_LEASE", LEASE_SECONDS, low=0.5, high=3600)
