"""Message catalogs: one YAML file per language; adding a language is adding a file.

Keys are nested in the files and flattened with dots here (`report.type.prompt`). A value is a
string with `{name}` placeholders, or a list of strings (command words a person may type).
The first language loaded from the configured default (Thai) is the fallback for display, but
every shipped catalog must be complete: `Catalogs.missing()` lists what a language lacks, and a
test fails on any gap.

`_meta` holds what the catalog says about its language rather than texts: `name` (its own
name, required), `phone_prefixes` (country calling codes whose senders get it: "+95"), and
notes on how it was written. Only `name` is required of every language; the rest is optional,
so that adding a language stays adding a file.
"""

from __future__ import annotations

import string
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from bot.types import Text
from bot.yamlfiles import DuplicateKey, load_yaml

if TYPE_CHECKING:
    from config.settings import Settings

SHIPPED_DIR = Path(__file__).with_name("catalogs")


class CatalogError(ValueError):
    """A catalog file that cannot be used; the message names the file and the problem."""


class _SafeDict(dict[str, Any]):
    def __missing__(self, key: str) -> str:
        return "{" + key + "}"


_FORMATTER = string.Formatter()


@dataclass(frozen=True)
class Language:
    """A language as a catalog declares it."""

    code: str
    name: str  # the language's own name, for the language picker
    phone_prefixes: tuple[str, ...] = ()  # "+95": an SMS sender's country speaks it


class Catalogs:
    """All loaded languages. Immutable after construction; safe to share."""

    def __init__(self, tables: Mapping[str, Mapping[str, str | tuple[str, ...]]], default: str):
        if default not in tables:
            raise CatalogError(f"default language {default!r} has no catalog")
        self._tables = tables
        self.default = default

    @classmethod
    def load(cls, dirs: Iterable[Path] = (), default: str = "th") -> Catalogs:
        """Load the shipped catalogs, then any extra directories (later files add or override)."""
        tables: dict[str, dict[str, str | tuple[str, ...]]] = {}
        for directory in (SHIPPED_DIR, *dirs):
            for path in sorted(Path(directory).glob("*.yaml")):
                tables.setdefault(path.stem, {}).update(_load_file(path))
        return cls(tables, default)

    @property
    def languages(self) -> list[Language]:
        codes = sorted(self._tables, key=lambda c: (c != self.default, c))
        return [Language(c, str(self._tables[c].get("_meta.name", c)),
                         _as_tuple(self._tables[c].get("_meta.phone_prefixes")))
                for c in codes]

    def has(self, lang: str) -> bool:
        return lang in self._tables

    def keys(self, lang: str) -> set[str]:
        return set(self._tables[lang])

    def missing(self) -> dict[str, set[str]]:
        """Keys some language has and another lacks, per language."""
        every = {k for t in self._tables.values() for k in t if not _optional(k)}
        return {lang: every - set(t) for lang, t in self._tables.items() if every - set(t)}

    def words(self, key: str) -> set[str]:
        """A list entry in every language, casefolded: the words that trigger a command."""
        found: set[str] = set()
        for table in self._tables.values():
            value = table.get(key)
            if isinstance(value, tuple):
                found.update(w.casefold() for w in value)
            elif isinstance(value, str):
                found.add(value.casefold())
        return found

    def words_of(self, lang: str, key: str) -> tuple[str, ...]:
        """A list entry as one language writes it (for help texts and tests)."""
        return _as_tuple(self._tables[lang].get(key))

    def render(self, lang: str, text: Text) -> str:
        """The text in `lang`, with parameters (themselves possibly `Text`) filled in."""
        table = self._tables.get(lang) or self._tables[self.default]
        template = table.get(text.key)
        if template is None:
            template = self._tables[self.default].get(text.key, text.key)
        if isinstance(template, tuple):
            template = template[0]
        params = _SafeDict(
            {k: self.render(lang, v) if isinstance(v, Text) else v for k, v in text.params.items()}
        )
        try:
            return _FORMATTER.vformat(template, (), params)
        except (ValueError, IndexError, KeyError):
            # A malformed template must never take a conversation down; show it raw.
            return template


def _optional(key: str) -> bool:
    return key.startswith("_meta.") and key != "_meta.name"


def _as_tuple(value: str | tuple[str, ...] | None) -> tuple[str, ...]:
    if value is None:
        return ()
    return value if isinstance(value, tuple) else (value,)


def _load_file(path: Path) -> dict[str, str | tuple[str, ...]]:
    try:
        data = load_yaml(path.read_text(encoding="utf-8"))
    except DuplicateKey as exc:
        raise CatalogError(f"{path}:{exc.line}: {exc.problem}") from None
    except yaml.YAMLError as exc:
        raise CatalogError(f"{path}: not valid YAML: {exc}") from None
    if not isinstance(data, dict):
        raise CatalogError(f"{path}: a catalog is a mapping of keys to texts")
    flat: dict[str, str | tuple[str, ...]] = {}
    _flatten(path, "", data, flat)
    return flat


def _flatten(path: Path, prefix: str, node: Mapping[str, Any], out: dict[str, Any]) -> None:
    for key, value in node.items():
        full = f"{prefix}{key}"
        if isinstance(value, dict):
            _flatten(path, full + ".", value, out)
        elif isinstance(value, list) and all(isinstance(v, str) for v in value):
            out[full] = tuple(value)
        elif isinstance(value, str | int | float):
            out[full] = str(value)
        else:
            raise CatalogError(f"{path}: {full}: expected text or a list of texts")


def load_catalogs(settings: Settings) -> Catalogs:
    """The shipped catalogs plus the configured folder, with the configured default."""
    extra = [Path(settings.catalogs_dir)] if settings.catalogs_dir else []
    return Catalogs.load(extra, default=settings.default_lang)
