"""Thai phone numbers in every common spelling, normalised to E.164.

Mobile numbers are 0 + 9 digits starting 06, 08 or 09; landlines are 0 + 8 digits (02 for
Bangkok, 03x/04x/05x/07x for the provinces). People write them with dashes, spaces, dots,
brackets, a +66/66/0066 prefix, and in Thai digits (or any other decimal digits a keyboard
sends: Arabic-Indic, Burmese, Lao, Khmer, full-width), always stored and shown as ASCII.
"""

from __future__ import annotations

import re
import unicodedata

THAI_DIGITS = str.maketrans("๐๑๒๓๔๕๖๗๘๙", "0123456789")
_SEPARATORS = re.compile(r"[\s\-.()/\u200b]+")
# ASCII only: `\d` and str.isdigit would also take "١" and let it through unconverted.
_MOBILE = re.compile(r"^0[689][0-9]{8}$")
_LANDLINE = re.compile(r"^0[23457][0-9]{7}$")


def to_ascii_digits(text: str) -> str:
    """Every decimal digit (Thai, Arabic-Indic, full-width, ...) to ASCII; the rest as is."""
    text = text.translate(THAI_DIGITS)
    if text.isascii():
        return text
    return "".join(str(unicodedata.decimal(c)) if not c.isascii() and
                   unicodedata.decimal(c, None) is not None else c for c in text)


def normalize_thai_phone(text: str) -> str | None:
    """E.164 (`+66812345678`) for a Thai mobile or landline number, else None."""
    raw = _SEPARATORS.sub("", to_ascii_digits(text.strip()))
    if len(raw) > 20:
        return None
    if raw.startswith("+66"):
        raw = "0" + raw[3:]
    elif raw.startswith("0066"):
        raw = "0" + raw[4:]
    elif raw.startswith("66") and len(raw) in (10, 11):
        raw = "0" + raw[2:]
    if raw.startswith("00"):  # +66 0 81... written with the trunk zero kept
        raw = raw[1:]
    if not (raw.isascii() and raw.isdigit()):
        return None
    if _MOBILE.match(raw) or _LANDLINE.match(raw):
        return "+66" + raw[1:]
    return None


def display_thai_phone(e164: str) -> str:
    """How a Thai reader expects to see it: 081-234-5678 or 02-123-4567."""
    if not e164.startswith("+66"):
        return e164
    local = "0" + e164[3:]
    if len(local) == 10:
        return f"{local[:3]}-{local[3:6]}-{local[6:]}"
    return f"{local[:2]}-{local[2:5]}-{local[5:]}"


def mask_phone(e164: str) -> str:
    """Only the last three digits, for places where a number must be referred to."""
    return "•" * 3 + e164[-3:] if len(e164) > 3 else "•••"
