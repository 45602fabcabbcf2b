"""500 conversations interleaved at random all complete, each strictly in its own order."""

from __future__ import annotations

import asyncio
import random

from bot.services import Services
from bot.types import Inbound, Reply
from tests.helpers import choice, pin, start, text

TYPES = ["threat", "confinement", "sexual_risk", "deranged", "gathering"]
EXPECTED = [["common.greeting", "report.type.prompt"], ["report.location.prompt"],
            ["report.phone.prompt"], ["report.confirm.prompt"],
            ["report.after.role"]]  # the receipt is the outbox's (bot.reports)


def script(i: int) -> list[Inbound]:
    sender = f"c{i}"
    return [start(sender), choice(sender, TYPES[i % 5]),
            pin(sender, 6.0 + i / 100, 100.0), text(sender, f"08{i:08d}"),
            choice(sender, "send")]


async def test_500_interleaved_conversations(services: Services) -> None:
    rng = random.Random(2023)
    n = 500
    scripts = {i: script(i) for i in range(n)}
    # A random global arrival order that keeps each conversation's own order.
    order = [i for i in range(n) for _ in range(len(EXPECTED))]
    rng.shuffle(order)
    cursor = dict.fromkeys(range(n), 0)
    arrivals: list[tuple[int, Inbound]] = []
    for i in order:
        arrivals.append((i, scripts[i][cursor[i]]))
        cursor[i] += 1

    answers: dict[int, list[list[str]]] = {i: [] for i in range(n)}

    async def deliver(i: int, inbound: Inbound) -> None:
        replies: list[Reply] = await services.engine.handle(inbound)
        answers[i].append([r.text.key for r in replies])

    # Tasks are created in arrival order and all run at once.
    await asyncio.gather(*(deliver(i, ev) for i, ev in arrivals))

    incidents = await services.storage.incidents.recent(limit=10 * n)
    assert len(incidents) == n
    by_phone = {inc.phone: inc for inc in incidents}
    for i in range(n):
        assert answers[i] == EXPECTED, f"conversation {i} answered out of order"
        incident = by_phone[f"+668{i:08d}"]
        assert incident.type == TYPES[i % 5]
        assert incident.location.lat == 6.0 + i / 100
        assert incident.reporter == f"test:c{i}"
    # Every report queued its notifications (a station and its area's groups each).
    assert await services.storage.outbox.pending() >= n
    # Every lock was released and forgotten.
    assert len(services.storage.locks) == 0  # type: ignore[arg-type]
