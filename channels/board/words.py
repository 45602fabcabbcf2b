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
        # `th.yaml`, then each tab's own file (`cases.th.yaml`): a tab keeps its words apart.
        tables[lang] = {}
        for path in [FOLDER / f"{lang}.yaml", *sorted(FOLDER.glob(f"*.{lang}.yaml"))]:
            data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
            for k, v in data.items():
                if f"board.{k}" in tables[lang]:
                    raise ValueError(f"{path}: board word {k!r} is defined twice")
                tables[lang][f"board.{k}"] = str(v)
    return Catalogs(tables, "th")


def say(lang: str, key: str, **params: object) -> str:
    """A board word in `lang` (Thai when the board has no such language)."""
    lang = lang if lang in LANGS else "th"
    return board_catalogs().render(lang, Text(f"board.{key}", dict(params)))
