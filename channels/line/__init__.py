"""The LINE channel: `POST /webhooks/line` in, replies and pushes out (line-bot-sdk v3 async).

The webhook checks `X-Line-Signature` (HMAC-SHA256 of the raw body, constant-time) before it
reads anything else; a bad or missing signature gets 401 and nothing happens. A good body's
events are kept in the inbound journal (bot.inbox) and the body gets 200 at once (LINE asks
for quick answers and suspends slow webhooks); 503 when they cannot be kept, so LINE
retries. They are handled from the journal, in order, by whichever process is alive.

Every event becomes one `Inbound` handed to the core's inbound router, which decides who it
is for (a reporter, a responder, `/register CODE`): a group or room says so in `chat`, and a
group event without `userId` (a member who has not consented) is attributed to the group,
never dropped. The replies come back here and are rendered as LINE messages.

A photo in a 1:1 chat becomes a `Media` whose `fetch` reads its content from the data API
(`channels.line.content`) only when a flow step keeps photos, in the journaled handling path;
1:1 chats carry the hint `photos` (this channel can send them).

Settings: `ESS_LINE_CHANNEL_SECRET`, `ESS_LINE_CHANNEL_ACCESS_TOKEN`, `ESS_LINE_API_URL`,
`ESS_LINE_DATA_API_URL` (message content).
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import hmac
import time
import uuid
from datetime import UTC, datetime
from typing import Any, ClassVar

import structlog
from aiohttp import web
from linebot.v3.webhooks import (
    Event,
    FollowEvent,
    GroupSource,
    ImageMessageContent,
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
from bot.outbound import Outbound, ResponderCard, SendResult
from bot.types import (
    PHOTOS_HINT,
    ChatKind,
    Inbound,
    Kind,
    Location,
    LocationSource,
    Media,
    MediaContent,
    Reply,
)
from channels.base import (
    Channel,
    ChannelContext,
    optional_setting,
    own_address,
    setting,
)
from channels.bodies import TooOld, event_time, load_json, secret_equal
from channels.line.api import DEFAULT_API_URL, LineApi
from channels.line.content import LineContent
from channels.line.profiles import ProfileLanguages
from channels.line.render import ABILITIES, batches, card_message, reply_bodies
from channels.line.richmenu import DEFAULT_DATA_API_URL
from config.settings import Settings

log = structlog.get_logger(__name__)

CHANNEL = "line"
REPLY_TOKEN_SECONDS = 50  # LINE guarantees a reply token for one minute; keep a margin
MAX_EVENTS = 100
_RETRY_NS = uuid.UUID("5b0c3e6a-8f0e-4d43-9a4e-2f0b8a6c9d11")

# Rich-menu postbacks, mapped to what a person could also type or tap.
MENU = {
    "menu:report": (Kind.START, "report"),
    "menu:silent": (Kind.CHOICE, "cmd:silent"),
    "menu:help": (Kind.CHOICE, "cmd:help"),
    "menu:mine": (Kind.CHOICE, "cmd:mine"),
}


def signature_ok(secret: bytes, body: bytes, signature: str) -> bool:
    """LINE's webhook signature: base64(HMAC-SHA256(channel secret, raw body))."""
    expected = base64.b64encode(hmac.new(secret, body, hashlib.sha256).digest())
    return secret_equal(expected, signature)


def _error(status: int, message: str) -> web.Response:
    return web.json_response({"error": message}, status=status)


class LineChannel(Channel):
    """LINE Official Account: reporters in one-to-one chats, responders in groups."""

    name: ClassVar[str] = CHANNEL
    abilities = ABILITIES

    def __init__(self, secret: str, access_token: str, api_url: str = DEFAULT_API_URL,
                 default_lang: str = "th", data_api_url: str = DEFAULT_DATA_API_URL) -> None:
        self._secret = secret.encode()
        self.api = LineApi(access_token, api_url)
        self.content = LineContent(access_token, data_api_url)
        self.profiles = ProfileLanguages(self.api)
        self.default_lang = default_lang

    @classmethod
    def from_settings(cls, settings: Settings) -> LineChannel:
        return cls(setting(settings, "ESS_LINE_CHANNEL_SECRET", channel=CHANNEL),
                   setting(settings, "ESS_LINE_CHANNEL_ACCESS_TOKEN", channel=CHANNEL),
                   optional_setting(settings, "ESS_LINE_API_URL", DEFAULT_API_URL),
                   settings.default_lang,
                   optional_setting(settings, "ESS_LINE_DATA_API_URL", DEFAULT_DATA_API_URL))

    def routes(self, router: web.UrlDispatcher) -> None:
        router.add_post("/webhooks/line", self.webhook)

    @classmethod
    def add_commands(cls, commands: argparse._SubParsersAction[Any]) -> None:
        from channels.line.commands import add_commands

        add_commands(commands)

    async def start(self, ctx: ChannelContext) -> None:
        await super().start(ctx)
        await self.api.open()
        await self.content.open()

    async def stop(self) -> None:
        await self.api.close()
        await self.content.close()

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
            data = load_json(body)
            raw_events = data["events"]
            if not isinstance(raw_events, list) or len(raw_events) > MAX_EVENTS \
                    or not all(isinstance(e, dict) and "type" in e for e in raw_events):
                raise ValueError
        except (ValueError, KeyError, TypeError):
            log.warning("line.webhook.malformed")
            return _error(400, "body is not a LINE webhook")
        parsed = [p for p in map(self._parse_event, raw_events) if p is not None]
        try:
            # Kept before the 200: handled from the journal, in order, by any process.
            await self.ctx.services.inbox.accept(
                [a for a in (self._arrival(*p) for p in parsed) if a is not None])
        except InboxUnavailable:
            return _error(503, "cannot take events now, retry")
        return web.json_response({})

    @staticmethod
    def _arrival(event: Event, raw: dict[str, Any]) -> Arrival | None:
        """The journal's entry for `event`, kept as the JSON it was read from: the SDK
        reads it the same way again in `arrived`, and writing it back out through the
        models only to read it in again was a measurable share of a report's CPU."""
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
        return Arrival(inbound, raw)

    async def arrived(self, arrival: Arrival) -> None:
        """One event out of the journal; a replayed one whose reply token went stale is
        answered by push (`_reply_token`)."""
        event = Event.from_dict(dict(arrival.event))
        if event is not None:
            # Raises when it could not be handled: the journal tries the entry again.
            await self._handle(event)

    @staticmethod
    def _parse_event(raw: dict[str, Any]) -> tuple[Event, dict[str, Any]] | None:
        """The event and the JSON it was read from; None for one that is not handled."""
        try:
            event_time(raw.get("timestamp"))
        except TooOld as exc:
            # A captured body replayed after dedupe forgot it: never handled twice.
            log.warning("line.webhook.stale_event", type=str(raw.get("type"))[:40],
                        reason=str(exc))
            return None
        except ValueError:
            log.warning("line.webhook.bad_timestamp", type=str(raw.get("type"))[:40])
            return None
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
            raw = {**raw, "message": placeholder}
            try:
                event = Event.from_dict(raw)
            except (ValueError, KeyError, TypeError):
                event = None
        if event is None or not getattr(event, "webhook_event_id", None):
            # A new or odd event type must not fail the others in the body.
            log.info("line.webhook.skipped_event", type=str(raw.get("type"))[:40])
            return None
        return event, raw

    async def _handle(self, event: Event) -> None:
        source = getattr(event, "source", None)
        if isinstance(source, GroupSource | RoomSource):
            chat = source.group_id if isinstance(source, GroupSource) else source.room_id
            # LINE omits userId for members who have not consented: the group acts.
            actor = f"{CHANNEL}:{source.user_id}" if source.user_id else f"{CHANNEL}:{chat}"
            inbound = self._inbound(event, chat, ChatKind.GROUP, actor)
        elif isinstance(source, UserSource) and source.user_id:
            chat = source.user_id
            inbound = self._inbound(event, chat, ChatKind.PRIVATE, f"{CHANNEL}:{chat}")
        else:
            return
        if inbound is None:
            return
        if inbound.chat is ChatKind.PRIVATE:
            inbound = await self.profiles.hinted(inbound, self.ctx.services.catalogs)
        replies = await self.ctx.services.inbound.handle(inbound)
        await self._deliver(chat, replies, event)

    def _inbound(self, event: Event, sender: str, chat: ChatKind, actor: str) -> Inbound | None:
        event_id = str(event.webhook_event_id)
        at = datetime.fromtimestamp(event.timestamp / 1000, UTC)

        # A 1:1 chat can send photos that a flow may keep (documents of a case).
        hints = {"actor": actor, **({PHOTOS_HINT: "1"} if chat is ChatKind.PRIVATE else {})}

        def make(kind: Kind, payload: str | Location | Media | None = None) -> Inbound:
            return Inbound(CHANNEL, sender, kind, event_id, payload, at, hints, chat)

        if isinstance(event, FollowEvent | JoinEvent):
            return make(Kind.START)
        if isinstance(event, LeaveEvent):
            return make(Kind.LEAVE)
        if isinstance(event, MessageEvent):
            message = event.message
            if isinstance(message, TextMessageContent):
                return make(Kind.TEXT, message.text)
            if isinstance(message, LocationMessageContent):
                place = message.address or message.title or None
                return make(Kind.LOCATION, Location(message.latitude, message.longitude,
                                                    LocationSource.REPORTER_PIN, text=place))
            return make(Kind.MEDIA, self._media(message))
        if isinstance(event, PostbackEvent):
            data = event.postback.data
            if data in MENU:
                kind, value = MENU[data]
                return make(kind, value)
            return make(Kind.CHOICE, data)
        return None

    def _media(self, message: Any) -> Media:
        """A photo whose content is on LINE's servers can be fetched (only if a step keeps
        it); any other media is named, never fetched."""
        message_id = str(getattr(message, "id", "") or "")
        if isinstance(message, ImageMessageContent) and message_id and (
                message.content_provider is None or message.content_provider.type == "line"):
            async def fetch() -> MediaContent:
                return await self.content.fetch(message_id)
            return Media("image", message_id, fetch)
        return Media(str(getattr(message, "type", "") or "other"), message_id)

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
        groups = batches(reply_bodies(replies, self.ctx.services.catalogs))
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
        if isinstance(message, ResponderCard):
            messages: list[Any] = [card_message(message, catalogs)]
        else:
            messages = reply_bodies([message], catalogs)
            silent = silent or message.silent
        return await self.api.push(to, messages, key=key, silent=silent)
