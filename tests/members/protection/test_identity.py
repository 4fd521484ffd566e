"""Validators of card numbers, mobiles, resident ID numbers and free-text fields."""

from __future__ import annotations

from datetime import date

import pytest

from members.protection import identity
from members.protection.identity import InvalidField
from tests.fixtures.factories import id_complete, luhn_complete

# 11010519491231002X is the worked example of GB 11643-1999 itself.
STANDARD_ID = "11010519491231002X"
CARD_19 = luhn_complete("621700000000000123")
CARD_16 = "4111111111111111"  # the classic Luhn-valid test number


def _rejects(func, raw: str, field: str, reason_part: str) -> InvalidField:
    with pytest.raises(InvalidField) as caught:
        func(raw)
    assert caught.value.field == field
    assert reason_part in caught.value.reason
    # The value is personal data: it never shows in the error.
    if len(raw) > 3:
        assert raw not in str(caught.value)
    return caught.value


@pytest.mark.parametrize(("digits", "valid"), [
    ("79927398713", True), (CARD_16, True), ("4111111111111112", False),
    (CARD_19, True), (CARD_19[:-1] + str((int(CARD_19[-1]) + 1) % 10), False),
])
def test_luhn(digits, valid):
    assert identity.luhn_valid(digits) is valid


@pytest.mark.parametrize("raw", [CARD_19, f" {CARD_19[:4]} {CARD_19[4:8]}-{CARD_19[8:]} "])
def test_card_numbers_are_normalised_to_digits(raw):
    assert identity.normalize_card(raw) == CARD_19


@pytest.mark.parametrize(("raw", "reason"), [
    ("", "required"),
    ("4111-1111-1111-111a", "only digits"),
    (luhn_complete("41111111111111"), "16 to 19"),  # 15 digits
    (luhn_complete("4" * 19), "16 to 19"),  # 20 digits
    ("4111111111111112", "Luhn"),
])
def test_card_numbers_rejected(raw, reason):
    _rejects(identity.normalize_card, raw, "card_no", reason)


@pytest.mark.parametrize("raw", [
    "13800138000", "+86 138 0013 8000", "86-138-0013-8000", "008613800138000", "19912345678",
])
def test_mobiles_are_normalised_to_eleven_digits(raw):
    assert identity.normalize_phone(raw) in {"13800138000", "19912345678"}


@pytest.mark.parametrize("raw", [
    "", "12800138000", "1380013800", "138001380001", "+85213800138000", "1380013800a",
    "02012345678",
])
def test_mobiles_rejected(raw):
    _rejects(identity.normalize_phone, raw, "phone", "required" if not raw else "mobile")


def test_id_check_character_of_the_standard_example():
    assert identity.id_check_char(STANDARD_ID[:17]) == "X"
    assert identity.normalize_id_no(STANDARD_ID) == STANDARD_ID
    assert identity.normalize_id_no(STANDARD_ID.lower()) == STANDARD_ID
    valid = id_complete("44010619900101123")
    assert identity.normalize_id_no(f"{valid[:6]} {valid[6:14]} {valid[14:]}") == valid


@pytest.mark.parametrize(("raw", "reason"), [
    ("", "required"),
    (STANDARD_ID[:17], "17 digits"),
    ("11010519491231002Y", "17 digits"),
    ("110105194912310021", "check character"),
    (id_complete("11010519490231002"), "calendar"),  # 31 February, with a right check digit
    (id_complete("11010518991231002"), "implausible"),  # born 1899
    (id_complete("11010530001231002"), "implausible"),  # born in the future
])
def test_id_numbers_rejected(raw, reason):
    _rejects(identity.normalize_id_no, raw, "id_no", reason)


def test_birth_date_is_compared_with_today():
    born_today = id_complete("11010520300101002")
    with pytest.raises(InvalidField):
        identity.normalize_id_no(born_today, today=date(2029, 12, 31))
    assert identity.normalize_id_no(born_today, today=date(2030, 1, 1)) == born_today


def test_names_and_labels():
    assert identity.normalize_name("  张  三丰 ") == "张 三丰"
    _rejects(identity.normalize_name, "   ", "name", "required")
    _rejects(identity.normalize_name, "张" * 65, "name", "at most 64")
    _rejects(identity.normalize_name, "张\x00三", "name", "control")
    assert identity.normalize_label("tier", " gold ", 16) == "gold"
    with pytest.raises(InvalidField, match=r"^tier: is required$"):
        identity.normalize_label("tier", "", 16)
    with pytest.raises(InvalidField, match=r"^city: must be at most 4 characters$"):
        identity.normalize_label("city", "abcde", 4)
    with pytest.raises(InvalidField, match=r"^branch: contains control characters$"):
        identity.normalize_label("branch", "GZ\x1b01", 32)


def test_canonical_forms_only_strip_formatting():
    assert identity.canonical_card("6217 0000-1") == "621700001"
    assert identity.canonical_phone("+86 138 0013 8000") == "13800138000"
    assert identity.canonical_phone("+86 138") == "+86138"  # not a number: left for the validator
    assert identity.canonical_id_no("1101 0519 4912 3100 2x") == STANDARD_ID
