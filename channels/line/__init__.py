"""The LINE channel: `POST /webhooks/line` in, replies and pushes out (line-bot-sdk v3 async).

The webhook checks `X-Line-Signature` (HMAC-SHA256 of the raw body, constant-time) before it
reads anything else; a bad or missing signature gets 401 and nothing happens. A good body's
events are kept in the inbound journal (bot.inbox) and the body gets 200 at once (LINE asks
for quick answers and suspends slow webhooks); 503 when they cannot be kept, so LINE
retries. They are handled from the journal, in order, by whichever process is alive.

One-to-one chats are reporters: their events go to the engine, deduplicated on
`webhookEventId`. Groups and rooms are responders: `/register CODE` binds the group, incident
card buttons (`act:` postbacks) go to the registry's responder hook, and nothing else a group
says starts a report. A group event without `userId` (a member who has not consented) is
attributed to the group, never dropped.

Settings: `ESS_LINE_CHANNEL_SECRET`, `ESS_LINE_CHANNEL_ACCESS_TOKEN`, `ESS_LINE_API_URL`.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
import time
import uuid
from collections import OrderedDict
from datetime import UTC, datetime
from typing import Any, ClassVar

import structlog
from aiohttp import web
from linebot.v3.webhooks import (
    Event,
    FollowEvent,
    GroupSource,
    JoinEvent,
    LeaveEvent,
    LocationMessageContent,
    MessageEvent,
    PostbackEvent,
    RoomSource,
    TextMessageContent,
    UserSource,
)

from bot.inbox import Arrival, InboxUnavailable
from bot.incident import REFERENCE_PREFIX, Notification
from bot.types import Inbound, Kind, Location, LocationSource, Reply, Text
from channels.base import (
    ACTION_PREFIX,
    Card,
    Channel,
    ChannelContext,
    Outbound,
    SendResult,
    optional_setting,
    own_address,
    setting,
)
from channels.cards import card_for
from channels.line.api import DEFAULT_API_URL, LineApi
from channels.line.render import ABILITIES, batches, card_message, reply_messages
from config.settings import Settings

log = structlog.get_logger(__name__)

CHANNEL = "line"
REPLY_TOKEN_SECONDS = 50  # LINE guarantees a reply token for one minute; keep a margin
SEEN_EVENTS = 10_000  # in-process dedupe of group events (reporter events dedupe durably)
REGISTER_COMMAND = "/register"
_NAMES_INCIDENT = re.compile(rf"(?<![A-Za-z0-9]){REFERENCE_PREFIX}[\s\-]*[A-Za-z0-9]{{5}}",
                             re.I)
MAX_EVENTS = 100
_RETRY_NS = uuid.UUID("5b0c3e6a-8f0e-4d43-9a4e-2f0b8a6c9d11")

# Rich-menu postbacks, mapped to what a person could also type or tap.
MENU = {
    "menu:report": (Kind.START, "report"),
    "menu:silent": (Kind.CHOICE, "cmd:silent"),
    "menu:help": (Kind.CHOICE, "cmd:help"),
}
MENU_MINE = "menu:mine"


def signature_ok(secret: bytes, body: bytes, signature: str) -> bool:
    """LINE's webhook signature: base64(HMAC-SHA256(channel secret, raw body))."""
    expected = base64.b64encode(hmac.new(secret, body, hashlib.sha256).digest())
    return hmac.compare_digest(expected, signature.encode("ascii", "replace"))


def _error(status: int, message: str) -> web.Response:
    return web.json_response({"error": message}, status=status)


class LineChannel(Channel):
    """LINE Official Account: reporters in one-to-one chats, responders in groups."""

    name: ClassVar[str] = CHANNEL
    abilities = ABILITIES

    def __init__(self, secret: str, access_token: str, api_url: str = DEFAULT_API_URL,
                 default_lang: str = "th") -> None:
        self._secret = secret.encode()
        self.api = LineApi(access_token, api_url)
        self.default_lang = default_lang
        self._seen: OrderedDict[str, None] = OrderedDict()

    @classmethod
    def from_settings(cls, settings: Settings) -> LineChannel:
        return cls(setting(settings, "ESS_LINE_CHANNEL_SECRET", channel=CHANNEL),
                   setting(settings, "ESS_LINE_CHANNEL_ACCESS_TOKEN", channel=CHANNEL),
                   optional_setting(settings, "ESS_LINE_API_URL", DEFAULT_API_URL),
                   settings.default_lang)

    def routes(self, router: web.UrlDispatcher) -> None:
        router.add_post("/webhooks/line", self.webhook)

    async def start(self, ctx: ChannelContext) -> None:
        await super().start(ctx)
        await self.api.open()

    async def stop(self) -> None:
        await self.api.close()

    # -- webhook ----------------------------------------------------------------------------

    async def webhook(self, request: web.Request) -> web.Response:
        """Verify, parse, answer 200 and handle the events in the background."""
        limit = self.ctx.services.settings.max_body_bytes
        if request.content_length is not None and request.content_length > limit:
            return _error(413, "body too large")
        signature = request.headers.get("X-Line-Signature", "")
        body = await request.read()
        if not signature or not signature_ok(self._secret, body, signature):
            log.warning("line.webhook.bad_signature", present=bool(signature))
            return _error(401, "invalid signature")
        try:
            data = json.loads(body)
            raw_events = data["events"]
            if not isinstance(raw_events, list) or len(raw_events) > MAX_EVENTS \
                    or not all(isinstance(e, dict) and "type" in e for e in raw_events):
                raise ValueError
        except (ValueError, KeyError, TypeError):
            log.warning("line.webhook.malformed")
            return _error(400, "body is not a LINE webhook")
        events = [e for e in map(self._parse_event, raw_events) if e is not None]
        try:
            # Kept before the 200: handled from the journal, in order, by any process.
            await self.ctx.services.inbox.accept(
                [a for a in map(self._arrival, events) if a is not None])
        except InboxUnavailable:
            return _error(503, "cannot take events now, retry")
        return web.json_response({})

    @staticmethod
    def _arrival(event: Event) -> Arrival | None:
        source = getattr(event, "source", None)
        chat = source.group_id if isinstance(source, GroupSource) else \
            source.room_id if isinstance(source, RoomSource) else \
            source.user_id if isinstance(source, UserSource) else None
        if not chat:
            return None  # no one to answer, as before
        try:
            at = datetime.fromtimestamp(event.timestamp / 1000, UTC)
        except (OverflowError, ValueError, OSError):
            at = datetime.now(UTC)  # an absurd timestamp must not refuse the whole body
        inbound = Inbound(CHANNEL, chat, Kind.OTHER, str(event.webhook_event_id), None, at)
        return Arrival(inbound, json.loads(event.to_json()))

    async def arrived(self, arrival: Arrival) -> None:
        """One event out of the journal; a replayed one whose reply token went stale is
        answered by push (`_reply_token`)."""
        event = Event.from_dict(dict(arrival.event))
        if event is not None:
            await self._handle_all([event])

    @staticmethod
    def _parse_event(raw: dict[str, Any]) -> Event | None:
        try:
            event = Event.from_dict(raw)
        except (ValueError, KeyError, TypeError):
            event = None
        if event is None and raw.get("type") == "message":
            # A message type newer than the SDK: still a person waiting for an answer, so
            # read it as the media we cannot understand (the flow re-prompts politely).
            placeholder = {"type": "sticker", "id": "0", "quoteToken": "",
                           "packageId": "0", "stickerId": "0",
                           "stickerResourceType": "STATIC"}
            try:
                event = Event.from_dict({**raw, "message": placeholder})
            except (ValueError, KeyError, TypeError):
                event = None
        if event is None or not getattr(event, "webhook_event_id", None):
            # A new or odd event type must not fail the others in the body.
            log.info("line.webhook.skipped_event", type=str(raw.get("type"))[:40])
            return None
        return event

    async def _handle_all(self, events: list[Event]) -> None:
        # One task per body keeps a person's events in the order LINE sent them.
        for event in events:
            try:
                await self._handle(event)
            except Exception as exc:
                log.error("line.event_failed", type=getattr(event, "type", "?"),
                          error=type(exc).__name__, exc_info=exc)

    async def _handle(self, event: Event) -> None:
        source = getattr(event, "source", None)
        if isinstance(source, GroupSource | RoomSource):
            await self._group_event(event, source)
        elif isinstance(source, UserSource) and source.user_id:
            await self._user_event(event, source.user_id)

    # -- reporters (one-to-one) -------------------------------------------------------------

    def _inbound(self, event: Event, sender: str) -> Inbound | None:
        event_id = str(event.webhook_event_id)
        at = datetime.fromtimestamp(event.timestamp / 1000, UTC)

        def make(kind: Kind, payload: str | Location | None = None) -> Inbound:
            return Inbound(CHANNEL, sender, kind, event_id, payload, at)

        if isinstance(event, FollowEvent):
            return make(Kind.START)
        if isinstance(event, MessageEvent):
            message = event.message
            if isinstance(message, TextMessageContent):
                return make(Kind.TEXT, message.text)
            if isinstance(message, LocationMessageContent):
                place = message.address or message.title or None
                return make(Kind.LOCATION, Location(message.latitude, message.longitude,
                                                    LocationSource.REPORTER_PIN, text=place))
            return make(Kind.MEDIA)
        if isinstance(event, PostbackEvent):
            data = event.postback.data
            if data in MENU:
                kind, value = MENU[data]
                return make(kind, value)
            return make(Kind.CHOICE, data)
        return None

    async def _user_event(self, event: Event, user_id: str) -> None:
        inbound = self._inbound(event, user_id)
        if inbound is None:
            return
        if inbound.kind is Kind.CHOICE and inbound.text == MENU_MINE:
            if self._already_seen(inbound.event_id):
                return
            replies = [Reply(Text("line.menu.mine"), self.default_lang)]
        elif inbound.kind is Kind.CHOICE and inbound.text.startswith(ACTION_PREFIX):
            if self._already_seen(inbound.event_id):
                return
            inbound = Inbound(CHANNEL, user_id, Kind.CHOICE, inbound.event_id, inbound.payload,
                              inbound.at, {"actor": f"{CHANNEL}:{user_id}",
                                           "chat": f"{CHANNEL}:{user_id}"})
            replies = await self.ctx.registry.responder_action(inbound, self.default_lang)
        else:
            replies = await self.ctx.services.engine.handle(inbound)
        await self._deliver(user_id, replies, event)

    # -- responders (groups and rooms) ------------------------------------------------------

    async def _group_event(self, event: Event, source: GroupSource | RoomSource) -> None:
        chat = source.group_id if isinstance(source, GroupSource) else source.room_id
        address = f"{CHANNEL}:{chat}"
        event_id = str(event.webhook_event_id)
        if self._already_seen(event_id):
            return
        lang = self.default_lang
        bindings = self.ctx.services.storage.bindings
        replies: list[Reply] = []
        if isinstance(event, JoinEvent):
            replies = [Reply(Text("line.group.joined"), lang)]
        elif isinstance(event, LeaveEvent):
            removed = await bindings.unbind(address)
            log.info("line.group.left", bindings_removed=removed)
        elif isinstance(event, MessageEvent) and isinstance(event.message, TextMessageContent):
            words = event.message.text.strip().split()
            if words and words[0].casefold() == REGISTER_COMMAND:
                code = "".join(words[1:2]).upper()
                binding = await bindings.redeem(code, address, datetime.now(UTC)) \
                    if code else None
                if binding is None:
                    replies = [Reply(Text("line.group.code_invalid"), lang)]
                else:
                    log.info("line.group.bound", area=binding.area, agency=binding.agency)
                    replies = [Reply(Text("line.group.bound", {
                        "area": binding.area, "agency": binding.agency}), lang)]
            elif _NAMES_INCIDENT.search(event.message.text):
                # "ESS-7K3F9: we are on our way" or "ack ESS-7K3F9": for the lifecycle.
                # Other group chatter is the responders' own and is left alone.
                actor = f"{CHANNEL}:{source.user_id}" if source.user_id else address
                inbound = Inbound(CHANNEL, chat, Kind.TEXT, event_id, event.message.text,
                                  datetime.fromtimestamp(event.timestamp / 1000, UTC),
                                  {"actor": actor, "chat": address})
                replies = await self.ctx.registry.responder_action(inbound, lang)
        elif isinstance(event, PostbackEvent) and \
                event.postback.data.startswith(ACTION_PREFIX):
            # LINE omits userId for members who have not consented: the group acts.
            actor = f"{CHANNEL}:{source.user_id}" if source.user_id else address
            inbound = Inbound(CHANNEL, chat, Kind.CHOICE, event_id, event.postback.data,
                              datetime.fromtimestamp(event.timestamp / 1000, UTC),
                              {"actor": actor, "chat": address})
            replies = await self.ctx.registry.responder_action(inbound, lang)
        if replies:
            await self._deliver(chat, replies, event)

    def _already_seen(self, event_id: str) -> bool:
        if event_id in self._seen:
            return True
        self._seen[event_id] = None
        while len(self._seen) > SEEN_EVENTS:
            self._seen.popitem(last=False)
        return False

    # -- output -----------------------------------------------------------------------------

    def _reply_token(self, event: Event) -> str | None:
        token = getattr(event, "reply_token", None)
        context = getattr(event, "delivery_context", None)
        if not token or (context is not None and context.is_redelivery):
            return None  # a redelivered event's token is stale: push instead
        if time.time() - event.timestamp / 1000 > REPLY_TOKEN_SECONDS:
            return None
        return str(token)

    async def _deliver(self, to: str, replies: list[Reply], event: Event) -> None:
        """Reply with the token (once), push what it could not carry."""
        if not replies:
            return
        silent = any(r.silent for r in replies)
        groups = batches(list(reply_messages(replies, self.ctx.services.catalogs)))
        token = self._reply_token(event)
        for index, messages in enumerate(groups):
            if index == 0 and token:
                if (await self.api.reply(token, messages, silent)).ok:
                    continue
                log.info("line.reply_token_unusable")
            key = str(uuid.uuid5(_RETRY_NS, f"{event.webhook_event_id}:{index}"))
            result = await self.api.push_with_retries(to, messages, key=key, silent=silent)
            if not result.ok:
                log.error("line.deliver_failed", outcome=result.outcome.value,
                          error=result.error)

    async def send(self, address: str, message: Outbound, *, key: str,
                   silent: bool = False) -> SendResult:
        """One push (the dispatcher retries on RETRY with the same key)."""
        to = own_address(address, CHANNEL)
        if to is None:
            return SendResult.failed("not a LINE address")
        catalogs = self.ctx.services.catalogs
        if isinstance(message, Notification):
            message = card_for(message, self.default_lang)
        if isinstance(message, Card):
            messages: list[Any] = [card_message(message, catalogs)]
        else:
            messages = list(reply_messages([message], catalogs))
            silent = silent or message.silent
        return await self.api.push(to, messages, key=key, silent=silent)
