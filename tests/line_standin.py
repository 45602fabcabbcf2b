"""A local stand-in for the LINE Messaging API: validates every request with the SDK's models.

Each request body is parsed with the SDK's own request model (`ReplyMessageRequest.from_json`
and friends); a body the model refuses is recorded as invalid and answered 400, so a test can
assert that nothing we sent was malformed. Reply tokens work once. A retry key that was
already accepted is answered 409 with `x-line-accepted-request-id`, as LINE does. Tests can
queue failures (`fail_next(429, {"Retry-After": "2"})`).

`GET /v2/bot/profile/{userId}` serves the profiles a test sets (`profiles[user_id] =
{"displayName": ..., "language": "my"}`), each checked with the SDK's `UserProfileResponse`
before it is served; an unknown user gets 404, as LINE answers for a user who has not added
the account. Profile reads are recorded apart (`profile_calls`), with their own failures.

`GET /v2/bot/message/{messageId}/content` is the data API (the same server: tests point
`ESS_LINE_DATA_API_URL` here): it serves the bytes a test registered (`contents[id] = b"…"`)
as `application/octet-stream`, checks the token and that the id is a LINE message id (digits),
answers 404 for one it does not hold, as LINE does for content gone or never there, and
records each read in `content_calls`, with its own queued failures (`content_failures`).
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web
from aiohttp.test_utils import TestServer
from linebot.v3.messaging import (
    PushMessageRequest,
    ReplyMessageRequest,
    RichMenuRequest,
    ShowLoadingAnimationRequest,
    UserProfileResponse,
)

TOKEN = "test-access-token"
MODELS: dict[str, Any] = {
    "reply": ReplyMessageRequest,
    "push": PushMessageRequest,
    "loading": ShowLoadingAnimationRequest,
    "richmenu": RichMenuRequest,
}


@dataclass
class Call:
    kind: str
    body: Any  # the SDK model instance
    raw: dict[str, Any]
    headers: dict[str, str]
    status: int


@dataclass
class LineStandIn:
    """The recorded traffic and the knobs."""

    calls: list[Call] = field(default_factory=list)
    invalid: list[tuple[str, str]] = field(default_factory=list)
    used_tokens: set[str] = field(default_factory=set)
    accepted_keys: dict[str, str] = field(default_factory=dict)
    failures: list[tuple[int, dict[str, str]]] = field(default_factory=list)
    profiles: dict[str, dict[str, Any]] = field(default_factory=dict)
    profile_calls: list[str] = field(default_factory=list)
    profile_failures: list[int] = field(default_factory=list)
    contents: dict[str, bytes] = field(default_factory=dict)
    content_calls: list[tuple[str, int]] = field(default_factory=list)
    content_failures: list[int] = field(default_factory=list)
    server: TestServer | None = None

    def fail_next(self, status: int, headers: dict[str, str] | None = None) -> None:
        self.failures.append((status, headers or {}))

    @property
    def url(self) -> str:
        assert self.server is not None
        return str(self.server.make_url("")).rstrip("/")

    def ok(self, kind: str | None = None) -> list[Call]:
        return [c for c in self.calls if c.status == 200 and (kind is None or c.kind == kind)]

    def texts(self) -> list[str]:
        """Every text message delivered (reply or push), in order."""
        out: list[str] = []
        for call in self.ok():
            for message in call.raw.get("messages", []):
                if message.get("type") == "text":
                    out.append(message["text"])
        return out

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_post("/v2/bot/message/reply", self._handler("reply"))
        app.router.add_post("/v2/bot/message/push", self._handler("push"))
        app.router.add_post("/v2/bot/chat/loading/start", self._handler("loading"))
        app.router.add_post("/v2/bot/richmenu", self._handler("richmenu"))
        app.router.add_post("/v2/bot/user/all/richmenu/{rich_menu_id}", self._plain("default"))
        app.router.add_post("/v2/bot/richmenu/{rich_menu_id}/content", self._plain("image"))
        app.router.add_get("/v2/bot/profile/{user_id}", self._profile)
        app.router.add_get("/v2/bot/message/{message_id}/content", self._content)
        return app

    async def start(self) -> LineStandIn:
        self.server = TestServer(self.app(), host="127.0.0.1")
        await self.server.start_server()
        return self

    async def close(self) -> None:
        if self.server is not None:
            await self.server.close()

    def _authorised(self, request: web.Request) -> bool:
        return request.headers.get("Authorization") == f"Bearer {TOKEN}"

    async def _profile(self, request: web.Request) -> web.Response:
        if not self._authorised(request):
            return web.json_response({"message": "Authentication failed"}, status=401)
        user_id = request.match_info["user_id"]
        self.profile_calls.append(user_id)
        if self.profile_failures:
            return web.json_response({"message": "stand-in failure"},
                                     status=self.profile_failures.pop(0))
        if user_id not in self.profiles:
            return web.json_response({"message": "Not found"}, status=404)
        body = {"userId": user_id, **self.profiles[user_id]}
        UserProfileResponse.from_dict(body)  # what we serve is what LINE would: or fail here
        return web.json_response(body)

    async def _content(self, request: web.Request) -> web.Response:
        if not self._authorised(request):
            return web.json_response({"message": "Authentication failed"}, status=401)
        message_id = request.match_info["message_id"]
        if not message_id.isdecimal():
            self.invalid.append(("content", f"not a message id: {message_id[:40]}"))
            status = 400
        elif self.content_failures:
            status = self.content_failures.pop(0)
        else:
            status = 200 if message_id in self.contents else 404
        self.content_calls.append((message_id, status))
        if status != 200:
            return web.json_response({"message": "stand-in content"}, status=status,
                                     headers={"x-line-request-id": uuid.uuid4().hex})
        return web.Response(body=self.contents[message_id],
                            content_type="application/octet-stream")

    def _plain(self, kind: str) -> Any:
        async def handle(request: web.Request) -> web.Response:
            if not self._authorised(request):
                return web.json_response({"message": "Authentication failed"}, status=401)
            await request.read()
            self.calls.append(Call(kind, None, {"id": request.match_info["rich_menu_id"]},
                                   dict(request.headers), 200))
            return web.json_response({})
        return handle

    def _handler(self, kind: str) -> Any:
        async def handle(request: web.Request) -> web.Response:
            if not self._authorised(request):
                return web.json_response({"message": "Authentication failed"}, status=401)
            text = await request.text()
            headers = dict(request.headers)
            request_id = uuid.uuid4().hex
            try:
                body = MODELS[kind].from_json(text)
                raw = json.loads(text)
            except Exception as exc:
                self.invalid.append((kind, str(exc)[:500]))
                return web.json_response({"message": "The request body has 1 error(s)"},
                                         status=400, headers={"x-line-request-id": request_id})
            if self.failures:
                status, extra = self.failures.pop(0)
                self.calls.append(Call(kind, body, raw, headers, status))
                return web.json_response({"message": "stand-in failure"}, status=status,
                                         headers={"x-line-request-id": request_id, **extra})
            if kind == "reply":
                token = raw["replyToken"]
                if token in self.used_tokens or "expired" in token:
                    self.calls.append(Call(kind, body, raw, headers, 400))
                    return web.json_response({"message": "Invalid reply token"}, status=400,
                                             headers={"x-line-request-id": request_id})
                self.used_tokens.add(token)
            key = headers.get("X-Line-Retry-Key")
            if kind == "push" and key:
                if key in self.accepted_keys:
                    self.calls.append(Call(kind, body, raw, headers, 409))
                    return web.json_response(
                        {"message": "The retry key is already accepted"}, status=409,
                        headers={"x-line-request-id": request_id,
                                 "x-line-accepted-request-id": self.accepted_keys[key]})
                self.accepted_keys[key] = request_id
            self.calls.append(Call(kind, body, raw, headers, 200))
            if kind == "richmenu":
                return web.json_response({"richMenuId": f"richmenu-{request_id}"})
            sent = [{"id": str(uuid.uuid4().int)[:18], "quoteToken": uuid.uuid4().hex}
                    for _ in raw.get("messages", [])]
            return web.json_response({"sentMessages": sent} if kind != "loading" else {},
                                     headers={"x-line-request-id": request_id})
        return handle
