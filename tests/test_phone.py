"""Thai phone numbers in every common spelling."""

from __future__ import annotations

import pytest

from bot.phone import display_thai_phone, mask_phone, normalize_thai_phone


@pytest.mark.parametrize("typed", [
    "081-234-5678", "0812345678", "081 234 5678", "081.234.5678", "(081) 234-5678",
    "+66 81 234 5678", "+66812345678", "66812345678", "0066 81 234 5678", "+66 081 234 5678",
    "๐๘๑-๒๓๔-๕๖๗๘", "๐๘๑๒๓๔๕๖๗๘", " 081-234-5678 ",
])
def test_mobile_spellings(typed: str) -> None:
    assert normalize_thai_phone(typed) == "+66812345678"


@pytest.mark.parametrize(("typed", "e164"), [
    ("02-123-4567", "+6621234567"), ("021234567", "+6621234567"),
    ("+66 2 123 4567", "+6621234567"), ("053-123-456", "+6653123456"),
    ("061-111-2222", "+66611112222"), ("099 999 9999", "+66999999999"),
])
def test_landlines_and_other_mobiles(typed: str, e164: str) -> None:
    assert normalize_thai_phone(typed) == e164


@pytest.mark.parametrize("typed", [
    "", "191", "1300", "12345", "0812345", "08123456789", "hello", "081-234-567x",
    "+1 415 555 0100", "0012345678", "1" * 200, "081-234-5678 and 089-999-9999",
])
def test_not_a_thai_number(typed: str) -> None:
    assert normalize_thai_phone(typed) is None


def test_display_and_mask() -> None:
    assert display_thai_phone("+66812345678") == "081-234-5678"
    assert display_thai_phone("+6621234567") == "02-123-4567"
    assert mask_phone("+66812345678") == "•••678"
