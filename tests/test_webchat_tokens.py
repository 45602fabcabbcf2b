"""Web-chat tokens expire, rotate, and die at the quick exit in every process (issue 9)."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import pytest
from aiohttp import WSMsgType
from aiohttp.test_utils import TestClient, TestServer

from bot.app import CHANNELS, SERVICES
from bot.types import utcnow
from channels.webchat.tokens import MAX_AGE, RENEW_AFTER, TokenSigner
from config.settings import Settings
from tests.test_webchat import (  # noqa: F401 - browser and live are fixtures
    browser,
    hello,
    live,
    phone_context,
    until_prompt,
    web_app,
)

KEY = "ess-chat"


def test_tokens_expire_and_old_ones_renew() -> None:
    signer = TokenSigner(b"k" * 32)
    now = time.time()
    conversation, token = signer.issue(now=now)
    checked = signer.check(token, now=now + 60)
    assert checked is not None and checked.conversation == conversation and not checked.renew
    renewing = signer.check(token, now=now + RENEW_AFTER + 1)
    assert renewing is not None and renewing.renew
    assert signer.check(token, now=now + MAX_AGE + 1) is None
    _, fresh = signer.issue(conversation, now=now + RENEW_AFTER + 1)
    fresh_checked = signer.check(fresh, now=now + MAX_AGE + 1)
    assert fresh_checked is not None and fresh_checked.conversation == conversation


def test_keys_rotate_and_the_old_never_expiring_format_is_refused() -> None:
    old, new = TokenSigner(b"o" * 32), TokenSigner(b"n" * 32, b"o" * 32)
    conversation, token = old.issue()
    checked = new.check(token)
    assert checked is not None and checked.conversation == conversation
    _, newer = new.issue()
    assert old.check(newer) is None
    assert TokenSigner.from_setting("n" * 32 + ", " + "o" * 32).check(token) is not None
    # The first format: `<id>.<mac>`, valid forever once captured.
    assert old.check(f"{conversation}.{'A' * 32}") is None


async def test_a_token_captured_before_the_quick_exit_is_dead_after_it(
        settings: Settings) -> None:
    async with TestClient(TestServer(web_app(settings), host="127.0.0.1")) as client:
        ws, welcome = await hello(client)
        token = welcome["token"]
        await ws.send_json({"type": "start", "id": "m1", "flow": "report"})
        await until_prompt(ws)
        await ws.send_json({"type": "exit"})
        while (await ws.receive(timeout=5)).type not in (WSMsgType.CLOSE, WSMsgType.CLOSED,
                                                         WSMsgType.CLOSING):
            pass  # the ack of the start frame, then the server closes the socket
        # Someone replays the captured token: a new, empty conversation, nothing replayed.
        ws2, again = await hello(client, token=token)
        assert again["token"] != token
        assert not again["token"].startswith(token.partition(".")[0])
        await ws2.send_json({"type": "start", "id": "m9", "flow": "report"})
        first = await ws2.receive_json(timeout=5)
        assert first["seq"] == 1  # a fresh log: the old conversation's messages are gone
        await ws2.close()


async def test_the_quick_exit_beacon_revokes_in_every_process(settings: Settings) -> None:
    # Two applications on one store: the revocation lives in the store, not a process.
    async with TestClient(TestServer(web_app(settings), host="127.0.0.1")) as one, \
            TestClient(TestServer(web_app(settings), host="127.0.0.1")) as two:
        ws, welcome = await hello(one)
        token = welcome["token"]
        await ws.close()
        ws, again = await hello(two, token=token)
        assert again["token"] == token  # the same key file: the other process knows it
        await ws.close()
        response = await one.post("/chat/revoke", data=token)
        assert response.status == 204
        ws, after = await hello(two, token=token)
        assert after["token"] != token
        await ws.close()
        assert (await one.post("/chat/revoke", data="forged.x.y")).status == 204


async def test_an_old_token_is_renewed_for_the_same_conversation(settings: Settings) -> None:
    async with TestClient(TestServer(web_app(settings), host="127.0.0.1")) as client:
        signer = client.app[CHANNELS].get("web").signer
        conversation, token = signer.issue(now=time.time() - RENEW_AFTER - 5)
        ws, welcome = await hello(client, token=token)
        assert welcome["renewed"] is True and welcome["token"] != token
        assert welcome["token"].startswith(conversation + ".")
        await ws.close()
        expired = signer.issue(now=time.time() - MAX_AGE - 5)[1]
        ws, welcome = await hello(client, token=expired)
        assert welcome["renewed"] is False and not welcome["token"].startswith(conversation)
        await ws.close()


@pytest.mark.browser
async def test_the_quick_exit_button_revokes_the_token_in_the_store(
        browser: Any, live: tuple[str, Any]) -> None:  # noqa: F811
    base, app = live
    context = await phone_context(browser, base)
    page = await context.new_page()
    await page.goto("/chat")
    await page.get_by_role("button", name="ถูกข่มขู่ว่าจะทำร้าย หรือถูกทำร้าย").wait_for()
    saved = json.loads(await page.evaluate(f"sessionStorage.getItem({json.dumps(KEY)})"))
    conversation = saved["token"].partition(".")[0]
    revocations = app[SERVICES].storage.revocations
    assert not await revocations.revoked(conversation, utcnow())
    await page.get_by_role("button", name="ออก").click()
    await page.wait_for_url("**/chat/exit")
    for _ in range(50):
        if await revocations.revoked(conversation, utcnow()):
            break
        await asyncio.sleep(0.1)
    assert await revocations.revoked(conversation, utcnow())
    await context.close()
