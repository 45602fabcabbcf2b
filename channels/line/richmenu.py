"""The LINE rich menu: four buttons (report, silent report, my reports, help) as postbacks.

Postbacks, not text: a tap leaves no words in the chat, which matters for a silent reporter.
`install` creates the menu, uploads its image and makes it every user's default
(`ess line richmenu`). Without an image of our own we upload a plain four-colour one: the
labels then live in the alt text only, so a real deployment passes `--image`.
"""

from __future__ import annotations

import struct
import zlib

from linebot.v3.messaging import (
    AsyncApiClient,
    AsyncMessagingApi,
    AsyncMessagingApiBlob,
    Configuration,
    PostbackAction,
    RichMenuArea,
    RichMenuBounds,
    RichMenuRequest,
    RichMenuSize,
)

from bot.i18n import Catalogs
from bot.types import Text

WIDTH, HEIGHT = 2500, 843
BUTTONS = (("menu:report", "line.menu.report"), ("menu:silent", "line.menu.silent"),
           ("menu:mine", "line.menu.mine_label"), ("menu:help", "line.menu.help"))
COLOURS = ((0xB0, 0x00, 0x20), (0x45, 0x5A, 0x64), (0x0B, 0x57, 0xD0), (0x2E, 0x7D, 0x32))
DEFAULT_DATA_API_URL = "https://api-data.line.me"


def definition(catalogs: Catalogs, lang: str) -> RichMenuRequest:
    """The menu as LINE's model; labels in `lang` (cut to LINE's 20 characters)."""
    width = WIDTH // len(BUTTONS)
    areas = [
        RichMenuArea(bounds=RichMenuBounds(x=i * width, y=0, width=width, height=HEIGHT),
                     action=PostbackAction(label=catalogs.render(lang, Text(key))[:20],
                                           data=data))
        for i, (data, key) in enumerate(BUTTONS)]
    return RichMenuRequest(size=RichMenuSize(width=WIDTH, height=HEIGHT), selected=True,
                           name="ess-main", chat_bar_text=catalogs.render(
                               lang, Text("web.title"))[:14], areas=areas)


def plain_image() -> bytes:
    """A PNG of four coloured columns, the size LINE expects."""
    width = WIDTH // len(BUTTONS)
    row = b"\x00" + b"".join(bytes(COLOURS[min(x // width, 3)]) for x in range(WIDTH))
    raw = row * HEIGHT

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (struct.pack(">I", len(data)) + kind + data
                + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF))

    header = struct.pack(">IIBBBBB", WIDTH, HEIGHT, 8, 2, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header)
            + chunk(b"IDAT", zlib.compress(raw, 9)) + chunk(b"IEND", b""))


async def install(menu: RichMenuRequest, image: bytes, *, access_token: str, api_url: str,
                  data_api_url: str, content_type: str = "image/png") -> str:
    """Create the menu, upload its image, make it the default; return its id."""
    api_config = Configuration(host=api_url.rstrip("/"), access_token=access_token)
    blob_config = Configuration(host=data_api_url.rstrip("/"), access_token=access_token)
    async with AsyncApiClient(api_config) as client, AsyncApiClient(blob_config) as blobs:
        created = await AsyncMessagingApi(client).create_rich_menu(menu)
        menu_id = str(created.rich_menu_id)
        # The SDK sends no image content type of its own (it would default to JSON).
        await AsyncMessagingApiBlob(blobs).set_rich_menu_image(
            menu_id, image, _headers={"Content-Type": content_type})
        await AsyncMessagingApi(client).set_default_rich_menu(menu_id)
    return menu_id
