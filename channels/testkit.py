"""A test kit for channels (built-in and third-party): tables of incoming and outgoing cases,
run the same way for every channel, in the manner of RapidPro courier's
`RunIncomingTestCases` / `RunOutgoingTestCases`.

Incoming: each case is one request as the far end sends it (body, headers) and what the core
must receive from it: the status the channel answers, and the `Inbound` handed to the
inbound router (kind, sender, payload, chat kind), or nothing. Outgoing: each case is one
message the core makes (a `Reply` or a `ResponderCard` from the real producers) sent to an
address, the `SendResult` expected, and texts the far end must have received.

    await run_incoming_cases(post, services.inbound, settle, [
        IncomingCase("text", body, headers, expect=Expect(Kind.TEXT, "U1", "hello")),
        IncomingCase("bad signature", body, {}, status=401),
    ])
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field

from bot.inbound import InboundRouter
from bot.outbound import Outbound, SendOutcome, SendResult
from bot.types import ChatKind, Inbound, Kind, Reply


@dataclass(frozen=True)
class Expect:
    """What the inbound router must receive (payload None: not checked)."""

    kind: Kind
    sender: str
    payload: object = None
    chat: ChatKind = ChatKind.PRIVATE


@dataclass(frozen=True)
class IncomingCase:
    label: str
    body: bytes
    headers: Mapping[str, str] = field(default_factory=dict)
    status: int = 200
    expect: Expect | None = None  # None: nothing may reach the core


@dataclass(frozen=True)
class OutgoingCase:
    label: str
    address: str
    message: Outbound
    outcome: SendOutcome = SendOutcome.SENT
    contains: tuple[str, ...] = ()  # in what the far end received for this case


Post = Callable[[IncomingCase], Awaitable[int]]
Send = Callable[..., Awaitable[SendResult]]


async def run_incoming_cases(post: Post, router: InboundRouter,
                             settle: Callable[[], Awaitable[None]],
                             cases: Sequence[IncomingCase]) -> None:
    """Post every case; check the status and exactly what reached the inbound router."""
    seen: list[Inbound] = []

    async def everything(inbound: Inbound) -> bool:
        seen.append(inbound)
        return True

    async def nothing_back(inbound: Inbound) -> list[Reply]:
        return []

    router.add("testkit", everything, nothing_back, before=router.routes[0].name)
    try:
        for case in cases:
            seen.clear()
            status = await post(case)
            await settle()
            assert status == case.status, f"{case.label}: status {status}, not {case.status}"
            if case.expect is None:
                assert seen == [], f"{case.label}: {len(seen)} event(s) reached the core"
                continue
            assert len(seen) == 1, f"{case.label}: {len(seen)} events reached the core"
            got, want = seen[0], case.expect
            assert (got.kind, got.sender, got.chat) == (want.kind, want.sender, want.chat), \
                f"{case.label}: got {(got.kind, got.sender, got.chat)}"
            if want.payload is not None:
                assert got.payload == want.payload, f"{case.label}: payload {got.payload!r}"
    finally:
        router.routes = [r for r in router.routes if r.name != "testkit"]


async def run_outgoing_cases(send: Send, received: Callable[[], str | Awaitable[str]],
                             cases: Sequence[OutgoingCase]) -> None:
    """Send every case; check the result and what the far end got for it.

    `received` is everything the far end holds so far, as text (awaitable when the far end
    is a store, e.g. the web chat's shared transcript)."""

    async def far_end() -> str:
        got = received()
        return got if isinstance(got, str) else await got

    for index, case in enumerate(cases):
        before = await far_end()
        result = await send(case.address, case.message, key=f"testkit-{index}-{case.label}")
        assert result.outcome is case.outcome, \
            f"{case.label}: {result.outcome.value} ({result.error})"
        new = (await far_end())[len(before):]
        for text in case.contains:
            assert text in new, f"{case.label}: {text!r} not in what was delivered"
