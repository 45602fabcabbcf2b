"""bot/text.py: what every store encodes is clean, whichever path dump_json takes."""

from __future__ import annotations

import json
from typing import Any

import pytest

from bot.text import REPLACEMENT, clean_value, dump_json


@pytest.mark.parametrize("value", [
    {"text": "ไทย", "n": 1, "list": [1.5, None, True]},  # clean: dumped once
    {"text": "a\x00b"},  # NUL, which jsonb refuses
    {"key \ud800": "lone surrogate in a key"},
    ["\udfff"],
    {"typed": "a literal \\u0000, not a NUL"},  # looks like one in the text: same result
    {7: "an int key"},
])
def test_dump_json_is_the_cleaned_values_json(value: Any) -> None:
    text = dump_json(value)
    assert text == json.dumps(clean_value(value), ensure_ascii=False)
    text.encode("utf-8")  # every store can encode it
    assert "\x00" not in json.loads(text) and "\\u0000" not in text.replace("\\\\", "")


def test_unstorable_characters_become_the_replacement() -> None:
    assert json.loads(dump_json({"a": "x\x00\ud800y"})) == {"a": f"x{REPLACEMENT}{REPLACEMENT}y"}
