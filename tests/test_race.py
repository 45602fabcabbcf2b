"""A reporter's optional-details tap racing a responder's acknowledgement, on every backend:
both must land whatever the order (the later writer re-reads and re-applies)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from bot.incident import Incident
from bot.services import Services
from routing import lifecycle as lc
from routing.responders import Actor, dispatch_state
from tests.dispatch_kit import report, settle
from tests.helpers import choice

STATION = "console:st6501"


@pytest.fixture
def services(services_on_every_backend: Services) -> Services:
    return services_on_every_backend


class Interleaved:
    """The real incident store, with `between` run once right after the first read: the
    other writer commits between this writer's read and its write."""

    def __init__(self, real: Any, between: Callable[[], Awaitable[object]]) -> None:
        self._real = real
        self._between: Callable[[], Awaitable[object]] | None = between

    async def get(self, reference: str) -> Incident | None:
        found = await self._real.get(reference)
        if self._between is not None:
            between, self._between = self._between, None
            await between()
        return found  # type: ignore[no-any-return]

    def __getattr__(self, name: str) -> Any:
        return getattr(self._real, name)


class Storage:
    def __init__(self, real: Any, incidents: Interleaved) -> None:
        self._real, self.incidents = real, incidents

    def __getattr__(self, name: str) -> Any:
        return getattr(self._real, name)


async def _landed(services: Services, reference: str) -> Incident:
    incident = await services.storage.incidents.get(reference)
    assert incident is not None
    assert incident.status == lc.ACKNOWLEDGED
    assert incident.details["role"] == "victim"
    assert dispatch_state(incident)["holder"]["address"] == STATION
    return incident


async def test_ack_commits_between_the_reporters_read_and_write(services: Services) -> None:
    incident = await report(services, "u1")
    await settle(services)
    acts = services.responders

    async def ack() -> None:
        assert (await acts.act(incident.reference, "ack", Actor(STATION), "line")).outcome \
            == "done"

    real = services.storage
    services.reports.storage = Storage(real, Interleaved(real.incidents, ack))  # type: ignore[assignment]
    replies = await services.engine.handle(choice("u1", "victim"))
    assert replies and replies[0].text.key == "report.after.injured"
    await _landed(services, incident.reference)


async def test_reporter_tap_commits_between_the_ack_read_and_write(services: Services) -> None:
    incident = await report(services, "u1")
    await settle(services)

    async def tap() -> None:
        await services.engine.handle(choice("u1", "victim"))

    real = services.storage
    services.responders.storage = Storage(real, Interleaved(real.incidents, tap))  # type: ignore[assignment]
    result = await services.responders.act(incident.reference, "ack", Actor(STATION), "line")
    assert result.outcome == "done"
    await _landed(services, incident.reference)


async def test_a_tap_before_the_first_card_outdates_the_copy_the_arming_starts_from(
        services: Services) -> None:
    # The report service hands its freshly committed incident to the responders, whose
    # first arming starts from that copy; a reporter's tap commits first: the arming fails
    # as stale, reads, and both land.
    incident = await report(services, "u1")
    replies = await services.engine.handle(choice("u1", "victim"))
    assert replies and replies[0].text.key == "report.after.injured"
    await settle(services)
    stored = await services.storage.incidents.get(incident.reference)
    assert stored is not None and stored.status == lc.DISPATCHED
    assert stored.details["role"] == "victim"
    assert dispatch_state(stored)["armed"] == 0
    kinds = [e.kind for e in await services.storage.incidents.timeline(stored.id)]
    assert kinds.count(lc.DISPATCHED) == 1 and "details" in kinds
