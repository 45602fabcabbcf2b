"""`ess line richmenu`: the LINE channel's own subcommand (contributed through the plugin
contract, `Channel.add_commands`)."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from bot.i18n import load_catalogs
from channels.base import CommandContext, CommandError
from channels.line.api import DEFAULT_API_URL
from channels.line.richmenu import DEFAULT_DATA_API_URL, definition, install, plain_image


def add_commands(commands: argparse._SubParsersAction[Any]) -> None:
    line = commands.add_parser("line", help="LINE Official Account set-up").add_subparsers(
        dest="line_command", required=True)
    richmenu = line.add_parser("richmenu", help="install the rich menu as every user's default")
    richmenu.add_argument("--image", type=Path, help="PNG or JPEG, 2500x843 (default: plain)")
    richmenu.add_argument("--lang", default=None, help="label language (default: the service's)")
    richmenu.set_defaults(run=richmenu_command)


def menu_image(image: Path | None) -> tuple[bytes, str]:
    if image is None:
        return plain_image(), "image/png"
    try:
        data = image.read_bytes()
    except OSError as exc:
        raise CommandError(f"{image}: {exc.strerror}") from None
    return data, "image/jpeg" if image.suffix.lower() in (".jpg", ".jpeg") else "image/png"


async def richmenu_command(args: argparse.Namespace, ctx: CommandContext) -> int:
    settings = ctx.settings
    data, content_type = menu_image(args.image)
    token = settings.extra.get("ESS_LINE_CHANNEL_ACCESS_TOKEN", "")
    if not token:
        raise CommandError("ESS_LINE_CHANNEL_ACCESS_TOKEN is not set")
    catalogs = load_catalogs(settings)
    lang = args.lang or settings.default_lang
    if not catalogs.has(lang):
        raise CommandError(f"no catalog for {lang!r}")
    try:
        menu_id = await install(
            definition(catalogs, lang), data, access_token=token,
            api_url=settings.extra.get("ESS_LINE_API_URL", DEFAULT_API_URL),
            data_api_url=settings.extra.get("ESS_LINE_DATA_API_URL", DEFAULT_DATA_API_URL),
            content_type=content_type)
    except Exception as exc:
        status = getattr(exc, "status", None)
        raise CommandError(f"LINE refused the rich menu ({status or type(exc).__name__})"
                           ) from None
    print(f"rich menu {menu_id} installed as the default")
    return 0
