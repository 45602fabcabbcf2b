"""The board's own words (Thai and English), kept beside the board: staff pages only."""

from __future__ import annotations

from functools import cache
from pathlib import Path

import yaml

from bot.i18n import Catalogs
from bot.types import Text

FOLDER = Path(__file__).parent / "catalogs"
LANGS = ("th", "en")


@cache
def board_catalogs() -> Catalogs:
    tables: dict[str, dict[str, str | tuple[str, ...]]] = {}
    for lang in LANGS:
        data = yaml.safe_load((FOLDER / f"{lang}.yaml").read_text(encoding="utf-8")) or {}
        tables[lang] = {f"board.{k}": str(v) for k, v in data.items()}
    return Catalogs(tables, "th")


def say(lang: str, key: str, **params: object) -> str:
    """A board word in `lang` (Thai when the board has no such language)."""
    lang = lang if lang in LANGS else "th"
    return board_catalogs().render(lang, Text(f"board.{key}", dict(params)))
