"""Masks show a fixed small part of a value, and nothing of a value that looks wrong."""

from __future__ import annotations

import pytest

from members.protection.masking import (
    CARD_MASKED,
    ID_NO_MASKED,
    NAME_MASKED,
    PHONE_MASKED,
    mask_card,
    mask_id_no,
    mask_name,
    mask_phone,
)


@pytest.mark.parametrize(("raw", "masked"), [
    ("6217000000000001234", "**** 1234"),
    ("6217 0000 0000 0001 234", "**** 1234"),
    ("1234", "**** 1234"),  # the stored last four
    ("4111111111111111", "**** 1111"),
    ("123", CARD_MASKED),
    ("12345", CARD_MASKED),  # neither a last four nor a card: could be most of something
    ("62170000abcd1234", CARD_MASKED),
    ("6" * 25, CARD_MASKED),
    ("", CARD_MASKED),
    (None, CARD_MASKED),
])
def test_mask_card(raw, masked):
    assert mask_card(raw) == masked


@pytest.mark.parametrize(("raw", "masked"), [
    ("13800138000", "138****8000"),
    ("+86 138-0013-8000", "138****8000"),
    ("1380013800", PHONE_MASKED),
    ("138001380001", PHONE_MASKED),
    ("138ab138000", PHONE_MASKED),
    ("", PHONE_MASKED),
    (None, PHONE_MASKED),
])
def test_mask_phone(raw, masked):
    assert mask_phone(raw) == masked


@pytest.mark.parametrize(("raw", "masked"), [
    ("11010519491231002X", "1101**********002X"),
    ("11010519491231002x", "1101**********002X"),
    ("110105491231002", "1101*******1002"),  # first-generation 15-digit number
    ("1101051949123100", ID_NO_MASKED),
    ("11010519491231002Y", ID_NO_MASKED),
    ("", ID_NO_MASKED),
    (None, ID_NO_MASKED),
])
def test_mask_id_no(raw, masked):
    assert mask_id_no(raw) == masked


@pytest.mark.parametrize(("raw", "masked"), [
    ("张三丰", "张**"),
    ("张三", "张*"),
    (" 欧阳  修 ", "欧***"),
    ("张", NAME_MASKED),
    ("", NAME_MASKED),
    (None, NAME_MASKED),
])
def test_mask_name(raw, masked):
    assert mask_name(raw) == masked


def test_fully_masked_forms_do_not_depend_on_the_input():
    assert {mask_card(raw) for raw in ("1", "12", "123456", "x" * 40)} == {CARD_MASKED}
    assert {mask_phone(raw) for raw in ("1", "1380013800", "x" * 40)} == {PHONE_MASKED}
