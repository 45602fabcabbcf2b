"""The assembled service: what channels and flow actions reach through `services`.

Built by `bot.wiring.open_services` (the composition root); nothing here names a channel.
"""

from __future__ import annotations

from dataclasses import dataclass

from bot.casework import Casework
from bot.engine import Engine
from bot.i18n import Catalogs
from bot.inbound import InboundRouter
from bot.inbox import Inbox
from bot.reports import Reports
from bot.sweeper import Sweeper
from config.settings import Settings
from flows.compiler import CompiledFlow
from routing.directory import Directory
from routing.dispatcher import Dispatcher
from routing.gazetteer import Gazetteer
from routing.ports import Router
from routing.responders import Responders
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
    directory: Directory
    responders: Responders
    dispatcher: Dispatcher
    inbound: InboundRouter  # where every channel hands its events (bot.inbound)
    inbox: Inbox  # the durable inbound path (bot.inbox); its drainer runs under `ess serve`
    casework: Casework  # welfare cases from volunteers and referred incidents (bot.casework)

    async def close(self) -> None:
        await self.storage.close()
