"""The web chat: `GET /chat`, `/chat/widget.js` to embed it, and the websocket `/chat/ws`.

Protocol (JSON text frames). The client opens with
`{"type": "hello", "token": <token or null>, "after": <last seq seen>, "silent": bool,
"lang": "th"}`; the server answers `{"type": "welcome", "token": ..., "renewed": bool}` (a
new conversation's token when the old one is missing, forged, expired or revoked; a fresh
token of the same conversation, `renewed`, when it is getting old: see `tokens`) and replays
every message after `after`. Then the
client sends `start`, `choice`, `text` or `location` frames, each with a client message id
`id` (the event id: a frame resent after a reconnect is handled once), and the server acks
each with `{"type": "ack", "id"}` once its replies are stored (a resent frame that was
handled already is answered with the current question if its replies never were:
docs/inbound.md); bot messages arrive as
`{"type": "message", "seq", "text", "choices": [{"value", "label"}], "ask", "silent"}`.
Anything malformed gets `{"type": "error", "code"}` and the socket stays open. A frame
over the rate limits (channels/limits.py) gets `{"type": "error", "code": "slow_down", "id",
"retry_after"}` and no ack: the client sends it again after `retry_after` seconds. A socket
over the limits gets `{"type": "error", "code": "busy", "retry_after"}` and is closed.
The quick exit sends `{"type": "exit"}` (and beacons the token to `POST /chat/revoke`): the
conversation is revoked in the store, so no copy of its token works again in any process.

Each conversation's messages are kept in the store's transcript (channels/webchat/live.py),
so several processes need no sticky sessions: a socket on any of them is replayed the rest.

Settings (all optional): `ESS_WEBCHAT_SECRET` (token key, or several separated by commas,
newest first, to rotate; default a key file in the data folder), `ESS_WEBCHAT_TILE_URL`
(`https://…/{z}/{x}/{y}.png`; empty: no map images, the map is a grid with the province
centres named), `ESS_WEBCHAT_TILE_ATTRIBUTION` (the tile server's credit line, shown on the
map), `ESS_WEBCHAT_EXIT_URL` (where quick
exit goes; default a neutral local page),
`ESS_WEBCHAT_ENABLED=false` to turn it off.
"""

from __future__ import annotations

import contextlib
import time
from datetime import timedelta
from pathlib import Path
from typing import Any, ClassVar

import structlog
from aiohttp import WSCloseCode, WSMsgType, web

from bot.i18n import Catalogs
from bot.outbound import Outbound, ResponderCard, SendResult
from bot.render import Abilities, card_alert, card_facts, card_lines, card_title
from bot.types import RESUME_ON_DUPLICATE, Inbound, Kind, Location, LocationSource, Text, utcnow
from channels.base import (
    Channel,
    ChannelContext,
    ChannelOff,
    optional_setting,
    own_address,
)
from channels.bodies import finite, load_json
from channels.limits import Gate, client_address, retry_after
from channels.web_pages import (
    chat_page,
    exit_page,
    page_lang,
    static_file,
    vendored_response,
)
from channels.webchat.live import Socket, Sockets
from channels.webchat.tokens import Checked, TokenSigner
from config.settings import Settings
from routing.geo import valid_point

log = structlog.get_logger(__name__)

CHANNEL = "web"
ABILITIES = Abilities(buttons=True, location=True, max_buttons=20)
MAX_FRAME = 8 * 1024
MAX_ID = 64
MAX_TEXT = 2000
HEARTBEAT = 30.0
BURST = 20  # frames a socket may send in one window; a person tapping never gets near it
WINDOW = 10.0
STATIC_TYPES = {".js": "text/javascript", ".css": "text/css", ".svg": "image/svg+xml"}
SECURITY_HEADERS = {
    "Cache-Control": "no-store",
    "Referrer-Policy": "no-referrer",
    "X-Content-Type-Options": "nosniff",
}


class BadFrame(ValueError):
    """A frame the protocol does not allow; the code goes back to the client."""


def card_frame(card: ResponderCard, catalogs: Catalogs) -> dict[str, Any]:
    """A responder card for a staff member's page: the text and buttons every page shows,
    and the card itself as JSON for a page that draws its own (the operations board)."""
    def say(text: Text) -> str:
        return catalogs.render(card.lang, text)

    alert = card_alert(card)
    return {
        "type": "message", "text": "\n".join(card_lines(card, catalogs, hint=False)),
        "choices": [{"value": a.token, "label": say(a.label)} for a in card.actions],
        "ask": None, "silent": False,
        "card": {
            "reference": card.reference, "kind": card.kind.value, "title": say(card_title(card)),
            "alert": say(alert) if alert else None, "lines": [say(t) for t in card_facts(card)],
            "type": say(card.type), "reported_at": card.reported_at, "province": card.province,
            "district": card.district, "station": card.station, "map_url": card.map_url,
            "distance_km": card.distance_km, "callback": card.callback,
            "do_not_call": card.do_not_call, "silent": card.silent, "drill": card.drill,
            "flags": list(card.flags), "level": card.level, "holder": card.holder,
            "escalated": card.escalated,
        },
    }


class WebChatChannel(Channel):
    """The web page and its websocket; the address is `web:<conversation id>`."""

    name: ClassVar[str] = CHANNEL
    abilities = ABILITIES

    def __init__(self, signer: TokenSigner | None, *, tile_url: str = "",
                 attribution: str = "", exit_url: str = "/chat/exit",
                 data_dir: Path | None = None) -> None:
        self._signer = signer
        self._data_dir = data_dir
        self.tile_url = tile_url
        self.attribution = attribution
        self.exit_url = exit_url
        self._live: Sockets | None = None
        self._gate: Gate | None = None

    @classmethod
    def from_settings(cls, settings: Settings) -> WebChatChannel:
        if optional_setting(settings, "ESS_WEBCHAT_ENABLED", "true").lower() in (
                "false", "0", "no", "off"):
            raise ChannelOff("web: ESS_WEBCHAT_ENABLED is false")
        secret = optional_setting(settings, "ESS_WEBCHAT_SECRET")
        return cls(TokenSigner.from_setting(secret) if secret else None,
                   tile_url=optional_setting(settings, "ESS_WEBCHAT_TILE_URL"),
                   attribution=optional_setting(settings, "ESS_WEBCHAT_TILE_ATTRIBUTION"),
                   exit_url=optional_setting(settings, "ESS_WEBCHAT_EXIT_URL", "/chat/exit"),
                   data_dir=settings.data_path)

    def routes(self, router: web.UrlDispatcher) -> None:
        router.add_get("/chat", self.page)
        router.add_get("/chat/ws", self.websocket)
        router.add_get("/chat/exit", self.exit)
        router.add_get("/chat/static/{name}", self.static)
        router.add_get("/chat/static/leaflet/{name:.+}", self.leaflet)
        router.add_get("/chat/widget.js", self.widget)
        router.add_post("/chat/revoke", self.revoke_request)

    async def start(self, ctx: ChannelContext) -> None:
        await super().start(ctx)
        if self._signer is None:
            self._signer = TokenSigner.from_file(self._data_dir or ctx.services.settings.data_path)
        self._live = Sockets(ctx.services.storage.transcripts)
        self._gate = Gate(ctx.services.storage.limits, ctx.services.settings)

    @property
    def signer(self) -> TokenSigner:
        assert self._signer is not None, "started channels have a signer"
        return self._signer

    @property
    def live(self) -> Sockets:
        assert self._live is not None, "started channels have their sockets"
        return self._live

    @property
    def gate(self) -> Gate:
        assert self._gate is not None, "started channels have their limits"
        return self._gate

    # -- pages ------------------------------------------------------------------------------

    async def page(self, request: web.Request) -> web.Response:
        catalogs = self.ctx.services.catalogs
        lang = page_lang(request, catalogs, self.ctx.services.settings.default_lang)
        silent = request.query.get("silent", "") in ("1", "true", "yes")
        places = self.ctx.services.gazetteer.provinces()
        html = chat_page(catalogs, lang, silent=silent, tile_url=self.tile_url,
                         attribution=self.attribution, exit_url=self.exit_url,
                         places=places)
        return web.Response(text=html, content_type="text/html",
                            headers={**SECURITY_HEADERS, "Content-Security-Policy":
                                     self._csp()})

    def _csp(self) -> str:
        images = "'self' data:"
        if self.tile_url.startswith(("https://", "http://")):
            scheme, _, rest = self.tile_url.partition("://")
            images += f" {scheme}://{rest.split('/', 1)[0].replace('{s}', '*')}"
        return (f"default-src 'self'; img-src {images}; connect-src 'self'; "
                "script-src 'self'; style-src 'self'; frame-ancestors *; base-uri 'none'")

    async def exit(self, request: web.Request) -> web.Response:
        catalogs = self.ctx.services.catalogs
        lang = page_lang(request, catalogs, self.ctx.services.settings.default_lang)
        return web.Response(text=exit_page(catalogs, lang), content_type="text/html",
                            headers=SECURITY_HEADERS)

    async def static(self, request: web.Request) -> web.StreamResponse:
        name = request.match_info["name"]
        suffix = Path(name).suffix
        body = static_file(name) if suffix in STATIC_TYPES else None
        if body is None:
            raise web.HTTPNotFound()
        return web.Response(body=body, content_type=STATIC_TYPES[suffix],
                            headers={"Cache-Control": "no-cache",
                                     "X-Content-Type-Options": "nosniff"})

    async def leaflet(self, request: web.Request) -> web.Response:
        """The board's vendored Leaflet, from the same package files (not the markers'
        cluster plugin: the chat has one pin)."""
        return vendored_response("leaflet", request.match_info["name"])

    async def widget(self, request: web.Request) -> web.Response:
        return web.Response(body=static_file("widget.js"), content_type="text/javascript",
                            charset="utf-8",
                            headers={"Cache-Control": "no-cache",
                                     "Access-Control-Allow-Origin": "*"})

    # -- websocket --------------------------------------------------------------------------

    async def websocket(self, request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse(max_msg_size=MAX_FRAME, heartbeat=HEARTBEAT)
        await ws.prepare(request)
        address = client_address(request, self.gate.trust_forwarded)
        refused = await self.gate.web_socket(address)
        if refused is not None:
            # Said in the page's own protocol, so it can say "busy" and come back later.
            await ws.send_json({"type": "error", "code": "busy",
                                "retry_after": retry_after(refused)})
            await ws.close(code=WSCloseCode.TRY_AGAIN_LATER)
            return ws
        conversation: Socket | None = None
        hints: dict[str, str] = {}
        window_start, in_window = time.monotonic(), 0
        try:
            async for msg in ws:
                now = time.monotonic()
                if now - window_start > WINDOW:
                    window_start, in_window = now, 0
                in_window += 1
                if in_window > BURST:
                    await ws.send_json({"type": "error", "code": "slow_down"})
                    continue
                if msg.type is not WSMsgType.TEXT:
                    if msg.type is WSMsgType.ERROR:
                        break
                    await ws.send_json({"type": "error", "code": "text_frames_only"})
                    continue
                try:
                    frame = load_json(msg.data)
                    if not isinstance(frame, dict):
                        raise BadFrame("not_an_object")
                    if conversation is None:
                        conversation, hints = await self._hello(ws, frame)
                        continue
                    if frame.get("type") == "exit":
                        await self._revoke(conversation.conversation)
                        break
                    inbound = self._inbound(conversation.conversation, frame, hints)
                except (ValueError, BadFrame) as exc:
                    code = str(exc) if isinstance(exc, BadFrame) else "not_json"
                    await ws.send_json({"type": "error", "code": code})
                    continue
                refused = await self.gate.web_frame(address)
                if refused is not None:
                    # Not acked: the page keeps the frame and sends it again.
                    await ws.send_json({"type": "error", "code": "slow_down",
                                        "id": inbound.event_id,
                                        "retry_after": retry_after(refused)})
                    continue
                replies = await self.ctx.services.inbound.handle(inbound)
                # Stored before anything is sent: if the socket drops now, a reconnect
                # replays the replies, and the unacked frame is resent and deduplicated.
                # Each under a key of the event, the last under ":end": if the process died
                # before the last was stored, the resent frame's answer (the current prompt,
                # also ending in ":end") takes its place; if it was stored, nothing is
                # stored twice.
                try:
                    for n, reply in enumerate(replies):
                        place = "end" if n == len(replies) - 1 else n
                        await self.live.publish(conversation.conversation, self._frame(reply),
                                                key=f"reply:{inbound.event_id}:{place}")
                except Exception as exc:  # the store, whichever backend's error it is
                    log.warning("webchat.store_failed", error=type(exc).__name__)
                    await ws.send_json({"type": "error", "code": "unavailable",
                                        "id": inbound.event_id})
                    continue
                with contextlib.suppress(ConnectionError, RuntimeError):
                    # Stored: if the store cannot be read now, the feed sends them later.
                    with contextlib.suppress(Exception):
                        await self.live.flush(conversation)
                    await ws.send_json({"type": "ack", "id": inbound.event_id})
        finally:
            if conversation is not None:
                self.live.detach(conversation)
        return ws

    async def _hello(self, ws: web.WebSocketResponse,
                     frame: dict[str, Any]) -> tuple[Socket, dict[str, str]]:
        if frame.get("type") != "hello":
            raise BadFrame("hello_first")
        checked = await self._genuine(frame.get("token"))
        token, renewed = frame.get("token"), False
        if checked is None:
            conversation_id, token = self.signer.issue()
        else:
            conversation_id = checked.conversation
            if checked.renew:  # rotate: the same conversation, a fresh expiry
                _, token = self.signer.issue(conversation_id)
                renewed = True
        await ws.send_json({"type": "welcome", "token": token, "renewed": renewed})
        after = frame.get("after")
        # A new conversation starts from nothing, whatever `after` the page still had; a
        # renewed token is the same conversation, so its page goes on where it was.
        after = after if isinstance(after, int) and checked is not None else 0
        conversation = Socket(ws, conversation_id, after)
        self.live.attach(conversation)  # replays what the page has not seen
        hints: dict[str, str] = {}
        if frame.get("silent") is True:
            hints["flow"] = "silent"
        lang = frame.get("lang")
        if isinstance(lang, str) and self.ctx.services.catalogs.has(lang):
            hints["lang"] = lang
        return conversation, hints

    async def _genuine(self, token: object) -> Checked | None:
        """The token's conversation when it is genuine, unexpired and not revoked."""
        checked = self.signer.check(token)
        if checked is None:
            return None
        try:
            revoked = await self.ctx.services.storage.revocations.revoked(
                checked.conversation, utcnow())
        except Exception as exc:
            # Cannot tell: a new conversation is safer than reopening a revoked one.
            log.warning("web.revocation_unknown", error=type(exc).__name__)
            return None
        return None if revoked else checked

    async def _revoke(self, conversation_id: str) -> None:
        """Quick exit: no token of this conversation works again, in any process."""
        until = utcnow() + timedelta(seconds=self.signer.max_age + 600)
        await self.ctx.services.storage.revocations.revoke(conversation_id, until)
        for socket in self.live.open_for(conversation_id):
            with contextlib.suppress(ConnectionError, RuntimeError):
                await socket.ws.close()
        log.info("web.quick_exit")

    async def revoke_request(self, request: web.Request) -> web.Response:
        """`POST /chat/revoke` (the page's beacon at quick exit): the body is the token."""
        body = await request.content.read(MAX_ID * 4)
        checked = self.signer.check(body.decode("utf-8", "replace").strip())
        if checked is not None:
            try:
                await self._revoke(checked.conversation)
            except Exception as exc:
                log.error("web.revoke_failed", error=type(exc).__name__)
                return web.json_response({"error": "try again"}, status=503)
        # The same answer for a forged token: nothing to learn from it.
        return web.Response(status=204, headers=SECURITY_HEADERS)

    def _inbound(self, sender: str, frame: dict[str, Any], hints: dict[str, str]) -> Inbound:
        kind, event_id = frame.get("type"), frame.get("id")
        if not isinstance(event_id, str) or not 0 < len(event_id) <= MAX_ID:
            raise BadFrame("bad_id")

        def make(kind: Kind, payload: str | Location | None) -> Inbound:
            # Replies are stored under keys of the event (below): a resent frame may be
            # answered with where the conversation stands (bot.types.RESUME_ON_DUPLICATE).
            return Inbound(CHANNEL, sender, kind, event_id, payload,
                           hints={**hints, RESUME_ON_DUPLICATE: "1"})

        if kind == "start":
            flow = frame.get("flow")
            return make(Kind.START, flow if isinstance(flow, str) and len(flow) < 40 else None)
        if kind == "choice":
            value = frame.get("value")
            if not isinstance(value, str) or len(value) > 300:
                raise BadFrame("bad_choice")
            return make(Kind.CHOICE, value)
        if kind == "text":
            text = frame.get("text")
            if not isinstance(text, str):
                raise BadFrame("bad_text")
            return make(Kind.TEXT, text[:MAX_TEXT])
        if kind == "location":
            lat, lon = finite(frame.get("lat")), finite(frame.get("lon"))
            if lat is None or lon is None or not valid_point(lat, lon):
                raise BadFrame("bad_location")
            accuracy = finite(frame.get("accuracy"))
            source = LocationSource.DEVICE if frame.get("source") == "device" else \
                LocationSource.REPORTER_PIN
            return make(Kind.LOCATION, Location(lat, lon, source, accuracy))
        raise BadFrame("unknown_type")

    def _frame(self, message: Outbound) -> dict[str, Any]:
        catalogs = self.ctx.services.catalogs
        if isinstance(message, ResponderCard):
            return card_frame(message, catalogs)
        return {
            "type": "message",
            "text": catalogs.render(message.lang, message.text),
            "choices": [{"value": c.value, "label": catalogs.render(message.lang, c.label)}
                        for c in message.choices],
            "ask": message.ask.value if message.ask else None,
            "silent": message.silent,
            "lang": message.lang,
        }

    async def send(self, address: str, message: Outbound, *, key: str,
                   silent: bool = False) -> SendResult:
        """Queue for the conversation's page (delivered now if open, else on reconnect)."""
        conversation_id = own_address(address, CHANNEL)
        if conversation_id is None:
            return SendResult.failed("not a web address")
        # A notice (a status update, a responder's message) arrives between the person's own
        # answers: the page shows it without taking away the buttons of the pending question.
        frame = self._frame(message)
        frame["notice"] = not frame["choices"] and frame["ask"] is None
        try:
            # Once per key: a retry of what the transcript already has is a no-op.
            await self.live.publish(conversation_id, frame, key=key)
        except Exception as exc:  # the store, whichever backend's error it is
            return SendResult.retry(5.0, type(exc).__name__)
        return SendResult.sent()
