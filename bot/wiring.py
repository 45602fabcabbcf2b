"""Build everything a running service needs from settings, in one place.

The web application, `ess chat` and the tests all call `open_services`, so what they run is
the same assembly.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from bot.engine import Engine
from bot.i18n import Catalogs
from bot.logs import configure_logging
from bot.reports import Reports, register_report_actions
from bot.sweeper import Sweeper
from config.settings import Settings
from flows.actions import ActionRegistry
from flows.compiler import CompiledFlow
from flows.inputs import InputContext, InputRegistry
from flows.registry import flow_files, load_flows
from flows.runtime import FlowRunner
from routing.gazetteer import Gazetteer
from routing.ports import FallbackRouter, Router
from storage.factory import make_sealer, open_storage
from storage.ports import Storage


@dataclass
class Services:
    """The assembled service; `services` in action contexts is this object."""

    settings: Settings
    storage: Storage
    catalogs: Catalogs
    gazetteer: Gazetteer
    router: Router
    reports: Reports
    flows: dict[str, CompiledFlow]
    engine: Engine
    sweeper: Sweeper

    async def close(self) -> None:
        await self.storage.close()


def load_catalogs(settings: Settings) -> Catalogs:
    extra = [Path(settings.catalogs_dir)] if settings.catalogs_dir else []
    return Catalogs.load(extra, default=settings.default_lang)


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
    actions.load_entry_points()
    return inputs, actions


async def open_services(settings: Settings, router: Router | None = None,
                        storage: Storage | None = None) -> Services:
    """Load catalogs and flows (failing on any problem), open storage, build the engine.

    `storage`, when given, is used instead of opening the configured one (tests, benches).
    """
    # Here rather than in the CLI, so that every assembly (tests too) scrubs its logs.
    configure_logging(settings.log_format, settings.log_level)
    catalogs = load_catalogs(settings)
    inputs, actions = default_registries()
    flows = load_all_flows(settings, catalogs, inputs, actions)
    gazetteer = Gazetteer.load()
    router = router or FallbackRouter(settings.fallback_recipient, gazetteer)
    storage = storage or await open_storage(settings, make_sealer(settings))
    reports = Reports(storage, router)
    runner = FlowRunner(flows, inputs, actions, catalogs, InputContext(catalogs, gazetteer))
    services = Services(settings, storage, catalogs, gazetteer, router, reports, flows,
                        engine=None, sweeper=Sweeper(storage))  # type: ignore[arg-type]
    services.engine = Engine(storage, runner, catalogs, settings, services)
    return services
