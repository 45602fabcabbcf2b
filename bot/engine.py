"""The engine: one inbound event in, replies out, every step in a fixed order.

    lock(conversation) → load(session, dedupe) → step the flow → save(session + event id)

The session is loaded *after* the lock is taken: loading first lets two events of one
conversation both read the old state and the second overwrite the first (aiogram#1317).
The dedupe check sits inside the lock too, so two deliveries of one event cannot both pass;
the event id is recorded in the same write as the session, so a crash between them cannot
leave an event half-handled. Different conversations run concurrently.
"""

from __future__ import annotations

import contextlib
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import replace
from datetime import datetime, timedelta
from typing import Any

import structlog

from bot.i18n import Catalogs
from bot.metrics import Metrics, standard
from bot.session import Session
from bot.types import RESUME_ON_DUPLICATE, RETRIED_IF_FAILED, Inbound, Kind, Reply, Text, utcnow
from config.settings import Settings
from flows.runtime import FlowRunner
from storage.ports import StaleSession, Storage

log = structlog.get_logger(__name__)

REPORT_FLOW = "report"
VOLUNTEER_FLOW = "volunteer_case"
SILENT_FLOW = "silent"
MAX_TEXT = 10_000
RECENTLY_SILENT_MAX = 10_000  # longer text is cut before any parsing; the step re-prompts anyway

Listener = Callable[[Session, Inbound], Awaitable[None]]


class Engine:
    """Handles inbound events for every channel."""

    def __init__(self, storage: Storage, runner: FlowRunner, catalogs: Catalogs,
                 settings: Settings, services: Any, clock: Callable[[], datetime] = utcnow,
                 metrics: Metrics | None = None):
        self.storage = storage
        self.runner = runner
        self.catalogs = catalogs
        self.settings = settings
        self.services = services
        self.clock = clock
        self.after_commit: list[Listener] = []
        self.metrics = metrics or standard()
        # Conversations recently seen in silent mode, so that even when storage is down and
        # the session cannot be read, the failure reply stays quiet. Best effort, bounded.
        self._recently_silent: OrderedDict[str, None] = OrderedDict()
        self._codewords = {w.casefold() for w in settings.silent_codewords}
        self._drill_words = {w.casefold() for w in settings.drill_words}

    async def handle(self, inbound: Inbound) -> list[Reply]:
        """Replies for one event; [] for a duplicate. Never raises for what a person sent."""
        inbound = _bounded(inbound)
        structlog.contextvars.bind_contextvars(conversation=inbound.conversation,
                                               channel=inbound.channel)
        try:
            return await self._handle(inbound)
        finally:
            structlog.contextvars.unbind_contextvars("conversation", "channel")

    async def _handle(self, inbound: Inbound) -> list[Reply]:
        async with contextlib.AsyncExitStack() as stack:
            try:
                # The event key lets a shared store read the session with the lock.
                await stack.enter_async_context(self.storage.locks.hold(
                    inbound.conversation, _event_key(inbound)))
            except Exception as exc:
                # A shared lock lives in Redis: when it cannot be had (the server is lost, or
                # another process holds the conversation too long) the message fails cleanly.
                if RETRIED_IF_FAILED.get():
                    raise  # the journal tries it again: nothing to tell the person yet
                return self._failed(None, inbound, self.settings.default_lang, exc)
            return await self._locked(inbound)
        raise AssertionError("unreachable")  # pragma: no cover

    async def _locked(self, inbound: Inbound) -> list[Reply]:
        event_key = _event_key(inbound)
        lang = self.settings.default_lang
        for attempt in range(3):
            session: Session | None = None
            try:
                loaded = await self.storage.sessions.load(inbound.conversation, event_key)
                if loaded.duplicate:
                    log.info("engine.duplicate", kind=inbound.kind.value)
                    self.metrics.inc("ess_inbound_total", channel=inbound.channel,
                                     outcome="duplicate")
                    again = loaded.session
                    if inbound.hints.get(RESUME_ON_DUPLICATE) and again and again.active:
                        return self.runner.resume(again)
                    return []
                session = loaded.session or self._new_session(inbound)
                lang = session.lang
                replies = await self._step(session, inbound)
                now = self.clock()
                session.updated_at = now
                session.expires_at = now + timedelta(seconds=self._idle(session))
                await self.storage.sessions.save(session, event_key)
            except StaleSession:
                # Another writer (the idle sweep) got there first: reload and step again.
                log.warning("engine.stale_session", attempt=attempt)
                continue
            except Exception as exc:
                if RETRIED_IF_FAILED.get():
                    log.warning("engine.failed_will_retry", error=type(exc).__name__)
                    raise
                return self._failed(session, inbound, lang, exc)
            self.metrics.inc("ess_inbound_total", channel=inbound.channel, outcome="handled")
            self._remember_silent(session)
            for listener in self.after_commit:
                await listener(session, inbound)
            return replies
        log.error("engine.gave_up")
        return [Reply(Text("common.unavailable"), lang)]

    def _failed(self, session: Session | None, inbound: Inbound, lang: str,
                exc: Exception) -> list[Reply]:
        self.metrics.inc("ess_inbound_total", channel=inbound.channel, outcome="failed")
        # If the report was stored before the failure, the incident and its outbox rows are
        # committed, the receipt among them: the outbox tells the reporter, so nothing here
        # may (a second "received"), nor say "not received". Only the session was not saved;
        # a "send" tapped again finds the same incident (bot.reports).
        if session is not None and session.slots.get("reference"):
            log.error("engine.session_save_failed_after_submit", error=type(exc).__name__)
            return []
        log.error("engine.failed", error=type(exc).__name__, exc_info=exc)
        # When the session could not even be loaded, the channel's hint is all we know; a
        # silent reporter gets the neutral wording, without sound (invariant 5).
        silent = session.silent if session is not None else (
            inbound.hints.get("flow") == SILENT_FLOW
            or inbound.conversation in self._recently_silent)
        key = "silent.not_received" if silent else "common.unavailable"
        return [Reply(Text(key), lang, silent=silent)]

    def _remember_silent(self, session: Session) -> None:
        if session.silent:
            self._recently_silent[session.conversation] = None
            self._recently_silent.move_to_end(session.conversation)
            while len(self._recently_silent) > RECENTLY_SILENT_MAX:
                self._recently_silent.popitem(last=False)
        else:
            self._recently_silent.pop(session.conversation, None)

    def _new_session(self, inbound: Inbound) -> Session:
        lang = inbound.hints.get("lang", "")
        return Session(inbound.conversation,
                       lang=lang if self.catalogs.has(lang) else self.settings.default_lang)

    def _idle(self, session: Session) -> float:
        if session.flow and session.flow in self.runner.flows:
            flow_idle = self.runner.flows[session.flow].flow.idle_timeout
            if flow_idle:
                return flow_idle
        return self.settings.session_idle

    async def _step(self, session: Session, inbound: Inbound) -> list[Reply]:
        now = self.clock()
        if session.active and session.expires_at and session.expires_at <= now:
            session.end()
            session.expired = True
        prefix: list[Reply] = []
        if session.expired:
            session.expired = False
            prefix.append(Reply(Text("common.expired"), session.lang))
        if session.active and inbound.kind is Kind.START:
            # A rich-menu tap, a re-follow or a reopened page: switch if it names another
            # flow, otherwise show where the conversation stands.
            wanted = self._wanted_flow(inbound)
            if wanted in self.runner.flows and wanted != session.flow:
                session.end()
                return prefix + await self._begin(session, inbound)
            return prefix + self.runner.resume(session)
        if session.active:
            return prefix + await self.runner.handle(session, inbound, self.services)
        asked = await self.runner.inquire(session, inbound, self.services)
        if asked is not None:
            return prefix + asked  # "my reports" or a reference: no report is started
        return prefix + await self._begin(session, inbound)

    @staticmethod
    def _wanted_flow(inbound: Inbound) -> str:
        if inbound.hints.get("flow"):
            return inbound.hints["flow"]
        if inbound.kind is Kind.START and inbound.payload:
            return str(inbound.payload)
        if inbound.kind is Kind.CHOICE and inbound.text == "cmd:silent":
            return SILENT_FLOW
        return ""

    async def _begin(self, session: Session, inbound: Inbound) -> list[Reply]:
        """Pick the flow for a conversation that is in none."""
        typed = " ".join(inbound.text.split()).casefold()
        wanted = self._wanted_flow(inbound)
        session.drill = self.settings.demo_mode or typed in self._drill_words
        if typed in self._codewords or wanted == SILENT_FLOW:
            session.silent = True
            return await self.runner.start(session, SILENT_FLOW, inbound, self.services)
        flow = wanted if wanted in self.runner.flows else REPORT_FLOW
        if not wanted and inbound.hints.get("volunteer") and VOLUNTEER_FLOW in self.runner.flows:
            flow = VOLUNTEER_FLOW  # bot.inbound marks a registered volunteer's chat
        prefix = [Reply(Text("common.greeting"), session.lang)]
        if session.drill:
            prefix.append(Reply(Text("common.drill"), session.lang))
        return await self.runner.start(session, flow, inbound, self.services, prefix=prefix)


def _event_key(inbound: Inbound) -> str:
    return f"{inbound.channel}:{inbound.event_id}"


def _bounded(inbound: Inbound) -> Inbound:
    if isinstance(inbound.payload, str) and len(inbound.payload) > MAX_TEXT:
        return replace(inbound, payload=inbound.payload[:MAX_TEXT])
    return inbound
