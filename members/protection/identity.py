"""Validators and normalisers of what identifies a card holder.

Each ``normalize_*`` returns the one canonical form the rest of the code stores,
compares and indexes, or raises ``InvalidField``. Reasons name the rule that
failed, never the value: they end up in import reports and API errors, and the
values are personal data.

The ``canonical_*`` helpers only strip formatting (spaces, dashes, the +86
prefix) without judging the value; blind indexes use them, so a lookup with
"6217 0000 ..." finds what was imported as "62170000...".
"""

from __future__ import annotations

import re
from datetime import date

CARD_LENGTHS = range(16, 20)
_SEPARATORS = re.compile(r"[\s\-]")
# ASCII digits only, whole strings only: "\d" also takes "١٢٣", and "$" a trailing newline.
_DIGITS = re.compile(r"[0-9]+")
_MOBILE = re.compile(r"1[3-9][0-9]{9}")
_ID_NO = re.compile(r"[0-9]{17}[0-9X]")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")

# GB 11643-1999: ISO 7064 MOD 11-2 over the first 17 digits.
_ID_WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
_ID_CHECK_CHARS = "10X98765432"
_OLDEST_BIRTH_YEAR = 1900

NAME_MAX = 64


class InvalidField(ValueError):
    """A field failed validation. ``str()`` is ``"field: reason"``, never the value."""

    def __init__(self, field: str, reason: str) -> None:
        super().__init__(f"{field}: {reason}")
        self.field = field
        self.reason = reason


# --- formatting only -------------------------------------------------------------------

def canonical_card(raw: str) -> str:
    """The card number without spaces or dashes."""
    return _SEPARATORS.sub("", raw)


def canonical_phone(raw: str) -> str:
    """The phone number without spaces, dashes or a +86 / 0086 / 86 country prefix."""
    value = _SEPARATORS.sub("", raw)
    for prefix in ("+86", "0086", "86"):
        if value.startswith(prefix) and len(value) == len(prefix) + 11:
            return value[len(prefix):]
    return value


def canonical_id_no(raw: str) -> str:
    """The resident ID number without spaces or dashes, check character upper-case."""
    return _SEPARATORS.sub("", raw).upper()


# --- validation ------------------------------------------------------------------------

def luhn_valid(digits: str) -> bool:
    """The Luhn (mod 10) check every bank card number carries in its last digit."""
    total = 0
    for position, char in enumerate(reversed(digits)):
        value = int(char)
        if position % 2:
            value = value * 2 - 9 if value > 4 else value * 2
        total += value
    return total % 10 == 0


def normalize_card(raw: str) -> str:
    value = canonical_card(raw)
    if not value:
        raise InvalidField("card_no", "is required")
    if not _DIGITS.fullmatch(value):
        raise InvalidField("card_no", "must contain only digits")
    if len(value) not in CARD_LENGTHS:
        raise InvalidField("card_no", "must be 16 to 19 digits long")
    if not luhn_valid(value):
        raise InvalidField("card_no", "fails the Luhn check")
    return value


def normalize_phone(raw: str) -> str:
    value = canonical_phone(raw)
    if not value:
        raise InvalidField("phone", "is required")
    if not _MOBILE.fullmatch(value):
        raise InvalidField("phone", "must be a mainland China mobile number (11 digits, 13-19)")
    return value


def id_check_char(first17: str) -> str:
    """The GB 11643 check character of the first 17 digits of a resident ID number."""
    total = sum(int(char) * weight for char, weight in zip(first17, _ID_WEIGHTS, strict=True))
    return _ID_CHECK_CHARS[total % 11]


def normalize_id_no(raw: str, today: date | None = None) -> str:
    value = canonical_id_no(raw)
    if not value:
        raise InvalidField("id_no", "is required")
    if not _ID_NO.fullmatch(value):
        raise InvalidField("id_no", "must be 17 digits and a check digit or X")
    if id_check_char(value[:17]) != value[17]:
        raise InvalidField("id_no", "check character does not match")
    try:
        born = date(int(value[6:10]), int(value[10:12]), int(value[12:14]))
    except ValueError:
        raise InvalidField("id_no", "birth date is not a calendar date") from None
    if born.year < _OLDEST_BIRTH_YEAR or born > (today or date.today()):
        raise InvalidField("id_no", "birth date is implausible")
    return value


def normalize_name(raw: str) -> str:
    """A holder's name: inner whitespace collapsed, no control characters."""
    value = " ".join(raw.split())
    if not value:
        raise InvalidField("name", "is required")
    if len(value) > NAME_MAX:
        raise InvalidField("name", f"must be at most {NAME_MAX} characters")
    if _CONTROL.search(value):
        raise InvalidField("name", "contains control characters")
    return value


def normalize_label(field: str, raw: str, max_length: int) -> str:
    """A short free-text attribute (tier, city, branch): trimmed, non-empty, bounded."""
    value = raw.strip()
    if not value:
        raise InvalidField(field, "is required")
    if len(value) > max_length:
        raise InvalidField(field, f"must be at most {max_length} characters")
    if _CONTROL.search(value):
        raise InvalidField(field, "contains control characters")
    return value
