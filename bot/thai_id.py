"""Thai national ID numbers and birth years as people type them.

A Thai ID is 13 digits; the last is a check digit: (11 - Σ dᵢ·(13-i) mod 11) mod 10 over
the first twelve. Birth years arrive in the Buddhist Era (2499) or the Common Era (1956);
BE = CE + 543.
"""

from __future__ import annotations

from datetime import date

from bot.phone import to_ascii_digits

BE_OFFSET = 543
OLDEST_AGE = 130


def normalize_thai_id(text: str) -> str | None:
    """The 13 digits when `text` is a Thai ID with a valid check digit, else None.

    Spaces and dashes are allowed (`1-2345-67890-12-1`); Thai digits too."""
    digits = "".join(ch for ch in to_ascii_digits(text) if ch not in " -")
    if len(digits) != 13 or not digits.isdecimal() or digits[0] == "0":
        return None
    total = sum(int(d) * (13 - i) for i, d in enumerate(digits[:12]))
    return digits if (11 - total % 11) % 10 == int(digits[12]) else None


def display_thai_id(digits: str) -> str:
    """Masked for a summary: only the last four digits are shown."""
    return f"x-xxxx-xxxxx-{digits[10:12]}-{digits[12]}"


def birth_year_ce(text: str, today: date) -> int | None:
    """A typed year (BE or CE) or an age, as a Common Era birth year; None when impossible.

    Up to 3 digits is an age (0-130); 4 digits above 2400 is BE, else CE. A year in the
    future or more than 130 years ago is refused."""
    typed = to_ascii_digits(text).strip()
    if not typed.isdecimal() or len(typed) > 4:
        return None
    number = int(typed)
    if len(typed) <= 3:
        year = today.year - number
    else:
        year = number - BE_OFFSET if number > 2400 else number
    if year > today.year or year < today.year - OLDEST_AGE:
        return None
    return year
