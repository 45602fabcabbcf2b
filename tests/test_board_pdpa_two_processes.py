"""A board export made on one process downloads from another (two board apps, each with its
own services, on one PostgreSQL): the sealed file waits in the shared store, for one
download, until it expires; the download is audited with the request it answers."""

from __future__ import annotations

import asyncio
import base64
import re
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp import CookieJar
from aiohttp.test_utils import TestClient, TestServer

from bot.privacy.sealed_export import open_export
from channels.board.pdpa import PATH
from channels.board.pdpa_rights import DOWNLOADED
from config.settings import Settings
from tests.dispatch_kit import report
from tests.test_board import add, board_app, csrf_of, page, services_of, sign_in
from tests.test_board_pdpa_rights import ADMIN, PHONE

KEY = base64.b64encode(b"s" * 32).decode()
LOOKUP = base64.b64encode(b"l" * 32).decode()  # processes sharing a database share it


@pytest.fixture
async def two(tmp_path: Path, pg_url: str
              ) -> AsyncIterator[tuple[TestClient[Any, Any], TestClient[Any, Any]]]:
    """Two board processes on one database, one browser (one cookie jar) using both;
    the second one's exports expire after a second."""
    servers = [TestServer(board_app(Settings(
        data_dir=str(tmp_path / f"p{n}"), log_format="console", database_url=pg_url,
        secret_keys=KEY, lookup_key=LOOKUP, export_download_ttl=ttl)), host="127.0.0.1")
        for n, ttl in enumerate((600.0, 1.0))]
    for server in servers:
        await server.start_server()
    jar = CookieJar(unsafe=True, treat_as_secure_origin=[str(s.make_url("/"))
                                                          for s in servers])
    a, b = (TestClient(s, cookie_jar=jar) for s in servers)
    async with a, b:
        yield a, b


async def export(client: TestClient[Any, Any], csrf: str) -> tuple[str, str]:
    response = await client.post(f"{PATH}/export", data={
        "csrf": csrf, "by": "phone", "value": PHONE, "request": ""})
    html = await response.text()
    assert response.status == 200, html
    password = re.search(r'id="password">([\w-]+)<', html)
    link = re.search(rf'href="({PATH}/download/[\w-]+)"', html)
    assert password and link
    return link.group(1), password.group(1)


@pytest.mark.postgres
async def test_an_export_made_on_one_process_downloads_once_from_the_other(
        two: tuple[TestClient[Any, Any], TestClient[Any, Any]]) -> None:
    a, b = two
    mine = await report(services_of(a), "web:reporter-1", phone=PHONE)
    await add(a, ADMIN)
    assert (await sign_in(a, "dpo")).status == 303  # signed in on a, the cookie works on b
    status, html = await page(b, PATH)
    assert status == 200
    csrf = csrf_of(html)

    link, password = await export(a, csrf)
    download = await b.get(link)
    assert download.status == 200 and download.headers["Cache-Control"] == "no-store"
    data = open_export(await download.read(), password)
    assert any(r["reference"] == mine.reference for r in data["records"])
    for client in (a, b):  # once, wherever the second try lands
        again = await client.get(link)
        assert again.status == 404 and "used already or has expired" in await again.text()

    late, _ = await export(b, csrf)  # b's exports wait one second
    await asyncio.sleep(1.5)
    expired = await a.get(late)
    assert expired.status == 404 and "used already or has expired" in await expired.text()

    # The download in the trail: who, whose file, the request it answered.
    rows = await services_of(b).storage.audit.find(staff="staff:dpo", limit=100)
    downloads = [r.entry for r in rows if r.entry.action == DOWNLOADED]
    [done, _late] = sorted(await services_of(a).storage.privacy.requests(open_only=False),
                           key=lambda r: r.received_at)
    assert [(d.subject, d.detail) for d in downloads] == [(data["subject"], done.id)]
    assert (await services_of(a).storage.audit.verify()).intact
